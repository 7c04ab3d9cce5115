//! `musicfs`: the user-facing command. Thin: every command is a call into a library crate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Browse and play a huge music library by its tags")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount the library. `musicfs mount MUSIC_DIR MOUNTPOINT` also scans MUSIC_DIR in the
    /// background (the tree fills in live); `musicfs mount --db DB MOUNTPOINT` only serves.
    Mount(MountArgs),
    /// Scan music folders into the database (same as `musicfs-scan`).
    Scan(musicfs_cli::scan_cli::Args),
    /// Check the database: SQLite integrity and every invariant of the virtual tree.
    Check {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
    },
    /// Search the library (syntax: docs/search.md), e.g. `musicfs search artist:bowie year:1970..1979`.
    Search {
        /// The query; several words are joined with spaces.
        #[arg(required = true)]
        query: Vec<String>,
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
        /// At most this many matches, best first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per match: {"path","artist","album","title","file_id"}.
        #[arg(long)]
        json: bool,
    },
    /// Each origin (library or mirror): kind, health, latency of one round trip, file count.
    Origins {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
        /// The config file naming mirrors (`[[origins]]`, docs/origins.md).
        #[arg(long, env = "MUSICFS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The content cache of remote files: `stats`, `clear`, `warm QUERY` (docs/cache.md).
    #[command(subcommand)]
    Cache(musicfs_cli::cache_cli::CacheCommand),
    /// Counts of files, entries, errors, and the layout in use.
    Stats {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct MountArgs {
    /// [MUSIC_DIR] MOUNTPOINT
    #[arg(num_args = 1..=2, required = true, value_names = ["MUSIC_DIR", "MOUNTPOINT"])]
    paths: Vec<PathBuf>,
    /// The database. Default: $XDG_DATA_HOME/musicfs/library.db.
    #[arg(long, env = "MUSICFS_DB")]
    db: Option<PathBuf>,
    /// A TOML config file: db, and `[[origins]]` with mirrors to fail over to
    /// (docs/origins.md).
    #[arg(long, env = "MUSICFS_CONFIG")]
    config: Option<PathBuf>,
    /// Owner shown for every entry (default: you).
    #[arg(long)]
    uid: Option<u32>,
    #[arg(long)]
    gid: Option<u32>,
    /// Let other users (e.g. a media server account) see the mount.
    #[arg(long)]
    allow_other: bool,
    /// Seconds the kernel may cache entries and attributes (changes are pushed regardless).
    #[arg(long, default_value_t = 60.0)]
    ttl: f64,
    /// Entries kept in each in-memory cache (lookups, attributes).
    #[arg(long, default_value_t = 65_536)]
    cache_entries: u64,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Seconds a backing open or read may take before it fails with EIO (a stuck disk or
    /// network share); the rest of the mount answers meanwhile.
    #[arg(long, default_value_t = 30.0)]
    io_timeout: f64,
    /// Never use kernel FUSE passthrough for reads.
    #[arg(long)]
    no_passthrough: bool,
    /// Answer READDIRPLUS: faster `ls -l` on huge folders, slower plain listings.
    #[arg(long)]
    readdirplus: bool,
    /// Seconds one attempt on one mirror may take before the next mirror is tried (origins
    /// with mirrors, docs/origins.md).
    #[arg(long, default_value_t = 5.0)]
    failover_after: f64,
    #[command(flatten)]
    cache: musicfs_cli::cache_cli::CacheOptions,
    /// No content cache: remote files are fetched at every play, nothing is kept.
    #[arg(long)]
    no_cache: bool,
    /// With the cache: do not fetch the start of the next track of an album played in order.
    #[arg(long)]
    no_prefetch: bool,
    /// With MUSIC_DIR: seconds between delta rescans of a remote origin (or of a local folder
    /// that cannot be watched). Local folders are kept current by change notifications.
    #[arg(long, default_value_t = 300.0)]
    rescan_interval: f64,
    #[arg(long, short)]
    quiet: bool,
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Mount(args) => {
            musicfs_cli::scan_cli::init_logging(args.quiet, args.verbose.max(1));
            report(mount(args))
        }
        Command::Scan(args) => musicfs_cli::scan_cli::main_with(args),
        Command::Check { db } => report(check(db)),
        Command::Stats { db } => report(stats(db)),
        Command::Cache(command) => {
            musicfs_cli::scan_cli::init_logging(false, 0);
            report(musicfs_cli::cache_cli::run(command))
        }
        Command::Origins { db, config } => report(origins(db, config)),
        Command::Search {
            query,
            db,
            limit,
            json,
        } => match search(&query.join(" "), db, limit, json) {
            Err(err)
                if matches!(
                    err.downcast_ref::<musicfs_search::SearchError>(),
                    Some(musicfs_search::SearchError::Syntax { .. })
                ) =>
            {
                eprintln!("musicfs: {}", musicfs_cli::scan_cli::describe(&err));
                ExitCode::from(2)
            }
            // `musicfs search x | head`: a closed pipe ends the listing, it is no error.
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                ExitCode::SUCCESS
            }
            other => report(other),
        },
    }
}

fn origins(db: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<bool> {
    let file = musicfs_cli::config::ConfigFile::load(config.as_deref())?;
    let conn = open(db.or(file.db.clone()))?;
    let mirrors = file.mirrors()?;
    let mut rows: Vec<(String, String, String, Option<i64>)> = Vec::new();
    for (id, root, kind) in musicfs_db::queries::origins_with_kind(&conn)? {
        let root = String::from_utf8_lossy(&root).into_owned();
        let files = musicfs_db::queries::origin_file_count(&conn, id)?;
        rows.push((root.clone(), kind, "library".into(), Some(files)));
        for m in mirrors
            .iter()
            .filter(|m| m.of == root && m.url.to_string() != root)
        {
            rows.push((
                m.url.to_string(),
                m.url.kind().into(),
                format!("mirror of {root}, priority {}", m.priority),
                None,
            ));
        }
    }
    let mut all_healthy = true;
    println!("HEALTH       LATENCY      FILES  KIND  ORIGIN");
    for (url, kind, role, files) in rows {
        let parsed = musicfs_origin::OriginUrl::parse(&url)?;
        let (health, latency) = match musicfs_origin::open(&parsed).and_then(|o| {
            let latency = o.check()?;
            Ok(latency)
        }) {
            Ok(latency) if latency < std::time::Duration::from_secs(2) => (
                "healthy".to_owned(),
                format!("{:.1} ms", latency.as_secs_f64() * 1e3),
            ),
            Ok(latency) => (
                "degraded".to_owned(),
                format!("{:.1} s", latency.as_secs_f64()),
            ),
            Err(err) => {
                all_healthy = false;
                eprintln!("musicfs: {err}");
                ("unhealthy".to_owned(), "-".to_owned())
            }
        };
        let files = files.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "{health:<10} {latency:>9} {files:>10}  {kind:<5} {} ({role})",
            parsed.locate(b"")
        );
    }
    Ok(all_healthy)
}

fn search(query: &str, db: Option<PathBuf>, limit: usize, json: bool) -> anyhow::Result<bool> {
    let db_path = db
        .clone()
        .or_else(musicfs_db::default_db_path)
        .context("no --db given and no default location")?;
    let conn = open(db)?;
    let ids = musicfs_cli::search_ids(&conn, &db_path, query, limit)?;
    let mut out = std::io::stdout().lock();
    for id in &ids {
        let Some(r) = musicfs_db::search_rows::search_record(&conn, *id)? else {
            continue; // removed since the index was committed
        };
        let path = musicfs_db::search_rows::file_vpath(&conn, *id)?.unwrap_or_default();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        if json {
            let line = serde_json::json!({
                "path": path, "artist": r.artist, "album": r.album, "title": r.title,
                "file_id": id,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{path}\t{}\t{}\t{}",
                text(&r.artist),
                text(&r.album),
                text(&r.title)
            )?;
        }
    }
    if ids.is_empty() && !json {
        eprintln!("no match");
    }
    Ok(true)
}

fn report(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("musicfs: {}", musicfs_cli::scan_cli::describe(&err));
            ExitCode::from(1)
        }
    }
}

fn open(db: Option<PathBuf>) -> anyhow::Result<rusqlite::Connection> {
    let db = db
        .or_else(musicfs_db::default_db_path)
        .context("no --db given and no default location")?;
    // Through the read pool: refuses foreign and newer DBs with a clear message.
    let pool = musicfs_db::ReadPool::open(&db, &musicfs_db::PoolOptions::default())?;
    drop(pool);
    Ok(rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

fn check(db: Option<PathBuf>) -> anyhow::Result<bool> {
    let conn = open(db)?;
    let problems = musicfs_db::check_consistency(&conn)?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok");
    }
    Ok(problems.is_empty())
}

fn stats(db: Option<PathBuf>) -> anyhow::Result<bool> {
    let conn = open(db)?;
    let s = musicfs_db::queries::stats(&conn)?;
    println!("schema version  {}", s.schema_version);
    println!("origins         {}", s.origins);
    println!("files           {}", s.files);
    println!("unreadable      {}", s.unreadable);
    println!("directories     {}", s.directories);
    println!("entries         {}", s.entries);
    for (name, template) in musicfs_db::queries::views(&conn)? {
        let name = if name.is_empty() {
            "(root)".to_owned()
        } else {
            name
        };
        println!("view {name:<10} {template}");
    }
    Ok(true)
}

fn mount(args: MountArgs) -> anyhow::Result<bool> {
    let (music_dir, mountpoint) = match args.paths.as_slice() {
        [mountpoint] => (None, mountpoint.clone()),
        [music, mountpoint] => (Some(music.clone()), mountpoint.clone()),
        _ => unreachable!("clap enforces 1..=2 paths"),
    };
    let remote = match music_dir.as_ref().and_then(|m| m.to_str()) {
        Some(url) if url.contains("://") => Some(musicfs_origin::OriginUrl::parse(url)?),
        _ => None,
    };
    // A mistyped music folder must not mount an empty tree (and create a DB): refuse first.
    if let Some(music) = &music_dir
        && remote.is_none()
        && let Err(err) = std::fs::read_dir(music)
    {
        anyhow::bail!(
            "{}: cannot read this music folder ({err}); nothing was mounted",
            music.display()
        );
    }
    let file = musicfs_cli::config::ConfigFile::load(args.config.as_deref())?;
    let db = match args.db.or(file.db.clone()) {
        Some(db) => db,
        None => {
            let db = musicfs_db::default_db_path().context("no --db given and no $HOME")?;
            std::fs::create_dir_all(db.parent().unwrap())
                .with_context(|| format!("{}: cannot create", db.display()))?;
            db
        }
    };
    if music_dir.is_some() {
        // Create and migrate the DB so the mount can open it before the first scan commits.
        drop(musicfs_db::Writer::open(&db)?);
    }
    let mut cfg = musicfs_fs::MountConfig::new(&db, &mountpoint);
    cfg.uid = args.uid.unwrap_or(cfg.uid);
    cfg.gid = args.gid.unwrap_or(cfg.gid);
    cfg.allow_other = args.allow_other;
    cfg.ttl = std::time::Duration::from_secs_f64(args.ttl.max(0.0));
    cfg.lookup_cache = args.cache_entries;
    cfg.attr_cache = args.cache_entries;
    cfg.threads = args.threads.max(1);
    cfg.passthrough = !args.no_passthrough;
    cfg.io_timeout = std::time::Duration::from_secs_f64(args.io_timeout.max(0.001));
    cfg.readdirplus = args.readdirplus;
    cfg.mirrors = file.mirrors()?;
    cfg.cache = (!args.no_cache).then(|| args.cache.config());
    cfg.prefetch = !args.no_prefetch;
    cfg.cache_origins = file.cache_origins()?;
    cfg.mirror_attempt_timeout = std::time::Duration::from_secs_f64(args.failover_after.max(0.01));
    let mounted = musicfs_fs::mount(cfg)?;
    eprintln!(
        "musicfs: serving {} at {} (Ctrl-C to stop)",
        db.display(),
        mounted.mountpoint().display(),
    );
    if let Some(music_dir) = music_dir {
        // Delta scan in the background, then keep watching: cheap when nothing changed,
        // fills the tree live when the DB is new, shows a file added on disk within about a
        // second. A refused or failed scan leaves the mount serving what the DB has.
        let scan_cfg = match remote {
            Some(url) => {
                let mut cfg = musicfs_scan::ScanConfig::new(&db, Vec::new());
                cfg.remotes = vec![url];
                cfg
            }
            None => musicfs_scan::ScanConfig::new(&db, vec![music_dir]),
        };
        let interval = std::time::Duration::from_secs_f64(args.rescan_interval.max(1.0));
        let opts = musicfs_scan::WatchOptions {
            remote_interval: interval,
            fallback_interval: interval,
            ..Default::default()
        };
        std::thread::Builder::new()
            .name("musicfs-watch".into())
            .spawn(move || {
                static STOP: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if let Err(err) = musicfs_scan::watch(&scan_cfg, &opts, &STOP) {
                    tracing::error!("keeping the library current: {err}");
                }
            })?;
    }
    mounted.wait()?;
    Ok(true)
}
