//! Album-level values resolved over an album group, so one real album shows as one folder.
//!
//! Tags are per track, and real libraries are inconsistent: one track misses its year, another
//! its album artist. Rendering folder names from each track's own tags splits such an album
//! into several folders. So the scanner resolves, per *album group*, the values its folder
//! is named by, by majority:
//!
//! - an album group is the tracks of one real folder that share an album tag (compared
//!   trimmed and case-insensitively), plus the tracks without an album tag in a folder whose
//!   tagged tracks all name one album;
//! - its album name is the most common spelling; its year the most common year;
//! - its album artist the most common album artist tag; without any, the most common artist
//!   if it holds at least half of the tracks that name one, else (several artists, none
//!   leading, or the compilation flag on most tracks) the compilation artist,
//!   "Various Artists" by default.
//!
//! A track in no group (no album tag, and its folder's albums disagree) resolves to nothing:
//! its own tags are used. So a flat folder of unrelated tracks is never merged.

use std::collections::HashMap;

/// The values a track's album folder is named by. `None`: fall back to the track's own tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlbumValues {
    pub album: Option<String>,
    pub artist: Option<String>,
    pub year: Option<i32>,
}

/// What grouping needs of one track.
#[derive(Debug, Clone, Copy, Default)]
pub struct Member<'a> {
    pub album: Option<&'a str>,
    pub albumartist: Option<&'a str>,
    pub artist: Option<&'a str>,
    pub year: Option<i32>,
    pub compilation: bool,
}

/// The album artist of a compilation when none is configured.
pub const VARIOUS_ARTISTS: &str = "Various Artists";

fn key(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The most common value, ties broken by the smallest (deterministic whatever the order).
fn majority<T: Ord + Clone + std::hash::Hash>(
    values: impl Iterator<Item = T>,
) -> Option<(T, usize)> {
    let mut counts: HashMap<T, usize> = HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
}

/// Resolves the album values of every track of one real folder; `members[i]` gets `out[i]`.
pub fn resolve_folder(members: &[Member<'_>], various: &str) -> Vec<AlbumValues> {
    let keys: Vec<Option<String>> = members
        .iter()
        .map(|m| m.album.map(key).filter(|k| !k.is_empty()))
        .collect();
    let mut distinct: Vec<&String> = keys.iter().flatten().collect();
    distinct.sort();
    distinct.dedup();
    // Tracks without an album join the folder's album only if the folder has exactly one.
    let only_album = (distinct.len() == 1).then(|| distinct[0].clone());
    let group_of: Vec<Option<String>> = keys
        .iter()
        .map(|k| k.clone().or_else(|| only_album.clone()))
        .collect();
    let mut groups: HashMap<&String, Vec<usize>> = HashMap::new();
    for (i, g) in group_of.iter().enumerate() {
        if let Some(g) = g {
            groups.entry(g).or_default().push(i);
        }
    }
    let mut out = vec![AlbumValues::default(); members.len()];
    for indexes in groups.values() {
        let values = resolve_group(indexes.iter().map(|&i| &members[i]), various);
        for &i in indexes {
            out[i] = values.clone();
        }
    }
    out
}

fn resolve_group<'a, 'm: 'a>(
    members: impl Iterator<Item = &'a Member<'m>> + Clone,
    various: &str,
) -> AlbumValues {
    let album =
        majority(members.clone().filter_map(|m| m.album.map(str::trim))).map(|(a, _)| a.to_owned());
    let year = majority(members.clone().filter_map(|m| m.year)).map(|(y, _)| y);
    let total = members.clone().count();
    let flagged = members.clone().filter(|m| m.compilation).count();
    let artist = if let Some((a, _)) =
        majority(members.clone().filter_map(|m| m.albumartist.map(str::trim)))
    {
        Some(a.to_owned())
    } else if flagged * 2 > total {
        Some(various.to_owned())
    } else {
        let named = members.clone().filter(|m| m.artist.is_some()).count();
        match majority(members.clone().filter_map(|m| m.artist.map(str::trim))) {
            Some((a, n)) if n * 2 >= named => Some(a.to_owned()),
            Some(_) => Some(various.to_owned()),
            None => None,
        }
    };
    AlbumValues {
        album,
        artist,
        year,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(album: Option<&'a str>, artist: Option<&'a str>, year: Option<i32>) -> Member<'a> {
        Member {
            album,
            artist,
            year,
            ..Member::default()
        }
    }

    #[test]
    fn one_album_with_gaps_resolves_as_one() {
        let tracks = [
            m(Some("OK Computer"), Some("Radiohead"), Some(1997)),
            m(Some("OK Computer"), Some("Radiohead"), None),
            m(None, Some("Radiohead"), Some(1997)),
            m(Some("ok computer "), None, Some(1997)),
        ];
        let out = resolve_folder(&tracks, VARIOUS_ARTISTS);
        let want = AlbumValues {
            album: Some("OK Computer".into()),
            artist: Some("Radiohead".into()),
            year: Some(1997),
        };
        assert!(out.iter().all(|v| *v == want), "{out:#?}");
    }

    #[test]
    fn several_artists_without_an_album_artist_are_a_compilation() {
        let tracks = [
            m(Some("Hits"), Some("A"), Some(2001)),
            m(Some("Hits"), Some("B"), Some(2001)),
            m(Some("Hits"), Some("C"), Some(2001)),
        ];
        let out = resolve_folder(&tracks, "VA");
        assert!(out.iter().all(|v| v.artist.as_deref() == Some("VA")));
        // One guest track does not make an album a compilation.
        let tracks = [
            m(Some("Solo"), Some("A"), None),
            m(Some("Solo"), Some("A"), None),
            m(Some("Solo"), Some("A feat. B"), None),
        ];
        let out = resolve_folder(&tracks, "VA");
        assert!(out.iter().all(|v| v.artist.as_deref() == Some("A")));
    }

    #[test]
    fn a_flat_folder_of_unrelated_tracks_is_not_merged() {
        let tracks = [
            m(Some("Album X"), Some("A"), Some(1990)),
            m(Some("Album Y"), Some("B"), Some(2000)),
            m(None, Some("C"), Some(2010)),
            m(None, None, None),
        ];
        let out = resolve_folder(&tracks, VARIOUS_ARTISTS);
        assert_eq!(out[0].album.as_deref(), Some("Album X"));
        assert_eq!(out[1].album.as_deref(), Some("Album Y"));
        assert_eq!(out[2], AlbumValues::default(), "untagged stays itself");
        assert_eq!(out[3], AlbumValues::default());
    }
}
