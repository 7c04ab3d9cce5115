//! `musicfs-delta-probe FILE...`: how many of a file's content-defined chunks survive a
//! re-tag, the property the content cache's delta sync rests on. Each file is copied to a
//! temporary folder and edited there with lofty (a longer title; a new 100 KB front cover);
//! the edited copy is cut into chunks and matched against the original's by hash. Prints a
//! Markdown table: bytes of the edited file whose chunk was already known, and the rest,
//! which a delta sync would have to fetch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use musicfs_cache::{ChunkHash, chunks};
use musicfs_tools::retag::Edit;

#[derive(Parser)]
struct Args {
    files: Vec<PathBuf>,
}

fn cut(bytes: &[u8]) -> anyhow::Result<Vec<(ChunkHash, usize)>> {
    chunks(bytes)
        .map(|c| c.map(|c| (c.hash, c.data.len())).map_err(Into::into))
        .collect()
}

fn edited(path: &Path, dir: &Path, edit: &Edit<'_>) -> anyhow::Result<Vec<u8>> {
    let copy = dir.join(path.file_name().context("a file name")?);
    std::fs::copy(path, &copy)?;
    // The copy keeps the original's mode: corpus files are read-only.
    let mut mode = std::fs::metadata(&copy)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    mode.set_readonly(false);
    std::fs::set_permissions(&copy, mode)?;
    musicfs_tools::retag::retag(&copy, edit)?;
    Ok(std::fs::read(&copy)?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let edits: [(&str, &Edit<'static>); 2] = [
        ("longer title", &musicfs_tools::retag::longer_title),
        ("new 100 KB cover", &musicfs_tools::retag::new_cover),
    ];
    println!("| file | size | edit | chunks | reused | to fetch | reused share |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for path in &args.files {
        let original = std::fs::read(path).with_context(|| path.display().to_string())?;
        let known: HashSet<ChunkHash> = cut(&original)?.into_iter().map(|(h, _)| h).collect();
        for (name, edit) in &edits {
            let name_shown = path.file_name().unwrap_or_default().to_string_lossy();
            let new = match edited(path, dir.path(), *edit) {
                Ok(new) => new,
                Err(err) => {
                    println!(
                        "| {name_shown} | {} | {name} | lofty: {err:#} | | | |",
                        original.len()
                    );
                    continue;
                }
            };
            let cut_new = cut(&new)?;
            let reused: usize = cut_new
                .iter()
                .filter(|(h, _)| known.contains(h))
                .map(|(_, n)| n)
                .sum();
            println!(
                "| {name_shown} | {:.2} MB | {name} | {} | {:.2} MB | {:.0} KB | {:.1} % |",
                new.len() as f64 / 1e6,
                cut_new.len(),
                reused as f64 / 1e6,
                (new.len() - reused) as f64 / 1e3,
                reused as f64 * 100.0 / new.len() as f64
            );
        }
    }
    Ok(())
}
