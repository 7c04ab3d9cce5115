//! FLAC: `fLaC`, metadata blocks (the last one flagged), frames, and rarely trailing tags.

use crate::{Container, Payload, ReadAt, trailing};

/// Frames after the metadata blocks of the stream starting at `start` (after any ID3v2).
pub(crate) fn payload(size: u64, start: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    let mut at = start + 4;
    loop {
        let h = read.read_at(at, 4)?;
        if h.len() < 4 || h[0] & 0x7f == 127 {
            return None;
        }
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as u64;
        at += 4 + len;
        if at > size {
            return None;
        }
        if h[0] & 0x80 != 0 {
            break;
        }
    }
    let sync = read.read_at(at, 2)?;
    if sync.len() < 2 || sync[0] != 0xff || sync[1] & 0xfe != 0xf8 {
        return None;
    }
    let end = trailing::payload_end(size, at, read)?;
    Some(Payload {
        container: Container::Flac,
        start: at,
        len: end - at,
    })
}
