//! Tags after the audio (ID3v1, APEv2, Lyrics3v2), in any order and number: the end of the
//! payload is the end of the file without them. A tail tag this does not parse (an appended
//! ID3v2.4 tag, Lyrics3v1, ID3v1's extended `TAG+`) gives None: its bytes would otherwise be
//! taken for audio.

use crate::{ReadAt, le32};

/// The offset where the trailing tags of a file of `size` bytes start (`size` if there are
/// none), never before `floor`; None if a tag claims more bytes than there are.
pub(crate) fn payload_end(size: u64, floor: u64, read: &mut dyn ReadAt) -> Option<u64> {
    let mut end = size;
    loop {
        if end < floor + 32 {
            return Some(end);
        }
        let back = (end - floor).min(128) as usize;
        let tail = read.read_at(end - back as u64, back)?;
        if tail.len() != back {
            return None;
        }
        // APE first: the last 128 bytes of an APE tag can start with the "TAG" of its
        // header's "APETAGEX".
        let footer = &tail[back - 32..];
        if &footer[..8] == b"APETAGEX" {
            // The size counts the items and the footer; a header (flag bit 31) adds 32.
            let len = le32(&footer[12..16]);
            let has_header = le32(&footer[20..24]) & (1 << 31) != 0;
            let total = len + if has_header { 32 } else { 0 };
            if total < 32 || total > end - floor {
                return None;
            }
            end -= total;
            continue;
        }
        if back >= 15 && &tail[back - 9..] == b"LYRICS200" {
            let digits = std::str::from_utf8(&tail[back - 15..back - 9]).ok()?;
            let len: u64 = digits.parse().ok()?;
            let total = len + 15;
            if total > end - floor {
                return None;
            }
            end -= total;
            continue;
        }
        if back == 128 && &tail[..3] == b"TAG" {
            end -= 128;
            if end >= floor + 227 && read.read_at(end - 227, 4)? == b"TAG+" {
                return None;
            }
            continue;
        }
        if &tail[back - 9..] == b"LYRICSEND" || (back >= 10 && &tail[back - 10..back - 7] == b"3DI")
        {
            return None;
        }
        return Some(end);
    }
}
