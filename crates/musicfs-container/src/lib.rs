//! Where an audio file's payload lies: the encoded audio a re-tag moves but never changes.
//!
//! A tagger rewrites what is around the audio (ID3v2 and FLAC metadata at the head; ID3v1,
//! APEv2 and Lyrics3 at the tail; an MP4 `moov` before or after `mdat`; Ogg header pages;
//! RIFF/AIFF chunks beside `data`/`SSND`) and copies the audio byte for byte. This crate
//! finds that extent by parsing the container, never by guessing from where bytes match,
//! so that a delta fetch can fetch everything outside it and reuse only what is inside.
//!
//! Parsing reads through [`ReadAt`]: a few small reads at the head and the tail, so it can
//! run on a cached old version and on a remote new version alike. Anything unexpected (an
//! unknown format, two `mdat` boxes, a chained Ogg stream, no frame sync where the audio
//! should start, sizes that do not add up) gives `None`: no payload is claimed.

mod flac;
mod mp4;
mod mpeg;
mod ogg;
mod riff;
mod trailing;

pub use ogg::{OggAudio, OggPage, crc32 as ogg_crc32, page_header};

/// Random access to a file's bytes.
pub trait ReadAt {
    /// Up to `len` bytes at `offset` (fewer only at the end of the file); None if they
    /// cannot be read.
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>>;
}

impl<F: FnMut(u64, usize) -> Option<Vec<u8>>> ReadAt for F {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        self(offset, len)
    }
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?.min(self.len());
        Some(self[start..start.saturating_add(len).min(self.len())].to_vec())
    }
}

/// The container a payload was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Flac,
    /// MPEG audio (MP3) or ADTS AAC: frames between ID3v2 and trailing tags.
    Mpeg,
    Mp4,
    Ogg(OggAudio),
    Riff,
    Aiff,
}

/// The payload's extent: `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub container: Container,
    pub start: u64,
    pub len: u64,
}

impl Payload {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The payload of a file of `size` bytes, read through `read`; None if its layout is not
/// one this crate knows for certain.
pub fn payload(size: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    let head = read.read_at(0, 12)?;
    if head.len() < 12 {
        return None;
    }
    let found = match &head[..4] {
        b"fLaC" => flac::payload(size, 0, read),
        b"OggS" => ogg::payload(size, read),
        b"RIFF" if &head[8..12] == b"WAVE" => riff::riff(size, read),
        b"FORM" if &head[8..12] == b"AIFF" || &head[8..12] == b"AIFC" => riff::aiff(size, read),
        _ if &head[4..8] == b"ftyp" => mp4::payload(size, read),
        _ => {
            // ID3v2 tags, then FLAC or MPEG frames.
            let start = mpeg::skip_id3v2(size, read)?;
            let magic = read.read_at(start, 4)?;
            if magic == b"fLaC" {
                flac::payload(size, start, read)
            } else {
                mpeg::payload(size, start, read)
            }
        }
    }?;
    (found.len > 0 && found.end() <= size).then_some(found)
}

/// Big-endian / little-endian integers from a slice that the caller has checked is long
/// enough.
pub(crate) fn be32(b: &[u8]) -> u64 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64
}
pub(crate) fn le32(b: &[u8]) -> u64 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
}

#[cfg(any(test, feature = "synth"))]
pub mod synth;
