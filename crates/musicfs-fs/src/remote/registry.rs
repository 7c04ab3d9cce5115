//! The mount's remote and mirrored origins: opened on first use, health-checked, warmed up.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use musicfs_origin::{LocalOrigin, Mirror, MirrorSet, Origin, OriginUrl};

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
    /// Per origin root (as stored): read through the content cache or not. Unlisted: remote
    /// origins are, local ones are not (their bytes are on a disk already).
    cache_policy: HashMap<String, bool>,
    attempt_timeout: Duration,
    health_interval: Duration,
    open: Mutex<HashMap<i64, Arc<MirrorSet>>>,
    checking: std::sync::Once,
}

impl RemoteOrigins {
    pub(crate) fn new(
        config: Vec<MirrorConfig>,
        cache_policy: HashMap<String, bool>,
        attempt_timeout: Duration,
        health_interval: Duration,
    ) -> RemoteOrigins {
        RemoteOrigins {
            config,
            cache_policy,
            attempt_timeout,
            health_interval,
            open: Mutex::default(),
            checking: std::sync::Once::new(),
        }
    }

    /// Whether files of the origin `root` of `kind` are read through here (remote, or local
    /// with mirrors: a dead primary must be able to fail over, which kernel passthrough and
    /// direct reads cannot; or local and cached, as a NAS over NFS may be).
    pub(crate) fn serves(&self, root: &[u8], kind: &str) -> bool {
        kind != "local"
            || self.config.iter().any(|m| m.of.as_bytes() == root)
            || self.caches(root, kind)
    }

    /// Whether files of the origin `root` of `kind` go through the content cache.
    pub(crate) fn caches(&self, root: &[u8], kind: &str) -> bool {
        let root = String::from_utf8_lossy(root);
        match self.cache_policy.get(root.as_ref()) {
            Some(&cached) => cached,
            None => kind != "local",
        }
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
