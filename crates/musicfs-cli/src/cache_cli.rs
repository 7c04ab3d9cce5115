//! `musicfs cache stats|clear|warm`, and the cache options `musicfs mount` shares. Each works
//! while a mount runs: the index is rows of the library DB, written in short transactions.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use musicfs_cache::{Cache, CacheConfig, ChunkStore, FileCache};

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Size, cap, chunks, files held, whole files, dedup ratio, hits and misses, repairs.
    Stats {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheOptions,
    },
    /// Forget cached files (all, or one origin's) and delete their chunks.
    Clear {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
        /// Only the files of this origin (its path or URL, as `musicfs origins` shows it).
        #[arg(long)]
        origin: Option<String>,
        #[command(flatten)]
        cache: CacheOptions,
    },
    /// Download every match of a search query into the cache, e.g. `musicfs cache warm
    /// artist:bowie`: they then play with every origin down.
    Warm {
        /// The query (docs/search.md); several words are joined with spaces.
        #[arg(required = true)]
        query: Vec<String>,
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
        /// At most this many files, best matches first.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        #[command(flatten)]
        cache: CacheOptions,
    },
}

/// Where the content cache is and how big it may be.
#[derive(clap::Args, Clone, Debug)]
pub struct CacheOptions {
    /// The chunk store. Default: $XDG_CACHE_HOME/musicfs/chunks.
    #[arg(long, env = "MUSICFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of chunks kept; the least recently read files are evicted first
    /// (suffixes K, M, G, T: powers of 1024).
    #[arg(long, default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Free space the cache leaves on its disk.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub cache_min_free: u64,
}

impl CacheOptions {
    pub fn config(&self) -> CacheConfig {
        let mut config = CacheConfig::new(
            self.cache_dir
                .clone()
                .unwrap_or_else(ChunkStore::default_dir),
        );
        config.max_bytes = self.cache_size;
        config.min_free_bytes = self.cache_min_free;
        config
    }
}

/// `10G`, `500M`, `64K`, `1T` (powers of 1024), or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(format!("unknown size unit {other:?} (use K, M, G or T)")),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 10G, 500M)"))?;
    Ok((value * (1u64 << shift) as f64) as u64)
}

pub fn run(command: CacheCommand) -> anyhow::Result<bool> {
    match command {
        CacheCommand::Stats { db, cache } => stats(&db_path(db)?, &cache),
        CacheCommand::Clear { db, origin, cache } => clear(&db_path(db)?, origin, &cache),
        CacheCommand::Warm {
            query,
            db,
            limit,
            cache,
        } => warm(&db_path(db)?, &query.join(" "), limit, &cache),
    }
}

fn db_path(db: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    db.or_else(musicfs_db::default_db_path)
        .context("no --db given and no default location")
}

/// The library DB for writing: the cache's rows are part of it (migrated if older).
fn writable(db: &Path) -> anyhow::Result<()> {
    if !db.is_file() {
        return Err(musicfs_db::DbError::Missing {
            path: db.to_owned(),
        }
        .into());
    }
    drop(musicfs_db::cache_index::CacheIndex::open(db)?);
    Ok(())
}

fn stats(db: &Path, options: &CacheOptions) -> anyhow::Result<bool> {
    writable(db)?;
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let s = musicfs_cache::stats(&conn)?;
    let config = options.config();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let mut out = std::io::stdout().lock();
    writeln!(out, "directory       {}", config.dir.display())?;
    writeln!(
        out,
        "size            {:.2} GiB of {:.2} GiB ({} bytes)",
        gib(s.totals.bytes),
        gib(config.max_bytes),
        s.totals.bytes
    )?;
    writeln!(out, "chunks          {}", s.totals.chunks)?;
    writeln!(
        out,
        "files           {} ({} complete)",
        s.usage.files, s.usage.complete
    )?;
    writeln!(out, "dedup ratio     {:.3}", s.dedup_ratio())?;
    writeln!(out, "hits            {}", s.totals.hits)?;
    writeln!(out, "misses          {}", s.totals.misses)?;
    writeln!(out, "repaired        {}", s.totals.repaired)?;
    writeln!(out, "evicted         {}", s.totals.evicted)?;
    Ok(true)
}

fn clear(db: &Path, origin: Option<String>, options: &CacheOptions) -> anyhow::Result<bool> {
    writable(db)?;
    let root = origin
        .as_deref()
        .map(crate::config::stored_root)
        .transpose()?;
    let (files, chunks) = musicfs_cache::clear(
        db,
        &options.config().dir,
        root.as_deref().map(str::as_bytes),
    )?;
    println!("forgot {files} cached file(s), deleted {chunks} chunk(s)");
    Ok(true)
}

/// Reads every match whole through the cache, from its origin's primary copy. Every file
/// warmed stays open (pinned) until the end, so warming the next never evicts it: when the
/// cache is full of what was warmed, it stops, says how much was warmed and how much did not
/// fit, and fails.
fn warm(db: &Path, query: &str, limit: usize, options: &CacheOptions) -> anyhow::Result<bool> {
    writable(db)?;
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let ids = crate::search_ids(&conn, db, query, limit)?;
    let config = options.config();
    let cache = Cache::open(db, config.clone())?;
    let mut files = Vec::new();
    let mut total = 0u64;
    for id in ids {
        let (Some(backing), Some(version)) = (
            musicfs_db::queries::backing_path(&conn, id)?,
            musicfs_db::cache_index::file_version(&conn, id)?,
        ) else {
            continue; // removed since the index was committed
        };
        total += version.size;
        files.push((id, backing, version));
    }
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    let mut origins: HashMap<i64, Arc<dyn musicfs_origin::Origin>> = HashMap::new();
    let (mut done, mut failed) = (0u64, 0u64);
    // Files warmed, held open: never evicted to make room for the next.
    let mut held = Vec::new();
    let (mut warmed, mut left, mut left_bytes) = (0u64, 0u64, 0u64);
    for (id, backing, version) in files {
        let size = version.size;
        if left > 0 {
            // The cache is full of what was warmed: the rest is not tried.
            left += 1;
            left_bytes += size;
            continue;
        }
        let path = String::from_utf8_lossy(&backing.absolute()).into_owned();
        bar.set_message(path.clone());
        match warm_file(&cache, &conn, &mut origins, id, &backing, version, &bar) {
            Ok(file) if file.is_complete() => {
                done += 1;
                warmed += size;
                held.push(file);
            }
            Ok(file) => {
                let cached = file.cached().min(size);
                warmed += cached;
                left += 1;
                left_bytes += size - cached;
                held.push(file);
            }
            Err(err) => {
                failed += 1;
                bar.suspend(|| eprintln!("musicfs: {path}: not cached: {err:#}"));
            }
        }
    }
    cache.flush();
    drop(held);
    cache.close();
    bar.finish_and_clear();
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    if left > 0 {
        eprintln!(
            "musicfs: the cache is full of what was warmed: {:.1} MiB warmed, {left} file(s) \
             ({:.1} MiB) did not fit in --cache-size {:.1} MiB (with --cache-min-free {:.1} MiB \
             left free on its disk); raise --cache-size or warm fewer files",
            mib(warmed),
            mib(left_bytes),
            mib(config.max_bytes),
            mib(config.min_free_bytes),
        );
    }
    println!(
        "{done} file(s) in the cache ({:.1} MiB), {failed} failed, {left} did not fit ({:.1} MiB)",
        mib(warmed),
        mib(left_bytes)
    );
    Ok(failed == 0 && left == 0)
}

/// Fetches what the cache lacks of one file, in 8 MiB pieces, from where its chunks end.
/// Returns it open (pinned): whole, or cut short because the cache had no room for more.
fn warm_file(
    cache: &Cache,
    conn: &rusqlite::Connection,
    origins: &mut HashMap<i64, Arc<dyn musicfs_origin::Origin>>,
    file_id: i64,
    backing: &musicfs_db::queries::BackingPath,
    version: musicfs_db::cache_index::FileVersion,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<FileCache> {
    const PIECE: usize = 8 << 20;
    let size = version.size;
    let mut file = FileCache::open(cache, conn, file_id, version)?;
    let mut at = file.cached();
    bar.inc(at);
    if at >= size {
        return Ok(file);
    }
    let origin = match origins.get(&backing.origin_id) {
        Some(origin) => origin.clone(),
        None => {
            let url = if backing.kind == "local" {
                musicfs_origin::OriginUrl::Local(PathBuf::from(
                    String::from_utf8_lossy(&backing.root).into_owned(),
                ))
            } else {
                musicfs_origin::OriginUrl::parse(&String::from_utf8_lossy(&backing.root))?
            };
            let origin = musicfs_origin::open(&url)?;
            origins.insert(backing.origin_id, origin.clone());
            origin
        }
    };
    // Bytes of another version must never be cached as this one.
    let there = origin.stat(&backing.rel)?.size;
    anyhow::ensure!(
        there == size,
        "{there} bytes on its origin, {size} in the DB: changed since the last scan (rescan it)"
    );
    while at < size {
        let len = PIECE.min((size - at) as usize);
        let data = origin.read_at(&backing.rel, at, len)?;
        anyhow::ensure!(
            !data.is_empty(),
            "the origin's copy ends at {at} bytes, the DB says {size}: rescan it"
        );
        file.offer_waiting(at, &data);
        at += data.len() as u64;
        bar.inc(data.len() as u64);
        if file.cut_to().is_none() && at < size {
            break; // refused: the rest would not be kept
        }
    }
    cache.flush();
    if file.is_complete() || file.no_room() {
        return Ok(file);
    }
    anyhow::bail!("the cache refused it (see the log)")
}
