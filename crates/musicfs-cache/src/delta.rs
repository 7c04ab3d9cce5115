//! Fetching a changed file in part: a re-tag rewrites the tags at the head (and, for some
//! formats, at the tail: ID3v1, APE, an MP4 `moov` after the audio) and moves the audio by
//! the change in their size, byte for byte. So the new version is fetched from its start
//! until its bytes are the old version's again (found by anchors, 16 bytes of the old file
//! every KiB, then compared byte for byte), and from its end backwards until they are; the
//! middle is the old bytes, shifted. Nothing is assumed unchecked where it can be checked:
//! both seams are compared byte for byte, the middle is probed at evenly spread points, and
//! an S3 object whose ETag is its MD5 is hashed whole before anything is kept. Any doubt
//! gives up, and the file is fetched as usual.

use std::collections::HashMap;

use md5::{Digest, Md5};

use crate::cache::{Job, Rows};
use crate::error::Result;
use crate::file::FileCache;
use crate::ogg::{self, Renumbering};
use crate::store::{ChunkHash, ChunkStore};
use crate::{Filler, MAX_CHUNK};
use musicfs_db::cache_index::ChunkRow;

/// The head is fetched in pieces of this size until it meets the old bytes.
const HEAD_PIECE: usize = 32 << 10;
/// The tail is fetched backwards in pieces of this size.
const TAIL_PIECE: usize = 32 << 10;
/// Neither end is fetched further than this share of the file (else: a plain fetch).
const MAX_END_SHARE: f64 = 0.4;
/// Anchors: `ANCHOR` bytes of the old file every `ANCHOR_EVERY`, over its first
/// `ANCHORED` bytes (the head of a file is where its tags are).
const ANCHOR: usize = 16;
const ANCHOR_EVERY: u64 = 1024;
const ANCHORED: u64 = 32 << 20;
/// Bytes a seam must match to be believed (beyond it, every fetched byte is compared).
const SEAM: usize = 256;
/// Probes of the middle, each this long.
const PROBES: u64 = 8;
const PROBE: usize = 4096;

/// What a delta fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaReport {
    /// Bytes fetched from the origin (seams, probes).
    pub fetched: u64,
    /// Bytes taken from the cached old version.
    pub reused: u64,
}

/// Reads ranges of a file from its chunks in the store, each chunk verified; an Ogg file's
/// renumbered, where its new version's pages were (`ogg.rs`).
struct OldBytes<'a> {
    store: &'a ChunkStore,
    chunks: &'a [ChunkRow],
    last: Option<(usize, Vec<u8>)>,
    renumbering: Option<Renumbering>,
}

impl OldBytes<'_> {
    /// `len` bytes at `offset`, renumbered if that is set (None: a chunk is missing or
    /// damaged).
    fn read(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = self.read_raw(offset, len)?;
        if let Some(renumbering) = self.renumbering.take() {
            let applied = renumbering.apply(offset, &mut out, &mut |o, n| self.read_raw(o, n));
            self.renumbering = Some(renumbering);
            applied?;
        }
        Some(out)
    }

    /// `len` bytes at `offset` as stored (fewer at the end of the file).
    fn read_raw(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
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

/// A piece of the new version: fetched bytes, or old bytes from `old_offset`.
enum Part {
    Fetched(Vec<u8>),
    Old { old_offset: u64, len: u64 },
}

impl FileCache {
    /// Brings the cache to this version from the previous one, fetching only what changed.
    /// `fetch(offset, len)` reads the new version. Ok(None): not possible here (no complete
    /// previous version, or the bytes do not line up), nothing was kept; the file is then
    /// read as usual.
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
            renumbering: None,
        };
        // Every byte fetched from the origin, counted; the head an Ogg file's renumbering
        // was found in is kept and not fetched again.
        let fetched = std::cell::Cell::new(0u64);
        let head = std::cell::RefCell::new(Vec::new());
        let fetch = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
            let head = head.borrow();
            let end = offset as usize + len;
            if end <= head.len() {
                return Ok(head[offset as usize..end].to_vec());
            }
            drop(head);
            let got = fetch(offset, len)?;
            fetched.set(fetched.get() + got.len() as u64);
            Ok(got)
        };
        if old.read_raw(0, 4).is_some_and(|m| m == b"OggS") {
            let limit = (new_size as f64 * MAX_END_SHARE) as usize;
            let Some(pages) = ogg::pages(old_size, &mut |o, n| old.read_raw(o, n)) else {
                return Ok(None);
            };
            old.renumbering = loop {
                let at = head.borrow().len();
                let want = HEAD_PIECE.min(new_size as usize - at);
                if want == 0 || at >= limit {
                    return Ok(None);
                }
                let piece = fetch(at as u64, want).map_err(crate::CacheError::Read)?;
                if piece.is_empty() {
                    return Ok(None);
                }
                head.borrow_mut().extend_from_slice(&piece);
                let found =
                    Renumbering::find(&head.borrow(), &pages, &mut |o, n| old.read_raw(o, n));
                if found.is_some() {
                    break found;
                }
            };
        }
        let Some(plan) = plan(&mut old, old_size, new_size, &fetch)? else {
            return Ok(None);
        };
        if let Some(md5) = plain_md5(self.version().etag.as_deref()) {
            let mut hasher = Md5::new();
            let whole = for_each_byte_run(&plan, &mut old, |bytes| hasher.update(bytes));
            if !whole || hasher.finalize()[..] != md5[..] {
                tracing::info!("delta fetch: the assembled bytes do not match the ETag");
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
        let whole = for_each_byte_run(&plan, &mut old, |bytes| {
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
            fetched: fetched.get(),
            reused: plan
                .iter()
                .map(|p| match p {
                    Part::Old { len, .. } => *len,
                    Part::Fetched(_) => 0,
                })
                .sum(),
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

/// The parts of the new version (fetched head, old middle shifted, fetched tail), its middle
/// probed. None if the ends do not meet the old bytes within their
/// limits, or a probe of the middle differs.
fn plan(
    old: &mut OldBytes,
    old_size: u64,
    new_size: u64,
    fetch: &dyn Fn(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<Option<Vec<Part>>> {
    let limit = ((new_size as f64 * MAX_END_SHARE) as u64).max(HEAD_PIECE as u64);
    let anchors = anchors(old, old_size);
    // The head: until a run of it is the old bytes at some shift.
    let mut head = Vec::new();
    let mut scanned = 0;
    let shift = loop {
        let want = HEAD_PIECE.min((new_size - head.len() as u64) as usize);
        if want == 0 || head.len() as u64 >= limit {
            return Ok(None);
        }
        let piece = fetch(head.len() as u64, want).map_err(crate::CacheError::Read)?;
        if piece.is_empty() {
            return Ok(None);
        }
        head.extend_from_slice(&piece);
        if let Some(found) = resync(&head, &mut scanned, &anchors, old, old_size) {
            break found;
        }
    };
    let h = head.len() as u64;
    let old_at = |new: u64| new as i64 - shift;
    // The tail: backwards until the start of what is fetched is the old bytes, shifted.
    let mut tail: Vec<u8> = Vec::new();
    let mut t = new_size;
    loop {
        if t <= h {
            break;
        }
        if new_size - t >= limit {
            return Ok(None);
        }
        let a = t.saturating_sub(TAIL_PIECE as u64).max(h);
        let mut piece = fetch(a, (t - a) as usize).map_err(crate::CacheError::Read)?;
        if piece.len() as u64 != t - a {
            return Ok(None);
        }
        piece.extend_from_slice(&tail);
        tail = piece;
        t = a;
        let o = old_at(t);
        if o >= 0 && (o as u64) < old_size {
            let n = SEAM.min(tail.len()).min((old_size - o as u64) as usize);
            if n == SEAM && old.read(o as u64, n).is_some_and(|b| b == tail[..n]) {
                break;
            }
        }
    }
    let mut parts = vec![Part::Fetched(head)];
    if t > h {
        let (from, len) = (old_at(h), t - h);
        if from < 0 || from as u64 + len > old_size {
            return Ok(None);
        }
        // Probes of the middle, evenly spread.
        for k in 1..=PROBES {
            let at = h + (t - h) * k / (PROBES + 1);
            let n = PROBE.min((t - at) as usize);
            if n == 0 {
                continue;
            }
            let got = fetch(at, n).map_err(crate::CacheError::Read)?;
            if old.read(old_at(at) as u64, n).is_none_or(|b| b != got) {
                tracing::info!("delta fetch: a probe at {at} differs from the old bytes");
                return Ok(None);
            }
        }
        parts.push(Part::Old {
            old_offset: from as u64,
            len,
        });
    }
    if !tail.is_empty() {
        parts.push(Part::Fetched(tail));
    }
    Ok(Some(parts))
}

/// `ANCHOR` bytes of the old file every `ANCHOR_EVERY` bytes of its head, to their offsets.
fn anchors(old: &mut OldBytes, old_size: u64) -> HashMap<[u8; ANCHOR], u64> {
    let mut map = HashMap::new();
    let end = old_size.min(ANCHORED);
    let mut at = 0;
    while at + ANCHOR as u64 <= end {
        let len = (MAX_CHUNK as u64).min(end - at) as usize;
        let Some(bytes) = old.read(at, len) else {
            break;
        };
        let mut k = 0;
        while k + ANCHOR <= bytes.len() {
            let key: [u8; ANCHOR] = bytes[k..k + ANCHOR].try_into().expect("ANCHOR bytes");
            map.entry(key).or_insert(at + k as u64);
            k += ANCHOR_EVERY as usize;
        }
        at += len as u64;
    }
    map
}

/// The shift (new offset - old offset) at which the head's last bytes are the old file's:
/// an anchor found in the head, and every fetched byte after it equal to the old bytes there
/// (at least `SEAM` of them). `scanned`: head positions already searched.
fn resync(
    head: &[u8],
    scanned: &mut usize,
    anchors: &HashMap<[u8; ANCHOR], u64>,
    old: &mut OldBytes,
    old_size: u64,
) -> Option<i64> {
    let mut found = None;
    let mut i = *scanned;
    while i + ANCHOR <= head.len() {
        let key: &[u8; ANCHOR] = head[i..i + ANCHOR].try_into().expect("ANCHOR bytes");
        if let Some(&o) = anchors.get(key) {
            let run = head.len() - i;
            if run >= SEAM
                && o + run as u64 <= old_size
                && old.read(o, run).is_some_and(|b| b == head[i..])
            {
                found = Some(i as i64 - o as i64);
                break;
            }
        }
        i += 1;
    }
    // The next piece re-searches the last bytes, whose run was too short to be believed.
    *scanned = i.min(head.len().saturating_sub(SEAM + ANCHOR));
    found
}

/// Feeds the new version's bytes, in order, to `each`; false if old bytes were missing.
fn for_each_byte_run(parts: &[Part], old: &mut OldBytes, mut each: impl FnMut(&[u8])) -> bool {
    for part in parts {
        match part {
            Part::Fetched(bytes) => each(bytes),
            Part::Old { old_offset, len } => {
                let mut at = 0;
                while at < *len {
                    let n = (*len - at).min(1 << 20) as usize;
                    let Some(bytes) = old.read(old_offset + at, n) else {
                        return false;
                    };
                    each(&bytes);
                    at += n as u64;
                }
            }
        }
    }
    true
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
