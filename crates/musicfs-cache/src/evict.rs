//! Keeping the cache within its cap and its disk's free-space floor: least recently read
//! files are forgotten first, never an open one; chunks no file uses any more are deleted
//! (their files first, then their rows).

use musicfs_db::cache_index::CacheIndex;

use crate::cache::Shared;
use crate::store::{ChunkHash, ChunkStore};

/// Unused chunks deleted per transaction.
const UNUSED_BATCH: u32 = 1024;
/// Candidates read per eviction step (open files among them are passed over).
const CANDIDATES: u32 = 256;

/// Makes room for `incoming` new bytes: afterwards the store plus them is within the cap and
/// leaves the free-space floor, or the answer is false (only open files, or `keep`, are
/// left to evict, or the disk is full of other things).
pub(crate) fn make_room(
    index: &mut CacheIndex,
    shared: &Shared,
    incoming: u64,
    keep: i64,
) -> musicfs_db::Result<bool> {
    let config = &shared.config;
    loop {
        let stored = index.totals()?.bytes;
        let over_cap = (stored + incoming).saturating_sub(config.max_bytes);
        let short_of_free = free_bytes(shared.store.dir()).map_or(0, |free| {
            (config.min_free_bytes + incoming).saturating_sub(free)
        });
        let need = over_cap.max(short_of_free);
        if need == 0 {
            return Ok(true);
        }
        if delete_unused(index, &shared.store)? > 0 {
            continue;
        }
        if stored == 0 {
            return Ok(false);
        }
        let pinned = shared.pinned();
        let victim = index
            .least_recent(CANDIDATES)?
            .into_iter()
            .find(|id| *id != keep && !pinned.contains(id));
        let Some(victim) = victim else {
            return Ok(false);
        };
        index.forget_files(&[victim])?;
        shared
            .evicted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Deletes the chunks no file uses: files first, then rows (a crash between leaves rows of
/// missing chunks, found missing and fetched again if ever used). Returns how many.
pub(crate) fn delete_unused(index: &mut CacheIndex, store: &ChunkStore) -> musicfs_db::Result<u64> {
    let mut deleted = 0;
    loop {
        let unused = index.unused_chunks(UNUSED_BATCH)?;
        let mut gone = Vec::with_capacity(unused.len());
        for &(hash, _) in &unused {
            match store.remove(ChunkHash::from_sql(hash)) {
                Ok(_) => gone.push(hash),
                Err(err) => tracing::warn!("content cache: cannot delete a chunk: {err}"),
            }
        }
        index.drop_unused(&gone)?;
        deleted += gone.len() as u64;
        // A batch that could not all be deleted is tried again at the next tick, not now.
        if unused.len() < UNUSED_BATCH as usize || gone.len() < unused.len() {
            return Ok(deleted);
        }
    }
}

/// Free bytes for an unprivileged writer on the filesystem of `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-struct.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}
