//! `musicfs-retag --title|--cover FILE...`: edits files in place as a tagger does (lofty), for
//! benchmarks of the content cache's delta fetch (`tools/bench_cache.py`). `--grow BYTES`
//! first grows each file to BYTES with non-repeating bytes (after the audio; inside `mdat` for
//! MP4), as real tracks are megabytes of compressed audio.

use std::path::PathBuf;

use clap::Parser;
use musicfs_tools::retag::{grow, longer_title, new_cover, retag};

#[derive(Parser)]
struct Args {
    /// A longer title.
    #[arg(long)]
    title: bool,
    /// A new ~100 KB front cover.
    #[arg(long)]
    cover: bool,
    /// Grow each file to this many bytes first.
    #[arg(long)]
    grow: Option<u64>,
    /// Set these tags (an album of several files: `--track` is the first file's number, the
    /// next files follow).
    #[arg(long)]
    artist: Option<String>,
    #[arg(long)]
    album: Option<String>,
    #[arg(long)]
    track: Option<u32>,
    files: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for (k, path) in args.files.iter().enumerate() {
        if let Some(bytes) = args.grow {
            grow(path, bytes, 1000 + k as u64)?;
        }
        if args.artist.is_some() || args.album.is_some() || args.track.is_some() {
            let number = args.track.map(|t| t + k as u32);
            retag(path, &|tag| {
                use lofty::prelude::Accessor;
                if let Some(artist) = &args.artist {
                    tag.set_artist(artist.clone());
                }
                if let Some(album) = &args.album {
                    tag.set_album(album.clone());
                }
                if let Some(n) = number {
                    tag.set_track(n);
                    tag.set_title(format!("Track {n}"));
                }
            })?;
        }
        if args.title {
            retag(path, &longer_title)?;
        }
        if args.cover {
            retag(path, &new_cover)?;
        }
    }
    Ok(())
}
