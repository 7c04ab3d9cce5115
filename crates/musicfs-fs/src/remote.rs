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

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, Weak};
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

struct Window {
    start: u64,
    data: Vec<u8>,
    /// Size of the next fetch if the reader goes on sequentially.
    next: usize,
}

pub(crate) struct RemoteFile {
    set: Arc<MirrorSet>,
    rel: Arc<[u8]>,
    /// The size the DB knows: only mirrors whose copy has it serve this file.
    size: u64,
    /// Per mirror: its copy's size agrees with the DB (None: not asked yet).
    agrees: Mutex<Vec<Option<bool>>>,
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
    /// on a healthy primary).
    pub(crate) fn open(
        set: Arc<MirrorSet>,
        rel: Vec<u8>,
        size: u64,
    ) -> Result<RemoteFile, OpenFailure> {
        let file = RemoteFile {
            agrees: Mutex::new(vec![None; set.mirrors.len()]),
            set,
            rel: rel.into(),
            size,
            window: Mutex::new(Window {
                start: 0,
                data: Vec::new(),
                next: FIRST_WINDOW,
            }),
        };
        let opened = file.set.call(&|i| file.usable(i), |_| Ok(()));
        match opened {
            Ok(_) => Ok(file),
            Err(err) => {
                let other = file.agrees.lock().unwrap().contains(&Some(false));
                if other && !err.is_origin_down() {
                    let first = (0..file.set.mirrors.len())
                        .find_map(|i| file.set.stat_on(i, &file.rel).ok())
                        .map_or(0, |m| m.size);
                    Err(OpenFailure::Changed(first))
                } else {
                    Err(OpenFailure::Origin(err))
                }
            }
        }
    }

    /// Whether mirror `i` may serve this file: its copy has the DB's size (asked once).
    fn usable(&self, i: usize) -> musicfs_origin::Result<bool> {
        if let Some(known) = self.agrees.lock().unwrap()[i] {
            return Ok(known);
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

    /// Copies `wanted` bytes at `offset` from the current window; `false` if it does not hold
    /// them all or a fetch is under way.
    pub(crate) fn read_cached(&self, offset: u64, wanted: usize, buf: &mut Vec<u8>) -> bool {
        let Ok(window) = self.window.try_lock() else {
            return false;
        };
        copy_from(&window, offset, wanted, buf)
    }

    /// `wanted` bytes at `offset` (fewer at the end), fetching a window if needed. Blocks on
    /// the network: call on an I/O thread.
    pub(crate) fn read(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut window = self.window.lock().unwrap();
        let mut buf = Vec::new();
        if copy_from(&window, offset, wanted, &mut buf) {
            return Ok(buf);
        }
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
        let len = len
            .max(wanted)
            .min(self.size.saturating_sub(offset) as usize);
        let rel = self.rel.clone();
        let (_, data) = self
            .set
            .call(&|i| self.usable(i), move |o| o.read_at(&rel, offset, len))
            .map_err(musicfs_origin::OriginError::into_io)?;
        window.start = offset;
        window.data = data;
        let n = wanted.min(window.data.len());
        Ok(window.data[..n].to_vec())
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
