//! A realistic music library of N tagged files: many artists and albums, Unicode, hostile
//! names, missing tags, multi-disc albums, compilations, duplicates and non-UTF-8 file names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use musicfs_tags::Track;

use crate::{Format, Rng, write_track};

#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub format: Format,
    /// The tags written (`Track::default()` for an untagged file).
    pub track: Track,
}

const FIRST: &[&str] = &[
    "Radio",
    "Massive",
    "Björk",
    "Sigur",
    "The",
    "Boards of",
    "Aphex",
    "Cocteau",
    "Мумий",
    "坂本",
    "Daft",
    "Portis",
    "Mogwai",
    "Low",
    "Can",
    "Neu!",
    "Stereo",
    "Air",
    "Talk",
    "Nick",
];
const SECOND: &[&str] = &[
    "head",
    "Attack",
    "Guðmundsdóttir",
    "Rós",
    "Beatles",
    "Canada",
    "Twin",
    "Twins",
    "Тролль",
    "龍一",
    "Punk",
    "head",
    "Young Team",
    "Slow",
    "Tago Mago",
    "Lab",
    "Talk",
    "Cave",
    "Drake",
    "AC/DC",
];
const WORDS: &[&str] = &[
    "Paranoid",
    "Android",
    "Teardrop",
    "Hyperballad",
    "Svefn-g-englar",
    "Roygbiv",
    "Windowlicker",
    "Heaven",
    "Song",
    "Intro",
    "Outro",
    "Untitled",
    "Ünïcödé",
    "Ночь",
    "東京",
    "Love",
    "Night",
    "../../etc",
    "Part 1/2",
    "Tab\tName",
    "Ω",
    "Dub",
    "Live",
    "Remix",
    "(Demo)",
    "Île",
    "Fjör",
];
const GENRES: &[&str] = &[
    "Rock",
    "Electronic",
    "Ambient",
    "Jazz",
    "Post-Rock",
    "Hip-Hop",
    "Krautrock",
];

fn words(rng: &mut Rng, n: u64) -> String {
    (0..1 + rng.below(n))
        .map(|_| *rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes a name usable on disk: no '/' or NUL.
fn disk_name(s: &str) -> String {
    s.replace(['/', '\0'], "-")
}

/// Writes `n` tagged files below `root`, deterministically from `seed`. About 100 files per
/// artist, 8–14 per album, so the tree has the shape of a real library at any N.
pub fn generate_library(root: &Path, n: usize, seed: u64) -> anyhow::Result<Vec<GeneratedFile>> {
    generate_library_with(root, n, seed, &Format::ALL)
}

/// [`generate_library`] restricted to some formats (to compare with tools that read fewer).
pub fn generate_library_with(
    root: &Path,
    n: usize,
    seed: u64,
    formats: &[Format],
) -> anyhow::Result<Vec<GeneratedFile>> {
    anyhow::ensure!(!formats.is_empty(), "no format to generate");
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut artist_ix = 0u64;
    while out.len() < n {
        artist_ix += 1;
        let artist = format!("{} {} {artist_ix}", rng.pick(FIRST), rng.pick(SECOND));
        let albums = 1 + rng.below(8);
        for album_ix in 0..albums {
            if out.len() >= n {
                break;
            }
            let album = format!("{} {album_ix}", words(&mut rng, 3));
            let year = 1960 + rng.below(65);
            let discs = if rng.chance(10) { 2 } else { 1 };
            let compilation = rng.chance(5);
            let missing_year = rng.chance(10);
            let tracks = 8 + rng.below(7) as u32;
            let format = *rng.pick(formats);
            let genre = rng.pick(GENRES).to_string();
            let dir = root
                .join(disk_name(&artist))
                .join(disk_name(&format!("{year} - {album}")));
            std::fs::create_dir_all(&dir)?;
            for disc in 1..=discs {
                for number in 1..=tracks {
                    if out.len() >= n {
                        break;
                    }
                    let mut title = words(&mut rng, 4);
                    if rng.chance(1) {
                        title = "Long ".repeat(80).trim_end().to_owned(); // over 255 bytes rendered
                    }
                    let untagged = rng.chance(3);
                    let track = if untagged {
                        Track::default()
                    } else {
                        Track {
                            title: Some(title.clone()),
                            artist: Some(if compilation {
                                format!("{} {}", rng.pick(FIRST), rng.pick(SECOND))
                            } else {
                                artist.clone()
                            }),
                            album: Some(album.clone()),
                            albumartist: compilation.then(|| "Various Artists".to_owned()),
                            genre: Some(genre.clone()),
                            date: (!missing_year).then(|| year.to_string()),
                            track: Some(number),
                            tracktotal: Some(tracks),
                            disc: (discs > 1).then_some(disc),
                            disctotal: (discs > 1).then_some(discs),
                            compilation,
                            ..Track::default()
                        }
                    };
                    let stem = format!("{disc}-{number:02} {}", disk_name(&title));
                    let stem: String = stem.chars().take(120).collect();
                    let mut name = format!("{stem}.{}", format.ext()).into_bytes();
                    if rng.chance(1) {
                        name.insert(0, 0xFF); // not valid UTF-8
                    }
                    let path = dir.join(OsStr::from_bytes(&name));
                    let salt = out.len() as u32;
                    write_track(&path, format, &track, salt)?;
                    out.push(GeneratedFile {
                        path,
                        format,
                        track,
                    });
                    if rng.chance(1) && out.len() < n {
                        // A duplicate rip with identical tags: its virtual name collides.
                        let mut dup = name.clone();
                        dup.splice(0..0, b"copy of ".iter().copied());
                        let path = dir.join(OsStr::from_bytes(&dup));
                        std::fs::copy(&out.last().unwrap().path, &path)?;
                        let track = out.last().unwrap().track.clone();
                        out.push(GeneratedFile {
                            path,
                            format,
                            track,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}
