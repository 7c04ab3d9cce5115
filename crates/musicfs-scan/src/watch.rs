//! Keeping the DB current while mounted (or with `musicfs-scan --watch`): local roots by
//! change notifications (inotify through `notify`), remote origins by periodic delta rescans.
//!
//! A notification names a path; the folder it changes is walked (just that folder for a file,
//! the whole subtree for a new folder), through the same scan as always, so every rule holds
//! (delta only, nothing removed on doubt, consistent commits). Notifications arriving together
//! are gathered for [`WatchOptions::debounce`] and walked in one scan. Reads (the mount opening
//! originals) are not changes and are ignored. When inotify watches run out (one per folder;
//! `fs.inotify.max_user_watches`) or its queue overflows, that root falls back to periodic full
//! rescans, and the log says so.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::{ScanConfig, ScanError, Scope, Summary};

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last notification before walking what changed.
    pub debounce: Duration,
    /// Longest wait for a burst of notifications to go quiet.
    pub max_delay: Duration,
    /// Delta rescan period of remote origins.
    pub remote_interval: Duration,
    /// Full rescan period of a local root that cannot be watched.
    pub fallback_interval: Duration,
    /// Scan everything once when watching starts (after the watches are set, so nothing that
    /// changes meanwhile is missed).
    pub initial_scan: bool,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            remote_interval: Duration::from_secs(300),
            fallback_interval: Duration::from_secs(300),
            initial_scan: true,
        }
    }
}

/// Watches `cfg`'s origins and scans what changes, until `stop` is set. Scans that fail are
/// logged and retried at the next change or period; only a failure to start watching at all
/// is returned.
pub fn watch(cfg: &ScanConfig, opts: &WatchOptions, stop: &AtomicBool) -> Result<(), ScanError> {
    let roots: Vec<PathBuf> = cfg
        .roots
        .iter()
        .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
        .collect();
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).map_err(|e| watch_error(&roots, e))?;
    let mut polled: HashSet<PathBuf> = HashSet::new();
    for root in &roots {
        if let Err(err) = watcher.watch(root, RecursiveMode::Recursive) {
            let _ = watcher.unwatch(root);
            tracing::warn!(
                "{}: cannot watch for changes ({}); rescanning it every {:?} instead",
                root.display(),
                describe(&err),
                opts.fallback_interval
            );
            polled.insert(root.clone());
        }
    }
    if !polled.is_empty() || !roots.is_empty() {
        tracing::info!(
            "watching {} of {} local music folders for changes",
            roots.len() - polled.len(),
            roots.len()
        );
    }

    let mut pending: HashMap<(PathBuf, Vec<u8>), bool> = HashMap::new();
    let (mut first_pending, mut last_event) = (None::<Instant>, Instant::now());
    let mut last_remote = Instant::now();
    let mut last_poll = Instant::now();
    if opts.initial_scan {
        run(cfg, Vec::new(), true, "initial scan");
    }
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(event)) => {
                if matches!(event.kind, EventKind::Access(_)) {
                    continue;
                }
                for path in &event.paths {
                    let Some(root) = roots.iter().find(|r| path.starts_with(r)) else {
                        continue;
                    };
                    let scope = if event.need_rescan() {
                        Some((Vec::new(), true))
                    } else {
                        scope_of(root, path)
                    };
                    if let Some((rel, recursive)) = scope {
                        let slot = pending.entry((root.clone(), rel)).or_insert(false);
                        *slot |= recursive;
                        last_event = Instant::now();
                        first_pending.get_or_insert(last_event);
                    }
                }
            }
            Ok(Err(err)) => {
                // Overflowed queue or lost watches: rescan whole roots, then keep going.
                tracing::warn!(
                    "change notifications failed ({}); rescanning",
                    describe(&err)
                );
                for root in &roots {
                    pending.insert((root.clone(), Vec::new()), true);
                }
                first_pending.get_or_insert(Instant::now());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let due = first_pending.is_some_and(|first| {
            last_event.elapsed() >= opts.debounce || first.elapsed() >= opts.max_delay
        });
        if due {
            let only: Vec<Scope> = pending
                .drain()
                .map(|((root, rel), recursive)| Scope {
                    root,
                    rel,
                    recursive,
                })
                .collect();
            first_pending = None;
            if !run(cfg, only.clone(), false, "change") {
                // Another scan holds the DB (the initial one): try again shortly.
                for scope in only {
                    pending.insert((scope.root, scope.rel), scope.recursive);
                }
                first_pending = Some(Instant::now());
            }
        }
        if !polled.is_empty() && last_poll.elapsed() >= opts.fallback_interval {
            last_poll = Instant::now();
            let only = polled
                .iter()
                .map(|root| Scope {
                    root: root.clone(),
                    rel: Vec::new(),
                    recursive: true,
                })
                .collect();
            run(cfg, only, false, "periodic rescan");
        }
        if !cfg.remotes.is_empty() && last_remote.elapsed() >= opts.remote_interval {
            last_remote = Instant::now();
            let mut remote = cfg.clone();
            remote.roots.clear();
            run(&remote, Vec::new(), true, "remote rescan");
        }
    }
    drop(watcher);
    Ok(())
}

/// Runs one scan (scoped to `only` if not empty; remote origins only if `with_remotes`).
/// Returns false when the DB was busy with another scan (worth retrying).
fn run(cfg: &ScanConfig, only: Vec<Scope>, with_remotes: bool, what: &str) -> bool {
    let mut cfg = cfg.clone();
    cfg.progress = false;
    if !only.is_empty() {
        cfg.only = only;
    }
    if !with_remotes {
        cfg.remotes.clear();
    }
    match crate::scan(&cfg) {
        Ok(summary) => {
            log_summary(what, &summary);
            true
        }
        Err(ScanError::Locked { .. }) => false,
        Err(err) => {
            tracing::error!("{what}: {err}");
            true
        }
    }
}

fn log_summary(what: &str, s: &Summary) {
    if s.added + s.changed + s.removed + s.moved + s.errors > 0 || what == "initial scan" {
        tracing::info!(
            "{what}: {} added, {} changed, {} removed, {} moved, {} errors in {:.2}s",
            s.added,
            s.changed,
            s.removed,
            s.moved,
            s.errors,
            s.seconds
        );
    }
}

/// The folder to walk for a change at `path` below `root`: a folder that exists is walked
/// with its subfolders (new, or renamed into place); anything else (a file, a folder gone)
/// means its nearest existing folder is listed again, alone. Files that are not audio are
/// not changes of the library.
fn scope_of(root: &Path, path: &Path) -> Option<(Vec<u8>, bool)> {
    let meta = std::fs::symlink_metadata(path).ok();
    if meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Some((relative(root, path)?, true));
    }
    let is_file = meta.as_ref().is_some_and(|m| !m.is_dir());
    let audio = path
        .file_name()
        .is_some_and(|n| musicfs_tags::audio_extension(n.as_bytes()).is_some());
    if is_file && !audio {
        return None;
    }
    let mut dir = path.parent()?;
    while !dir.is_dir() {
        dir = dir.parent()?;
        if !dir.starts_with(root) {
            return None;
        }
    }
    Some((relative(root, dir)?, false))
}

fn relative(root: &Path, path: &Path) -> Option<Vec<u8>> {
    Some(
        path.strip_prefix(root)
            .ok()?
            .as_os_str()
            .as_bytes()
            .to_vec(),
    )
}

fn describe(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => {
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            format!(
                "inotify watches ran out: fs.inotify.max_user_watches is {limit}, one is needed \
                 per folder"
            )
        }
        _ => err.to_string(),
    }
}

fn watch_error(roots: &[PathBuf], err: notify::Error) -> ScanError {
    ScanError::Watch {
        root: roots.first().cloned().unwrap_or_default(),
        reason: describe(&err),
    }
}
