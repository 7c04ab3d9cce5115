//! RIFF/WAVE (little-endian chunks, `data`) and AIFF/AIFC (big-endian chunks, `SSND`).

use crate::{Container, Payload, ReadAt, be32, le32};

pub(crate) fn riff(size: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    chunks(size, read, b"data", false, Container::Riff)
}

pub(crate) fn aiff(size: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    chunks(size, read, b"SSND", true, Container::Aiff)
}

/// The body of the one chunk named `sound` among the chunks after the 12-byte form header.
/// Chunks are padded to even sizes; bytes after the form (an appended ID3 chunk) are simply
/// outside the payload.
fn chunks(
    size: u64,
    read: &mut dyn ReadAt,
    sound: &[u8; 4],
    big_endian: bool,
    container: Container,
) -> Option<Payload> {
    let h = read.read_at(0, 12)?;
    let form = 8 + if big_endian {
        be32(&h[4..8])
    } else {
        le32(&h[4..8])
    };
    let end = form.min(size);
    let mut at = 12u64;
    let mut found = None;
    while at + 8 <= end {
        let c = read.read_at(at, 8)?;
        if c.len() < 8 {
            return None;
        }
        let len = if big_endian {
            be32(&c[4..8])
        } else {
            le32(&c[4..8])
        };
        let body = at + 8;
        if body + len > size {
            return None;
        }
        if &c[..4] == sound {
            if found.is_some() {
                return None;
            }
            found = Some(Payload {
                container,
                start: body,
                len,
            });
        }
        at = body + len + (len & 1);
    }
    found
}
