//! Minimal spec-valid audio containers, tagged with lofty.

use std::io::Write;
use std::path::Path;

use lofty::config::WriteOptions;
use lofty::prelude::*;
use lofty::tag::{Tag, TagType};
use musicfs_tags::Track;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Flac,
    Mp3,
    Wav,
    Aiff,
    Opus,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Flac,
        Format::Mp3,
        Format::Wav,
        Format::Aiff,
        Format::Opus,
    ];

    pub fn ext(self) -> &'static str {
        match self {
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::Wav => "wav",
            Format::Aiff => "aiff",
            Format::Opus => "opus",
        }
    }

    /// The `files.format` the scanner records for this container.
    pub fn lofty_name(self) -> &'static str {
        match self {
            Format::Flac => "flac",
            Format::Mp3 => "mpeg",
            Format::Wav => "wav",
            Format::Aiff => "aiff",
            Format::Opus => "opus",
        }
    }

    pub fn by_ext(ext: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ext() == ext)
    }

    fn tag_type(self) -> TagType {
        match self {
            Format::Flac | Format::Opus => TagType::VorbisComments,
            Format::Mp3 | Format::Wav | Format::Aiff => TagType::Id3v2,
        }
    }

    /// The untagged container bytes. `salt` varies the audio payload so files differ.
    pub fn bytes(self, salt: u32) -> Vec<u8> {
        match self {
            Format::Flac => flac(salt),
            Format::Mp3 => mp3(salt),
            Format::Wav => wav(salt),
            Format::Aiff => aiff(salt),
            Format::Opus => opus(salt, 2),
        }
    }
}

/// Writes an audio file of `format` at `path` carrying the tags of `track` (fields left
/// `None` are not written). Audio properties in `track` are ignored.
pub fn write_track(path: &Path, format: Format, track: &Track, salt: u32) -> anyhow::Result<()> {
    std::fs::File::create(path)?.write_all(&format.bytes(salt))?;
    let mut tag = Tag::new(format.tag_type());
    if let Some(v) = &track.title {
        tag.set_title(v.clone());
    }
    if let Some(v) = &track.artist {
        tag.set_artist(v.clone());
    }
    if let Some(v) = &track.album {
        tag.set_album(v.clone());
    }
    if let Some(v) = &track.genre {
        tag.set_genre(v.clone());
    }
    if let Some(v) = &track.albumartist {
        tag.insert_text(ItemKey::AlbumArtist, v.clone());
    }
    if let Some(v) = &track.date {
        tag.insert_text(ItemKey::RecordingDate, v.clone());
    }
    if let Some(v) = track.track {
        tag.set_track(v);
    }
    if let Some(v) = track.tracktotal {
        tag.set_track_total(v);
    }
    if let Some(v) = track.disc {
        tag.set_disk(v);
    }
    if let Some(v) = track.disctotal {
        tag.set_disk_total(v);
    }
    if track.compilation {
        tag.insert_text(ItemKey::FlagCompilation, "1".into());
    }
    if !tag.is_empty() {
        tag.save_to_path(path, WriteOptions::default())?;
    }
    Ok(())
}

/// Grows a file written by [`write_track`] by about `bytes` of audio, so it has the size of a
/// real track and the shape a parser expects: MPEG frames appended for MP3 (a parser scanning
/// frames finds frames), the `data` / `SSND` chunk grown in place for WAV / AIFF (tags after
/// it stay after it), silence appended for FLAC (its parsers take the stream length from
/// STREAMINFO). Not for Opus: real Ogg files are pages to the end, and zeros are not.
pub fn pad_audio(path: &Path, format: Format, bytes: usize) -> std::io::Result<()> {
    let bytes = bytes & !1; // chunks stay even-sized
    match format {
        Format::Mp3 => {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
            let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
            file.write_all(&frame.repeat(bytes / 417))
        }
        Format::Flac => {
            let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
            file.write_all(&vec![0u8; bytes])
        }
        Format::Wav => grow_chunk(path, b"data", false, bytes),
        Format::Aiff => grow_chunk(path, b"SSND", true, bytes),
        Format::Opus => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "pad_audio: Ogg files cannot be padded realistically",
        )),
    }
}

/// Inserts `bytes` of silence at the end of the RIFF/FORM chunk `id` and fixes the sizes.
fn grow_chunk(path: &Path, id: &[u8; 4], big_endian: bool, bytes: usize) -> std::io::Result<()> {
    let mut data = std::fs::read(path)?;
    let read = |b: &[u8]| -> usize {
        let a = [b[0], b[1], b[2], b[3]];
        (if big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }) as usize
    };
    let write = |b: &mut [u8], v: usize| {
        let v = v as u32;
        b.copy_from_slice(&if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    };
    let mut at = 12;
    while at + 8 <= data.len() {
        let size = read(&data[at + 4..at + 8]);
        if &data[at..at + 4] == id {
            let end = at + 8 + size;
            data.splice(end..end, std::iter::repeat_n(0u8, bytes));
            write(&mut data[at + 4..at + 8], size + bytes);
            let total = read(&data[4..8]);
            write(&mut data[4..8], total + bytes);
            return std::fs::write(path, data);
        }
        at += 8 + size + (size & 1);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("pad_audio: no {} chunk", String::from_utf8_lossy(id)),
    ))
}

/// An Ogg Opus file whose header declares 0 channels: lofty 0.25 panics reading its
/// properties. The scanner must contain that panic and record the file.
pub fn write_hostile_opus(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, opus(0, 0))
}

fn flac(salt: u32) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.push(0x80); // last metadata block, type 0 = STREAMINFO
    out.extend_from_slice(&[0, 0, 34]);
    out.extend_from_slice(&4096u16.to_be_bytes()); // min block size
    out.extend_from_slice(&4096u16.to_be_bytes()); // max block size
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // min/max frame size unknown
    // 20 bits sample rate 44100, 3 bits channels-1 = 1, 5 bits bps-1 = 15, 36 bits samples
    let samples: u64 = 44_100 * 3 + u64::from(salt % 1000);
    let packed: u64 = (44_100u64 << 44) | (1 << 41) | (15 << 36) | samples;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0u8; 16]); // MD5 unknown
    out
}

fn mp3(salt: u32) -> Vec<u8> {
    // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding, no CRC: 417-byte frames of silence.
    let mut out = Vec::new();
    for i in 0..40 {
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        let mut body = vec![0u8; 413];
        body[412] = (salt.wrapping_add(i) & 0x7F) as u8;
        out.extend_from_slice(&body);
    }
    out
}

fn pcm(salt: u32, frames: usize) -> Vec<u8> {
    (0..frames)
        .flat_map(|i| (((i as u32).wrapping_mul(salt | 1) % 2000) as i16 - 1000).to_le_bytes())
        .collect()
}

fn wav(salt: u32) -> Vec<u8> {
    let data = pcm(salt, 8_000);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8_000u32.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn aiff(salt: u32) -> Vec<u8> {
    let frames = 8_000u32;
    let data: Vec<u8> = pcm(salt, frames as usize)
        .chunks(2)
        .flat_map(|s| [s[1], s[0]]) // big-endian samples
        .collect();
    let mut comm = Vec::new();
    comm.extend_from_slice(&1i16.to_be_bytes());
    comm.extend_from_slice(&frames.to_be_bytes());
    comm.extend_from_slice(&16i16.to_be_bytes());
    // 8000 Hz as an 80-bit IEEE extended float
    comm.extend_from_slice(&[0x40, 0x0B, 0xFA, 0, 0, 0, 0, 0, 0, 0]);
    let mut body = b"AIFF".to_vec();
    body.extend_from_slice(b"COMM");
    body.extend_from_slice(&(comm.len() as u32).to_be_bytes());
    body.extend_from_slice(&comm);
    body.extend_from_slice(b"SSND");
    body.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
    body.extend_from_slice(&[0u8; 8]); // offset, block size
    body.extend_from_slice(&data);
    let mut out = b"FORM".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn opus(salt: u32, channels: u8) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(channels);
    head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0); // mapping family
    let mut tags = b"OpusTags".to_vec();
    let vendor = b"musicfs-fixtures";
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    // 50 packets of 20 ms CELT silence (TOC 0xF8 + 2 bytes): one second of audio.
    let packets: Vec<Vec<u8>> = (0..50).map(|_| vec![0xF8, 0xFF, 0xFE]).collect();
    let serial = 0x6D66_0000 | (salt & 0xFFFF);
    let mut out = Vec::new();
    ogg_page(&mut out, serial, 0, 0x02, 0, &[head]);
    ogg_page(&mut out, serial, 1, 0x00, 0, &[tags]);
    ogg_page(&mut out, serial, 2, 0x04, 48_000 + 312, &packets);
    out
}

fn ogg_page(
    out: &mut Vec<u8>,
    serial: u32,
    seq: u32,
    flags: u8,
    granule: u64,
    packets: &[Vec<u8>],
) {
    let mut lacing = Vec::new();
    for p in packets {
        let mut len = p.len();
        while len >= 255 {
            lacing.push(255);
            len -= 255;
        }
        lacing.push(len as u8);
    }
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 of Ogg pages: polynomial 0x04C11DB7, no reflection, initial value 0.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}
