//! MPEG audio (MP3, ADTS AAC): ID3v2 tags at the head, frames, trailing tags.

use crate::{Container, Payload, ReadAt, trailing};

/// The offset after the ID3v2 tags at the start of the file (0 if none).
pub(crate) fn skip_id3v2(size: u64, read: &mut dyn ReadAt) -> Option<u64> {
    let mut at = 0u64;
    loop {
        let h = read.read_at(at, 10)?;
        if h.len() < 10 || &h[..3] != b"ID3" {
            return Some(at);
        }
        if h[6..10].iter().any(|&b| b & 0x80 != 0) {
            return None;
        }
        let len = h[6..10].iter().fold(0u64, |n, &b| n << 7 | b as u64);
        // Only ID3v2.4 has a footer (the flag means nothing in earlier versions).
        let footer = if h[3] == 4 && h[5] & 0x10 != 0 { 10 } else { 0 };
        at += 10 + len + footer;
        if at > size {
            return None;
        }
    }
}

/// Frames from `start` (where a frame sync must be) to the trailing tags.
pub(crate) fn payload(size: u64, start: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    let sync = read.read_at(start, 2)?;
    if sync.len() < 2 || sync[0] != 0xff || sync[1] & 0xe0 != 0xe0 {
        return None;
    }
    let end = trailing::payload_end(size, start, read)?;
    Some(Payload {
        container: Container::Mpeg,
        start,
        len: end - start,
    })
}
