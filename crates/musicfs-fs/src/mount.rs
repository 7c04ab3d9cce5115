//! Mounting: checks, the FUSE session, the watcher, and a clean unmount on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use musicfs_db::{PoolOptions, ReadPool};

use crate::attr::Owner;
use crate::cache::Caches;
use crate::handles::Handles;
use crate::ops::MusicFs;
pub use crate::remote::MirrorConfig;
use crate::watch::Watcher;
use crate::{FsError, is_mount_point};

/// Everything a mount needs. `MountConfig::new` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub db: PathBuf,
    pub mountpoint: PathBuf,
    /// Owner of every entry (default: the user who mounts).
    pub uid: u32,
    pub gid: u32,
    /// Let other users see the mount (needs `user_allow_other` in /etc/fuse.conf for non-root).
    pub allow_other: bool,
    /// How long the kernel may cache entries, negative entries and attributes. Long is safe:
    /// the watcher invalidates what the scanner changes.
    pub ttl: Duration,
    /// moka capacities, in entries.
    pub lookup_cache: u64,
    pub attr_cache: u64,
    /// How long a cached answer may live even if no change touches it: bounds the harm of
    /// an invalidation missed for any reason.
    pub cache_ttl: Duration,
    /// FUSE worker threads, each with its own cloned /dev/fuse fd.
    pub threads: usize,
    /// Use kernel FUSE passthrough for reads when the kernel and privileges allow.
    pub passthrough: bool,
    /// Offer READDIRPLUS (faster `ls -l`, slower plain listings).
    pub readdirplus: bool,
    /// Serve `/.search/<query>/` from the index the scanner keeps (docs/search.md).
    pub search: bool,
    /// A backing open or read that takes longer fails with EIO (and a log line naming the
    /// file); the mount itself never waits on a backing file.
    pub io_timeout: Duration,
    /// Backing calls in flight at once (stuck ones included); more wait for a free thread.
    pub io_threads: usize,
    /// How often the watcher checks for committed changes.
    pub poll_interval: Duration,
    /// Other copies of libraries (see [`MirrorConfig`]).
    pub mirrors: Vec<MirrorConfig>,
    /// One attempt on one mirror may take this long before the next mirror is tried.
    pub mirror_attempt_timeout: Duration,
    /// How often every remote or mirrored origin is checked (healthy, degraded, unhealthy).
    pub health_interval: Duration,
    /// The content cache (None: off, the default here; the `musicfs` command turns it on).
    /// Its rows go in the DB, so a DB the mount cannot write runs without it (said once).
    pub cache: Option<musicfs_cache::CacheConfig>,
    /// Origins (root as stored: a path or URL) whose files go through the cache or not; the
    /// others: remote ones do, local ones do not.
    pub cache_origins: HashMap<String, bool>,
    /// With the cache: once a track plays, fetch the start of the next one of its folder.
    pub prefetch: bool,
    pub pool: PoolOptions,
}

impl MountConfig {
    pub fn new(db: impl Into<PathBuf>, mountpoint: impl Into<PathBuf>) -> MountConfig {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        MountConfig {
            db: db.into(),
            mountpoint: mountpoint.into(),
            uid,
            gid,
            allow_other: false,
            ttl: Duration::from_secs(60),
            // Second-level caches (the kernel keeps names and attributes for the TTL): sized so
            // a mount stays under ~64 MiB whatever is walked.
            lookup_cache: 65_536,
            attr_cache: 65_536,
            cache_ttl: Duration::from_secs(60),
            threads: 4,
            passthrough: true,
            readdirplus: false,
            search: true,
            io_timeout: Duration::from_secs(30),
            io_threads: 64,
            poll_interval: Duration::from_millis(200),
            mirrors: Vec::new(),
            mirror_attempt_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(30),
            cache: None,
            cache_origins: HashMap::new(),
            prefetch: true,
            // No mmap: touched pages of a mapped DB count in RSS, and a walk over a 10M-track
            // DB touched 2 GiB of them. SQLite's own cache is bounded; the cost is ~3 µs per
            // query against 100+ µs per FUSE round trip.
            pool: PoolOptions {
                mmap_size: 0,
                cache_kib: 2 << 10,
                ..PoolOptions::default()
            },
        }
    }
}

/// A live mount. Dropping it unmounts.
pub struct Mounted {
    session: Option<BackgroundSession>,
    watcher: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    handles: Arc<Handles>,
    vm_kilosteps: Arc<AtomicU64>,
    mountpoint: PathBuf,
    /// This instance unmounted or detached its mount already.
    unmounted: bool,
    /// Closed after the session: its last counters and access times are written.
    cache: Option<musicfs_cache::Cache>,
}

/// Mounts the DB's tree at the mountpoint and returns at once; requests are served by
/// background threads. O(1): opens the pool and reads two pragmas, whatever the library size.
pub fn mount(cfg: MountConfig) -> Result<Mounted, FsError> {
    // The DB first: "no database here" says more than anything about the mountpoint.
    if !cfg.db.is_file() {
        return Err(musicfs_db::DbError::Missing { path: cfg.db }.into());
    }
    let mountpoint = std::fs::canonicalize(&cfg.mountpoint)
        .and_then(|p| {
            if p.is_dir() {
                Ok(p)
            } else {
                Err(std::io::Error::from_raw_os_error(libc::ENOTDIR))
            }
        })
        .map_err(|source| FsError::Mountpoint {
            path: cfg.mountpoint.clone(),
            source,
        })?;
    if is_mount_point(&mountpoint) {
        return Err(FsError::Busy { path: mountpoint });
    }
    // The cache before the pool: opening its writer brings an older DB's schema up to date.
    // Its failure is said only if the pool opens (a DB that is no DB is said once, by it).
    let cache = cfg
        .cache
        .clone()
        .map(|config| musicfs_cache::Cache::open(&cfg.db, config));
    let vm_kilosteps = Arc::new(AtomicU64::new(0));
    let mut pool_options = cfg.pool.clone();
    pool_options.max_size = pool_options.max_size.max(cfg.threads as u32 + 1);
    pool_options.vm_kilosteps = Some(vm_kilosteps.clone());
    let pool = ReadPool::open(&cfg.db, &pool_options)?;
    let cache = match cache {
        Some(Ok(cache)) => Some(cache),
        Some(Err(err)) => {
            tracing::warn!("content cache off: {err}");
            None
        }
        None => None,
    };
    let caches = Arc::new(Caches::new(cfg.lookup_cache, cfg.attr_cache, cfg.cache_ttl));
    let handles = Arc::new(Handles::default());
    let remotes = Arc::new(crate::remote::RemoteOrigins::new(
        cfg.mirrors.clone(),
        cfg.cache_origins.clone(),
        cfg.mirror_attempt_timeout,
        cfg.health_interval,
    ));
    let prefetch = match (&cache, cfg.prefetch) {
        (Some(cache), true) => Some(Arc::new(crate::remote::Prefetcher::new(
            pool.clone(),
            remotes.clone(),
            cache.clone(),
        ))),
        _ => None,
    };
    let fs = MusicFs {
        pool: pool.clone(),
        caches: caches.clone(),
        handles: handles.clone(),
        owner: Owner {
            uid: cfg.uid,
            gid: cfg.gid,
        },
        ttl: cfg.ttl,
        passthrough: Arc::new(AtomicBool::new(cfg.passthrough)),
        io: crate::io::BackingIo::new(cfg.io_timeout, cfg.io_threads).map_err(|source| {
            FsError::Mount {
                path: mountpoint.clone(),
                source,
            }
        })?,
        readdirplus: cfg.readdirplus,
        search: cfg
            .search
            .then(|| crate::search::SearchFolder::new(pool.clone(), cfg.db.clone())),
        remotes,
        cache: cache.clone(),
        prefetch,
    };
    crate::remote::warm_up(fs.remotes.clone(), pool.clone());

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("musicfs:{}", cfg.db.display())),
        MountOption::Subtype("musicfs".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    let session =
        fuser::Session::new(fs, &mountpoint, &config).map_err(|source| FsError::Mount {
            path: mountpoint.clone(),
            source,
        })?;
    let notifier = session.notifier();
    let session = session.spawn().map_err(|source| FsError::Mount {
        path: mountpoint.clone(),
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = Watcher {
        pool,
        caches,
        kernel: Box::new(notifier),
        interval: cfg.poll_interval,
        stop: stop.clone(),
    }
    .spawn()
    .map_err(|source| FsError::Mount {
        path: mountpoint.clone(),
        source,
    })?;
    raise_readahead(&mountpoint);
    tracing::info!(mountpoint = %mountpoint.display(), db = %cfg.db.display(), "mounted");
    Ok(Mounted {
        session: Some(session),
        watcher: Some(watcher),
        stop,
        handles,
        vm_kilosteps,
        mountpoint,
        unmounted: false,
        cache,
    })
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// SQLite VM instructions run by this mount's queries, in thousands (a work counter).
    pub fn vm_kilosteps(&self) -> u64 {
        self.vm_kilosteps.load(Ordering::Relaxed)
    }

    /// Waits until the chunks fetched so far are in the content cache (tests, benchmarks).
    pub fn flush_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.flush();
        }
    }

    /// Files currently open through the mount.
    pub fn open_files(&self) -> usize {
        self.handles.open_count()
    }

    /// Whether the FUSE session ended (e.g. `fusermount3 -u` from outside).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Blocks until SIGINT or SIGTERM, then unmounts. A mount that disappears underneath
    /// (unmounted from outside, the FUSE connection aborted) is an error, so a service manager
    /// restarts it. If files are still open the mount is detached and this waits for them to
    /// close: a second signal lists the processes holding them, a third stops at once.
    pub fn wait(mut self) -> Result<(), FsError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let signals = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            let signals = signals.clone();
            // SAFETY: the handler only increments an atomic (async-signal-safe).
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    signals.fetch_add(1, Ordering::SeqCst);
                })
            }
            .map_err(|source| FsError::Mount {
                path: self.mountpoint.clone(),
                source,
            })?;
        }
        while signals.load(Ordering::SeqCst) == 0 {
            if self.is_finished() {
                self.stop_watcher();
                self.forget_session();
                return Err(FsError::Vanished {
                    path: self.mountpoint.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), "unmounting");
        if !self.detach()? {
            return self.shutdown();
        }
        eprintln!(
            "musicfs: {} is busy: detached, still serving {} open file(s) until they are \
             closed. Ctrl-C again to see who holds them.",
            self.mountpoint.display(),
            self.open_files()
        );
        let mut handled = 1;
        while !self.is_finished() {
            let now = signals.load(Ordering::SeqCst);
            if now > handled {
                handled = now;
                if handled == 2 {
                    eprintln!("musicfs: open files:");
                    for holder in self.handles.holders() {
                        eprintln!("  {holder}");
                    }
                    eprintln!(
                        "musicfs: Ctrl-C once more to stop now (those players get read errors)."
                    );
                } else {
                    eprintln!("musicfs: stopping with files still open");
                    self.forget_session();
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.forget_session();
        Ok(())
    }

    /// Unmounts and waits for the worker threads.
    pub fn unmount(mut self) -> Result<(), FsError> {
        self.shutdown()
    }

    fn stop_watcher(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }

    /// Unmounts; if a file or directory is still open (a player, a shell's cwd), detaches
    /// instead: the mount leaves the namespace at once, open files keep reading, and the
    /// session ends after the last close. Returns whether it detached.
    fn detach(&mut self) -> Result<bool, FsError> {
        self.stop_watcher();
        let Some(session) = self.session.as_ref() else {
            return Ok(false);
        };
        if session.guard.is_finished() || self.unmounted {
            return Ok(false);
        }
        // Whatever happens next, never unmount this path again: it may soon hold another mount.
        self.unmounted = true;
        let err = |source| FsError::Mount {
            path: self.mountpoint.clone(),
            source,
        };
        match unmount(&self.mountpoint, false) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                unmount(&self.mountpoint, true).map_err(err)?;
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "mount busy: detached; serving open files until they are closed"
                );
                Ok(true)
            }
            other => other.map(|()| false).map_err(err),
        }
    }

    /// Once the session thread has ended: lets the session go *without* fuser unmounting the
    /// mountpoint by path. By then this mount is gone (unmounted or detached), and the path
    /// may hold a newer mount, another instance's, which must not be touched.
    fn forget_session(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.close();
        }
        if let Some(session) = self.session.take() {
            if session.guard.is_finished() {
                std::mem::forget(session);
            } else {
                // Still running (stopping with files open): leave it to the process exit.
                std::mem::forget(session);
            }
        }
    }

    /// Unmounts (detaching if busy) and waits for the session to end.
    fn shutdown(&mut self) -> Result<(), FsError> {
        self.detach()?;
        while self
            .session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.forget_session();
        Ok(())
    }
}

/// Sequential daemon reads run ~1.5x faster with 1 MiB of readahead than with the kernel's
/// 128 KiB default for FUSE devices. Needs root; silently left as is otherwise.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(err) = std::fs::write(&path, "1024") {
        tracing::debug!("{path}: {err} (readahead left at the kernel default)");
    }
}

/// Unmounts `path` (`lazy`: detach even if busy). Root calls umount2 directly; other users go
/// through the setuid `fusermount3`.
fn unmount(path: &Path, lazy: bool) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error());
    }
    let status = std::process::Command::new("fusermount3")
        .arg(if lazy { "-uz" } else { "-u" })
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        // fusermount3 reports "busy" only in text; treat a failed plain unmount as busy.
        Err(std::io::Error::from_raw_os_error(libc::EBUSY))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::warn!("unmount: {err}");
        }
    }
}
