//! The cache a mount (or `musicfs cache warm`) holds: the chunk store, the thread that writes
//! the index, which files are open (never evicted), and the counters `cache stats` shows.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use musicfs_db::cache_index::{CacheCounters, CacheIndex, FileVersion};

use crate::Chunk;
use crate::error::{CacheError, Result};
use crate::store::ChunkStore;

/// Where the cache lives and how big it may grow.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The chunk store (default [`ChunkStore::default_dir`]).
    pub dir: PathBuf,
    /// Chunk bytes kept at most; eviction keeps the store within it.
    pub max_bytes: u64,
    /// Free space the cache leaves on its disk: it evicts rather than take the last of it.
    pub min_free_bytes: u64,
}

impl CacheConfig {
    pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
    pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

    pub fn new(dir: PathBuf) -> CacheConfig {
        CacheConfig {
            dir,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            min_free_bytes: Self::DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// Chunks of one file to record, cut from fetched bytes: the writer stores the chunk files
/// then their rows.
pub(crate) struct FileChunks {
    pub file_id: i64,
    pub version: FileVersion,
    /// `seq` of `chunks[0]`.
    pub first_seq: u32,
    pub chunks: Vec<Chunk>,
    /// The bytes from the start held once these are recorded.
    pub cached_to: u64,
    /// Set to `cached_to` once recorded: the reader serves only what is.
    pub recorded: Arc<AtomicU64>,
}

/// A file's whole chunk list, its chunk files staged (a delta fetch): recorded in one
/// transaction, replacing the previous version's list, then published.
pub(crate) struct Rows {
    pub file_id: i64,
    pub version: FileVersion,
    pub rows: Vec<musicfs_db::cache_index::ChunkRow>,
    /// The new version's chunks the store did not hold (the reused ones it does): its growth,
    /// published once recorded, else dropped.
    pub staged: Vec<crate::Staged>,
    pub recorded: Arc<AtomicU64>,
}

pub(crate) enum Job {
    Chunks(FileChunks),
    Rows(Rows),
    /// A cached file was read: eviction takes it last.
    Touch(i64),
    /// Answered once every job sent before it is done.
    Flush(SyncSender<()>),
}

impl Job {
    /// Bytes of chunk data the job holds in memory until the writer is done with it (a delta
    /// fetch's chunks are on disk already, staged).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Job::Chunks(batch) => batch.chunks.iter().map(|c| c.data.len() as u64).sum(),
            Job::Rows(_) | Job::Touch(_) | Job::Flush(_) => 0,
        }
    }
}

/// Chunk bytes handed to the writer and not yet written, at most: 64 MiB, whatever the
/// size of the jobs (a reader's batches are a few chunks, `cache warm`'s up to 8 MiB). A
/// reader whose chunks do not fit drops them (the file is then cached up to where it was,
/// and the rest is fetched again next time): the read path never waits on the cache's disk
/// or the DB. A job larger than the bound is taken when nothing else waits.
pub const QUEUE_BYTES: u64 = 64 << 20;

/// Jobs waiting for the writer, at most: bounds the small ones (access times, flushes), which
/// carry no chunk bytes.
const QUEUE_JOBS: usize = 1024;

/// The chunk bytes queued for the writer, against [`QUEUE_BYTES`]: taken before a job is
/// sent, given back once the writer is done with it.
pub(crate) struct QueueBytes {
    limit: u64,
    queued: Mutex<u64>,
    freed: Condvar,
}

impl QueueBytes {
    pub(crate) fn new(limit: u64) -> QueueBytes {
        QueueBytes {
            limit,
            queued: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Takes `bytes` of the budget if they fit (or nothing else is queued: a job larger than
    /// the bound passes alone), waiting for room if `wait`; false if they were not taken.
    pub(crate) fn take(&self, bytes: u64, wait: bool) -> bool {
        let mut queued = self.queued.lock().unwrap();
        loop {
            if *queued == 0 || *queued + bytes <= self.limit {
                *queued += bytes;
                return true;
            }
            if !wait {
                return false;
            }
            queued = self.freed.wait(queued).unwrap();
        }
    }

    pub(crate) fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut queued = self.queued.lock().unwrap();
        *queued = queued.saturating_sub(bytes);
        self.freed.notify_all();
    }

    #[cfg(test)]
    pub(crate) fn queued(&self) -> u64 {
        *self.queued.lock().unwrap()
    }
}

pub(crate) struct Shared {
    pub store: ChunkStore,
    pub config: CacheConfig,
    /// Chunk bytes queued for the writer (bounded by [`QUEUE_BYTES`]).
    pub queue: QueueBytes,
    /// Open files, with how many opens each: their chunks are never evicted.
    pub pins: Mutex<HashMap<i64, u32>>,
    /// Files whose chunks the writer could not take (the cache is full of open files, or
    /// the queue was full): their readers stop cutting chunks.
    pub refused: Mutex<HashSet<i64>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub repaired: AtomicU64,
    pub evicted: AtomicU64,
}

impl Shared {
    /// Counters since the last call (the writer adds them to the DB's).
    pub fn take_counters(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits.swap(0, Ordering::Relaxed),
            misses: self.misses.swap(0, Ordering::Relaxed),
            repaired: self.repaired.swap(0, Ordering::Relaxed),
            evicted: self.evicted.swap(0, Ordering::Relaxed),
        }
    }

    pub fn pinned(&self) -> HashSet<i64> {
        self.pins.lock().unwrap().keys().copied().collect()
    }
}

/// A content cache over one library DB. Cheap to clone; the writer thread ends when the last
/// clone is dropped, after finishing its queue.
#[derive(Clone)]
pub struct Cache {
    pub(crate) shared: Arc<Shared>,
    jobs: Arc<Mutex<Option<SyncSender<Job>>>>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Cache {
    /// Opens the store and the index writer of `db`. The DB must be writable: the cache's
    /// rows are part of it (`cached_files`, `chunks`).
    pub fn open(db: &Path, config: CacheConfig) -> Result<Cache> {
        let store = ChunkStore::open(&config.dir)?;
        let index = CacheIndex::open(db).map_err(CacheError::Db)?;
        let shared = Arc::new(Shared {
            store,
            config,
            queue: QueueBytes::new(QUEUE_BYTES),
            pins: Mutex::default(),
            refused: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            repaired: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        });
        let (tx, rx) = sync_channel(QUEUE_JOBS);
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("musicfs-cache".into())
                .spawn(move || crate::writer::run(index, shared, rx))
                .map_err(|e| CacheError::io(Path::new("musicfs-cache thread"), e))?
        };
        Ok(Cache {
            shared,
            jobs: Arc::new(Mutex::new(Some(tx))),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    pub fn store(&self) -> &ChunkStore {
        &self.shared.store
    }

    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// Sends a job (`wait`: for room in the queue); false if it was not taken.
    pub(crate) fn send(&self, job: Job, wait: bool) -> bool {
        let Some(tx) = self.jobs.lock().unwrap().clone() else {
            return false;
        };
        let bytes = job.bytes();
        if !self.shared.queue.take(bytes, wait) {
            return false;
        }
        let sent = match wait {
            true => tx.send(job).is_ok(),
            false => tx.try_send(job).is_ok(),
        };
        if !sent {
            self.shared.queue.give_back(bytes);
        }
        sent
    }

    /// Waits until every chunk handed to the writer so far is recorded (tests, `cache warm`).
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        let sent = match self.jobs.lock().unwrap().as_ref() {
            Some(jobs) => jobs.send(Job::Flush(tx)).is_ok(),
            None => false,
        };
        if sent {
            let _ = rx.recv();
        }
    }

    /// Stops the writer after its queue: counters and access times are written.
    pub fn close(&self) {
        self.jobs.lock().unwrap().take();
        if let Some(writer) = self.writer.lock().unwrap().take() {
            let _ = writer.join();
        }
    }

    pub(crate) fn pin(&self, file_id: i64) {
        *self.shared.pins.lock().unwrap().entry(file_id).or_default() += 1;
        self.shared.refused.lock().unwrap().remove(&file_id);
    }

    pub(crate) fn unpin(&self, file_id: i64) {
        let mut pins = self.shared.pins.lock().unwrap();
        if let Some(n) = pins.get_mut(&file_id) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&file_id);
            }
        }
    }

    pub(crate) fn refused(&self, file_id: i64) -> bool {
        self.shared.refused.lock().unwrap().contains(&file_id)
    }

    pub(crate) fn count_hit(&self) {
        self.shared.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_miss(&self) {
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_repaired(&self) {
        self.shared.repaired.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_data::noise;

    #[test]
    fn the_budget_is_bytes_and_a_job_larger_than_it_passes_alone() {
        let budget = Arc::new(QueueBytes::new(64));
        assert!(budget.take(40, false));
        assert!(budget.take(24, false));
        assert!(!budget.take(1, false), "over the bound");
        assert!(
            budget.take(0, false),
            "a job without chunk bytes always fits"
        );
        budget.give_back(64);
        assert!(
            budget.take(1000, false),
            "alone, a job larger than the bound"
        );
        assert!(!budget.take(1, false));
        // A waiting sender gets in once the writer gives the bytes back.
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.take(30, true))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "took bytes that were not there");
        budget.give_back(1000);
        assert!(waiter.join().unwrap());
        assert_eq!(budget.queued(), 30);
    }

    /// The writer stuck (the DB locked, as by a scanner's long write): readers' chunks queue
    /// up to [`QUEUE_BYTES`], not to a count of jobs of any size.
    #[test]
    fn a_stuck_writer_holds_at_most_the_bound_in_chunk_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lib.db");
        let mut config = CacheConfig::new(dir.path().join("chunks"));
        config.min_free_bytes = 0;
        let cache = Cache::open(&db, config).unwrap();
        cache.flush();
        let lock = rusqlite::Connection::open(&db).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        const PIECE: usize = 8 << 20;
        let data = noise(PIECE, 7);
        let job = |n: usize| {
            Job::Chunks(FileChunks {
                file_id: 1,
                version: FileVersion {
                    size: 1 << 40,
                    mtime_ns: 0,
                    etag: None,
                },
                first_seq: n as u32,
                chunks: vec![Chunk::new((n * PIECE) as u64, data.clone())],
                cached_to: ((n + 1) * PIECE) as u64,
                recorded: Arc::new(AtomicU64::new(0)),
            })
        };
        let taken = (0..16).take_while(|&n| cache.send(job(n), false)).count();
        assert_eq!(taken as u64, QUEUE_BYTES / PIECE as u64);
        assert_eq!(cache.shared.queue.queued(), QUEUE_BYTES);
        lock.execute_batch("ROLLBACK").unwrap();
        cache.flush();
        assert_eq!(cache.shared.queue.queued(), 0, "bytes not given back");
        assert!(cache.send(job(0), false));
        cache.close();
    }
}
