//! Real-world files through the real scanner and a real mount: `../shared/corpus` (lofty's own
//! test suite, fuzz crashers included) and the registry corpus fetched by
//! `tools/fetch_corpus.py` (mutagen, claxon, hound, audiotags, mp3-metadata, mp4ameta,
//! audio-lena, Debian sound packages). The scanner never dies or hangs, every audio file is
//! either indexed with its tags or recorded with path and cause, and every file reads back
//! byte-identical through the mount.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use musicfs_db::PathBytes;
use musicfs_scan::ScanConfig;
use musicfs_tests::{audio_files_below, registry_corpus, scan_with_watchdog, shared_corpus};

/// The checks every corpus must pass. `min_readable` is the fraction (in %) of files lofty must
/// read: a drop means a regression in tag reading, not just a hostile corpus.
fn check_corpus(name: &str, corpus: &Path, min_files: usize, min_readable: i64) {
    let audio = audio_files_below(corpus);
    assert!(
        audio.len() >= min_files,
        "{name} corpus looks truncated: {} audio files",
        audio.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("corpus.db");
    let summary = scan_with_watchdog(
        ScanConfig::new(&db, vec![corpus.to_owned()]),
        Duration::from_secs(300),
    );
    assert_eq!(summary.added as usize, audio.len(), "{summary:?}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let problems = musicfs_db::check_consistency(&conn).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let unplaced: i64 = conn
        .query_row(
            "SELECT count(*) FROM files f WHERE NOT EXISTS \
             (SELECT 1 FROM entries e WHERE e.file_id = f.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        unplaced, 0,
        "every file, readable or not, appears in the tree"
    );

    // Every file: read (format known, tags as lofty reads them) or reported with a cause.
    let mut stmt = conn
        .prepare(
            "SELECT vpath, abs_path, format, scan_error, title, artist, album, track FROM tracks",
        )
        .unwrap();
    type Row = (
        String,
        PathBytes<'static>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<u32>,
    );
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), audio.len());
    let mut errors = 0;
    for (vpath, real, format, error, title, artist, album, track) in &rows {
        let real = Path::new(OsStr::from_bytes(&real.0));
        match error {
            Some(cause) => {
                assert!(!cause.is_empty(), "{}: empty cause", real.display());
                errors += 1;
            }
            None => {
                assert!(format.is_some(), "{}: read but no format", real.display());
                let t = musicfs_tags::read_track(real).unwrap();
                assert_eq!(
                    (&t.title, &t.artist, &t.album, &t.track),
                    (title, artist, album, track),
                    "{}: tags in the DB differ from the file's",
                    real.display()
                );
            }
        }
        // Byte-identical through the mount is checked below, for every row.
        let _ = vpath;
    }
    assert_eq!(errors, summary.errors, "every reported file is recorded");
    let files = rows.len() as i64;
    let readable = files - errors as i64;
    assert!(
        readable * 100 >= files * min_readable,
        "only {readable}/{files} {name} corpus files read"
    );
    eprintln!(
        "{name} corpus: {files} audio files, {errors} reported unreadable, {readable} indexed"
    );

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt)).unwrap();
    for (vpath, real, ..) in &rows {
        let through = std::fs::read(mnt.join(vpath)).unwrap();
        let original = std::fs::read(OsStr::from_bytes(&real.0)).unwrap();
        assert!(through == original, "{vpath} differs through the mount");
    }
    mounted.unmount().unwrap();

    let again = musicfs_scan::scan(&ScanConfig::new(&db, vec![corpus.to_owned()])).unwrap();
    assert_eq!(again.unchanged as usize, audio.len(), "{again:?}");
}

#[test]
fn shared_corpus_files_are_indexed_or_reported_and_read_back_identical() {
    if let Some(corpus) = shared_corpus() {
        check_corpus("shared", &corpus, 100, 80);
    }
}

#[test]
fn registry_corpus_files_are_indexed_or_reported_and_read_back_identical() {
    if let Some(corpus) = registry_corpus() {
        check_corpus("registry", &corpus, 200, 70);
    }
}
