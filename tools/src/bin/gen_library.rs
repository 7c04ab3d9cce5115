//! Writes a realistic tagged library of N real audio files, for benchmarks and manual tests.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

/// Generate a music library of real, tagged audio files (FLAC, MP3, WAV, AIFF, Opus).
#[derive(Parser)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Number of files.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Comma-separated formats among flac,mp3,wav,aiff,opus (default: all).
    #[arg(long, value_delimiter = ',')]
    formats: Vec<String>,
    /// Pad every file with about this many bytes of audio (real tracks are megabytes).
    #[arg(long, default_value_t = 0)]
    pad_bytes: usize,
    /// Leave out names that cannot be S3 keys (not UTF-8, control characters), so the same
    /// library can be uploaded to a bucket whole.
    #[arg(long)]
    keyable: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let started = Instant::now();
    let formats = if args.formats.is_empty() {
        musicfs_tools::Format::ALL.to_vec()
    } else {
        args.formats
            .iter()
            .map(|f| {
                musicfs_tools::Format::by_ext(f)
                    .ok_or_else(|| anyhow::anyhow!("unknown format {f}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut files = musicfs_tools::generate_library_with(&args.out, args.n, args.seed, &formats)?;
    if args.keyable {
        let mut kept = Vec::with_capacity(files.len());
        for f in files {
            let rel = f.path.strip_prefix(&args.out)?;
            if rel
                .to_str()
                .is_some_and(|r| !r.chars().any(|c| c.is_ascii_control()))
            {
                kept.push(f);
            } else {
                std::fs::remove_file(&f.path)?;
            }
        }
        files = kept;
    }
    if args.pad_bytes > 0 {
        for f in &files {
            musicfs_tools::pad_audio(&f.path, f.format, args.pad_bytes)?;
        }
    }
    eprintln!(
        "wrote {} files to {} in {:.1}s",
        files.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
