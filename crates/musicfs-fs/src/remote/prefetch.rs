//! Prefetching the next track: once a track has really started playing (its first
//! [`STARTED`] bytes read in order), the start of the next file of its folder, in name order
//! (track order), is fetched into the content cache in the background, so the track change
//! plays from the cache instead of waiting on the origin.
//!
//! Only when the folder is being played in order: the track that started is its folder's
//! first, or follows the one that started before it. A shuffled play rarely does, so it costs
//! little. One prefetch at a time; a play that starts while one runs gets none (bounded). A
//! file opened while it is prefetched stops the prefetch after the piece under way, and the
//! open waits for that piece: its bytes are fetched once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use musicfs_db::{ReadPool, cache_index, queries};

use super::{RemoteFile, RemoteOrigins};

/// A play has started once this much of a file was read in order (a tag reader reads less).
pub(crate) const STARTED: u64 = 256 << 10;
/// How much of the next track is fetched: about 15 s of CD-quality FLAC, a minute of MP3.
pub(crate) const PREFETCH_BYTES: u64 = 2 << 20;

pub(crate) struct Prefetcher {
    pool: ReadPool,
    remotes: Arc<RemoteOrigins>,
    cache: musicfs_cache::Cache,
    /// The entry whose play started last.
    last_started: Mutex<Option<i64>>,
    busy: Arc<AtomicBool>,
    /// The file being prefetched, and its stop flag: opened for real, it is not fetched
    /// twice (the open waits for the piece under way, then reads on from the cache).
    current: Mutex<Option<(i64, Arc<AtomicBool>)>>,
    /// Signalled when a prefetch has ended and its chunks are recorded.
    ended: Condvar,
}

/// The longest an open waits for the prefetch of its file to hand over (a piece under way).
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

impl Prefetcher {
    pub(crate) fn new(
        pool: ReadPool,
        remotes: Arc<RemoteOrigins>,
        cache: musicfs_cache::Cache,
    ) -> Prefetcher {
        Prefetcher {
            pool,
            remotes,
            cache,
            last_started: Mutex::new(None),
            busy: Arc::new(AtomicBool::new(false)),
            current: Mutex::new(None),
            ended: Condvar::new(),
        }
    }

    /// `file_id` is being opened for reading: a prefetch of it stops after the piece under
    /// way, which this waits for (bounded), so the open finds those bytes in the cache instead
    /// of fetching them again. Call on an I/O thread.
    pub(crate) fn opened(&self, file_id: i64) {
        let current = self.current.lock().unwrap();
        let Some((_, stop)) = current.as_ref().filter(|(id, _)| *id == file_id) else {
            return;
        };
        stop.store(true, Ordering::Release);
        let _ = self.ended.wait_timeout_while(current, HANDOVER_WAIT, |c| {
            c.as_ref().is_some_and(|(id, _)| *id == file_id)
        });
    }

    /// The play of entry `ino` started: maybe prefetch the next track (never waits).
    pub(crate) fn started(self: &Arc<Self>, ino: u64) {
        let this = self.clone();
        let _ = std::thread::Builder::new()
            .name("musicfs-prefetch-next".into())
            .spawn(move || {
                if let Err(err) = this.prefetch_after(ino as i64) {
                    tracing::debug!("prefetch after entry {ino}: {err}");
                }
            });
    }

    fn prefetch_after(&self, entry: i64) -> Result<(), crate::FsError> {
        let conn = self.pool.get()?;
        let previous = queries::sibling_file(&conn, entry, false)?;
        let in_order = {
            let mut last = self.last_started.lock().unwrap();
            let in_order = previous.is_none() || previous.map(|p| p.0) == *last;
            *last = Some(entry);
            in_order
        };
        if !in_order {
            return Ok(());
        }
        let Some((_, file_id)) = queries::sibling_file(&conn, entry, true)? else {
            return Ok(());
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _done = Reset(self.busy.clone());
        let (Some(backing), Some(version)) = (
            queries::backing_path(&conn, file_id)?,
            cache_index::file_version(&conn, file_id)?,
        ) else {
            return Ok(());
        };
        if !self.remotes.caches(&backing.root, &backing.kind) {
            return Ok(());
        }
        let size = version.size;
        let want = PREFETCH_BYTES.min(size);
        let cached = musicfs_cache::FileCache::open(&self.cache, &conn, file_id, version)?;
        drop(conn);
        if cached.cached() >= want {
            return Ok(());
        }
        let set = self
            .remotes
            .get(backing.origin_id, &backing.root, &backing.kind)
            .map_err(|e| crate::FsError::Cache(musicfs_cache::CacheError::Read(e.into_io())))?;
        let file = match RemoteFile::open(set, backing.rel, size, backing.etag, Some(cached)) {
            Ok(file) => file,
            Err(_) => return Ok(()), // changed or unreachable: the play will say so
        };
        let stop = Arc::new(AtomicBool::new(false));
        *self.current.lock().unwrap() = Some((file_id, stop.clone()));
        let filled = file.fill_cache(want, &stop);
        drop(file);
        self.cache.flush(); // recorded: an open from now on finds them
        self.current.lock().unwrap().take();
        self.ended.notify_all();
        filled.map_err(|e| crate::FsError::Cache(musicfs_cache::CacheError::Read(e)))?;
        tracing::debug!("prefetched {want} bytes of file {file_id}");
        Ok(())
    }
}

/// Clears the busy flag when a prefetch ends, however it ends.
struct Reset(Arc<AtomicBool>);

impl Drop for Reset {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
