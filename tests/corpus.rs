//! Real-world files (lofty's own test suite, fuzz crashers included): the scanner never dies,
//! and every audio file is either indexed with its tags or recorded with path and cause.

use std::os::unix::ffi::OsStrExt;

use musicfs_scan::{ScanConfig, scan};
use musicfs_tests::{files_below, shared_corpus};

#[test]
fn every_corpus_file_is_indexed_or_reported() {
    let Some(corpus) = shared_corpus() else {
        return;
    };
    let audio: Vec<_> = files_below(&corpus)
        .into_iter()
        .filter(|p| musicfs_tags::audio_extension(p.file_name().unwrap().as_bytes()).is_some())
        .collect();
    assert!(
        audio.len() > 100,
        "corpus looks truncated: {} audio files",
        audio.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("corpus.db");
    let summary =
        scan(&ScanConfig::new(&db, vec![corpus.clone()])).expect("scan never fails on bad files");
    assert_eq!(summary.added as usize, audio.len(), "{summary:?}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let problems = musicfs_db::check_consistency(&conn).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let (files, errors, unplaced): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), count(scan_error), \
             (SELECT count(*) FROM files f WHERE NOT EXISTS \
                 (SELECT 1 FROM entries e WHERE e.file_id = f.id)) FROM files",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(files as usize, audio.len());
    assert_eq!(
        errors as u64, summary.errors,
        "every reported file is recorded"
    );
    assert_eq!(
        unplaced, 0,
        "every file, readable or not, appears in the tree"
    );
    let blank: i64 = conn
        .query_row(
            "SELECT count(*) FROM files WHERE (scan_error IS NULL AND format IS NULL) \
             OR scan_error = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        blank, 0,
        "a file is either read (format known) or has a cause"
    );
    let readable = files - errors;
    assert!(
        readable * 10 > files * 8,
        "only {readable}/{files} corpus files read"
    );
    eprintln!("corpus: {files} audio files, {errors} reported unreadable, {readable} indexed");

    let again = scan(&ScanConfig::new(&db, vec![corpus])).unwrap();
    assert_eq!(again.unchanged as usize, audio.len());
}
