//! Writes a synthetic musicfs DB of N tracks directly (no audio files scanned), for mount
//! benchmarks at 10K / 1M / 10M tracks. The first five tracks are backed by real audio files
//! (one per format) written beside the DB.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use musicfs_tools::synthetic::{Naming, Shape, write_synthetic_db_named};
use musicfs_tools::{Format, write_track};

#[derive(Parser)]
struct Args {
    /// The DB to create (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Number of tracks (10 per album, 10 albums per artist).
    #[arg(long, default_value_t = 10_000)]
    n: u64,
    /// Made-up words with a Zipf-like distribution instead of numbered names (search
    /// benchmarks).
    #[arg(long)]
    words: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(format!("{}.backing", args.out.display()));
    std::fs::create_dir_all(&root)?;
    let mut backing = Vec::new();
    for (i, format) in Format::ALL.into_iter().enumerate() {
        let path = root.join(format!("template-{i}.{}", format.ext()));
        write_track(&path, format, &musicfs_tags::Track::default(), i as u32)?;
        backing.push(path);
    }
    let refs: Vec<&std::path::Path> = backing.iter().map(PathBuf::as_path).collect();
    let started = Instant::now();
    let shape = Shape::for_tracks(args.n);
    let naming = if args.words {
        Naming::Words
    } else {
        Naming::Numbered
    };
    write_synthetic_db_named(&args.out, shape, &root, &refs, naming)?;
    eprintln!(
        "wrote {} tracks to {} in {:.1}s",
        shape.tracks(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
