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

/// Whether the folder `dir` holds the store this DB's cache rows describe; checked before
/// anything is made in it. A folder without a store, or with another one, is refused while
/// the rows describe cached files (they would be forgotten, or taken for cached); with none
/// to lose, any folder will do ([`adopt`] records it). A DB that never recorded a store
/// (rows written before stores had an identity) takes the folder it is given.
pub(crate) fn check_identity(index: &CacheIndex, dir: &Path) -> Result<()> {
    let Some(expected) = index.store_id().map_err(CacheError::Db)? else {
        return Ok(());
    };
    let found = ChunkStore::peek_id(dir)?;
    if found.as_deref() == Some(expected.as_str()) {
        return Ok(());
    }
    let files = musicfs_db::cache_index::cache_use(index.conn())
        .map_err(CacheError::Db)?
        .files;
    if files == 0 {
        return Ok(());
    }
    let found = match found {
        Some(id) => format!("the folder holds another store, {id}"),
        None if !dir.exists() => "the folder does not exist".to_owned(),
        None => "the folder holds no store (no .store-id)".to_owned(),
    };
    Err(CacheError::NotThisCache {
        dir: dir.to_owned(),
        expected,
        found,
        files,
    })
}

/// Records `store` as the one the DB's rows describe, after [`check_identity`] passed. Rows
/// left by another store (chunks no file uses, not yet deleted) are dropped first, their
/// files left alone: they are not in this folder.
pub(crate) fn adopt(index: &mut CacheIndex, store: &ChunkStore) -> Result<()> {
    let id = store.id()?;
    let recorded = index.store_id().map_err(CacheError::Db)?;
    if recorded.as_deref() == Some(id.as_str()) {
        return Ok(());
    }
    if recorded.is_some() {
        index.forget_all().map_err(CacheError::Db)?;
    }
    index.set_store_id(&id).map_err(CacheError::Db)
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
    /// Of the refused files, those refused because no room could be made (the cache is full
    /// of open files, or its disk is): `cache warm` stops at the first.
    pub no_room: Mutex<HashSet<i64>>,
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
    ///
    /// Refuses ([`CacheError::NotThisCache`]) a folder that is not the store the DB's rows
    /// describe while they describe cached files, before making anything in it: a cache disk
    /// not mounted must not turn into an empty new cache and a forgotten old one.
    pub fn open(db: &Path, config: CacheConfig) -> Result<Cache> {
        let mut index = CacheIndex::open(db).map_err(CacheError::Db)?;
        check_identity(&index, &config.dir)?;
        let store = ChunkStore::open(&config.dir)?;
        adopt(&mut index, &store)?;
        let shared = Arc::new(Shared {
            store,
            config,
            queue: QueueBytes::new(QUEUE_BYTES),
            pins: Mutex::default(),
            refused: Mutex::default(),
            no_room: Mutex::default(),
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
        self.shared.no_room.lock().unwrap().remove(&file_id);
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

    pub(crate) fn no_room(&self, file_id: i64) -> bool {
        self.shared.no_room.lock().unwrap().contains(&file_id)
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
    use std::fs;
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

    fn cached_files(db: &Path) -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM cached_files", [], |r| r.get(0))
            .unwrap()
    }

    fn recorded_store(db: &Path) -> Option<String> {
        CacheIndex::open(db).unwrap().store_id().unwrap()
    }

    /// A cache disk not mounted (the folder missing, or an empty mount point), or another
    /// cache folder: refused, naming both stores and the way out, and nothing is changed; the
    /// right folder back, the cache is as it was; `cache clear` makes the new folder the cache.
    #[test]
    fn another_or_missing_cache_folder_is_refused_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lib.db");
        let config = |name: &str| CacheConfig::new(dir.path().join(name));
        let cache = Cache::open(&db, config("disk")).unwrap();
        let id = cache.store().id().unwrap();
        cache.close();
        drop(cache);
        assert_eq!(recorded_store(&db).as_deref(), Some(id.as_str()));
        // A file cached (its row as the writer leaves it).
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO cached_files \
             (file_id, size, mtime_ns, etag, cached, last_access) VALUES (7, 10, 0, NULL, 10, 0)",
        )
        .unwrap();
        let other = ChunkStore::open(&dir.path().join("other"))
            .unwrap()
            .id()
            .unwrap();
        fs::create_dir(dir.path().join("mountpoint")).unwrap();
        for (name, found) in [
            ("unmounted", "the folder does not exist".to_owned()),
            ("mountpoint", "the folder holds no store".to_owned()),
            ("other", format!("the folder holds another store, {other}")),
        ] {
            let err = Cache::open(&db, config(name)).err().expect("opened");
            let text = err.to_string();
            assert!(
                matches!(err, CacheError::NotThisCache { files: 1, .. }),
                "{text}"
            );
            for said in [
                &dir.path().join(name).display().to_string(),
                &id,
                &found,
                "musicfs cache clear",
                "--cache-dir",
                "not mounted",
            ] {
                assert!(text.contains(said), "{said:?} not in: {text}");
            }
            assert_eq!(cached_files(&db), 1, "{name}: rows forgotten");
            assert_eq!(recorded_store(&db).as_deref(), Some(id.as_str()));
            assert!(
                ChunkStore::peek_id(&dir.path().join(name)).unwrap() != Some(id.clone()),
                "{name}: a store was made"
            );
        }
        assert!(
            !dir.path().join("unmounted").exists(),
            "the folder was made"
        );
        assert!(
            fs::read_dir(dir.path().join("mountpoint"))
                .unwrap()
                .next()
                .is_none()
        );
        // One origin's files cannot be cleared into another folder; all can.
        let err = crate::clear(&db, &dir.path().join("other"), Some(b"/x")).unwrap_err();
        assert!(matches!(err, CacheError::NotThisCache { .. }), "{err}");
        // The disk back: as it was.
        Cache::open(&db, config("disk")).unwrap().close();
        assert_eq!(cached_files(&db), 1);
        // Cleared with the new folder: it becomes the cache, the old one's files untouched.
        assert_eq!(
            crate::clear(&db, &dir.path().join("unmounted"), None).unwrap(),
            (1, 0)
        );
        assert_eq!(cached_files(&db), 0);
        let new = ChunkStore::peek_id(&dir.path().join("unmounted")).unwrap();
        assert_eq!(recorded_store(&db), new);
        Cache::open(&db, config("unmounted")).unwrap().close();
        // Nothing cached: any folder will do (nothing to lose).
        Cache::open(&db, config("mountpoint")).unwrap().close();
        assert_eq!(
            ChunkStore::peek_id(&dir.path().join("disk")).unwrap(),
            Some(id)
        );
    }
}
