//! Editing files as a tagger does (lofty rewrites the tags in place), and growing generated
//! files to real track sizes with bytes that do not repeat: what the content cache's delta
//! fetch is measured and tested on.

use std::io::Write;
use std::path::Path;

use lofty::config::WriteOptions;
use lofty::picture::{MimeType, Picture, PictureType};
use lofty::prelude::*;
use lofty::tag::Tag;

/// A re-tag, applied to a file's primary tag.
pub type Edit<'a> = dyn Fn(&mut Tag) + 'a;

/// A longer title.
pub fn longer_title(tag: &mut Tag) {
    tag.set_title("A much longer title than the one it had before (Remastered 2026)".into());
}

/// The front cover replaced by a new one of about 100 KB.
pub fn new_cover(tag: &mut Tag) {
    tag.remove_picture_type(PictureType::CoverFront);
    tag.push_picture(
        Picture::unchecked(cover())
            .pic_type(PictureType::CoverFront)
            .mime_type(MimeType::Jpeg)
            .build(),
    );
}

/// A stand-in for a cover: a JPEG's markers around 100 KB of noise (a JPEG's entropy).
pub fn cover() -> Vec<u8> {
    [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain(noise(100_000, 0x9E37_79B9_7F4A_7C15))
        .chain([0xFF, 0xD9])
        .collect()
}

/// Applies `edit` to the file's primary tag (created if missing) and saves it in place.
pub fn retag(path: &Path, edit: &Edit<'_>) -> anyhow::Result<()> {
    let mut file = lofty::read_from_path(path)?;
    if file.primary_tag().is_none() {
        file.insert_tag(Tag::new(file.primary_tag_type()));
    }
    let tag = file
        .primary_tag_mut()
        .ok_or_else(|| anyhow::anyhow!("no tag"))?;
    edit(tag);
    if tag.save_to_path(path, WriteOptions::default()).is_err() {
        // lofty will not write back an ID3v2 comment whose language is "\0\0\0" (found in
        // real files): drop the comment too, as a tagger that rewrites it would.
        tag.remove_key(ItemKey::Comment);
        tag.save_to_path(path, WriteOptions::default())?;
    }
    Ok(())
}

/// `len` bytes that do not repeat (xorshift), as compressed audio looks to a chunker.
pub fn noise(len: usize, seed: u64) -> impl Iterator<Item = u8> {
    let mut x = seed | 1;
    (0..len).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 32) as u8
    })
}

/// Grows a file to `bytes` with noise after its audio (FLAC, MP3: players and lofty stop at
/// the last frame), or inside its `mdat` atom (MP4: the atom's size is patched, so the file
/// stays valid whether `moov` comes before or after it). A FLAC file whose metadata is all
/// it has (the generator's) gets a frame sync where its frames would start, so that it
/// parses as FLAC with frames.
pub fn grow(path: &Path, bytes: u64, seed: u64) -> std::io::Result<()> {
    let mut data = std::fs::read(path)?;
    let len = data.len() as u64;
    if len >= bytes {
        return Ok(());
    }
    let extra = (bytes - len) as usize;
    let is_mp4 = data.get(4..8) == Some(b"ftyp");
    if !is_mp4 {
        let mut tail: Vec<u8> = noise(extra, seed).collect();
        if data.starts_with(b"fLaC") && extra >= 2 {
            tail[..2].copy_from_slice(&[0xff, 0xf8]);
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
        return file.write_all(&tail);
    }
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if &data[at + 4..at + 8] == b"mdat" && size >= 8 {
            let end = at + size;
            let new_size = u32::try_from(size + extra)
                .map_err(|_| std::io::Error::other("mdat would exceed 4 GiB"))?;
            data[at..at + 4].copy_from_slice(&new_size.to_be_bytes());
            data.splice(end..end, noise(extra, seed));
            return std::fs::write(path, data);
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    Err(std::io::Error::other("no mdat atom with a 32-bit size"))
}
