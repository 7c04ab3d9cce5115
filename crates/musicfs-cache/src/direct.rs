//! Cached ranges read straight from chunk files into the caller's buffer: how a mount's FUSE
//! threads answer cached reads. The file's lock is held only to copy the few chunk rows a
//! read needs, so parallel reads of one file (the kernel's readahead) proceed in parallel,
//! and the bytes are copied once, from the page cache into the reply.

use std::ops::Range;

use musicfs_db::cache_index::ChunkRow;

use crate::cache::Cache;
use crate::file::FileCache;
use crate::store::{ChunkHash, ChunkRead};

impl FileCache {
    /// The recorded chunks holding the `len` bytes at `offset` (fewer at the end of the
    /// file), in order, into `plan`; false if the cache does not hold them all.
    pub fn plan(&self, offset: u64, len: usize, plan: &mut Vec<ChunkRow>) -> bool {
        plan.clear();
        let end = (offset + len as u64).min(self.version().size);
        if end <= offset || end > self.cached() {
            return false;
        }
        let first = self
            .chunks
            .partition_point(|c| c.offset + c.len as u64 <= offset);
        plan.extend(
            self.chunks[first..]
                .iter()
                .take_while(|c| c.offset < end)
                .copied(),
        );
        plan.last().is_some_and(|c| c.offset + c.len as u64 >= end)
    }

    /// The cache this file is in (to read a plan with, without this file's lock).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

impl Cache {
    /// Reads the whole chunks of `plan` (from [`FileCache::plan`]) back to back into `buf`,
    /// each checked against its hash, and returns where in `buf` the `len` bytes at `offset`
    /// are (fewer at the end of the file). `None` when a chunk is not in memory and `wait`
    /// is false, or is missing or damaged: [`FileCache::read`] then repairs and refetches.
    /// `buf` is grown as needed, never shrunk (a FUSE thread reuses it).
    pub fn read_planned(
        &self,
        plan: &[ChunkRow],
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        wait: bool,
    ) -> Option<Range<usize>> {
        let (first, last) = (plan.first()?, plan.last()?);
        let start = first.offset;
        let total = (last.offset + last.len as u64 - start) as usize;
        if buf.len() < total {
            buf.resize(total, 0);
        }
        for c in plan {
            let at = (c.offset - start) as usize;
            let out = &mut buf[at..at + c.len as usize];
            if self
                .store()
                .read_verified(ChunkHash::from_sql(c.hash), out, wait)
                != ChunkRead::Verified
            {
                return None;
            }
        }
        self.count_hit();
        let from = offset.checked_sub(start)? as usize;
        Some(from..total.min(from + len))
    }
}
