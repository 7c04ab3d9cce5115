//! Reading a `Track` with lofty, with every failure (including panics) turned into a `TagError`.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

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
}

impl TagError {
    /// The cause without the path, as stored in `files.scan_error`.
    pub fn cause(&self) -> String {
        match self {
            TagError::Open { source, .. } => format!("cannot open: {source}"),
            TagError::Parse { chain, .. } => chain.clone(),
            TagError::Panic { message, .. } => format!("tag reader panicked: {message}"),
        }
    }
}

/// Reads tags and audio properties of the file at `path`.
///
/// Parsing is relaxed (one bad field does not fail the whole file) and cover art is skipped.
/// A panic inside lofty (it has known ones on hostile files) is caught and returned as
/// `TagError::Panic`; this requires `panic = "unwind"`, the default, in every profile.
pub fn read_track(path: &Path) -> Result<Track, TagError> {
    let file = std::fs::File::open(path).map_err(|source| TagError::Open {
        path: path.to_owned(),
        source,
    })?;
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::Relaxed)
        .read_cover_art(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let probe = lofty::probe::Probe::new(std::io::BufReader::new(file))
            .options(options)
            .guess_file_type()
            .map_err(|e| error_chain(&e))?;
        probe.read().map_err(|e| error_chain(&e))
    }));
    match result {
        Ok(Ok(tagged)) => Ok(track_from(&tagged)),
        Ok(Err(chain)) => Err(TagError::Parse {
            path: path.to_owned(),
            chain,
        }),
        Err(payload) => Err(TagError::Panic {
            path: path.to_owned(),
            message: panic_message(payload.as_ref()),
        }),
    }
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
