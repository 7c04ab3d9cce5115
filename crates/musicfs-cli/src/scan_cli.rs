//! The `musicfs-scan` command line, shared by the `musicfs-scan` binary and `musicfs scan`.
//! Binary-facing code: errors are `anyhow` here, typed everywhere else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use musicfs_scan::{ScanConfig, ScanError, scan};

/// Exit codes (documented in the README).
const EXIT_FATAL: u8 = 1;
const EXIT_LOCKED: u8 = 3;
const EXIT_REFUSED: u8 = 4;
const EXIT_READ_ERRORS: u8 = 5;

/// Scan music folders into a musicfs database: tags in, virtual tree out, only the delta written.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Music folders (origin roots): paths, `sftp://[user@]host[:port]/path` or
    /// `s3://bucket/prefix` URLs. Defaults to `roots` of the config file.
    roots: Vec<PathBuf>,
    /// The database (created if missing). Default: $XDG_DATA_HOME/musicfs/library.db.
    #[arg(long, env = "MUSICFS_DB")]
    db: Option<PathBuf>,
    /// A TOML config file with any of: db, roots, templates, case_insensitive, [[origins]]
    /// (see docs/origins.md).
    #[arg(long, env = "MUSICFS_CONFIG")]
    config: Option<PathBuf>,
    /// Layout template, `TEMPLATE` or `NAME=TEMPLATE` (repeat for several top-level views).
    /// Default: the one stored in the DB, else the built-in default (see docs/templates.md).
    #[arg(long = "template", short = 't')]
    templates: Vec<String>,
    /// Names in one directory that differ only by case collide (for SMB/macOS clients).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    case_insensitive: Option<bool>,
    /// Scan an origin root that is empty although the DB has files from it (removes them).
    #[arg(long)]
    allow_empty: bool,
    /// Also index symlinks that point outside every music folder. Risky: the mount then
    /// serves whatever they point at (with --allow-other, to every user). Off by default:
    /// such links are skipped and listed in `scan_errors`.
    #[arg(long)]
    follow_external_symlinks: bool,
    /// The album artist shown for a compilation (an album whose tracks have several artists,
    /// none on half of them, and no album artist tag).
    #[arg(long, default_value = musicfs_tags::album::VARIOUS_ARTISTS)]
    various_artists: String,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Give up reading one file's tags after this many seconds (a hung disk, a parser loop):
    /// the file is indexed by name, reported, and read again on the next scan.
    #[arg(long, default_value_t = 30.0)]
    tag_timeout: f64,
    /// Do not keep the search index this run (it catches up on the next scan).
    #[arg(long)]
    no_search: bool,
    /// Commit after this many changes...
    #[arg(long, default_value_t = 5_000)]
    batch_size: usize,
    /// ...or this many seconds, whichever comes first.
    #[arg(long, default_value_t = 1.0)]
    batch_seconds: f64,
    /// After scanning, keep the DB current until stopped: local folders by change
    /// notifications (inotify), remote origins by a delta rescan every --rescan-interval.
    #[arg(long)]
    watch: bool,
    /// Seconds between delta rescans of remote origins (and of local folders that cannot be
    /// watched) with --watch.
    #[arg(long, default_value_t = 300.0)]
    rescan_interval: f64,
    /// Files of remote origins read at once (their reads wait on round trips, not on a core).
    #[arg(long, default_value_t = 64)]
    remote_parallel: usize,
    /// No progress bar and no per-file warnings.
    #[arg(long, short)]
    quiet: bool,
    /// More logging (-v info, -vv debug).
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Runs a scan from parsed arguments and returns the documented exit code.
pub fn main_with(args: Args) -> ExitCode {
    init_logging(args.quiet, args.verbose);
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("musicfs-scan: {}", describe(&err));
            let code = match err.downcast_ref::<ScanError>() {
                Some(ScanError::Locked { .. }) => EXIT_LOCKED,
                Some(ScanError::Refused { .. }) => EXIT_REFUSED,
                _ => EXIT_FATAL,
            };
            ExitCode::from(code)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let file = crate::config::ConfigFile::load(args.config.as_deref())?;
    let db = match args.db.or(file.db.clone()) {
        Some(db) => db,
        None => {
            let db = musicfs_db::default_db_path().context("no --db given and no $HOME")?;
            std::fs::create_dir_all(db.parent().unwrap())
                .with_context(|| format!("{}: cannot create", db.display()))?;
            db
        }
    };
    let roots = if args.roots.is_empty() {
        let mut roots = file.roots.clone();
        roots.extend(file.libraries());
        roots
    } else {
        args.roots
    };
    if roots.is_empty() {
        bail!("no music folder given (pass ROOT... or `roots` in the config file)");
    }
    let templates = if args.templates.is_empty() {
        file_templates(file.templates)?
    } else {
        args.templates.iter().map(|t| split_view(t)).collect()
    };
    let (mut locals, mut remotes) = (Vec::new(), Vec::new());
    for root in roots {
        match root.to_str().filter(|r| r.contains("://")) {
            Some(url) => remotes.push(musicfs_origin::OriginUrl::parse(url)?),
            None => locals.push(root),
        }
    }
    let mut cfg = ScanConfig::new(db, locals);
    cfg.remotes = remotes;
    cfg.templates = templates;
    cfg.case_insensitive = args.case_insensitive.or(file.case_insensitive);
    cfg.allow_empty = args.allow_empty;
    cfg.follow_external_symlinks = args.follow_external_symlinks;
    cfg.various_artists = args.various_artists;
    cfg.threads = args.threads;
    cfg.batch_ops = args.batch_size;
    cfg.search = !args.no_search;
    cfg.tag_timeout = Duration::from_secs_f64(args.tag_timeout.max(0.001));
    cfg.batch_time = Duration::from_secs_f64(args.batch_seconds.max(0.01));
    cfg.progress = !args.quiet && !args.json;
    cfg.remote_parallel = args.remote_parallel.max(1);
    if args.watch {
        let interval = Duration::from_secs_f64(args.rescan_interval.max(1.0));
        let opts = musicfs_scan::WatchOptions {
            remote_interval: interval,
            fallback_interval: interval,
            ..Default::default()
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        musicfs_scan::watch(&cfg, &opts, &stop)?;
        return Ok(0);
    }

    let summary = scan(&cfg)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "{} added, {} changed, {} removed, {} unchanged, {} errors, {} re-rendered \
             in {:.1}s ({:.0} files/s)",
            summary.added,
            summary.changed,
            summary.removed,
            summary.unchanged,
            summary.errors,
            summary.relayout,
            summary.seconds,
            summary.files_per_second()
        );
        if summary.bytes_fetched > 0 {
            eprintln!(
                "{:.1} MB fetched from remote origins",
                summary.bytes_fetched as f64 / 1e6
            );
        }
    }
    Ok(if summary.errors > 0 {
        EXIT_READ_ERRORS
    } else {
        0
    })
}

/// `NAME=TEMPLATE` when the part before `=` is a plain name, else the whole text is a template.
fn split_view(arg: &str) -> (String, String) {
    match arg.split_once('=') {
        Some((name, template))
            if !name.is_empty() && !name.contains(['$', '%', '[', ']', '{', '}', '/']) =>
        {
            (name.trim().to_owned(), template.to_owned())
        }
        _ => (String::new(), arg.to_owned()),
    }
}

fn file_templates(value: Option<toml::Value>) -> anyhow::Result<Vec<(String, String)>> {
    Ok(match value {
        None => Vec::new(),
        Some(toml::Value::String(t)) => vec![(String::new(), t)],
        Some(toml::Value::Table(table)) => table
            .into_iter()
            .map(|(name, v)| match v {
                toml::Value::String(t) => Ok((name, t)),
                _ => bail!("config: templates.{name} must be a string"),
            })
            .collect::<anyhow::Result<_>>()?,
        Some(_) => bail!("config: `templates` must be a string or a table of strings"),
    })
}

/// Logging to stderr for the musicfs binaries; `MUSICFS_LOG` overrides the level.
pub fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MUSICFS_LOG")
                // lofty logs its own recoveries at warn: noise next to our per-file report.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(format!(
                        "{level},lofty=error,fuser::mnt=error"
                    ))
                }),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    // lofty panics on some hostile files; read_track contains them and the file is recorded
    // with the panic as its scan error, so the default hook's backtrace is only noise.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_lofty = info.location().is_some_and(|l| l.file().contains("lofty"));
        if in_lofty {
            tracing::debug!("contained panic in tag reader: {info}");
        } else {
            default_hook(info);
        }
    }));
}

/// The error and its causes, each cause added only if the message does not already say it
/// (our errors spell their source out; `{:#}` would print it twice).
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
