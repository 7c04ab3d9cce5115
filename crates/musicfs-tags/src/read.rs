//! Reading a `Track` with lofty, with every failure (including panics) turned into a `TagError`.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use lofty::config::{ParseOptions, ParsingMode};
use lofty::file::FileType;
use lofty::prelude::*;
use lofty::tag::Tag;

use crate::Track;

/// Why a file's tags could not be read. `Display` gives the path and the whole cause chain:
/// lofty's top-level messages are terse ("failed to parse Mpeg file"), the cause is below.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {chain}")]
    Parse { path: PathBuf, chain: String },
    #[error("{path}: tag reader panicked: {message}")]
    Panic { path: PathBuf, message: String },
    /// The disk failed while reading (EIO, a dropped network disk): not the file's fault.
    #[error("{path}: {chain}")]
    Io { path: PathBuf, chain: String },
    /// The per-file time limit ran out (a hung network disk, a parser stuck in a loop), or too
    /// many earlier reads are still stuck to start another.
    #[error("{path}: {reason}")]
    TimedOut { path: PathBuf, reason: String },
}

impl TagError {
    /// The cause without the path, as stored in `files.scan_error`.
    pub fn cause(&self) -> String {
        match self {
            TagError::Open { source, .. } => format!("cannot open: {source}"),
            TagError::Parse { chain, .. } => chain.clone(),
            TagError::Panic { message, .. } => format!("tag reader panicked: {message}"),
            TagError::TimedOut { reason, .. } => reason.clone(),
            TagError::Io { chain, .. } => chain.clone(),
        }
    }

    /// The failure may pass (a time limit, an open error): the file should be read again on
    /// the next scan even if it has not changed. Broken contents are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TagError::Open { .. } | TagError::TimedOut { .. } | TagError::Io { .. }
        )
    }

    /// The file no longer exists (it vanished between listing and reading).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TagError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads tags and audio properties of the file at `path`.
///
/// Parsing is relaxed (one bad field does not fail the whole file) and cover art is skipped.
/// A panic inside lofty (it has known ones on hostile files) is caught and returned as
/// `TagError::Panic`; this requires `panic = "unwind"`, the default, in every profile.
pub fn read_track(path: &Path) -> Result<Track, TagError> {
    read_track_until(path, None)
}

/// [`read_track`] that gives up once `deadline` passes: every read of the file after it fails,
/// which stops lofty at its next I/O. (A hard limit, for a read stuck in the kernel or in a
/// loop without I/O, is [`crate::read_track_within`].)
pub(crate) fn read_track_until(path: &Path, deadline: Option<Instant>) -> Result<Track, TagError> {
    let file = std::fs::File::open(path).map_err(|source| TagError::Open {
        path: path.to_owned(),
        source,
    })?;
    let reader = DeadlineReader {
        inner: file,
        deadline,
    };
    let result = parse(std::io::BufReader::new(reader), path);
    if deadline.is_some_and(|d| Instant::now() >= d) && result.is_err() {
        return Err(TagError::TimedOut {
            path: path.to_owned(),
            reason: TIMED_OUT.to_owned(),
        });
    }
    result
}

/// [`read_track`] from any reader of a file's bytes: a remote file read in ranges. `path`
/// names it in errors. The reader enforces its own time limit (its reads fail after it);
/// errors of the reader are `TagError::Io` (transient: read again next scan).
pub fn read_track_from<R: Read + Seek>(reader: R, path: &Path) -> Result<Track, TagError> {
    parse(reader, path)
}

fn parse<R: Read + Seek>(reader: R, path: &Path) -> Result<Track, TagError> {
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::Relaxed)
        .read_cover_art(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let probe = lofty::probe::Probe::new(reader)
            .options(options)
            .guess_file_type()
            .map_err(|e| failure(&e))?;
        probe.read().map_err(|e| failure(&e))
    }));
    match result {
        Ok(Ok(tagged)) => Ok(track_from(&tagged)),
        Ok(Err((chain, true))) => Err(TagError::Io {
            path: path.to_owned(),
            chain,
        }),
        Ok(Err((chain, false))) => Err(TagError::Parse {
            path: path.to_owned(),
            chain,
        }),
        Err(payload) => Err(TagError::Panic {
            path: path.to_owned(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

pub(crate) const TIMED_OUT: &str = "tag reading hit the per-file time limit";

/// A file whose reads fail after a deadline.
struct DeadlineReader {
    inner: std::fs::File,
    deadline: Option<Instant>,
}

impl DeadlineReader {
    fn check(&self) -> std::io::Result<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, TIMED_OUT))
            }
            _ => Ok(()),
        }
    }
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl Seek for DeadlineReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.check()?;
        self.inner.seek(pos)
    }
}

/// The error's cause chain, and whether an I/O error of the disk (not of the data: a short
/// file is `UnexpectedEof`) caused it.
fn failure(err: &(dyn std::error::Error + 'static)) -> (String, bool) {
    let mut disk = false;
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            disk |= !matches!(
                io.kind(),
                UnexpectedEof | InvalidData | InvalidInput | OutOfMemory
            );
        }
        cause = e.source();
    }
    (error_chain(err), disk)
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn format_name(file_type: FileType) -> String {
    match file_type {
        FileType::Aac => "aac",
        FileType::Aiff => "aiff",
        FileType::Ape => "ape",
        FileType::Flac => "flac",
        FileType::Mpeg => "mpeg",
        FileType::Mp4 => "mp4",
        FileType::Mpc => "mpc",
        FileType::Opus => "opus",
        FileType::Vorbis => "vorbis",
        FileType::Speex => "speex",
        FileType::Wav => "wav",
        FileType::WavPack => "wavpack",
        _ => "other",
    }
    .to_owned()
}

fn track_from(tagged: &lofty::file::TaggedFile) -> Track {
    let props = tagged.properties();
    // Primary tag first, then the others: a field missing from the primary tag (an ID3v1-only
    // year, an APE album artist) is still found.
    let mut tags: Vec<&Tag> = Vec::with_capacity(tagged.tags().len());
    tags.extend(tagged.primary_tag());
    tags.extend(
        tagged
            .tags()
            .iter()
            .filter(|t| Some(t.tag_type()) != tagged.primary_tag().map(|p| p.tag_type())),
    );
    let text = |get: &dyn Fn(&Tag) -> Option<Cow<'_, str>>| -> Option<String> {
        tags.iter().find_map(|t| clean(get(t)?.as_ref()))
    };
    let key = |k: ItemKey| tags.iter().find_map(|t| clean(t.get_string(k)?));
    let number = |get: &dyn Fn(&Tag) -> Option<u32>| tags.iter().find_map(|t| get(t));
    let duration_ms = u64::try_from(props.duration().as_millis()).ok();
    Track {
        format: Some(format_name(tagged.file_type())),
        duration_ms: duration_ms.filter(|&d| d > 0),
        bitrate_kbps: props.audio_bitrate().or(props.overall_bitrate()),
        sample_rate: props.sample_rate(),
        bit_depth: props.bit_depth(),
        channels: props.channels(),
        title: text(&|t| t.title()),
        artist: text(&|t| t.artist()),
        album: text(&|t| t.album()),
        albumartist: key(ItemKey::AlbumArtist),
        genre: text(&|t| t.genre()),
        date: key(ItemKey::RecordingDate)
            .or_else(|| key(ItemKey::Year))
            .or_else(|| key(ItemKey::ReleaseDate))
            .or_else(|| key(ItemKey::OriginalReleaseDate)),
        track: number(&|t| t.track()),
        tracktotal: number(&|t| t.track_total()),
        disc: number(&|t| t.disk()),
        disctotal: number(&|t| t.disk_total()),
        compilation: key(ItemKey::FlagCompilation).is_some_and(|v| v == "1" || v == "true"),
        album_group: crate::AlbumValues::default(),
    }
}

/// Trims a tag value; empty means absent. Embedded NULs (ID3 multi-value separators) become
/// "; " so a value never hides text after a NUL.
fn clean(value: &str) -> Option<String> {
    let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if value.is_empty() {
        return None;
    }
    Some(if value.contains('\0') {
        value
            .split('\0')
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        value.to_owned()
    })
}
