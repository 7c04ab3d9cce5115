//! Fetching a range of one remote file: the mirror to ask (healthy first, its copy of the DB's
//! size), failover, and one drained stream for a sequential reader.

use std::sync::{Arc, Mutex};

use musicfs_origin::MirrorSet;

/// What fetching a range of one file needs; shared with background prefetches.
pub(super) struct Fetcher {
    pub(super) set: Arc<MirrorSet>,
    pub(super) rel: Arc<[u8]>,
    /// The size the DB knows: only mirrors whose copy has it serve this file.
    pub(super) size: u64,
    /// The primary's ETag scanned (S3): its reads ask for that version only (`If-Match`), so
    /// a file rewritten since the scan fails instead of serving another version's bytes.
    /// Mirrors were never scanned (their ETags are their own): the size check covers them.
    pub(super) etag: Option<Arc<str>>,
    /// Per mirror: its copy's size agrees with the DB (None: not known yet). Learned from a
    /// stat, or from the first read where the origin's reads tell the size (S3).
    pub(super) agrees: Arc<Mutex<Vec<Option<bool>>>>,
    /// A sequential reader's open stream (one GET to the end of the file, where the origin
    /// can stream, drained ahead of the reader: `drain.rs`), and the offset it is at.
    pub(super) stream: Mutex<Option<(u64, Box<dyn std::io::Read + Send>)>>,
}

impl Fetcher {
    /// `len` bytes at `offset` for a sequential reader: from the open stream if it is there,
    /// else from a new one on the first usable mirror; on any stream failure, or where no
    /// origin streams, a ranged read with failover ([`Fetcher::fetch`]).
    pub(super) fn fetch_sequential(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut stream = self.stream.lock().unwrap();
        if stream.as_ref().map(|(at, _)| *at) != Some(offset) {
            *stream = self
                .open_stream(offset)
                .and_then(|reader| match crate::drain::Drained::new(reader) {
                    Ok(drained) => Some(Box::new(drained) as Box<dyn std::io::Read + Send>),
                    Err(err) => {
                        tracing::warn!("cannot start a stream reader ({err}); ranged reads");
                        None
                    }
                })
                .map(|reader| (offset, reader));
        }
        if let Some((at, reader)) = stream.as_mut() {
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            let outcome = loop {
                if filled == len {
                    break Ok(());
                }
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(()) if filled == len || offset + filled as u64 == self.size => {
                    *at += filled as u64;
                    buf.truncate(filled);
                    return Ok(buf);
                }
                Ok(()) => tracing::warn!("{}: stream ended early", self.describe()),
                Err(err) => {
                    tracing::warn!("{}: stream failed ({err}); failing over", self.describe())
                }
            }
            *stream = None;
        }
        drop(stream);
        self.fetch(offset, len)
    }

    /// A stream from `offset` on the first usable mirror that can stream, in health order.
    pub(super) fn open_stream(&self, offset: u64) -> Option<Box<dyn std::io::Read + Send>> {
        for i in self.set.order() {
            // Only from a mirror whose copy is known to agree: a stream is never checked.
            if !matches!(self.usable(i), Ok(true)) || self.agrees.lock().unwrap()[i] != Some(true) {
                continue;
            }
            let mirror = &self.set.mirrors[i];
            return match mirror.origin.stream_from(
                &self.rel,
                offset,
                self.set.attempt_timeout,
                self.etag_for(i),
            )? {
                Ok(reader) => Some(reader),
                Err(err) => {
                    tracing::warn!("{err}; reading in ranges instead");
                    None
                }
            };
        }
        None
    }

    /// The ETag a read of mirror `i` must match: the primary's (mirror 0) only.
    pub(super) fn etag_for(&self, i: usize) -> Option<&str> {
        self.etag.as_deref().filter(|_| i == PRIMARY)
    }

    pub(super) fn describe(&self) -> String {
        self.set.mirrors[0].origin.url().locate(&self.rel)
    }

    /// Whether mirror `i` may serve this file: its copy has the DB's size (asked once). Where
    /// the origin's reads tell the size, nothing is asked: the first read checks it.
    pub(super) fn usable(&self, i: usize) -> musicfs_origin::Result<bool> {
        if let Some(known) = self.agrees.lock().unwrap()[i] {
            return Ok(known);
        }
        if self.set.mirrors[i].origin.reads_tell_size() {
            return Ok(true);
        }
        let meta = self.set.stat_on(i, &self.rel)?;
        let agrees = meta.size == self.size;
        if !agrees {
            let path = self.set.mirrors[i].origin.url().locate(&self.rel);
            warn_other_size(&path, meta.size, self.size);
        }
        self.agrees.lock().unwrap()[i] = Some(agrees);
        Ok(agrees)
    }

    /// `len` bytes at `offset` from the first usable mirror, failing over. A read that shows
    /// the mirror's copy is another version (its told size, or bytes ending before the DB's
    /// size) marks that mirror as disagreeing and moves on.
    pub(super) fn fetch(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let (rel, expected, agrees) = (self.rel.clone(), self.size, self.agrees.clone());
        let etag = self.etag.clone();
        let (_, data) = self
            .set
            .call(&|i| self.usable(i), move |i, o| {
                let etag = etag.as_deref().filter(|_| i == PRIMARY);
                let (data, told) = match o.read_at_sized(&rel, offset, len, etag) {
                    Err(err @ musicfs_origin::OriginError::Changed { .. }) => {
                        // Another version than the one scanned: this mirror no longer serves it.
                        agrees.lock().unwrap()[i] = Some(false);
                        tracing::warn!("{err}: not read from that mirror");
                        return Err(err);
                    }
                    other => other?,
                };
                let short = data.len() < len && offset + (data.len() as u64) < expected;
                let size = told.or(short.then_some(offset + data.len() as u64));
                if let Some(size) = size {
                    agrees.lock().unwrap()[i] = Some(size == expected);
                    if size != expected {
                        let path = o.url().locate(&rel);
                        warn_other_size(&path, size, expected);
                        return Err(musicfs_origin::OriginError::Changed {
                            origin: o.url().to_string(),
                            path,
                            cause: format!("{size} bytes there, {expected} in the DB"),
                        });
                    }
                }
                Ok(data)
            })
            .map_err(musicfs_origin::OriginError::into_io)?;
        Ok(data)
    }
}

/// The mirror the DB's rows were scanned from (the registry puts it first).
const PRIMARY: usize = 0;

/// A mirror's copy of `path` is another version than the DB's: said once per open file.
fn warn_other_size(path: &str, there: u64, db: u64) {
    tracing::warn!("{path}: {there} bytes there, {db} in the DB: not read from that mirror");
}
