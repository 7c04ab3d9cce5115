//! What an S3 origin serves is what was scanned, and nothing odd in a bucket hides the rest:
//! a rewritten object (same size, new bytes) is refused rather than served, keys the S3 client
//! cannot take (`Icon\r`, `a//b`, `./x`, `../x`) are reported alone while their folder is
//! indexed. Against moto.

use std::path::Path;

use musicfs_origin::OriginUrl;
use musicfs_scan::ScanConfig;
use musicfs_tests::{aws_credentials, files_below, keyable_library, s3_server, walk_relative};

fn scan_remote(db: &Path, url: &str) -> musicfs_scan::Summary {
    let mut cfg = ScanConfig::new(db, Vec::new());
    cfg.remotes = vec![OriginUrl::parse(url).unwrap()];
    musicfs_scan::scan(&cfg).unwrap()
}

#[test]
fn a_rewritten_object_of_the_same_size_is_refused_not_served() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    keyable_library(
        &root,
        12,
        11,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    );
    let Some(s3) = s3_server() else {
        return;
    };
    s3.upload("music", "", &root).unwrap();
    let db = dir.path().join("s3.db");
    let summary = scan_remote(&db, &s3.url("music", ""));
    assert_eq!(summary.added as usize, files_below(&root).len());

    // The same size, other bytes (the last one flipped): only its ETag tells.
    let files = files_below(&root);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    s3.upload("music", "", &root).unwrap();

    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt)).unwrap();
    let mut failed = Vec::new();
    let mut served = 0;
    for (path, is_dir) in walk_relative(&mnt) {
        if is_dir || path.starts_with(".search") {
            continue;
        }
        match std::fs::read(mnt.join(&path)) {
            Ok(got) => {
                assert!(
                    got != bytes,
                    "{path}: the rewritten object's bytes were served"
                );
                served += 1;
            }
            Err(err) => failed.push((path, err.raw_os_error())),
        }
    }
    mounted.unmount().unwrap();
    assert_eq!(served, files.len() - 1);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1, Some(libc::EIO), "{failed:?}");
}

#[test]
fn odd_keys_are_reported_alone_and_hide_nothing() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    keyable_library(
        &root,
        30,
        5,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    );
    let Some(s3) = s3_server() else {
        return;
    };
    let uploaded = s3.upload("music", "", &root).unwrap();
    // The top-level folder holding the most files: one flat listing walks all of it.
    let mut tops: Vec<String> = uploaded
        .iter()
        .filter_map(|k| k.split_once('/').map(|(top, _)| top.to_owned()))
        .collect();
    tops.sort();
    let top = tops
        .iter()
        .max_by_key(|t| tops.iter().filter(|x| x == t).count())
        .unwrap()
        .clone();
    let flac = std::fs::read(files_below(&root)[0].clone()).unwrap();
    let odd = [
        format!("{top}/Icon\r"),
        format!("{top}/a//b.flac"),
        format!("{top}/./x.flac"),
        format!("{top}/../escape.flac"),
        "Icon\r".to_owned(),
    ];
    for key in &odd {
        s3.put_raw("music", key, &flac).unwrap();
    }

    let db = dir.path().join("s3.db");
    let summary = scan_remote(&db, &s3.url("music", ""));
    assert_eq!(summary.added as usize, uploaded.len(), "{summary:?}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let in_top: i64 = conn
        .query_row(
            "SELECT count(*) FROM files f JOIN folders d ON d.id = f.folder_id \
             WHERE d.path = ?1 OR d.path LIKE ?1 || '/%'",
            [&top],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        in_top as usize,
        uploaded
            .iter()
            .filter(|k| k.starts_with(&format!("{top}/")))
            .count()
    );
    let errors: Vec<(String, String)> = conn
        .prepare("SELECT CAST(abs_path AS TEXT), scan_error FROM scan_errors")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for key in &odd {
        let quoted = format!("{key:?}");
        assert!(
            errors.iter().any(|(_, why)| why.contains(&quoted)),
            "{quoted} not reported: {errors:#?}"
        );
    }
    assert!(
        errors.iter().all(|(path, _)| !path.contains('\r')),
        "a raw control character in a reported path: {errors:?}"
    );
    let escaped: i64 = conn
        .query_row(
            "SELECT count(*) FROM files f JOIN folders d ON d.id = f.folder_id \
             WHERE d.path LIKE '%..%' OR f.name IN ('escape.flac', 'x.flac', 'b.flac')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(escaped, 0, "an odd key was indexed as a path");
}
