//! The writer thread: applies walker operations in transactions bounded by count and time.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use musicfs_db::{DbError, FileRecord, Writer};
use musicfs_layout::Placement;
use musicfs_tags::Track;

use crate::policy::LayoutPolicy;
use crate::summary::Counters;

/// One change found by a walker.
pub(crate) enum Op {
    Put(Box<PutFile>),
    RemoveFile {
        file_id: i64,
    },
    RemoveFolder {
        folder_id: i64,
    },
    /// The folder's skipped files are now exactly these: (name, reason).
    Skipped {
        origin_id: i64,
        folder: Vec<u8>,
        skipped: Vec<(Vec<u8>, String)>,
    },
}

/// A new or changed file, with tags read and placements rendered by the walker.
pub(crate) struct PutFile {
    pub origin_id: i64,
    pub folder: Vec<u8>,
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
    pub ext: String,
    pub track: Track,
    pub error: Option<String>,
    /// The error may pass: read the file again next scan (`files.scan_retry`).
    pub retry: bool,
    pub placements: Vec<Placement>,
}

pub(crate) struct Batching {
    pub max_ops: usize,
    pub max_time: std::time::Duration,
}

/// Applies every op from `rx` until all senders are gone. Commits when a batch reaches
/// `max_ops` or has been open for `max_time`, and at the end.
pub(crate) fn run(
    writer: &mut Writer,
    rx: &Receiver<Op>,
    batching: &Batching,
    policy: &LayoutPolicy,
    counters: &Counters,
    search: &mut Option<musicfs_search::IndexKeeper>,
) -> Result<(), DbError> {
    // After each committed batch the search index follows (see musicfs_search::IndexKeeper).
    let commit = |writer: &mut Writer, search: &mut Option<musicfs_search::IndexKeeper>| {
        writer.commit()?;
        if let Some(keeper) = search
            && let Err(err) = keeper.apply_queue(writer)
        {
            tracing::warn!("search index not kept for the rest of this run: {err}");
            *search = None;
        }
        Ok::<(), DbError>(())
    };
    let mut ops_in_batch = 0;
    let mut batch_started = Instant::now();
    let mut folder_cache: Option<((i64, Vec<u8>), i64)> = None;
    loop {
        let op = if writer.in_transaction() {
            let left = batching.max_time.saturating_sub(batch_started.elapsed());
            match rx.recv_timeout(left) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            }
        };
        if let Some(op) = op {
            if !writer.in_transaction() {
                writer.begin()?;
                batch_started = Instant::now();
                ops_in_batch = 0;
            }
            apply(writer, op, policy, counters, &mut folder_cache)?;
            ops_in_batch += 1;
        }
        if writer.in_transaction()
            && (ops_in_batch >= batching.max_ops || batch_started.elapsed() >= batching.max_time)
        {
            commit(writer, search)?;
        }
    }
    if writer.in_transaction() {
        commit(writer, search)?;
    }
    if let Some(keeper) = search
        && let Err(err) = keeper.commit(writer)
    {
        tracing::warn!("search index not committed this run (the next scan replays): {err}");
    }
    Ok(())
}

fn apply(
    writer: &Writer,
    op: Op,
    policy: &LayoutPolicy,
    counters: &Counters,
    folder_cache: &mut Option<((i64, Vec<u8>), i64)>,
) -> Result<(), DbError> {
    match op {
        Op::Put(put) => {
            let key = (put.origin_id, put.folder);
            let folder_id = match folder_cache {
                Some((k, id)) if *k == key => *id,
                _ => {
                    let id = writer.folder(key.0, &key.1)?;
                    *folder_cache = Some((key, id));
                    id
                }
            };
            let file_id = writer.put_file(
                folder_id,
                &FileRecord {
                    name: &put.name,
                    size: put.size,
                    mtime_ns: put.mtime_ns,
                    ext: &put.ext,
                    track: &put.track,
                    scan_error: put.error.as_deref(),
                    scan_retry: put.retry,
                },
            )?;
            let placements: Vec<(i64, &[String])> = put
                .placements
                .iter()
                .map(|p| (p.key, p.components.as_slice()))
                .collect();
            writer.place(file_id, &placements, &put.ext, policy, true)?;
        }
        Op::RemoveFile { file_id } => {
            writer.remove_file(file_id)?;
            Counters::bump(&counters.removed, 1);
        }
        Op::Skipped {
            origin_id,
            folder,
            skipped,
        } => {
            let folder_id = writer.folder(origin_id, &folder)?;
            writer.set_skipped(folder_id, &skipped)?;
        }
        Op::RemoveFolder { folder_id } => {
            *folder_cache = None;
            let n = writer.remove_folder(folder_id)?;
            Counters::bump(&counters.removed, n);
        }
    }
    Ok(())
}
