//! The plan of a changed file's assembly, proven before a byte of it is kept.
//!
//! A re-tag rewrites what is around the audio and copies the audio byte for byte (moved, and
//! for Ogg renumbered). So both versions' containers are parsed (`musicfs_container`): the
//! old one from the cache, the new one through a few ranged reads of its head and tail. If
//! both hold a payload of the same kind and length, the new version is planned as: every
//! byte before and after its payload fetched, the payload taken from the old version's.
//! Nothing is inferred from where bytes happen to match.
//!
//! What is checked before the plan is used: every fetched byte that falls inside the new
//! payload (the head and tail reads run past its edges) equals the old payload's byte there,
//! as do the payload's first and last `PROBE` bytes and `PROBES` probes spread over it. The
//! caller then compares the MD5 of the whole assembly with the origin's checksum where there
//! is one. What is not proven without a checksum: a change inside the payload that keeps
//! its length and misses every compared byte (a re-encode differs everywhere; a tool that
//! rewrites a few audio bytes in place, keeping the length, could go unseen).

use musicfs_container::{Container, ReadAt};

use crate::ogg::Renumbering;

/// Probes of the payload's middle, each `PROBE` bytes.
const PROBES: u64 = 8;
const PROBE: usize = 4096;
/// A read of the new version's head missing from what is fetched fetches at least this much
/// more (its metadata is read a header at a time; all of it is needed anyway).
const HEAD_GROW: u64 = 32 << 10;
/// A read elsewhere (a box header after `mdat`, the tags at the tail) fetches at least this
/// much there: one round trip for the headers that follow it.
const ISLAND: u64 = 4 << 10;

/// Reads the new version: `fetch(offset, len)`.
pub(crate) type Fetch<'a> = &'a dyn Fn(u64, usize) -> std::io::Result<Vec<u8>>;

/// The old version's bytes as stored: `len` at `offset` (fewer at its end), None if missing.
pub(crate) trait OldSource {
    fn raw(&mut self, offset: u64, len: usize) -> Option<Vec<u8>>;
}

/// How the new version is made: `head`, then `len` old bytes from `old_start` (renumbered
/// if set), then `tail`.
pub(crate) struct Plan {
    pub head: Vec<u8>,
    pub old_start: u64,
    pub len: u64,
    pub tail: Vec<u8>,
    pub renumbering: Option<Renumbering>,
    /// Bytes fetched from the origin to make and check it.
    pub fetched: u64,
}

impl Plan {
    /// Feeds the new version's bytes, in order, to `each`; false if old bytes were missing.
    pub(crate) fn for_each_byte_run(
        &self,
        old: &mut dyn OldSource,
        mut each: impl FnMut(&[u8]),
    ) -> bool {
        each(&self.head);
        let mut at = 0;
        while at < self.len {
            let n = (self.len - at).min(1 << 20) as usize;
            let Some(bytes) = old_bytes(old, self.renumbering.as_ref(), self.old_start + at, n)
            else {
                return false;
            };
            each(&bytes);
            at += n as u64;
        }
        each(&self.tail);
        true
    }
}

/// `len` old bytes at `offset`, renumbered where that is set.
fn old_bytes(
    old: &mut dyn OldSource,
    renumbering: Option<&Renumbering>,
    offset: u64,
    len: usize,
) -> Option<Vec<u8>> {
    let mut out = old.raw(offset, len)?;
    if out.len() != len {
        return None;
    }
    if let Some(r) = renumbering {
        r.apply(offset, &mut out, &mut |o, n| old.raw(o, n))?;
    }
    Some(out)
}

/// Plans the new version of `new_size` bytes from the old one of `old_size`. Ok(None): no
/// sound plan (a layout not known for certain, payloads that differ in kind or length, a
/// compared byte that differs): the file is fetched as usual.
pub(crate) fn plan(
    old: &mut dyn OldSource,
    old_size: u64,
    fetch: Fetch,
    new_size: u64,
) -> std::io::Result<Option<Plan>> {
    let Some(was) = musicfs_container::payload(old_size, &mut |o, n| old.raw(o, n)) else {
        return Ok(None);
    };
    let mut new = NewBytes {
        fetch,
        size: new_size,
        head: Vec::new(),
        tail: Vec::new(),
        islands: Vec::new(),
        fetched: 0,
        error: None,
    };
    let is = musicfs_container::payload(new_size, &mut new);
    if let Some(err) = new.error.take() {
        return Err(err);
    }
    let Some(is) = is else {
        return Ok(None);
    };
    if is.len != was.len {
        return Ok(None);
    }
    let renumbering = match (was.container, is.container) {
        (Container::Ogg(a), Container::Ogg(b)) => {
            match Renumbering::new(was.start, old_size, a, b, &mut |o, n| old.raw(o, n)) {
                Some(r) => Some(r),
                None => return Ok(None),
            }
        }
        (a, b) if a == b => None,
        _ => return Ok(None),
    };
    // Everything outside the payload, fetched.
    new.grow_head(is.start)?;
    new.grow_tail(is.end())?;
    // Every fetched byte inside the payload, and the probes, equal to the old bytes there.
    let mut checks: Vec<(u64, Vec<u8>)> = Vec::new();
    let head_in = new.head.len() as u64;
    if head_in > is.start {
        let to = head_in.min(is.end());
        checks.push((is.start, new.head[is.start as usize..to as usize].to_vec()));
    }
    let tail_from = new.tail_start();
    if tail_from < is.end() {
        let from = tail_from.max(is.start);
        let at = (from - tail_from) as usize;
        let to = (is.end() - tail_from) as usize;
        checks.push((from, new.tail[at..to].to_vec()));
    }
    let covered = |at: u64, n: usize, checks: &[(u64, Vec<u8>)]| {
        checks
            .iter()
            .any(|(o, b)| *o <= at && at + n as u64 <= o + b.len() as u64)
    };
    let mut points = vec![
        is.start,
        is.end().saturating_sub(PROBE as u64).max(is.start),
    ];
    points.extend((1..=PROBES).map(|k| is.start + is.len * k / (PROBES + 1)));
    for at in points {
        let n = (PROBE as u64).min(is.end() - at) as usize;
        if n == 0 || covered(at, n, &checks) {
            continue;
        }
        let got = new.get(at, n)?;
        checks.push((at, got));
    }
    for (at, bytes) in &checks {
        let old_at = at - is.start + was.start;
        if old_bytes(old, renumbering.as_ref(), old_at, bytes.len()).as_ref() != Some(bytes) {
            tracing::info!("delta fetch: the payload differs from the old one at {at}");
            return Ok(None);
        }
    }
    let (Some(head), Some(tail)) = (new.held(0, is.start), new.held(is.end(), new_size)) else {
        return Ok(None);
    };
    Ok(Some(Plan {
        head,
        old_start: was.start,
        len: is.len,
        tail,
        renumbering,
        fetched: new.fetched,
    }))
}

/// The new version as fetched so far: `head` from its start, `tail` up to its end, each
/// contiguous, and the pieces the container parser read elsewhere.
struct NewBytes<'a> {
    fetch: Fetch<'a>,
    size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    islands: Vec<(u64, Vec<u8>)>,
    fetched: u64,
    /// The first fetch error (the parser only sees "cannot read").
    error: Option<std::io::Error>,
}

impl NewBytes<'_> {
    fn tail_start(&self) -> u64 {
        self.size - self.tail.len() as u64
    }

    /// `len` bytes at `offset` from the origin, exactly.
    fn get(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let got = (self.fetch)(offset, len)?;
        self.fetched += got.len() as u64;
        if got.len() != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} bytes at {offset} where {len} were asked", got.len()),
            ));
        }
        Ok(got)
    }

    /// Fetches the head up to `to` (not into the tail).
    fn grow_head(&mut self, to: u64) -> std::io::Result<()> {
        let to = to.min(self.tail_start());
        let from = self.head.len() as u64;
        if to > from {
            let got = self.get(from, (to - from) as usize)?;
            self.head.extend_from_slice(&got);
        }
        Ok(())
    }

    /// Fetches the tail back to `from` (not into the head).
    fn grow_tail(&mut self, from: u64) -> std::io::Result<()> {
        let from = from.max(self.head.len() as u64);
        let to = self.tail_start();
        if from < to {
            let mut got = self.get(from, (to - from) as usize)?;
            got.extend_from_slice(&self.tail);
            self.tail = got;
        }
        Ok(())
    }

    /// The bytes `[from, to)` if fetched.
    fn held(&self, from: u64, to: u64) -> Option<Vec<u8>> {
        let (h, t) = (self.head.len() as u64, self.tail_start());
        let mut out = Vec::with_capacity((to - from) as usize);
        if from < h {
            out.extend_from_slice(&self.head[from as usize..to.min(h) as usize]);
        }
        let mut at = from.max(h);
        if at < to {
            if at < t {
                return None;
            }
            out.extend_from_slice(&self.tail[(at - t) as usize..(to - t) as usize]);
            at = to;
        }
        (at >= to).then_some(out)
    }

    /// The bytes `[from, to)` if fetched in one piece: the head, the tail or an island.
    fn held_anywhere(&self, from: u64, to: u64) -> Option<Vec<u8>> {
        self.held(from, to).or_else(|| {
            self.islands.iter().find_map(|(at, bytes)| {
                (*at <= from && to <= at + bytes.len() as u64)
                    .then(|| bytes[(from - at) as usize..(to - at) as usize].to_vec())
            })
        })
    }
}

impl ReadAt for NewBytes<'_> {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let from = offset.min(self.size);
        let to = offset.saturating_add(len as u64).min(self.size);
        if let Some(bytes) = self.held_anywhere(from, to) {
            return Some(bytes);
        }
        // Near the head: the head grows to it (all of the head is fetched in the end anyway);
        // elsewhere the read is fetched alone, with what follows it.
        let head = self.head.len() as u64;
        let grown = if from <= head + HEAD_GROW && to <= self.tail_start() {
            self.grow_head(to.max(head + HEAD_GROW))
        } else {
            let end = to.max(from + ISLAND).min(self.size);
            self.get(from, (end - from) as usize)
                .map(|bytes| self.islands.push((from, bytes)))
        };
        if let Err(err) = grown {
            self.error.get_or_insert(err);
            return None;
        }
        self.held_anywhere(from, to)
    }
}

#[cfg(test)]
#[path = "delta_plan_tests.rs"]
mod tests;
