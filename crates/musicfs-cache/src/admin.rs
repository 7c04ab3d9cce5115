//! `musicfs cache stats` and `musicfs cache clear`: safe while a mount runs (its reads of a
//! cleared chunk find it missing and fetch it again; rows and files are changed in the
//! same order as the mount's writer does).

use std::path::Path;

use musicfs_db::cache_index::{self, CacheIndex, CacheTotals, CacheUse};

use crate::error::{CacheError, Result};
use crate::store::ChunkStore;

/// What `musicfs cache stats` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub totals: CacheTotals,
    pub usage: CacheUse,
}

impl CacheStats {
    /// Bytes the cached files are made of over bytes stored: 1.0 when nothing is shared.
    pub fn dedup_ratio(&self) -> f64 {
        if self.totals.bytes == 0 {
            return 1.0;
        }
        self.usage.logical_bytes as f64 / self.totals.bytes as f64
    }
}

/// Reads the cache's totals from a connection to the library DB (read-only is enough).
pub fn stats(conn: &rusqlite::Connection) -> Result<CacheStats> {
    Ok(CacheStats {
        totals: cache_index::cache_totals(conn).map_err(CacheError::Db)?,
        usage: cache_index::cache_use(conn).map_err(CacheError::Db)?,
    })
}

/// Forgets the cached files of the origin `root` (as stored: a path or URL; all if None) and
/// deletes the chunks no other file uses. Returns (files forgotten, chunks deleted).
///
/// With `store_dir` not the store the rows describe (its disk not mounted, another folder),
/// clearing all is how the user says "start a new cache here": the rows are forgotten, the
/// chunk files left alone (they are in the other folder, not this one), and this folder
/// becomes the cache. Clearing one origin's files is refused then: the others' rows would
/// still name another store.
pub fn clear(db: &Path, store_dir: &Path, root: Option<&[u8]>) -> Result<(u64, u64)> {
    let mut index = CacheIndex::open(db).map_err(CacheError::Db)?;
    match crate::cache::check_identity(&index, store_dir) {
        Ok(()) => {}
        Err(CacheError::NotThisCache { .. }) if root.is_none() => {
            let files = index.forget_all().map_err(CacheError::Db)?;
            let store = ChunkStore::open(store_dir)?;
            crate::cache::adopt(&mut index, &store)?;
            return Ok((files, 0));
        }
        Err(err) => return Err(err),
    }
    let store = ChunkStore::open(store_dir)?;
    crate::cache::adopt(&mut index, &store)?;
    let files = index.cached_files_of(root).map_err(CacheError::Db)?;
    // Bounded transactions: a big cache is cleared in steps, each short for the scanner.
    for part in files.chunks(256) {
        index.forget_files(part).map_err(CacheError::Db)?;
    }
    let chunks = crate::evict::delete_unused(&mut index, &store).map_err(CacheError::Db)?;
    Ok((files.len() as u64, chunks))
}
