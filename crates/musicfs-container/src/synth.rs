//! Synthetic audio files of every layout this crate parses, tagged and re-tagged at will:
//! the same audio payload wrapped in different tags, as a tagger would write it. For
//! property tests of code that reads or assembles files (they are not playable audio).

use crate::ogg::crc32;

/// Every layout, with where its tags live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Metadata blocks (comment, picture, padding) before the frames.
    Flac,
    /// ID3v2 (with padding) before the frames.
    Mp3,
    /// ID3v2 before, APEv2 and ID3v1 after the frames: both ends change.
    Mp3BothEnds,
    /// `ftyp`, `moov` (tags, chunk offsets), `free`, `mdat`.
    M4aMoovFirst,
    /// `ftyp`, `mdat`, `moov`: ffmpeg's default layout.
    M4aMoovLast,
    OggVorbis,
    OggOpus,
    /// `fmt `, `LIST`, `data`, then an `id3 ` chunk.
    Wav,
    /// `COMM`, `ID3 `, `SSND`.
    Aiff,
}

pub const LAYOUTS: [Layout; 9] = [
    Layout::Flac,
    Layout::Mp3,
    Layout::Mp3BothEnds,
    Layout::M4aMoovFirst,
    Layout::M4aMoovLast,
    Layout::OggVorbis,
    Layout::OggOpus,
    Layout::Wav,
    Layout::Aiff,
];

/// What a tagger writes: a title, a cover of `cover` bytes, `padding` spare bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    pub title: Vec<u8>,
    pub cover: usize,
    pub padding: usize,
}

impl Tags {
    /// The tag bytes (title, cover filler, padding zeros).
    fn blob(&self) -> Vec<u8> {
        let mut b = self.title.clone();
        b.extend((0..self.cover).map(|i| (i as u8).wrapping_mul(7) ^ self.title.len() as u8));
        b.extend(std::iter::repeat_n(0, self.padding));
        b
    }
}

/// `audio` wrapped in `layout` with `tags`, and where the audio payload lies in it. The first
/// bytes of `audio` are overwritten with the layout's frame sync where it has one.
pub fn file(layout: Layout, audio: &[u8], tags: &Tags) -> (Vec<u8>, std::ops::Range<u64>) {
    let mut audio = audio.to_vec();
    let blob = tags.blob();
    let mut out = Vec::new();
    let start;
    match layout {
        Layout::Flac => {
            sync(&mut audio, 0xf8);
            out.extend_from_slice(b"fLaC");
            let streaminfo = [0x11u8; 34];
            flac_block(&mut out, 0, &streaminfo, false);
            flac_block(&mut out, 4, &tags.title, false);
            flac_block(&mut out, 6, &blob[tags.title.len()..][..tags.cover], false);
            flac_block(&mut out, 1, &vec![0; tags.padding], true);
            start = out.len();
            out.extend_from_slice(&audio);
        }
        Layout::Mp3 | Layout::Mp3BothEnds => {
            sync(&mut audio, 0xfb);
            id3v2(&mut out, &blob);
            start = out.len();
            out.extend_from_slice(&audio);
            if layout == Layout::Mp3BothEnds {
                let items = &blob[..blob.len() - tags.padding];
                out.extend_from_slice(b"APETAGEX");
                ape_frame(&mut out, items.len(), true);
                out.extend_from_slice(items);
                out.extend_from_slice(b"APETAGEX");
                ape_frame(&mut out, items.len(), false);
                let mut v1 = b"TAG".to_vec();
                v1.extend(
                    tags.title
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(0))
                        .take(125),
                );
                out.extend_from_slice(&v1);
            }
        }
        Layout::M4aMoovFirst | Layout::M4aMoovLast => {
            mp4_box(&mut out, b"ftyp", b"M4A \0\0\0\0M4A mp42isom");
            let moov_len = 8 + 8 + 8 + blob.len() - tags.padding;
            let free = tags.padding.max(8);
            let mdat_body = if layout == Layout::M4aMoovFirst {
                out.len() + moov_len + free + 8
            } else {
                out.len() + 8
            } as u32;
            let mut moov = Vec::new();
            // A chunk offset table pointing into mdat: it changes when mdat moves.
            mp4_box(&mut moov, b"stco", &mdat_body.to_be_bytes());
            moov.extend_from_slice(&blob[..blob.len() - tags.padding]);
            if layout == Layout::M4aMoovFirst {
                mp4_box(&mut out, b"moov", &moov);
                mp4_box(&mut out, b"free", &vec![0; free - 8]);
                mp4_box(&mut out, b"mdat", &[]);
                start = out.len();
                out.extend_from_slice(&audio);
                let at = start - 8;
                out[at..at + 4].copy_from_slice(&(audio.len() as u32 + 8).to_be_bytes());
            } else {
                mp4_box(&mut out, b"mdat", &audio);
                start = out.len() - audio.len();
                mp4_box(&mut out, b"moov", &moov);
            }
        }
        Layout::OggVorbis | Layout::OggOpus => {
            let serial = 0x5eed;
            let first: &[u8] = if layout == Layout::OggVorbis {
                b"\x01vorbis\0\0\0\0\x02\x44\xac\0\0"
            } else {
                b"OpusHead\x01\x02\0\0\x44\xac\0\0"
            };
            let mut seq = 0;
            ogg_packets(&mut out, serial, &mut seq, 0x02, &[first.to_vec()]);
            let mut comment = if layout == Layout::OggVorbis {
                b"\x03vorbis".to_vec()
            } else {
                b"OpusTags".to_vec()
            };
            comment.extend_from_slice(&blob);
            let mut headers = vec![comment];
            if layout == Layout::OggVorbis {
                headers.push(b"\x05vorbis-setup".to_vec());
            }
            ogg_packets(&mut out, serial, &mut seq, 0, &headers);
            start = out.len();
            // Audio: pages of up to 4000 bytes, one packet each, granules counting up.
            let n = audio.len().div_ceil(4000).max(1);
            for (k, body) in audio.chunks(4000).enumerate() {
                let flags = if k + 1 == n { 0x04 } else { 0 };
                ogg_page(
                    &mut out,
                    serial,
                    seq,
                    flags,
                    960 * (k as i64 + 1),
                    &[body],
                    true,
                );
                seq += 1;
            }
        }
        Layout::Wav => {
            let mut body = b"WAVE".to_vec();
            riff_chunk(&mut body, b"fmt ", &[1, 0, 2, 0, 0x44, 0xac, 0, 0], false);
            riff_chunk(&mut body, b"LIST", &tags.title, false);
            riff_chunk(&mut body, b"data", &audio, false);
            let data_at = 8 + body.len() - audio.len() - (audio.len() & 1);
            riff_chunk(&mut body, b"id3 ", &blob, false);
            out.extend_from_slice(b"RIFF");
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&body);
            start = data_at;
        }
        Layout::Aiff => {
            let mut body = b"AIFF".to_vec();
            riff_chunk(&mut body, b"COMM", &[0, 2, 0, 0, 0, 0, 0, 16], true);
            riff_chunk(&mut body, b"ID3 ", &blob, true);
            riff_chunk(&mut body, b"SSND", &audio, true);
            let data_at = 8 + body.len() - audio.len() - (audio.len() & 1);
            out.extend_from_slice(b"FORM");
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
            start = data_at;
        }
    }
    let range = match layout {
        Layout::OggVorbis | Layout::OggOpus => start as u64..out.len() as u64,
        _ => start as u64..(start + audio.len()) as u64,
    };
    (out, range)
}

fn sync(audio: &mut [u8], second: u8) {
    if audio.len() >= 2 {
        audio[0] = 0xff;
        audio[1] = second;
    }
}

fn flac_block(out: &mut Vec<u8>, kind: u8, body: &[u8], last: bool) {
    out.push(kind | if last { 0x80 } else { 0 });
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
}

fn id3v2(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"ID3\x04\0\0");
    let n = body.len() as u32;
    out.extend([
        (n >> 21) as u8 & 0x7f,
        (n >> 14) as u8 & 0x7f,
        (n >> 7) as u8 & 0x7f,
        n as u8 & 0x7f,
    ]);
    out.extend_from_slice(body);
}

fn ape_frame(out: &mut Vec<u8>, items: usize, header: bool) {
    out.extend_from_slice(&2000u32.to_le_bytes());
    out.extend_from_slice(&(items as u32 + 32).to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let flags = (1u32 << 31) | if header { 1 << 29 } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
}

fn mp4_box(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
}

fn riff_chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8], big_endian: bool) {
    out.extend_from_slice(id);
    let n = body.len() as u32;
    out.extend_from_slice(&if big_endian {
        n.to_be_bytes()
    } else {
        n.to_le_bytes()
    });
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// Packets laid on pages of at most 16 segments (so a large comment spans pages), the last
/// packet ending its page.
fn ogg_packets(out: &mut Vec<u8>, serial: u32, seq: &mut u32, flags: u8, packets: &[Vec<u8>]) {
    let mut lacing: Vec<(u8, &[u8])> = Vec::new();
    for p in packets {
        let mut rest = &p[..];
        loop {
            let n = rest.len().min(255);
            lacing.push((n as u8, &rest[..n]));
            rest = &rest[n..];
            if n < 255 {
                break;
            }
        }
    }
    let mut continued = false;
    for (k, page) in lacing.chunks(16).enumerate() {
        let bodies: Vec<&[u8]> = page.iter().map(|(_, b)| *b).collect();
        let f = if k == 0 { flags } else { 0 } | if continued { 0x01 } else { 0 };
        ogg_page(out, serial, *seq, f, 0, &bodies, false);
        continued = page.last().is_some_and(|(n, _)| *n == 255);
        *seq += 1;
    }
}

/// One page; `whole`: each body is a packet (lacing written for it), else each body is one
/// lacing segment.
fn ogg_page(
    out: &mut Vec<u8>,
    serial: u32,
    seq: u32,
    flags: u8,
    granule: i64,
    bodies: &[&[u8]],
    whole: bool,
) {
    let mut table = Vec::new();
    for b in bodies {
        if whole {
            table.extend(std::iter::repeat_n(255u8, b.len() / 255));
            table.push((b.len() % 255) as u8);
        } else {
            table.push(b.len() as u8);
        }
    }
    let at = out.len();
    out.extend_from_slice(b"OggS\0");
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(table.len() as u8);
    out.extend_from_slice(&table);
    for b in bodies {
        out.extend_from_slice(b);
    }
    let crc = crc32(&out[at..]);
    out[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_parses_to_where_its_audio_is() {
        let audio: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2654435761u32) >> 13) as u8)
            .collect();
        for layout in LAYOUTS {
            for tags in [
                Tags {
                    title: b"t".to_vec(),
                    cover: 0,
                    padding: 0,
                },
                Tags {
                    title: b"A longer title".to_vec(),
                    cover: 70_000,
                    padding: 4096,
                },
            ] {
                let (bytes, range) = file(layout, &audio, &tags);
                let found = crate::payload(bytes.len() as u64, &mut &bytes[..])
                    .unwrap_or_else(|| panic!("{layout:?} {tags:?}: no payload"));
                assert_eq!(found.start..found.end(), range, "{layout:?} {tags:?}");
            }
        }
    }

    #[test]
    fn odd_layouts_claim_no_payload() {
        let audio = vec![0x55u8; 5000];
        let tags = Tags {
            title: b"x".to_vec(),
            cover: 10,
            padding: 0,
        };
        // Two mdat boxes.
        let (mut m4a, _) = file(Layout::M4aMoovLast, &audio, &tags);
        m4a.extend_from_slice(&[0, 0, 0, 9, b'm', b'd', b'a', b't', 0]);
        assert_eq!(crate::payload(m4a.len() as u64, &mut &m4a[..]), None);
        // A 64-bit box size near u64::MAX (no overflow, no payload).
        let mut huge = b"\0\0\0\x10ftypM4A \0\0\0\0\0\0\0\x01mdat".to_vec();
        huge.extend_from_slice(&[0xff; 8]);
        huge.extend_from_slice(&[0; 64]);
        assert_eq!(crate::payload(huge.len() as u64, &mut &huge[..]), None);
        // A box running past the end.
        let (mut m4a, _) = file(Layout::M4aMoovLast, &audio, &tags);
        m4a.truncate(m4a.len() - 1);
        assert_eq!(crate::payload(m4a.len() as u64, &mut &m4a[..]), None);
        // No frame sync after the ID3v2 tag.
        let (mut mp3, range) = file(Layout::Mp3, &audio, &tags);
        mp3[range.start as usize] = 0;
        assert_eq!(crate::payload(mp3.len() as u64, &mut &mp3[..]), None);
        // An APE footer claiming more than the file.
        let (mut mp3, _) = file(Layout::Mp3BothEnds, &audio, &tags);
        let footer = mp3.len() - 128 - 32;
        mp3[footer + 12..footer + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(crate::payload(mp3.len() as u64, &mut &mp3[..]), None);
        // Tags at the tail that are not parsed: an appended ID3v2.4 tag (footer "3DI"),
        // Lyrics3v1, an extended ID3v1 ("TAG+" before "TAG").
        for tail in [
            &b"3DI\x04\0\x10\0\0\0\x10"[..],
            b"LYRICSBEGINla la LYRICSEND",
        ] {
            let (mut mp3, _) = file(Layout::Mp3, &audio, &tags);
            mp3.extend_from_slice(tail);
            assert_eq!(
                crate::payload(mp3.len() as u64, &mut &mp3[..]),
                None,
                "{tail:?}"
            );
        }
        let (mut mp3, _) = file(Layout::Mp3, &audio, &tags);
        let mut plus = b"TAG+".to_vec();
        plus.resize(227, b' ');
        mp3.extend_from_slice(&plus);
        mp3.extend_from_slice(b"TAG");
        mp3.resize(mp3.len() + 125, 0);
        assert_eq!(crate::payload(mp3.len() as u64, &mut &mp3[..]), None);
        // An unknown Ogg codec.
        let (mut ogg, _) = file(Layout::OggOpus, &audio, &tags);
        ogg[28] = b'X';
        assert_eq!(crate::payload(ogg.len() as u64, &mut &ogg[..]), None);
        // Not audio.
        let text = b"hello, this is not audio at all".to_vec();
        assert_eq!(crate::payload(text.len() as u64, &mut &text[..]), None);
    }

    #[test]
    fn damaged_files_never_panic_and_never_claim_past_their_end() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let audio: Vec<u8> = (0..30_000).map(|_| next() as u8).collect();
        for case in 0..5000 {
            let layout = LAYOUTS[case % LAYOUTS.len()];
            let tags = Tags {
                title: b"title".to_vec(),
                cover: (next() % 5000) as usize,
                padding: 16,
            };
            let (mut bytes, _) = file(layout, &audio, &tags);
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            if next() % 3 == 0 {
                bytes.truncate((next() % bytes.len() as u64) as usize);
            }
            if let Some(p) = crate::payload(bytes.len() as u64, &mut &bytes[..]) {
                assert!(
                    p.end() <= bytes.len() as u64,
                    "case {case}: {layout:?}: {p:?}"
                );
            }
        }
    }
}
