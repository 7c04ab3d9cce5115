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
use lofty::config::WriteOptions;
use lofty::picture::{MimeType, Picture, PictureType};
use lofty::prelude::*;
use lofty::tag::Tag;
use musicfs_cache::{ChunkHash, chunks};

#[derive(Parser)]
struct Args {
    files: Vec<PathBuf>,
}

fn cut(bytes: &[u8]) -> anyhow::Result<Vec<(ChunkHash, usize)>> {
    chunks(bytes)
        .map(|c| c.map(|c| (c.hash, c.data.len())).map_err(Into::into))
        .collect()
}

/// A stand-in for a cover: a JPEG's markers around 100 KB of noise (a JPEG's entropy).
fn cover() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise = (0..100_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 32) as u8
    });
    [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain(noise)
        .chain([0xFF, 0xD9])
        .collect()
}

/// A re-tag, applied to the file's primary tag.
type Edit = dyn Fn(&mut Tag);

fn edited(path: &Path, dir: &Path, edit: &Edit) -> anyhow::Result<Vec<u8>> {
    let copy = dir.join(path.file_name().context("a file name")?);
    std::fs::copy(path, &copy)?;
    // The copy keeps the original's mode: corpus files are read-only.
    let mut mode = std::fs::metadata(&copy)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    mode.set_readonly(false);
    std::fs::set_permissions(&copy, mode)?;
    let mut file = lofty::read_from_path(&copy)?;
    if file.primary_tag().is_none() {
        file.insert_tag(Tag::new(file.primary_tag_type()));
    }
    let tag = file.primary_tag_mut().context("a tag")?;
    edit(tag);
    if tag.save_to_path(&copy, WriteOptions::default()).is_err() {
        // lofty will not write back an ID3v2 comment whose language is "\0\0\0" (found
        // in real files): drop the comment too, as a tagger that rewrites it would.
        tag.remove_key(ItemKey::Comment);
        tag.save_to_path(&copy, WriteOptions::default())?;
    }
    Ok(std::fs::read(&copy)?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let edits: [(&str, &Edit); 2] = [
        ("longer title", &|tag: &mut Tag| {
            tag.set_title("A much longer title than the one it had before (Remastered 2026)".into())
        }),
        ("new 100 KB cover", &|tag: &mut Tag| {
            tag.remove_picture_type(PictureType::CoverFront);
            tag.push_picture(
                Picture::unchecked(cover())
                    .pic_type(PictureType::CoverFront)
                    .mime_type(MimeType::Jpeg)
                    .build(),
            );
        }),
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
