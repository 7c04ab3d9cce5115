//! A scripted origin for in-process tests of everything above the origin layer: files held in
//! memory, and faults set at will (latency, errors, hangs, files changing under the reader).
//! Built with the `scripted` feature only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, Origin, OriginUrl};

/// What every call does before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer after this long.
    Latency(Duration),
    /// Fail at once as if the server were unreachable.
    Down,
    /// Never answer until the fault is cleared (a black-holed server).
    Hang,
}

/// The fault in force, shared with the origin's open streams.
#[derive(Default)]
struct Faults {
    fault: Mutex<Fault>,
    cleared: Condvar,
}

pub struct ScriptedOrigin {
    url: OriginUrl,
    files: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    faults: Arc<Faults>,
    calls: AtomicU64,
    fetched: Arc<AtomicU64>,
    tells_size: AtomicBool,
    streams: AtomicBool,
}

impl ScriptedOrigin {
    pub fn new(name: &str) -> ScriptedOrigin {
        ScriptedOrigin {
            url: OriginUrl::parse(&format!("s3://{name}")).expect("a valid bucket name"),
            files: Mutex::default(),
            faults: Arc::default(),
            calls: AtomicU64::new(0),
            fetched: Arc::default(),
            tells_size: AtomicBool::new(false),
            streams: AtomicBool::new(false),
        }
    }

    pub fn put(&self, rel: &[u8], bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(rel.to_vec(), bytes);
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.faults.fault.lock().unwrap() = fault;
        self.faults.cleared.notify_all();
    }

    /// Whether it streams a file to its end in one request (as S3 does); each piece of the
    /// stream then meets the fault in force (a hang stalls it).
    pub fn set_streams(&self, streams: bool) {
        self.streams.store(streams, Ordering::Relaxed);
    }

    /// Whether reads tell the file's size, as S3's ranged GETs do.
    pub fn set_tells_size(&self, tells: bool) {
        self.tells_size.store(tells, Ordering::Relaxed);
    }

    /// Calls made so far (list, stat, read).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn before(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut fault = self.faults.fault.lock().unwrap();
        loop {
            match *fault {
                Fault::None => return Ok(()),
                Fault::Latency(d) => {
                    drop(fault);
                    std::thread::sleep(d);
                    return Ok(());
                }
                Fault::Down => {
                    return Err(OriginError::Unreachable {
                        origin: self.url.to_string(),
                        cause: "scripted: down".into(),
                    });
                }
                Fault::Hang => fault = self.faults.cleared.wait(fault).unwrap(),
            }
        }
    }

    fn not_found(&self, rel: &[u8]) -> OriginError {
        OriginError::NotFound {
            origin: self.url.to_string(),
            path: String::from_utf8_lossy(rel).into_owned(),
        }
    }
}

impl Origin for ScriptedOrigin {
    fn url(&self) -> &OriginUrl {
        &self.url
    }

    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        self.before()?;
        let prefix = if rel.is_empty() {
            Vec::new()
        } else {
            [rel, b"/"].concat()
        };
        let files = self.files.lock().unwrap();
        let mut entries: Vec<Entry> = Vec::new();
        for (path, bytes) in files.iter() {
            let Some(rest) = path.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let (name, is_dir) = match rest.iter().position(|&b| b == b'/') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            if entries.iter().any(|e| e.name == name) {
                continue;
            }
            entries.push(Entry {
                name: name.to_vec(),
                is_dir,
                meta: Meta {
                    size: if is_dir { 0 } else { bytes.len() as u64 },
                    ..Meta::default()
                },
                refused: None,
            });
        }
        Ok(entries)
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        self.before()?;
        let files = self.files.lock().unwrap();
        let bytes = files.get(rel).ok_or_else(|| self.not_found(rel))?;
        Ok(Meta {
            size: bytes.len() as u64,
            ..Meta::default()
        })
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        self.before()?;
        let files = self.files.lock().unwrap();
        let bytes = files.get(rel).ok_or_else(|| self.not_found(rel))?;
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        self.fetched
            .fetch_add((end - start) as u64, Ordering::Relaxed);
        Ok(bytes[start..end].to_vec())
    }

    fn reads_tell_size(&self) -> bool {
        self.tells_size.load(Ordering::Relaxed)
    }

    fn read_at_sized(
        &self,
        rel: &[u8],
        offset: u64,
        len: usize,
        _etag: Option<&str>,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        let data = self.read_at(rel, offset, len)?;
        let size = self
            .reads_tell_size()
            .then(|| self.files.lock().unwrap().get(rel).map(|b| b.len() as u64))
            .flatten();
        Ok((data, size))
    }

    fn stream_from(
        &self,
        rel: &[u8],
        offset: u64,
        stall: Duration,
        _etag: Option<&str>,
    ) -> Option<Result<Box<dyn std::io::Read + Send>>> {
        if !self.streams.load(Ordering::Relaxed) {
            return None;
        }
        let opened = self.before().and_then(|()| {
            let files = self.files.lock().unwrap();
            let bytes = files.get(rel).ok_or_else(|| self.not_found(rel))?;
            let rest = bytes[(offset as usize).min(bytes.len())..].to_vec();
            Ok(Box::new(ScriptedStream {
                rest,
                at: 0,
                stall,
                faults: self.faults.clone(),
                fetched: self.fetched.clone(),
            }) as Box<dyn std::io::Read + Send>)
        });
        Some(opened)
    }

    fn stat_root(&self) -> Result<bool> {
        self.before()?;
        Ok(!self.files.lock().unwrap().is_empty())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

/// A scripted stream: 64 KiB a read; a hang stalls it, and after `stall` it fails as a real
/// stream's stall timeout does.
struct ScriptedStream {
    rest: Vec<u8>,
    at: usize,
    stall: Duration,
    faults: Arc<Faults>,
    fetched: Arc<AtomicU64>,
}

impl std::io::Read for ScriptedStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let deadline = Instant::now() + self.stall;
        let mut fault = self.faults.fault.lock().unwrap();
        loop {
            match *fault {
                Fault::Down => return Err(std::io::Error::other("scripted: down")),
                Fault::Hang => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "scripted: stalled",
                        ));
                    }
                    fault = self.faults.cleared.wait_timeout(fault, left).unwrap().0;
                }
                Fault::None | Fault::Latency(_) => break,
            }
        }
        drop(fault);
        let n = out.len().min(64 << 10).min(self.rest.len() - self.at);
        out[..n].copy_from_slice(&self.rest[self.at..self.at + n]);
        self.at += n;
        self.fetched.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
