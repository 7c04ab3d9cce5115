//! `Read + Seek` over ranged reads of one origin file, so a tag parser reads a remote file as
//! if it were local while only the bytes it touches cross the network.
//!
//! Tag parsers read the head (tags, stream info) in small pieces, then often jump to the tail
//! (ID3v1, APE footers, the last MPEG frame) and back. So: a miss fetches a window that starts
//! small and doubles while reads stay sequential; a jump into the last [`TAIL`] bytes fetches
//! the whole tail at once; the two most recent windows are kept, so head-tail-head costs no
//! refetch.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Instant;

use crate::{OpenFile, Origin};

/// The first fetch of a run of sequential reads.
pub const FIRST_WINDOW: usize = 64 << 10;
/// Sequential fetches double up to this.
pub const MAX_WINDOW: usize = 1 << 20;
/// A read this close to the end fetches everything from here to the end.
pub const TAIL: u64 = 16 << 10;

struct Window {
    start: u64,
    data: Vec<u8>,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    fn covers(&self, pos: u64) -> bool {
        pos >= self.start && pos < self.end()
    }
}

pub struct RangeReader {
    origin: Arc<dyn Origin>,
    rel: Vec<u8>,
    size: u64,
    pos: u64,
    /// Most recent first; at most two.
    windows: Vec<Window>,
    next_window: usize,
    deadline: Option<Instant>,
    fetched: u64,
    /// Opened at the first fetch; `Some(None)` where the origin has no handles.
    file: Option<Option<Box<dyn OpenFile>>>,
    /// The version to read (S3's ETag as listed): another one fails the read.
    etag: Option<String>,
}

impl RangeReader {
    /// A reader of the file `rel` whose size is `size` (as listed). Reads after `deadline`
    /// fail with `TimedOut`.
    pub fn new(
        origin: Arc<dyn Origin>,
        rel: Vec<u8>,
        size: u64,
        deadline: Option<Instant>,
    ) -> RangeReader {
        RangeReader {
            origin,
            rel,
            size,
            pos: 0,
            windows: Vec::with_capacity(2),
            next_window: FIRST_WINDOW,
            deadline,
            fetched: 0,
            file: None,
            etag: None,
        }
    }

    /// Reads only the version whose ETag is `etag` (see [`Origin::read_at_sized`]).
    pub fn with_etag(mut self, etag: Option<String>) -> RangeReader {
        self.etag = etag;
        self
    }

    /// Bytes fetched from the origin by this reader.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    fn fetch(&mut self, pos: u64, want: usize) -> std::io::Result<()> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "tag reading hit the per-file time limit",
            ));
        }
        let last = self.windows.first().map(|w| (w.start, w.end()));
        let forward = last.is_some_and(|(_, end)| end == pos);
        // A parser scanning backwards (MPEG looking for the last frame) reads just before the
        // last window: fetch the window that ends where it starts.
        let backward =
            last.is_some_and(|(start, _)| pos < start && pos + (self.next_window as u64) >= start);
        self.next_window = if forward || backward {
            (self.next_window * 2).min(MAX_WINDOW)
        } else {
            FIRST_WINDOW
        };
        let (start, len) = match last {
            _ if self.size > TAIL && pos >= self.size - TAIL => (self.size - TAIL, TAIL as usize),
            Some((last_start, _)) if backward => {
                let start = last_start.saturating_sub(self.next_window as u64).min(pos);
                (start, (last_start - start) as usize)
            }
            _ => (pos, self.next_window.max(want)),
        };
        let len = len.min((self.size - start) as usize);
        let started = Instant::now();
        if self.file.is_none() {
            self.file = Some(
                self.origin
                    .open(&self.rel)
                    .map_err(crate::OriginError::into_io)?,
            );
        }
        let data = match &mut self.file {
            Some(Some(file)) => file.read_at(start, len),
            _ => self
                .origin
                .read_at_sized(&self.rel, start, len, self.etag.as_deref())
                .map(|(data, _)| data),
        }
        .map_err(crate::OriginError::into_io)?;
        tracing::trace!(
            "fetched {start}+{len} of {} in {:?}",
            String::from_utf8_lossy(&self.rel),
            started.elapsed()
        );
        self.fetched += data.len() as u64;
        if data.len() < len && start + (data.len() as u64) <= pos {
            // The file is shorter than listed: it changed; report the end where it is now.
            self.size = start + data.len() as u64;
        }
        self.windows.insert(0, Window { start, data });
        self.windows.truncate(2);
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let pos = self.pos;
        let index = match self.windows.iter().position(|w| w.covers(pos)) {
            Some(i) => i,
            None => {
                self.fetch(pos, buf.len())?;
                match self.windows.iter().position(|w| w.covers(pos)) {
                    Some(i) => i,
                    None => return Ok(0), // shorter than listed
                }
            }
        };
        let window = &self.windows[index];
        let from = (pos - window.start) as usize;
        let n = buf.len().min(window.data.len() - from);
        buf[..n].copy_from_slice(&window.data[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalOrigin, OriginUrl};

    #[test]
    fn reads_like_the_file_and_fetches_head_and_tail_once() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let origin: Arc<dyn Origin> =
            Arc::new(LocalOrigin::new(OriginUrl::Local(dir.path().to_owned())));
        let mut r = RangeReader::new(origin.clone(), b"f".to_vec(), content.len() as u64, None);
        let mut head = [0u8; 10];
        r.read_exact(&mut head).unwrap();
        assert_eq!(&head, &content[..10]);
        r.seek(SeekFrom::End(-128)).unwrap();
        let mut tail = [0u8; 128];
        r.read_exact(&mut tail).unwrap();
        assert_eq!(&tail[..], &content[content.len() - 128..]);
        r.seek(SeekFrom::Start(100)).unwrap();
        let mut again = [0u8; 1000];
        r.read_exact(&mut again).unwrap();
        assert_eq!(&again[..], &content[100..1100]);
        assert_eq!(
            r.fetched(),
            (FIRST_WINDOW as u64) + TAIL,
            "head and tail once each"
        );
        // A sequential read returns the whole file.
        r.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, content);
        assert_eq!(origin.bytes_fetched(), r.fetched());
    }

    #[test]
    fn a_backward_scan_costs_what_a_forward_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let origin: Arc<dyn Origin> =
            Arc::new(LocalOrigin::new(OriginUrl::Local(dir.path().to_owned())));
        let mut r = RangeReader::new(origin.clone(), b"f".to_vec(), content.len() as u64, None);
        let mut pos = content.len() as u64 - 1000;
        let mut buf = [0u8; 500];
        while pos > 1000 {
            r.seek(SeekFrom::Start(pos)).unwrap();
            r.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..], &content[pos as usize..pos as usize + 500]);
            pos -= 999;
        }
        assert!(
            r.fetched() < 2 * content.len() as u64,
            "fetched {} for a {} byte file",
            r.fetched(),
            content.len()
        );
    }
}
