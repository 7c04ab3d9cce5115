//! The cache's one writer thread: stores chunk files, then records them in the DB, each
//! batch in its own short transaction, making room first (eviction) so the store never
//! exceeds its cap. Access times and counters are written once a second. Nothing here is on
//! a read's path: readers hand chunks over without waiting.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use musicfs_db::cache_index::{CacheIndex, ChunkRow};

use crate::cache::{FileChunks, Job, Rows, Shared};
use crate::evict;

/// How often access times and counters reach the DB, and unused chunks are deleted.
const TICK: Duration = Duration::from_secs(1);

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub(crate) fn run(mut index: CacheIndex, shared: Arc<Shared>, jobs: Receiver<Job>) {
    let mut touched = HashSet::new();
    let mut last_tick = Instant::now();
    // Chunks left unused by files the scanner removed, or a `cache clear`.
    if let Err(err) = evict::delete_unused(&mut index, &shared.store) {
        tracing::warn!("content cache: {err}");
    }
    loop {
        let job = jobs.recv_timeout(TICK);
        // Given back once the job is done: its chunk bytes are held until then.
        let bytes = job.as_ref().map_or(0, Job::bytes);
        match job {
            Ok(Job::Chunks(batch)) => record(&mut index, &shared, batch),
            Ok(Job::Rows(rows)) => record_rows(&mut index, &shared, rows),
            Ok(Job::Touch(file_id)) => {
                touched.insert(file_id);
            }
            Ok(Job::Flush(done)) => {
                tick(&mut index, &shared, &mut touched);
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                tick(&mut index, &shared, &mut touched);
                return;
            }
        }
        shared.queue.give_back(bytes);
        if last_tick.elapsed() >= TICK {
            tick(&mut index, &shared, &mut touched);
            last_tick = Instant::now();
        }
    }
}

fn tick(index: &mut CacheIndex, shared: &Shared, touched: &mut HashSet<i64>) {
    let ids: Vec<i64> = touched.drain().collect();
    let counters = shared.take_counters();
    let written = (|| {
        if !ids.is_empty() {
            index.touch(&ids, now_ns())?;
        }
        if !counters.is_zero() {
            index.add_counters(counters)?;
        }
        Ok::<_, musicfs_db::DbError>(())
    })();
    if let Err(err) = written {
        tracing::warn!("content cache: access times and counters not recorded: {err}");
    }
    if let Err(err) = evict::delete_unused(index, &shared.store) {
        tracing::warn!("content cache: {err}");
    }
}

/// Stores a batch's chunk files and records them; on any failure the file is refused (its
/// readers stop cutting chunks) and nothing half-done is left indexed.
fn record(index: &mut CacheIndex, shared: &Shared, batch: FileChunks) {
    let file_id = batch.file_id;
    if shared.refused.lock().unwrap().contains(&file_id) {
        return;
    }
    let incoming: u64 = batch
        .chunks
        .iter()
        .filter(|c| !shared.store.contains(c.hash, c.data.len()))
        .map(|c| c.data.len() as u64)
        .sum();
    let refuse = |why: &str| {
        tracing::info!("content cache: file {file_id} not cached further: {why}");
        shared.refused.lock().unwrap().insert(file_id);
    };
    match evict::make_room(index, shared, incoming, file_id) {
        Ok(true) => {}
        Ok(false) => {
            shared.no_room.lock().unwrap().insert(file_id);
            return refuse("the cache is full of open files, or its disk is");
        }
        Err(err) => return refuse(&err.to_string()),
    }
    // Staged, recorded, then published: a chunk file under its name always has a row (a
    // crash in between leaves temporary files, swept at the next open).
    let mut staged = Vec::with_capacity(batch.chunks.len());
    for c in &batch.chunks {
        match shared.store.stage(&c.data) {
            Ok(s) => staged.push(s),
            Err(err) => return refuse(&err.to_string()),
        }
    }
    let rows: Vec<ChunkRow> = batch
        .chunks
        .iter()
        .enumerate()
        .map(|(k, c)| ChunkRow {
            seq: batch.first_seq + k as u32,
            offset: c.offset,
            len: c.data.len() as u32,
            hash: c.hash.to_sql(),
        })
        .collect();
    match index.add_chunks(file_id, &batch.version, &rows, batch.cached_to, now_ns()) {
        Ok(true) => {
            publish(shared, staged);
            batch.recorded.fetch_max(batch.cached_to, Ordering::AcqRel);
        }
        Ok(false) => refuse("it changed, or was removed, since it was opened"),
        Err(err) => refuse(&err.to_string()),
    }
}

/// Publishes recorded chunks. One that fails (its disk) is as a chunk lost later: the read
/// that needs it finds it missing and fetches it again.
fn publish(shared: &Shared, staged: Vec<crate::Staged>) {
    for s in staged {
        if let Err(err) = shared.store.publish(s) {
            tracing::warn!("content cache: {err}");
        }
    }
}

/// Records a whole chunk list whose files are stored (a delta fetch), after making room for
/// the bytes it added.
fn record_rows(index: &mut CacheIndex, shared: &Shared, job: Rows) {
    let file_id = job.file_id;
    let added: u64 = job
        .staged
        .iter()
        .filter(|s| s.is_new())
        .map(|s| s.len)
        .sum();
    let size = job.version.size;
    let recorded = match evict::make_room(index, shared, added, file_id) {
        Ok(true) => index.add_chunks(file_id, &job.version, &job.rows, size, now_ns()),
        Ok(false) => {
            shared.no_room.lock().unwrap().insert(file_id);
            Ok(false)
        }
        Err(err) => Err(err),
    };
    match recorded {
        Ok(true) => {
            publish(shared, job.staged);
            job.recorded.fetch_max(size, Ordering::AcqRel);
        }
        other => {
            if let Err(err) = other {
                tracing::warn!("content cache: file {file_id}: {err}");
            }
            shared.refused.lock().unwrap().insert(file_id);
        }
    }
}
