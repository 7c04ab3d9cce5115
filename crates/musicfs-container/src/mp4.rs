//! MP4/M4A: top-level boxes; the payload is the one `mdat` box's body, wherever `moov` is
//! (taggers rewrite `moov` and its chunk offsets, and copy `mdat`).

use crate::{Container, Payload, ReadAt, be32};

pub(crate) fn payload(size: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    let mut at = 0u64;
    let mut found = None;
    while at < size {
        let h = read.read_at(at, 16)?;
        if h.len() < 8 {
            return None;
        }
        let (mut len, mut header) = (be32(&h[..4]), 8);
        if len == 1 {
            if h.len() < 16 {
                return None;
            }
            len = be32(&h[8..12]) << 32 | be32(&h[12..16]);
            header = 16;
        } else if len == 0 {
            len = size - at;
        }
        if len < header || len > size - at {
            return None;
        }
        if &h[4..8] == b"mdat" {
            if found.is_some() {
                return None;
            }
            found = Some(Payload {
                container: Container::Mp4,
                start: at + header,
                len: len - header,
            });
        }
        at += len;
    }
    found
}
