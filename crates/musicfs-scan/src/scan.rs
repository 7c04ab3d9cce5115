use std::fs;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use musicfs_origin::{Origin, OriginUrl};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use musicfs_db::{PoolOptions, ReadPool, Writer, queries};
use musicfs_layout::Layout;
use musicfs_search::IndexKeeper;

use crate::lock::ScanLock;
use crate::policy::LayoutPolicy;
use crate::relayout::relayout;
use crate::summary::Counters;
use crate::walk::{Source, Walk};
use crate::write::{self, Batching};
use crate::{ScanConfig, ScanError, Summary};

const LAYOUT_KEY: &str = "layout";
const CASE_KEY: &str = "case_insensitive";
const FOLLOW_EXTERNAL_KEY: &str = musicfs_db::FOLLOW_EXTERNAL_SYMLINKS;
/// Operations in flight between walkers and the writer: bounds scanner memory.
const CHANNEL_OPS: usize = 4_096;

/// Runs one scan: brings the DB in line with the origin roots in `cfg`.
pub fn scan(cfg: &ScanConfig) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let _lock = ScanLock::acquire(&cfg.db)?;
    let mut writer = Writer::open(&cfg.db)?;
    let layout = choose_layout(&writer, cfg)?;
    let policy = LayoutPolicy {
        case_insensitive: layout.case_insensitive,
    };
    let counters = Counters::default();

    // Check every root before writing anything: a refused origin stops the whole scan.
    // Each root's (device, inode) is taken now: a root unmounted before its walk starts (a
    // scan of several origins takes a while) is caught as replaced, not read as emptied.
    let mut origins = Vec::with_capacity(cfg.roots.len());
    for root in &cfg.roots {
        let (origin_id, root) = check_root(&writer, root, cfg.allow_empty)?;
        let root_identity = identity(&root);
        origins.push((origin_id, root, root_identity));
    }
    let mut remotes = Vec::with_capacity(cfg.remotes.len());
    for url in &cfg.remotes {
        remotes.push(check_remote(&writer, url, cfg.allow_empty)?);
    }

    // Every music folder's root, canonical: symlinks may point anywhere beneath them. The
    // setting tells the mount whether external symlinks were let in on purpose.
    let mut music_roots: Vec<PathBuf> = origins.iter().map(|(_, root, _)| root.clone()).collect();
    for (_, root) in queries::origins(writer.conn())? {
        let root = PathBuf::from(std::ffi::OsStr::from_bytes(&root));
        if !music_roots.contains(&root) {
            music_roots.push(root);
        }
    }
    let follow_external = if cfg.follow_external_symlinks {
        "1"
    } else {
        "0"
    };
    if writer
        .setting(FOLLOW_EXTERNAL_KEY)?
        .as_deref()
        .unwrap_or("0")
        != follow_external
    {
        writer.begin()?;
        writer.set_setting(FOLLOW_EXTERNAL_KEY, follow_external)?;
        writer.commit()?;
    }

    if writer.setting(LAYOUT_KEY)?.as_deref() != Some(layout.fingerprint().as_str()) {
        relayout(&mut writer, &layout, &policy, &counters)?;
        writer.begin()?;
        let views: Vec<(String, String)> = layout
            .views
            .iter()
            .map(|v| (v.name.clone(), v.template.source().to_owned()))
            .collect();
        writer.replace_views(&views)?;
        writer.set_setting(CASE_KEY, if layout.case_insensitive { "1" } else { "0" })?;
        writer.set_setting(LAYOUT_KEY, &layout.fingerprint())?;
        writer.commit()?;
    }

    // The search index, rebuilt from the DB first if it cannot be trusted. Search is derived
    // data: if it fails, the scan goes on without it (the next scan replays or rebuilds).
    let mut keeper = if cfg.search {
        let bar = rebuild_bar(cfg.progress);
        let opened = IndexKeeper::open(&cfg.db, &writer, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        });
        bar.finish_and_clear();
        opened
            .map_err(|err| tracing::warn!("search index not kept this run: {err}"))
            .ok()
    } else {
        None
    };

    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        cfg.threads
    };
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("musicfs-scan-{i}"))
        .build()?;
    let remote_workers = if remotes.is_empty() {
        None
    } else {
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.remote_parallel.max(1))
                .thread_name(|i| format!("musicfs-scan-net-{i}"))
                .build()?,
        )
    };
    let pool = ReadPool::open(
        &cfg.db,
        // Walkers read each folder's rows once: the OS page cache serves them well, and a
        // small SQLite cache and no mmap keep the scanner's RSS flat as the DB grows.
        &PoolOptions {
            max_size: threads.max(if remotes.is_empty() {
                0
            } else {
                cfg.remote_parallel
            }) as u32
                + 2,
            mmap_size: 0,
            cache_kib: 2 << 10,
            vm_kilosteps: None,
        },
    )?;
    let progress = progress_bar(cfg.progress);
    let stop = AtomicBool::new(false);
    let db_error = Mutex::new(None);
    let origin_lost = Mutex::new(None);
    let batching = Batching {
        max_ops: cfg.batch_ops.max(1),
        max_time: cfg.batch_time,
    };

    let (tx, rx) = mpsc::sync_channel(CHANNEL_OPS);
    let write_result = std::thread::scope(|s| {
        let writer_thread = s.spawn(|| {
            let result = write::run(&mut writer, &rx, &batching, &policy, &counters, &mut keeper);
            drop(rx); // walkers see the writer gone and stop
            result
        });
        // One walk per origin, all sharing the scan's pool, writer channel and stop flags.
        let with_walk = |origin_id: i64, source: &Source, go: &mut dyn FnMut(&Walk)| {
            go(&Walk {
                pool: &pool,
                tx: tx.clone(),
                layout: &layout,
                counters: &counters,
                progress: &progress,
                origin_id,
                source,
                tag_timeout: cfg.tag_timeout,
                stop: &stop,
                db_error: &db_error,
                origin_lost: &origin_lost,
                various_artists: &cfg.various_artists,
            })
        };
        for (origin_id, root, root_identity) in &origins {
            let Some(root_identity) = *root_identity else {
                origin_lost.lock().unwrap().get_or_insert(root.clone());
                break;
            };
            let source = Source::Local {
                root,
                root_identity,
                music_roots: &music_roots,
                follow_external: cfg.follow_external_symlinks,
            };
            with_walk(*origin_id, &source, &mut |walk| {
                if cfg.only.is_empty() {
                    workers.install(|| walk.folder(Vec::new()));
                } else {
                    for scope in cfg.only.iter().filter(|s| &s.root == root) {
                        workers.install(|| walk.visit(scope.rel.clone(), scope.recursive));
                    }
                }
            });
        }
        for (origin_id, origin) in &remotes {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let source = Source::Remote(origin.clone());
            let fetched_before = origin.bytes_fetched();
            let net_workers = remote_workers.as_ref().expect("a pool for remote origins");
            with_walk(*origin_id, &source, &mut |walk| {
                net_workers.install(|| walk.folder(Vec::new()))
            });
            Counters::bump(
                &counters.bytes_fetched,
                origin.bytes_fetched() - fetched_before,
            );
        }
        // Removals were held back until every folder was seen; apply them only after a walk
        // that was not cut short (a lost origin, a DB error): never delete on doubt.
        let whole = !stop.load(std::sync::atomic::Ordering::Relaxed)
            && origin_lost.lock().unwrap().is_none();
        let _ = tx.send(write::Op::WalkDone { removals: whole });
        drop(tx);
        writer_thread.join().expect("writer thread panicked")
    });
    progress.finish_and_clear();
    write_result?;
    if let Some(err) = db_error.into_inner().unwrap() {
        return Err(err.into());
    }
    if let Some(root) = origin_lost.into_inner().unwrap() {
        return Err(ScanError::Refused {
            root,
            reason: "it vanished, was replaced or stopped answering during the scan \
                     (unmounted? network down?); what was read is kept, nothing it no longer \
                     lists was removed; scan again to finish"
                .into(),
        });
    }
    let summary = counters.summary(started.elapsed().as_secs_f64());
    if summary.added + summary.changed + summary.removed + summary.relayout > 0 {
        writer.checkpoint();
    }
    Ok(summary)
}

/// (device, inode) of a folder: a root that was unmounted mid-scan shows as another folder.
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Templates from the config, else those stored in the DB, else the default.
fn choose_layout(writer: &Writer, cfg: &ScanConfig) -> Result<Layout, ScanError> {
    let stored_case = writer.setting(CASE_KEY)?.map(|v| v == "1");
    let case_insensitive = cfg.case_insensitive.or(stored_case).unwrap_or(false);
    if !cfg.templates.is_empty() {
        return Ok(Layout::new(&cfg.templates, case_insensitive)?);
    }
    let stored = queries::views(writer.conn())?;
    if stored.is_empty() {
        let mut layout = Layout::default_layout();
        layout.case_insensitive = case_insensitive;
        Ok(layout)
    } else {
        Ok(Layout::new(&stored, case_insensitive)?)
    }
}

/// Resolves a root and applies the never-delete-on-doubt rules. Returns (origin id, root).
fn check_root(
    writer: &Writer,
    root: &Path,
    allow_empty: bool,
) -> Result<(i64, PathBuf), ScanError> {
    let absolute = std::path::absolute(root).map_err(|source| ScanError::BadRoot {
        root: root.to_owned(),
        source,
    })?;
    let canonical = fs::canonicalize(&absolute).unwrap_or_else(|_| absolute.clone());
    let known_files = |path: &Path| -> Result<bool, ScanError> {
        let origin = queries::origin_id(writer.conn(), path.as_os_str().as_bytes())?;
        Ok(match origin {
            Some(id) => queries::origin_has_files(writer.conn(), id)?,
            None => false,
        })
    };
    let refuse = |reason: String| ScanError::Refused {
        root: canonical.clone(),
        reason,
    };
    let mut listing = match fs::read_dir(&canonical) {
        Ok(listing) => listing,
        Err(err) if known_files(&canonical)? => {
            return Err(refuse(format!(
                "it cannot be read ({err}) but the database has files from it; \
                 is the disk mounted? Nothing was changed"
            )));
        }
        Err(source) => {
            return Err(ScanError::BadRoot {
                root: canonical,
                source,
            });
        }
    };
    if listing.next().is_none() && known_files(&canonical)? && !allow_empty {
        return Err(refuse(
            "it is empty but the database has files from it; is the disk mounted? \
             Pass --allow-empty to remove them. Nothing was changed"
                .to_owned(),
        ));
    }
    let origin_id = writer.origin(canonical.as_os_str().as_bytes())?;
    Ok((origin_id, canonical))
}

/// Opens a remote origin and applies the never-delete-on-doubt rules: an origin that cannot be
/// reached, or answers empty, while the DB has files from it is refused. Returns (origin id,
/// origin).
fn check_remote(
    writer: &Writer,
    url: &OriginUrl,
    allow_empty: bool,
) -> Result<(i64, Arc<dyn Origin>), ScanError> {
    let root = url.to_string();
    let known_files = || -> Result<bool, ScanError> {
        Ok(match queries::origin_id(writer.conn(), root.as_bytes())? {
            Some(id) => queries::origin_has_files(writer.conn(), id)?,
            None => false,
        })
    };
    let refuse = |reason: String| ScanError::Refused {
        root: PathBuf::from(url.locate(b"")),
        reason,
    };
    let origin = musicfs_origin::open(url).map_err(ScanError::Origin)?;
    match origin.stat_root() {
        Ok(true) => {}
        Ok(false) if known_files()? && !allow_empty => {
            return Err(refuse(
                "it answers empty but the database has files from it; is it the right \
                 bucket, prefix or path? Pass --allow-empty to remove them. Nothing was changed"
                    .to_owned(),
            ));
        }
        Ok(false) => {}
        Err(err) if known_files()? => {
            return Err(refuse(format!(
                "it cannot be reached ({err}) but the database has files from it. Nothing was \
                 changed"
            )));
        }
        Err(err) => return Err(ScanError::Origin(err)),
    }
    let origin_id = writer.origin_of_kind(root.as_bytes(), url.kind())?;
    Ok((origin_id, origin))
}

fn rebuild_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template("building search index {bar:30} {human_pos}/{human_len}")
            .expect("valid progress template"),
    )
}

fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} files  {per_sec}  {elapsed} {msg}")
            .expect("valid progress template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
