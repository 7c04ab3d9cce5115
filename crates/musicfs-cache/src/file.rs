//! One open file's view of the cache: the chunks held of its current version (served,
//! each checked against its hash), and the chunks cut from the bytes fetched after them.
//!
//! Invariant: a file's chunks cover a prefix `[0, cached)` of its current version, so the
//! cutting resumes at a chunk boundary and gives the chunks a whole-file chunking would.
//! Bytes fetched elsewhere (a seek ahead, the tail a tag reader wants) are not cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use musicfs_db::cache_index::{self, ChunkRow, FileVersion};
use rusqlite::Connection;

use crate::cache::{Cache, FileChunks, Job};
use crate::error::{CacheError, Result};
use crate::{ChunkHash, Filler};

pub struct FileCache {
    pub(crate) cache: Cache,
    pub(crate) file_id: i64,
    version: FileVersion,
    /// The chunks of this version, in order, from offset 0: those recorded, then those cut
    /// and on their way to the writer.
    pub(crate) chunks: Vec<ChunkRow>,
    /// The end of the recorded chunks: only bytes before it are served from the store. Set
    /// by the writer once a batch is recorded.
    pub(crate) recorded: Arc<AtomicU64>,
    /// Cuts the fetched bytes that continue `chunks`; None once the file is whole, or when
    /// the writer refused this file.
    pub(crate) filler: Option<Filler>,
    /// The chunks of the version cached before this one (the file changed on its origin):
    /// what fetching the new version may reuse.
    pub(crate) basis: Vec<ChunkRow>,
    /// The previous version's size, when its chunks cover all of it (a basis to sync from).
    basis_size: Option<u64>,
    /// The last chunk read from the store (a FUSE read is smaller than most chunks).
    last: Option<(usize, Vec<u8>)>,
}

/// Why the cache cannot answer a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    /// Where a fetch should start to keep the file's chunks contiguous, never after the
    /// read's offset: the end of what is cut when the read is a little past it, or the start
    /// of a damaged chunk.
    pub fetch_from: u64,
}

/// A read past the cut end by more than this fetches from the read itself, not from the end
/// of the chunks (a seek far ahead is not worth the bytes in between).
const CONTIGUOUS_REACH: u64 = 8 << 20;

impl FileCache {
    /// The cache's view of `file_id` as `version` (the DB's): one query for the row, one for
    /// the chunk list. Pins the file (never evicted) until dropped.
    pub fn open(
        cache: &Cache,
        conn: &Connection,
        file_id: i64,
        version: FileVersion,
    ) -> Result<FileCache> {
        let row = cache_index::cached_file(conn, file_id).map_err(CacheError::Db)?;
        let list = match &row {
            Some(_) => cache_index::file_chunks(conn, file_id, 0).map_err(CacheError::Db)?,
            None => Vec::new(),
        };
        let (mut chunks, basis, cached, basis_size) = match row {
            Some(row) if row.version == version => (list, Vec::new(), row.cached, None),
            Some(row) => {
                let whole = row.cached == row.version.size
                    && contiguous_len(&list, row.cached) == list.len()
                    && list.last().map_or(0, |c| c.offset + c.len as u64) == row.cached;
                (Vec::new(), list, 0, whole.then_some(row.version.size))
            }
            None => (Vec::new(), Vec::new(), 0, None),
        };
        // Only a gapless run from 0 counts (a row edited by hand, or a chunk list cut short).
        let contiguous = contiguous_len(&chunks, cached);
        chunks.truncate(contiguous);
        let held = chunks.last().map_or(0, |c| c.offset + c.len as u64);
        cache.pin(file_id);
        cache.send(Job::Touch(file_id), false);
        Ok(FileCache {
            filler: (held < version.size).then(|| Filler::new(held)),
            cache: cache.clone(),
            file_id,
            version,
            chunks,
            recorded: Arc::new(AtomicU64::new(held)),
            basis,
            basis_size,
            last: None,
        })
    }

    /// The previous version's size, when the cache holds all of it: the file can be
    /// brought up to date with [`FileCache::sync_from_basis`].
    pub fn basis_size(&self) -> Option<u64> {
        self.basis_size.filter(|_| !self.basis.is_empty())
    }

    pub fn version(&self) -> &FileVersion {
        &self.version
    }

    /// Bytes from the start served from the store.
    pub fn cached(&self) -> u64 {
        self.recorded.load(Ordering::Acquire)
    }

    /// The end of the chunks cut from this file so far (recorded or on their way to the
    /// writer); `None` once nothing more will be cut (the file is whole, or refused).
    pub fn cut_to(&self) -> Option<u64> {
        self.filler.as_ref().map(Filler::cut_to)
    }

    /// The writer could not make room for this file's chunks: every file left to evict is
    /// open (pinned) or it, or the disk is at its free-space floor. Nothing more of it is
    /// cut until it is opened again.
    pub fn no_room(&self) -> bool {
        self.cache.no_room(self.file_id)
    }

    /// The whole file is in the cache: it can be read with every origin down.
    pub fn is_complete(&self) -> bool {
        self.cached() >= self.version.size
    }

    /// `len` bytes at `offset` (fewer at the end of the file) if the cache holds them all.
    /// A chunk that is missing or fails its hash is counted, removed, and its bytes become a
    /// miss that asks for a fetch from its start (so the fetched bytes restore it).
    pub fn read(&mut self, offset: u64, len: usize) -> std::result::Result<Vec<u8>, Miss> {
        let end = (offset + len as u64).min(self.version.size);
        if end <= offset {
            return Ok(Vec::new());
        }
        if end > self.cached() {
            return Err(self.miss(offset));
        }
        let mut i = self
            .chunks
            .partition_point(|c| c.offset + c.len as u64 <= offset);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let c = self.chunks[i];
            let chunk_end = c.offset + c.len as u64;
            let hash = ChunkHash::from_sql(c.hash);
            if pos == c.offset && chunk_end <= end {
                // A whole chunk: straight into the answer.
                match self.cache.store().get_into(hash, c.len as usize, &mut out) {
                    Ok(true) => {}
                    Ok(false) => return Err(self.repaired_miss(i, offset)),
                    Err(err) => {
                        tracing::warn!("{err}; reading from the origin");
                        return Err(self.miss(offset));
                    }
                }
                pos = chunk_end;
                i += 1;
                continue;
            }
            if self.last.as_ref().is_none_or(|(at, _)| *at != i) {
                match self.cache.store().get(hash, c.len as usize) {
                    Ok(Some(data)) => self.last = Some((i, data)),
                    Ok(None) => return Err(self.repaired_miss(i, offset)),
                    Err(err) => {
                        tracing::warn!("{err}; reading from the origin");
                        return Err(self.miss(offset));
                    }
                }
            }
            let data = &self.last.as_ref().expect("just read").1;
            let from = (pos - c.offset) as usize;
            let to = ((end - c.offset) as usize).min(c.len as usize);
            out.extend_from_slice(&data[from..to]);
            pos = c.offset + to as u64;
            i += 1;
        }
        self.cache.count_hit();
        Ok(out)
    }

    fn miss(&self, offset: u64) -> Miss {
        self.cache.count_miss();
        let fetch_from = match &self.filler {
            Some(f) if f.next_offset() < offset && offset - f.next_offset() <= CONTIGUOUS_REACH => {
                f.next_offset()
            }
            _ => offset,
        };
        Miss { fetch_from }
    }

    /// Chunk `i` failed during a read at `offset`: repaired, and fetched from no later than
    /// the read.
    fn repaired_miss(&mut self, i: usize, offset: u64) -> Miss {
        let miss = self.repair(i);
        Miss {
            fetch_from: miss.fetch_from.min(offset),
        }
    }

    /// Chunk `i` is gone or damaged: forget it and every later one here, and cut again from
    /// its start (the rows stay; the chunks cut again are the same, their files rewritten).
    fn repair(&mut self, i: usize) -> Miss {
        self.cache.count_repaired();
        self.cache.count_miss();
        let from = self.chunks[i].offset;
        self.chunks.truncate(i);
        self.last = None;
        self.recorded.fetch_min(from, Ordering::AcqRel);
        if !self.cache.refused(self.file_id) {
            self.filler = Some(Filler::new(from));
        }
        Miss { fetch_from: from }
    }

    /// Bytes fetched from the origin at `start`: the part that continues the chunks is cut,
    /// and the chunks are handed to the writer (never waiting on it).
    pub fn offer(&mut self, start: u64, data: &[u8]) {
        self.offer_with(start, data, false)
    }

    /// As [`FileCache::offer`], waiting for room in the writer's queue (`cache warm`: no
    /// reader is waiting, and nothing should be dropped).
    pub fn offer_waiting(&mut self, start: u64, data: &[u8]) {
        self.offer_with(start, data, true)
    }

    fn offer_with(&mut self, start: u64, data: &[u8], wait: bool) {
        if self.cache.refused(self.file_id) {
            self.filler = None;
            return;
        }
        let Some(filler) = self.filler.as_mut() else {
            return;
        };
        let at = filler.next_offset();
        if at < start || at >= start + data.len() as u64 {
            return;
        }
        let mut cut = filler.feed(&data[(at - start) as usize..]);
        if filler.next_offset() >= self.version.size {
            cut.extend(self.filler.take().expect("filling").finish());
        }
        if cut.is_empty() {
            return;
        }
        let first_seq = self.chunks.len() as u32;
        for (k, c) in cut.iter().enumerate() {
            self.chunks.push(ChunkRow {
                seq: first_seq + k as u32,
                offset: c.offset,
                len: c.data.len() as u32,
                hash: c.hash.to_sql(),
            });
        }
        let last = self.chunks.last().expect("cut is not empty");
        let job = FileChunks {
            file_id: self.file_id,
            version: self.version.clone(),
            first_seq,
            cached_to: last.offset + last.len as u64,
            chunks: cut,
            recorded: self.recorded.clone(),
        };
        if !self.cache.send(Job::Chunks(job), wait) {
            // The writer is behind: this file stays cached up to where it was.
            tracing::debug!(
                "cache writer busy: file {} not cached further",
                self.file_id
            );
            self.chunks.truncate(first_seq as usize);
            self.filler = None;
        }
    }
}

/// How many of `chunks` run gaplessly from offset 0 in order, within the first `cached`
/// bytes (a row edited by hand, or a list cut short, counts only up to its first gap).
fn contiguous_len(chunks: &[ChunkRow], cached: u64) -> usize {
    let mut end = 0u64;
    let mut n = 0;
    for (k, c) in chunks.iter().enumerate() {
        if c.seq as usize != k || c.offset != end || end + c.len as u64 > cached {
            break;
        }
        end += c.len as u64;
        n += 1;
    }
    n
}

impl Drop for FileCache {
    fn drop(&mut self) {
        self.cache.unpin(self.file_id);
    }
}
