//! The fields a template may name, and their values for one file.

use musicfs_tags::Track;

use crate::layout::FileName;

/// Every field a template may reference. An unknown name is an error at parse time.
pub const FIELDS: &[&str] = &[
    "title",
    "artist",
    "album",
    "albumartist",
    "album_artist",
    "album_name",
    "album_year",
    "genre",
    "date",
    "year",
    "track",
    "tracktotal",
    "disc",
    "disctotal",
    "multidisc",
    "comp",
    "format",
    "ext",
    "filename",
    "bitrate",
    "samplerate",
    "bitdepth",
    "channels",
];

/// The value of `field` for one file; `None` when absent, never `Some("")`. Slashes in values
/// become `_` here, so only a template's literal `/` separates path components.
pub(crate) fn value(field: &str, track: &Track, file: &FileName) -> Option<String> {
    let text = |s: &Option<String>| s.clone();
    let raw = match field {
        "title" => text(&track.title),
        "artist" => text(&track.artist),
        "album" => text(&track.album),
        "albumartist" => text(&track.albumartist),
        // Album-level values, the same for every track of one real album (crate::album in
        // musicfs-tags), falling back to the track's own tags.
        "album_artist" => track
            .album_group
            .artist
            .clone()
            .or_else(|| track.albumartist.clone())
            .or_else(|| track.artist.clone()),
        "album_name" => track
            .album_group
            .album
            .clone()
            .or_else(|| track.album.clone()),
        "album_year" => track
            .album_group
            .year
            .or_else(|| track.year())
            .map(|y| format!("{y:04}")),
        "genre" => text(&track.genre),
        "date" => text(&track.date),
        "year" => track.year().map(|y| format!("{y:04}")),
        // Zero-padded to two digits, or to the width of the track total on huge albums.
        "track" => track.track.map(|n| {
            let width = track.tracktotal.map_or(2, |t| t.to_string().len().max(2));
            format!("{n:0width$}")
        }),
        "tracktotal" => track.tracktotal.map(|n| n.to_string()),
        "disc" => track.disc.map(|n| n.to_string()),
        "disctotal" => track.disctotal.map(|n| n.to_string()),
        "multidisc" => (track.disctotal.unwrap_or(0) > 1 || track.disc.unwrap_or(0) > 1)
            .then(|| "1".to_owned()),
        "comp" => track.compilation.then(|| "1".to_owned()),
        "format" => text(&track.format),
        "ext" => Some(file.ext.to_owned()),
        "filename" => Some(file.stem.to_owned()),
        "bitrate" => track.bitrate_kbps.map(|n| n.to_string()),
        "samplerate" => track.sample_rate.map(|n| n.to_string()),
        "bitdepth" => track.bit_depth.map(|n| n.to_string()),
        "channels" => track.channels.map(|n| n.to_string()),
        _ => None,
    }?;
    let cleaned = raw.replace('/', "_");
    (!cleaned.trim().is_empty()).then_some(cleaned)
}
