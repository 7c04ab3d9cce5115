//! Ogg (Vorbis, Opus, FLAC): header packets on the first pages, then audio pages. A re-tag
//! rewrites the comment header, so the header pages change and every audio page after them
//! is renumbered (its sequence number moves by the change in the header page count, its CRC
//! with it) while its granule position, serial and body stay the same. The payload is the
//! audio pages; reusing them takes their new sequence numbers ([`OggAudio::first_seq`]).

use crate::{Container, Payload, ReadAt};

/// What the audio pages of a single logical stream need to be renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OggAudio {
    pub serial: u32,
    /// The sequence number of the first audio page.
    pub first_seq: u32,
}

/// A page header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OggPage {
    pub flags: u8,
    pub granule: i64,
    pub serial: u32,
    pub seq: u32,
    /// Lacing values: a packet ends at a value below 255.
    pub lacing_ends: usize,
    /// The last lacing value is 255: the page's last packet continues on the next page.
    pub continues: bool,
    /// Header plus body.
    pub len: usize,
}

const HEADER: usize = 27;

/// Parses the page header at the start of `bytes` (which must hold its segment table).
pub fn page_header(bytes: &[u8]) -> Option<OggPage> {
    if bytes.len() < HEADER || &bytes[..4] != b"OggS" || bytes[4] != 0 {
        return None;
    }
    let segments = bytes[26] as usize;
    let table = bytes.get(HEADER..HEADER + segments)?;
    Some(OggPage {
        flags: bytes[5],
        granule: i64::from_le_bytes(bytes[6..14].try_into().ok()?),
        serial: u32::from_le_bytes(bytes[14..18].try_into().ok()?),
        seq: u32::from_le_bytes(bytes[18..22].try_into().ok()?),
        lacing_ends: table.iter().filter(|&&s| s < 255).count(),
        continues: table.last() == Some(&255),
        len: HEADER + segments + table.iter().map(|&s| s as usize).sum::<usize>(),
    })
}

/// The audio pages after the header packets: the number of header packets comes from the
/// first packet (Vorbis 3, Opus 2, Ogg FLAC 1 + its count); the first audio page must start
/// right after the page the last header packet ends on, with nothing else on that page.
pub(crate) fn payload(size: u64, read: &mut dyn ReadAt) -> Option<Payload> {
    let mut at = 0u64;
    let mut packets = 0usize;
    let mut headers = None;
    let mut serial = None;
    let mut last_seq: u32;
    loop {
        let bytes = read.read_at(at, HEADER + 255)?;
        let page = page_header(&bytes)?;
        if at == 0 {
            if page.flags & 0x02 == 0 {
                return None;
            }
            let first = read.read_at(at + (HEADER + bytes[26] as usize) as u64, 9)?;
            headers = Some(header_packets(&first)?);
        }
        if *serial.get_or_insert(page.serial) != page.serial || page.flags & 0x04 != 0 {
            return None;
        }
        packets += page.lacing_ends;
        last_seq = page.seq;
        at += page.len as u64;
        if at > size {
            return None;
        }
        let wanted = headers?;
        if packets >= wanted {
            // The last header packet must end the page exactly.
            if packets != wanted || page.continues || at >= size {
                return None;
            }
            break;
        }
    }
    Some(Payload {
        container: Container::Ogg(OggAudio {
            serial: serial?,
            first_seq: last_seq.wrapping_add(1),
        }),
        start: at,
        len: size - at,
    })
}

/// How many header packets a stream has, from its first packet.
fn header_packets(first: &[u8]) -> Option<usize> {
    if first.starts_with(b"\x01vorbis") {
        Some(3)
    } else if first.starts_with(b"OpusHead") {
        Some(2)
    } else if first.len() >= 9 && first.starts_with(b"\x7fFLAC") {
        match u16::from_be_bytes([first[7], first[8]]) {
            0 => None,
            n => Some(1 + n as usize),
        }
    } else {
        None
    }
}

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial value 0, no final xor.
pub fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        table
    });
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}
