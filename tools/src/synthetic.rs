//! Synthetic DBs of N tracks written straight into SQLite (no audio scanned), for benchmarks
//! and scale tests: `artists × albums × tracks` in the default layout's shape.
//!
//! Rows are bulk-inserted in one transaction per 100K tracks, keeping every invariant the
//! writer keeps (`musicfs check` passes). The first tracks are backed by real audio files
//! (`backing`, directly inside the origin root) and read back real bytes through a mount; the
//! others name files that do not exist (opening them fails with ENOENT). Synthetic DBs are for
//! mounting, not for rescanning.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use musicfs_db::PathBytes;
use rusqlite::params;

/// Shape of a synthetic library.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub artists: u64,
    pub albums_per_artist: u64,
    pub tracks_per_album: u64,
}

impl Shape {
    /// About `n` tracks: 10 per album, 10 albums per artist, so n/100 artists at the root.
    pub fn for_tracks(n: u64) -> Shape {
        Shape {
            artists: n.div_ceil(100).max(1),
            albums_per_artist: 10,
            tracks_per_album: 10,
        }
    }

    pub fn tracks(&self) -> u64 {
        self.artists * self.albums_per_artist * self.tracks_per_album
    }
}

const TRACKS_PER_TX: u64 = 100_000;

/// How synthetic tags are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `Artist 0000042` / `Album 003` / `Track 7 of Album 003`: the shape the trivial-FUSE
    /// floor serves, for mount benchmarks.
    Numbered,
    /// Made-up words with a Zipf-like distribution, genres and several formats, for search
    /// benchmarks (see `words.rs`).
    Words,
}

const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Jazz",
    "Electronic",
    "Hip Hop",
    "Classical",
    "Folk",
    "Metal",
    "Ambient",
    "Soul",
    "Reggae",
    "Blues",
    "Punk",
    "Country",
    "Techno",
    "House",
    "Indie",
    "Latin",
];
const WORD_EXTS: &[&str] = &["flac", "mp3", "opus", "m4a", "ogg", "flac", "mp3"];

/// Writes a new DB at `db` with `shape` tracks in origin `root`. `backing` are real files
/// directly inside `root`: track i (1-based) ≤ backing.len() is backed by `backing[i - 1]`.
pub fn write_synthetic_db(
    db: &Path,
    shape: Shape,
    root: &Path,
    backing: &[&Path],
) -> anyhow::Result<()> {
    write_synthetic_db_named(db, shape, root, backing, Naming::Numbered)
}

/// [`write_synthetic_db`] with a choice of tag naming.
pub fn write_synthetic_db_named(
    db: &Path,
    shape: Shape,
    root: &Path,
    backing: &[&Path],
    naming: Naming,
) -> anyhow::Result<()> {
    let vocabulary = (naming == Naming::Words).then(|| crate::words::Words::new(7));
    let mut rng = crate::Rng::new(11);
    anyhow::ensure!(!db.exists(), "{} already exists", db.display());
    drop(musicfs_db::Writer::open(db)?); // schema and migrations
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")?;
    let real: Vec<(Vec<u8>, i64, i64, String)> = backing
        .iter()
        .map(|p| {
            anyhow::ensure!(
                p.parent() == Some(root),
                "{} is not directly in {}",
                p.display(),
                root.display()
            );
            let meta = std::fs::metadata(p)?;
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            Ok((
                p.file_name().unwrap().as_bytes().to_vec(),
                meta.len() as i64,
                meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                ext,
            ))
        })
        .collect::<anyhow::Result<_>>()?;

    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO origins (id, root) VALUES (1, ?1)",
        [PathBytes::borrowed(root.as_os_str().as_bytes())],
    )?;
    tx.execute(
        "INSERT INTO folders (id, origin_id, parent_id, path) VALUES (1, 1, NULL, '')",
        [],
    )?;
    tx.execute(
        "INSERT INTO views (name, template) VALUES ('', '$artist/$album ($year)/$track - $title')",
        [],
    )?;
    tx.execute(
        "UPDATE dirs SET nentries = ?1 WHERE id = 1",
        [shape.artists as i64],
    )?;
    tx.commit()?;

    let mut next_entry: i64 = 2;
    let mut file_id: i64 = 0;
    let mut total_bytes: i64 = 0;
    let mut tx = conn.transaction()?;
    for a in 0..shape.artists {
        // Word names carry their number too: two artists (or albums) may draw the same words.
        let artist = match &vocabulary {
            None => format!("Artist {a:07}"),
            Some(v) => {
                let n = 1 + rng.below(3) as usize;
                format!("{} {a}", v.phrase(&mut rng, n))
            }
        };
        let genre = vocabulary.as_ref().map(|_| *rng.pick(GENRES));
        let artist_id = next_entry;
        next_entry += 1;
        insert_dir(&tx, artist_id, 1, &artist, shape.albums_per_artist)?;
        for b in 0..shape.albums_per_artist {
            let year = 1960 + (a + b) % 65;
            let album = match &vocabulary {
                None => format!("Album {b:03}"),
                Some(v) => {
                    let n = 1 + rng.below(3) as usize;
                    format!("{} {b}", v.phrase(&mut rng, n))
                }
            };
            let album_id = next_entry;
            next_entry += 1;
            insert_dir(
                &tx,
                album_id,
                artist_id,
                &format!("{album} ({year})"),
                shape.tracks_per_album,
            )?;
            for t in 1..=shape.tracks_per_album {
                file_id += 1;
                let (name, size, mtime, ext) = match real.get(file_id as usize - 1) {
                    Some((name, size, mtime, ext)) => (name.clone(), *size, *mtime, ext.clone()),
                    None => {
                        let ext = match naming {
                            Naming::Numbered => "flac",
                            Naming::Words => WORD_EXTS[file_id as usize % WORD_EXTS.len()],
                        };
                        (
                            format!("track-{file_id:09}.{ext}").into_bytes(),
                            4_000_000 + file_id % 1000,
                            0,
                            ext.to_owned(),
                        )
                    }
                };
                total_bytes += size;
                let title = match &vocabulary {
                    None => format!("Track {t} of {album}"),
                    Some(v) => {
                        let n = 1 + rng.below(4) as usize;
                        v.phrase(&mut rng, n)
                    }
                };
                tx.prepare_cached(
                    "INSERT INTO files (id, folder_id, name, size, mtime_ns, ext, format, title, \
                     artist, album, date, year, track, tracktotal, scanned_ns, genre) \
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, 0, ?12)",
                )?
                .execute(params![
                    file_id,
                    PathBytes::borrowed(&name),
                    size,
                    mtime,
                    ext,
                    title,
                    artist,
                    album,
                    year as i64,
                    t as i64,
                    shape.tracks_per_album as i64,
                    genre
                ])?;
                tx.prepare_cached("INSERT INTO entries (id, parent_id, name, file_id, render_key) VALUES (?1, ?2, ?3, ?4, ?4)")?
                    .execute(params![next_entry, album_id, format!("{t:02} - {title}.{ext}"), file_id])?;
                next_entry += 1;
                if (file_id as u64).is_multiple_of(TRACKS_PER_TX) {
                    tx.commit()?;
                    tx = conn.transaction()?;
                }
            }
        }
    }
    tx.execute(
        "UPDATE totals SET files = ?1, bytes = ?2 WHERE id = 1",
        params![file_id, total_bytes],
    )?;
    // Rows went in directly: the search index is built from `files` on first use, not from
    // the outbox the triggers filled.
    tx.execute("DELETE FROM search_queue", [])?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

fn insert_dir(
    tx: &rusqlite::Transaction,
    id: i64,
    parent: i64,
    name: &str,
    children: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO entries (id, parent_id, name) VALUES (?1, ?2, ?3)")?
        .execute(params![id, parent, name])?;
    tx.prepare_cached("INSERT INTO dirs (id, nentries, mtime_ns) VALUES (?1, ?2, 0)")?
        .execute(params![id, children as i64])?;
    Ok(())
}
