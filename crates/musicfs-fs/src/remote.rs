//! Files of remote origins (SFTP, S3), and of any origin with mirrors, read through the origin
//! layer with failover between mirrors.
//!
//! Reads go to the origin in windows that grow while the reader stays sequential (a player,
//! `cp`): the first read fetches [`FIRST_WINDOW`], each sequential miss doubles it up to
//! [`MAX_WINDOW`], a seek starts over small. So a seek costs one small round trip, and a long
//! read costs few. A read the current window answers is served on the FUSE thread without a
//! hop ([`RemoteFile::read_cached`] never waits: it gives up if a fetch holds the window).
//! Fetches run on the mount's I/O threads with its deadline, never on a FUSE worker; each goes
//! to the healthiest mirror whose copy has the size the DB knows, and fails over to the next.
//! Once the reader is sequential, the next window is fetched in the background, from one
//! stream to the end of the file where the origin can stream (S3: one GET, not one per
//! window); a stream that fails falls back to ranged reads with failover.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use musicfs_origin::{LocalOrigin, Mirror, MirrorSet, Origin, OriginUrl};

pub(crate) const FIRST_WINDOW: usize = 256 << 10;
pub(crate) const MAX_WINDOW: usize = 8 << 20;

/// Another copy of a library, from the mount's config: `url` holds the files of the origin
/// whose root (as the DB stores it: an absolute path or a URL) is `of`, at the same relative
/// paths.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub of: String,
    pub url: OriginUrl,
    /// Lower is preferred. An entry whose `url` is `of` itself sets the primary's priority
    /// (default 1).
    pub priority: u32,
}

/// The mount's remote and mirrored origins, each opened on first use from its URL in the DB
/// (credentials from the environment, never from the DB), with a periodic health check.
pub(crate) struct RemoteOrigins {
    config: Vec<MirrorConfig>,
    attempt_timeout: Duration,
    health_interval: Duration,
    open: Mutex<HashMap<i64, Arc<MirrorSet>>>,
    checking: std::sync::Once,
}

impl RemoteOrigins {
    pub(crate) fn new(
        config: Vec<MirrorConfig>,
        attempt_timeout: Duration,
        health_interval: Duration,
    ) -> RemoteOrigins {
        RemoteOrigins {
            config,
            attempt_timeout,
            health_interval,
            open: Mutex::default(),
            checking: std::sync::Once::new(),
        }
    }

    /// Whether files of the origin `root` of `kind` are read through here (remote, or local
    /// with mirrors: a dead primary must be able to fail over, which kernel passthrough and
    /// direct reads cannot).
    pub(crate) fn serves(&self, root: &[u8], kind: &str) -> bool {
        kind != "local" || self.config.iter().any(|m| m.of.as_bytes() == root)
    }

    pub(crate) fn get(
        self: &Arc<Self>,
        origin_id: i64,
        root: &[u8],
        kind: &str,
    ) -> musicfs_origin::Result<Arc<MirrorSet>> {
        if let Some(set) = self.open.lock().unwrap().get(&origin_id) {
            return Ok(set.clone());
        }
        let root_text = String::from_utf8_lossy(root).into_owned();
        let primary_url = if kind == "local" {
            OriginUrl::Local(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(root)))
        } else {
            OriginUrl::parse(&root_text)?
        };
        let primary: Arc<dyn Origin> = match &primary_url {
            OriginUrl::Local(_) => Arc::new(LocalOrigin::new(primary_url.clone())),
            _ => musicfs_origin::open(&primary_url)?,
        };
        let primary_priority = self
            .config
            .iter()
            .find(|m| m.of == root_text && m.url == primary_url)
            .map_or(1, |m| m.priority);
        let mut mirrors = vec![Mirror::new(primary, primary_priority)];
        for m in self
            .config
            .iter()
            .filter(|m| m.of == root_text && m.url != primary_url)
        {
            mirrors.push(Mirror::new(musicfs_origin::open(&m.url)?, m.priority));
        }
        let set = Arc::new(MirrorSet::new(mirrors, self.attempt_timeout));
        let set = self
            .open
            .lock()
            .unwrap()
            .entry(origin_id)
            .or_insert(set)
            .clone();
        self.start_health_checks();
        Ok(set)
    }

    /// One thread checks every opened origin each `health_interval`, until the mount ends.
    fn start_health_checks(self: &Arc<Self>) {
        let weak: Weak<RemoteOrigins> = Arc::downgrade(self);
        let interval = self.health_interval;
        self.checking.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("musicfs-health".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(interval);
                        let Some(origins) = weak.upgrade() else {
                            return;
                        };
                        let sets: Vec<Arc<MirrorSet>> =
                            origins.open.lock().unwrap().values().cloned().collect();
                        drop(origins);
                        for set in sets {
                            set.check_all();
                        }
                    }
                });
        });
    }
}

/// Connects to every remote or mirrored origin of the DB in the background, and checks each
/// mirror once: the first play then finds a session open and health known (an SSH login is
/// several round trips).
pub(crate) fn warm_up(remotes: Arc<RemoteOrigins>, pool: musicfs_db::ReadPool) {
    let _ = std::thread::Builder::new()
        .name("musicfs-warm-up".into())
        .spawn(move || {
            let origins = match pool
                .get()
                .map(|c| musicfs_db::queries::origins_with_kind(&c))
            {
                Ok(Ok(origins)) => origins,
                _ => return,
            };
            for (id, root, kind) in origins {
                if !remotes.serves(&root, &kind) {
                    continue;
                }
                match remotes.get(id, &root, &kind) {
                    Ok(set) => set.check_all(),
                    Err(err) => tracing::warn!("{err}"),
                }
            }
        });
}

struct Window {
    start: u64,
    data: Vec<u8>,
    /// Size of the next fetch if the reader goes on sequentially.
    next: usize,
    /// The window after this one, being fetched in the background while this one is read.
    ahead: Option<Ahead>,
}

struct Ahead {
    start: u64,
    len: usize,
    result: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// What fetching a range of one file needs; shared with background prefetches.
struct Fetcher {
    set: Arc<MirrorSet>,
    rel: Arc<[u8]>,
    /// The size the DB knows: only mirrors whose copy has it serve this file.
    size: u64,
    /// Per mirror: its copy's size agrees with the DB (None: not known yet). Learned from a
    /// stat, or from the first read where the origin's reads tell the size (S3).
    agrees: Arc<Mutex<Vec<Option<bool>>>>,
    /// A sequential reader's open stream (one GET to the end of the file, where the origin
    /// can stream, drained ahead of the reader: `drain.rs`), and the offset it is at.
    stream: Mutex<Option<(u64, Box<dyn std::io::Read + Send>)>>,
}

impl Fetcher {
    /// `len` bytes at `offset` for a sequential reader: from the open stream if it is there,
    /// else from a new one on the first usable mirror; on any stream failure, or where no
    /// origin streams, a ranged read with failover ([`Fetcher::fetch`]).
    fn fetch_sequential(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
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
    fn open_stream(&self, offset: u64) -> Option<Box<dyn std::io::Read + Send>> {
        for i in self.set.order() {
            // Only from a mirror whose copy is known to agree: a stream is never checked.
            if !matches!(self.usable(i), Ok(true)) || self.agrees.lock().unwrap()[i] != Some(true) {
                continue;
            }
            let mirror = &self.set.mirrors[i];
            return match mirror
                .origin
                .stream_from(&self.rel, offset, self.set.attempt_timeout)?
            {
                Ok(reader) => Some(reader),
                Err(err) => {
                    tracing::warn!("{err}; reading in ranges instead");
                    None
                }
            };
        }
        None
    }

    fn describe(&self) -> String {
        self.set.mirrors[0].origin.url().locate(&self.rel)
    }

    /// Whether mirror `i` may serve this file: its copy has the DB's size (asked once). Where
    /// the origin's reads tell the size, nothing is asked: the first read checks it.
    fn usable(&self, i: usize) -> musicfs_origin::Result<bool> {
        if let Some(known) = self.agrees.lock().unwrap()[i] {
            return Ok(known);
        }
        if self.set.mirrors[i].origin.reads_tell_size() {
            return Ok(true);
        }
        let meta = self.set.stat_on(i, &self.rel)?;
        let agrees = meta.size == self.size;
        if !agrees {
            tracing::warn!(
                "{}: {} bytes there, {} in the DB: not read from that mirror",
                self.set.mirrors[i].origin.url().locate(&self.rel),
                meta.size,
                self.size
            );
        }
        self.agrees.lock().unwrap()[i] = Some(agrees);
        Ok(agrees)
    }

    /// `len` bytes at `offset` from the first usable mirror, failing over. A read that shows
    /// the mirror's copy is another version (its told size, or bytes ending before the DB's
    /// size) marks that mirror as disagreeing and moves on.
    fn fetch(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let (rel, expected, agrees) = (self.rel.clone(), self.size, self.agrees.clone());
        let (_, data) = self
            .set
            .call(&|i| self.usable(i), move |i, o| {
                let (data, told) = o.read_at_sized(&rel, offset, len)?;
                let short = data.len() < len && offset + (data.len() as u64) < expected;
                let size = told.or(short.then_some(offset + data.len() as u64));
                if let Some(size) = size {
                    agrees.lock().unwrap()[i] = Some(size == expected);
                    if size != expected {
                        let path = o.url().locate(&rel);
                        tracing::warn!(
                            "{path}: {size} bytes there, {expected} in the DB: not read from \
                             that mirror"
                        );
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

pub(crate) struct RemoteFile {
    fetcher: Arc<Fetcher>,
    window: Mutex<Window>,
}

/// Why a remote file could not be opened.
pub(crate) enum OpenFailure {
    /// Every mirror that answered holds another size: (the first such size).
    Changed(u64),
    Origin(musicfs_origin::OriginError),
}

impl RemoteFile {
    /// Opens `rel` of `set`: finds a mirror whose copy has `size` bytes (one stat round trip
    /// on a healthy primary; none where the primary's reads tell the size, as S3's do: the
    /// first read checks it, and a changed file fails that read instead of the open).
    pub(crate) fn open(
        set: Arc<MirrorSet>,
        rel: Vec<u8>,
        size: u64,
    ) -> Result<RemoteFile, OpenFailure> {
        let fetcher = Arc::new(Fetcher {
            agrees: Arc::new(Mutex::new(vec![None; set.mirrors.len()])),
            stream: Mutex::new(None),
            set,
            rel: rel.into(),
            size,
        });
        let opened = fetcher.set.call(&|i| fetcher.usable(i), |_, _| Ok(()));
        if let Err(err) = opened {
            let other = fetcher.agrees.lock().unwrap().contains(&Some(false));
            let changed = matches!(err, musicfs_origin::OriginError::Changed { .. });
            return Err(if changed || (other && !err.is_origin_down()) {
                let first = (0..fetcher.set.mirrors.len())
                    .find_map(|i| fetcher.set.stat_on(i, &fetcher.rel).ok())
                    .map_or(0, |m| m.size);
                OpenFailure::Changed(first)
            } else {
                OpenFailure::Origin(err)
            });
        }
        Ok(RemoteFile {
            fetcher,
            window: Mutex::new(Window {
                start: 0,
                data: Vec::new(),
                next: FIRST_WINDOW,
                ahead: None,
            }),
        })
    }

    /// Copies `wanted` bytes at `offset` from the current window; `false` if it does not hold
    /// them all or a fetch is under way.
    pub(crate) fn read_cached(&self, offset: u64, wanted: usize, buf: &mut Vec<u8>) -> bool {
        let Ok(window) = self.window.try_lock() else {
            return false;
        };
        copy_from(&window, offset, wanted, buf)
    }

    /// `wanted` bytes at `offset`, fewer only at the end of the file: a short FUSE read is
    /// taken for the end of the file, so a read that spans windows is filled from several.
    /// Blocks on the network: call on an I/O thread. Once the reader is sequential, the next
    /// window is always on its way while the current one is read (network and reader overlap).
    pub(crate) fn read(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut out = self.read_part(offset, wanted)?;
        while out.len() < wanted {
            let more = self.read_part(offset + out.len() as u64, wanted - out.len())?;
            if more.is_empty() {
                break;
            }
            out.extend_from_slice(&more);
        }
        Ok(out)
    }

    /// Up to `wanted` bytes at `offset` from one window (at least one byte unless at the end).
    fn read_part(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut window = self.window.lock().unwrap();
        let mut buf = Vec::new();
        if copy_from(&window, offset, wanted, &mut buf) {
            return Ok(buf);
        }
        let size = self.fetcher.size;
        let mut prefetched = None;
        if let Some(ahead) = window.ahead.take()
            && offset >= ahead.start
            && offset < ahead.start + ahead.len as u64
        {
            // A failed prefetch is retried below, in the foreground.
            if let Ok(Ok(data)) = ahead.result.recv() {
                prefetched = Some((ahead.start, data));
            }
        }
        let (start, data, sequential) = match prefetched {
            Some((start, data)) => (start, data, true),
            None => {
                let end = window.start + window.data.len() as u64;
                let sequential = !window.data.is_empty() && offset >= window.start && offset <= end;
                let len = if sequential {
                    let len = window.next;
                    window.next = (window.next * 2).min(MAX_WINDOW);
                    len
                } else {
                    window.next = FIRST_WINDOW * 2;
                    FIRST_WINDOW
                };
                let len = len.max(wanted).min(size.saturating_sub(offset) as usize);
                let data = if sequential {
                    self.fetcher.fetch_sequential(offset, len)?
                } else {
                    self.fetcher.fetch(offset, len)?
                };
                (offset, data, sequential)
            }
        };
        window.start = start;
        window.data = data;
        let next_start = start + window.data.len() as u64;
        if sequential && next_start < size {
            let len = window.next.min((size - next_start) as usize);
            window.next = (window.next * 2).min(MAX_WINDOW);
            let (tx, rx) = mpsc::sync_channel(1);
            let fetcher = self.fetcher.clone();
            let spawned = std::thread::Builder::new()
                .name("musicfs-prefetch".into())
                .spawn(move || {
                    let _ = tx.send(fetcher.fetch_sequential(next_start, len));
                });
            if spawned.is_ok() {
                window.ahead = Some(Ahead {
                    start: next_start,
                    len,
                    result: rx,
                });
            }
        }
        if copy_from(&window, offset, wanted, &mut buf) {
            return Ok(buf);
        }
        // Short: the end of the file (or the file shrank on the origin).
        let from = offset.saturating_sub(window.start) as usize;
        Ok(window.data.get(from..).unwrap_or_default().to_vec())
    }
}

fn copy_from(window: &Window, offset: u64, wanted: usize, buf: &mut Vec<u8>) -> bool {
    let end = window.start + window.data.len() as u64;
    if offset < window.start || offset + wanted as u64 > end {
        return false;
    }
    let from = (offset - window.start) as usize;
    buf.clear();
    buf.extend_from_slice(&window.data[from..from + wanted]);
    true
}

#[cfg(test)]
mod tests {
    //! The read path and failover against scripted origins: in-process, no mount, no root.
    use std::time::Instant;

    use musicfs_origin::scripted::{Fault, ScriptedOrigin};

    use super::*;

    fn content(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
    }

    fn set(origins: &[&Arc<ScriptedOrigin>], timeout: Duration) -> Arc<MirrorSet> {
        let mirrors = origins
            .iter()
            .enumerate()
            .map(|(i, o)| Mirror::new((*o).clone() as Arc<dyn Origin>, i as u32 + 1))
            .collect();
        Arc::new(MirrorSet::new(mirrors, timeout))
    }

    fn read_all(file: &RemoteFile, size: usize, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < size {
            let got = file.read(out.len() as u64, chunk).unwrap();
            assert!(!got.is_empty());
            out.extend_from_slice(&got);
        }
        out
    }

    #[test]
    fn a_sequential_read_fetches_few_growing_windows_and_a_seek_starts_small() {
        let origin = Arc::new(ScriptedOrigin::new("one"));
        let bytes = content(20 << 20, 0);
        origin.put(b"a/song.flac", bytes.clone());
        let file = RemoteFile::open(
            set(&[&origin], Duration::from_secs(5)),
            b"a/song.flac".to_vec(),
            bytes.len() as u64,
        )
        .ok()
        .unwrap();
        let before = origin.calls();
        assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
        // 256K, 512K, 1M, 2M, 4M, then 8M windows: 20 MiB in 7 fetches, not 160.
        let fetches = origin.calls() - before;
        assert!(fetches <= 8, "{fetches} fetches for a sequential read");
        // A seek fetches one small window.
        let fetched = origin.bytes_fetched();
        file.read(1 << 20, 4096).unwrap();
        assert_eq!(origin.bytes_fetched() - fetched, FIRST_WINDOW as u64);
        // The window answers without the origin (the FUSE-thread fast path).
        let mut buf = Vec::new();
        assert!(file.read_cached((1 << 20) + 4096, 4096, &mut buf));
        assert_eq!(buf, bytes[(1 << 20) + 4096..(1 << 20) + 8192]);
    }

    #[test]
    fn a_read_spanning_windows_is_whole_not_short() {
        let origin = Arc::new(ScriptedOrigin::new("one"));
        let bytes = content(6 << 20, 3);
        origin.put(b"x.flac", bytes.clone());
        let file = RemoteFile::open(
            set(&[&origin], Duration::from_secs(5)),
            b"x.flac".to_vec(),
            bytes.len() as u64,
        )
        .ok()
        .unwrap();
        // The kernel's pattern that found it: a sequential start (the next window is then
        // prefetched), and a 1 MiB read from inside that window running past its end.
        file.read(0, 4096).unwrap();
        file.read(FIRST_WINDOW as u64, 4096).unwrap();
        let ahead_start = (FIRST_WINDOW * 3) as u64;
        for offset in [ahead_start + 100_000, 3 << 20, (6 << 20) - 1000] {
            let want = (1usize << 20).min(bytes.len() - offset as usize);
            let got = file.read(offset, 1 << 20).unwrap();
            assert_eq!(got.len(), want, "short read at {offset}");
            assert_eq!(got, bytes[offset as usize..offset as usize + want]);
        }
    }

    #[test]
    fn a_hung_primary_fails_over_to_the_mirror_within_the_attempt_timeout() {
        let (primary, mirror) = (
            Arc::new(ScriptedOrigin::new("nas")),
            Arc::new(ScriptedOrigin::new("backup")),
        );
        let bytes = content(3 << 20, 7);
        primary.put(b"x.flac", bytes.clone());
        mirror.put(b"x.flac", bytes.clone());
        let set = set(&[&primary, &mirror], Duration::from_millis(200));
        let file = RemoteFile::open(set.clone(), b"x.flac".to_vec(), bytes.len() as u64)
            .ok()
            .unwrap();
        let head = file.read(0, 4096).unwrap();
        primary.set_fault(Fault::Hang);
        let started = Instant::now();
        let mut got = head;
        while got.len() < bytes.len() {
            got.extend(file.read(got.len() as u64, 128 << 10).unwrap());
        }
        assert_eq!(got, bytes, "bytes across the failover");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The primary is now the worse choice: new reads go to the mirror first.
        assert_ne!(set.mirrors[0].health(), musicfs_origin::Health::Healthy);
        assert_eq!(set.order()[0], 1);
        primary.set_fault(Fault::None);
    }

    #[test]
    fn a_mirror_holding_another_size_never_serves_the_file() {
        let (primary, mirror) = (
            Arc::new(ScriptedOrigin::new("nas")),
            Arc::new(ScriptedOrigin::new("backup")),
        );
        let bytes = content(100_000, 1);
        primary.put(b"x.flac", bytes.clone());
        mirror.put(b"x.flac", content(90_000, 2)); // an older version
        primary.set_fault(Fault::Down);
        let set = set(&[&primary, &mirror], Duration::from_millis(200));
        let started = Instant::now();
        match RemoteFile::open(set.clone(), b"x.flac".to_vec(), bytes.len() as u64) {
            Ok(_) => panic!("opened from a mirror of another size"),
            Err(OpenFailure::Origin(err)) => assert!(err.is_origin_down(), "{err}"),
            Err(OpenFailure::Changed(_)) => panic!("the primary's copy was never seen"),
        }
        // Every round was retried with backoff (100 ms + 500 ms + 2 s), then it gave up.
        assert!(started.elapsed() >= Duration::from_millis(2600));
        assert_eq!(mirror.bytes_fetched(), 0);

        // Changed on every mirror: refused as changed, not served.
        primary.set_fault(Fault::None);
        primary.put(b"x.flac", content(95_000, 3));
        match RemoteFile::open(set, b"x.flac".to_vec(), bytes.len() as u64) {
            Err(OpenFailure::Changed(size)) => assert!(size == 95_000 || size == 90_000),
            _ => panic!("a file changed everywhere must be refused as changed"),
        }
    }

    #[test]
    fn where_reads_tell_the_size_the_first_read_checks_it_and_open_asks_nothing() {
        let origin = Arc::new(ScriptedOrigin::new("s3like"));
        origin.set_tells_size(true);
        let bytes = content(600_000, 4);
        origin.put(b"x.flac", bytes.clone());
        let file = RemoteFile::open(
            set(&[&origin], Duration::from_secs(5)),
            b"x.flac".to_vec(),
            bytes.len() as u64,
        )
        .ok()
        .unwrap();
        assert_eq!(origin.calls(), 0, "open made a request");
        assert_eq!(file.read(0, 4096).unwrap(), bytes[..4096]);
        assert_eq!(
            origin.calls(),
            1,
            "the first byte cost more than one request"
        );
        assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
    }

    #[test]
    fn a_mirror_whose_read_tells_another_size_is_passed_over_not_failed() {
        let (primary, mirror) = (
            Arc::new(ScriptedOrigin::new("old")),
            Arc::new(ScriptedOrigin::new("right")),
        );
        primary.set_tells_size(true);
        mirror.set_tells_size(true);
        let bytes = content(300_000, 5);
        primary.put(b"x.flac", content(280_000, 6)); // another version
        mirror.put(b"x.flac", bytes.clone());
        let set = set(&[&primary, &mirror], Duration::from_secs(5));
        let file = RemoteFile::open(set.clone(), b"x.flac".to_vec(), bytes.len() as u64)
            .ok()
            .unwrap();
        let started = Instant::now();
        assert_eq!(file.read(0, bytes.len()).unwrap(), bytes);
        assert!(started.elapsed() < Duration::from_millis(100), "retried");
        assert_eq!(set.mirrors[0].health(), musicfs_origin::Health::Healthy);
        // Known now: later reads of this file go straight to the mirror.
        let asked = primary.calls();
        file.read(100_000, 4096).unwrap();
        assert_eq!(primary.calls(), asked);

        // Another version everywhere: the read fails at once, nothing is served.
        mirror.put(b"x.flac", content(310_000, 7));
        let file = RemoteFile::open(set, b"x.flac".to_vec(), bytes.len() as u64)
            .ok()
            .unwrap();
        let started = Instant::now();
        assert!(file.read(0, 4096).is_err());
        assert!(started.elapsed() < Duration::from_millis(100), "retried");
    }

    #[test]
    fn a_stat_checked_mirror_serves_a_whole_sequential_read_after_a_disagreeing_one() {
        let (wrong, right) = (
            Arc::new(ScriptedOrigin::new("wrong")),
            Arc::new(ScriptedOrigin::new("right")),
        );
        wrong.set_tells_size(true);
        let bytes = content(3 << 20, 8);
        wrong.put(b"x.flac", content((3 << 20) - 1000, 9));
        right.put(b"x.flac", bytes.clone());
        let file = RemoteFile::open(
            set(&[&wrong, &right], Duration::from_secs(5)),
            b"x.flac".to_vec(),
            bytes.len() as u64,
        )
        .ok()
        .unwrap();
        assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
    }

    #[test]
    fn a_stream_stalling_mid_file_falls_back_to_the_mirror_with_identical_bytes() {
        let (primary, mirror) = (
            Arc::new(ScriptedOrigin::new("s3")),
            Arc::new(ScriptedOrigin::new("backup")),
        );
        primary.set_streams(true);
        primary.set_tells_size(true);
        let bytes = content(24 << 20, 2);
        primary.put(b"x.flac", bytes.clone());
        mirror.put(b"x.flac", bytes.clone());
        let set = set(&[&primary, &mirror], Duration::from_millis(300));
        let file = RemoteFile::open(set, b"x.flac".to_vec(), bytes.len() as u64)
            .ok()
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 << 20 {
            got.extend(file.read(got.len() as u64, 128 << 10).unwrap());
        }
        // The stream is flowing (read ahead of the reader); now the server stops answering.
        primary.set_fault(Fault::Hang);
        let started = Instant::now();
        while got.len() < bytes.len() {
            let part = file.read(got.len() as u64, 128 << 10).unwrap();
            assert!(!part.is_empty());
            got.extend(part);
        }
        assert!(got == bytes, "bytes across the stall differ");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(mirror.bytes_fetched() > 0, "the mirror was never used");
        primary.set_fault(Fault::None);
    }

    #[test]
    fn an_origin_back_during_the_retries_serves_the_read() {
        let origin = Arc::new(ScriptedOrigin::new("flaky"));
        let bytes = content(50_000, 9);
        origin.put(b"x.flac", bytes.clone());
        let set = set(&[&origin], Duration::from_millis(500));
        let file = RemoteFile::open(set, b"x.flac".to_vec(), bytes.len() as u64)
            .ok()
            .unwrap();
        origin.set_fault(Fault::Down);
        let back = {
            let origin = origin.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                origin.set_fault(Fault::None);
            })
        };
        assert_eq!(file.read(0, bytes.len()).unwrap(), bytes);
        back.join().unwrap();
    }
}
