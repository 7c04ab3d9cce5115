//! Search benchmark (issue #6): index build time and size from a DB, then query latency
//! p50/p99 for a mix of query kinds, with a SQLite `LIKE` scan as the reference point.
//!
//!   musicfs-gen-db --words --n 1000000 --out bench-out/words-1000000.db
//!   musicfs-bench-search --db bench-out/words-1000000.db
//!
//! The index is rebuilt from scratch (what a first scan or a lost index costs). Latencies are
//! in-process, warm (after a warm-up pass), `--limit` hits per query, file ids only; "with
//! paths" adds resolving each hit's virtual path in the DB, as `musicfs search` and
//! `/.search/` do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use musicfs_search::{IndexKeeper, SearchIndex, default_dir};
use musicfs_tools::Rng;
use musicfs_tools::words::Words;

#[derive(Parser)]
struct Args {
    /// A DB written by `musicfs-gen-db --words` (or any musicfs DB).
    #[arg(long)]
    db: PathBuf,
    /// Queries per kind.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Hits fetched per query.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Keep an existing index instead of rebuilding it.
    #[arg(long)]
    no_rebuild: bool,
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = std::path::absolute(&args.db)?;
    let files: i64;
    {
        let writer = musicfs_db::Writer::open(&db)?;
        files = musicfs_db::queries::totals(writer.conn())?.0;
        if !args.no_rebuild {
            let dir = default_dir(&db);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let started = Instant::now();
            let keeper = IndexKeeper::open(&db, &writer, &|_, _| {})?;
            let secs = started.elapsed().as_secs_f64();
            let size = dir_size(keeper.index().dir());
            let db_size = std::fs::metadata(&db)?.len();
            println!("## Index build: {files} tracks");
            println!();
            println!("| build | docs/s | index size | bytes/track | index / DB size |");
            println!("|---:|---:|---:|---:|---:|");
            println!(
                "| {secs:.1} s | {:.0} | {:.1} MiB | {:.0} | {:.2}× |",
                files as f64 / secs,
                size as f64 / (1 << 20) as f64,
                size as f64 / files.max(1) as f64,
                size as f64 / db_size as f64
            );
            println!();
        }
    }

    let index = SearchIndex::open(&default_dir(&db))?;
    let reader = index.reader()?;
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let words = Words::new(7);
    let mut rng = Rng::new(99);
    let title_of = |id: i64| -> String {
        conn.query_row(
            "SELECT coalesce(title, '') FROM files WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap_or_default()
    };
    type Gen<'a> = Box<dyn FnMut(&mut Rng) -> String + 'a>;
    let kinds: Vec<(&str, Gen)> = vec![
        (
            "one common word",
            Box::new(|r: &mut Rng| words.word(r.below(20) as usize).to_owned()),
        ),
        (
            "two words",
            Box::new(|r: &mut Rng| format!("{} {}", words.zipf(r), words.zipf(r))),
        ),
        (
            "type-ahead prefix (3 letters)",
            Box::new(|r: &mut Rng| words.zipf(r).chars().take(3).collect()),
        ),
        (
            "rare word",
            Box::new(|r: &mut Rng| words.word(10_000 + r.below(10_000) as usize).to_owned()),
        ),
        (
            "field + year range",
            Box::new(|r: &mut Rng| {
                let y = 1960 + r.below(60);
                format!("artist:{} year:{y}..{}", words.zipf(r), y + 9)
            }),
        ),
        (
            "format + word",
            Box::new(|r: &mut Rng| format!("format:opus {}", words.zipf(r))),
        ),
        (
            "exact title phrase",
            Box::new(|r: &mut Rng| {
                format!(
                    "\"{}\"",
                    title_of(1 + r.below(files.max(1) as u64) as i64).replace('"', "")
                )
            }),
        ),
    ];

    println!(
        "## Query latency ({} queries per kind, {} hits max, warm)",
        args.queries, args.limit
    );
    println!();
    println!("| query kind | example | p50 | p99 | max | hits (mean) | p50 with paths |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut all = Vec::new();
    let mut rare_p50 = f64::NAN;
    for (name, mut make) in kinds {
        let queries: Vec<String> = (0..args.queries).map(|_| make(&mut rng)).collect();
        for q in queries.iter().take(20) {
            index.search(&reader, q, args.limit)?; // warm-up
        }
        let mut times = Vec::with_capacity(queries.len());
        let mut with_paths = Vec::with_capacity(queries.len());
        let mut hits = 0;
        for q in &queries {
            let t = Instant::now();
            let ids = index.search(&reader, q, args.limit)?;
            times.push(t.elapsed());
            for id in &ids {
                musicfs_db::search_rows::file_vpath(&conn, *id)?;
            }
            with_paths.push(t.elapsed());
            hits += ids.len();
        }
        times.sort();
        with_paths.sort();
        all.extend(times.iter().copied());
        if name == "rare word" {
            rare_p50 = percentile(&times, 0.5);
        }
        println!(
            "| {name} | `{}` | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} | {:.2} ms |",
            queries[0].replace('|', "\\|"),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            hits as f64 / queries.len() as f64,
            percentile(&with_paths, 0.5),
        );
    }
    all.sort();
    println!(
        "| **all** | | **{:.2} ms** | **{:.2} ms** | {:.2} ms | | |",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0)
    );
    println!();

    // The reference: what the same question costs SQLite without the index (a LIKE scan over
    // every title), measured here, same run.
    let word = words.word(15_000);
    let t = Instant::now();
    let runs = 3;
    for _ in 0..runs {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM files WHERE title LIKE ?1 OR artist LIKE ?1 OR album LIKE ?1 LIMIT ?2",
        )?;
        let n = stmt
            .query_map(
                rusqlite::params![format!("%{word}%"), args.limit as i64],
                |r| r.get::<_, i64>(0),
            )?
            .count();
        std::hint::black_box(n);
    }
    let like = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!(
        "Reference, same run: a rare word as SQLite `LIKE '%…%'` over title, artist, album: \
         {like:.1} ms, {:.0}× the index's p50 for rare words.",
        like / rare_p50
    );
    Ok(())
}
