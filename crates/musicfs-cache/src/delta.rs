//! Fetching a changed file in part: the plan (`delta_plan.rs`) fetches every byte outside
//! the audio payload and takes the payload from the cached old version, after comparing
//! what it fetched inside the payload with the old bytes; an S3 object whose ETag is its
//! MD5 is then hashed whole before anything is kept. Any doubt gives up, and the file is
//! fetched as usual.

use md5::{Digest, Md5};

use crate::Filler;
use crate::cache::{Job, Rows};
use crate::delta_plan::{self, OldSource};
use crate::error::Result;
use crate::file::FileCache;
use crate::store::{ChunkHash, ChunkStore};
use musicfs_db::cache_index::ChunkRow;

/// What a delta fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaReport {
    /// Bytes fetched from the origin (everything outside the payload, and the checks).
    pub fetched: u64,
    /// Bytes taken from the cached old version.
    pub reused: u64,
}

/// Reads ranges of a file from its chunks in the store, each chunk verified.
struct OldBytes<'a> {
    store: &'a ChunkStore,
    chunks: &'a [ChunkRow],
    last: Option<(usize, Vec<u8>)>,
}

impl OldSource for OldBytes<'_> {
    /// `len` bytes at `offset` as stored (fewer at the end of the file; None: a chunk is
    /// missing or damaged).
    fn raw(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let size = self.chunks.last().map_or(0, |c| c.offset + c.len as u64);
        let end = (offset + len as u64).min(size);
        let mut i = self
            .chunks
            .partition_point(|c| c.offset + c.len as u64 <= offset);
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while pos < end {
            let c = self.chunks.get(i)?;
            if self.last.as_ref().is_none_or(|(at, _)| *at != i) {
                let data = self
                    .store
                    .get(ChunkHash::from_sql(c.hash), c.len as usize)
                    .ok()??;
                self.last = Some((i, data));
            }
            let data = &self.last.as_ref()?.1;
            let from = (pos - c.offset) as usize;
            let to = ((end - c.offset) as usize).min(c.len as usize);
            out.extend_from_slice(&data[from..to]);
            pos = c.offset + to as u64;
            i += 1;
        }
        Some(out)
    }
}

impl FileCache {
    /// Brings the cache to this version from the previous one, fetching only what changed.
    /// `fetch(offset, len)` reads the new version. Ok(None): not possible here (no complete
    /// previous version, or no sound plan), nothing was kept; the file is then read as
    /// usual.
    pub fn sync_from_basis(
        &mut self,
        fetch: &dyn Fn(u64, usize) -> std::io::Result<Vec<u8>>,
    ) -> Result<Option<DeltaReport>> {
        let Some(old_size) = self.basis_size() else {
            return Ok(None);
        };
        let new_size = self.version().size;
        let basis = std::mem::take(&mut self.basis);
        let store = self.cache.store();
        let mut old = OldBytes {
            store,
            chunks: &basis,
            last: None,
        };
        let plan = delta_plan::plan(&mut old, old_size, fetch, new_size)
            .map_err(crate::CacheError::Read)?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        if let Some(md5) = plain_md5(self.version().etag.as_deref()) {
            let mut hasher = Md5::new();
            let whole = plan.for_each_byte_run(&mut old, |bytes| hasher.update(bytes));
            if !whole || hasher.finalize()[..] != md5[..] {
                tracing::warn!("delta fetch: the assembled bytes do not match the ETag");
                return Ok(None);
            }
        }
        // Cut the new version and stage its chunks (the reused ones are stored already).
        let mut filler = Filler::new(0);
        let mut rows = Vec::new();
        let mut staged = Vec::new();
        let mut failed = None;
        let mut keep = |chunks: Vec<crate::Chunk>, rows: &mut Vec<ChunkRow>| {
            for c in chunks {
                match store.stage(&c.data) {
                    Ok(s) if s.is_new() => staged.push(s),
                    Ok(_) => {}
                    Err(err) => failed = Some(err),
                }
                rows.push(ChunkRow {
                    seq: rows.len() as u32,
                    offset: c.offset,
                    len: c.data.len() as u32,
                    hash: c.hash.to_sql(),
                });
            }
        };
        let whole = plan.for_each_byte_run(&mut old, |bytes| {
            keep(filler.feed(bytes), &mut rows);
        });
        keep(filler.finish(), &mut rows);
        if let Some(err) = failed {
            return Err(err);
        }
        if !whole || rows.last().map_or(0, |c| c.offset + c.len as u64) != new_size {
            return Ok(None);
        }
        let report = DeltaReport {
            fetched: plan.fetched,
            reused: plan.len,
        };
        let job = Rows {
            file_id: self.file_id,
            version: self.version().clone(),
            rows: rows.clone(),
            staged,
            recorded: self.recorded.clone(),
        };
        if !self.cache.send(Job::Rows(job), true) {
            return Ok(None);
        }
        self.cache.flush();
        self.chunks = rows;
        self.filler = None;
        Ok(Some(report))
    }
}

/// The MD5 an S3 ETag is, for an object uploaded in one part ("hex", no "-N" suffix).
fn plain_md5(etag: Option<&str>) -> Option<[u8; 16]> {
    let hex = etag?.trim_matches('"');
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (k, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok()?;
    }
    Some(out)
}
