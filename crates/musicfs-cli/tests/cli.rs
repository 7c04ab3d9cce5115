//! The `musicfs` binary as users and service managers run it.

mod support;

use support::{MountChild, first_file, is_mounted, musicfs, wait_for};

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

fn library(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let music = dir.join("music");
    musicfs_tools::generate_library(&music, n, 5).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    (music, mnt)
}

#[test]
fn mount_with_a_music_folder_fills_in_live_and_sigterm_unmounts_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (music, mnt) = library(dir.path(), 40);
    let db = dir.path().join("lib.db");
    let mut child = MountChild::new(
        musicfs()
            .args(["mount", "--db"])
            .arg(&db)
            .arg(&music)
            .arg(&mnt)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        &mnt,
    );
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&mnt)),
        "never mounted"
    );
    // The DB was empty: the background scan fills the tree while mounted.
    let count = || walk_files(&mnt);
    assert!(
        wait_for(Duration::from_secs(10), || count() == 40),
        "tree did not fill: {}",
        count()
    );
    // Then it keeps watching: a file added on disk shows within 2 s, no rescan by hand.
    let track = musicfs_tags::Track {
        title: Some("Added While Mounted".into()),
        artist: Some("Late Artist".into()),
        ..Default::default()
    };
    let added = music.join("late.flac");
    musicfs_tools::write_track(&added, musicfs_tools::Format::Flac, &track, 9).unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || count() == 41),
        "a file added on disk did not show within 2 s: {}",
        count()
    );
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}");
    assert!(!is_mounted(&mnt), "still mounted after SIGTERM");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("unmounting"), "{err}");
}

#[test]
fn sigterm_with_a_file_open_detaches_and_the_file_keeps_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (music, mnt) = library(dir.path(), 10);
    let db = dir.path().join("lib.db");
    let scan = musicfs()
        .args(["scan", "--quiet", "--db"])
        .arg(&db)
        .arg(&music)
        .status()
        .unwrap();
    assert!(scan.success());
    let mut child = MountChild::new(
        musicfs()
            .args(["mount", "--quiet", "--db"])
            .arg(&db)
            .arg(&mnt)
            .spawn()
            .unwrap(),
        &mnt,
    );
    assert!(wait_for(Duration::from_secs(10), || is_mounted(&mnt)));
    let file = first_file(&mnt);
    let expected_len = std::fs::metadata(&file).unwrap().len() as usize;
    let mut open = std::fs::File::open(&file).unwrap();
    sigterm(&child);
    assert!(
        wait_for(Duration::from_secs(5), || !is_mounted(&mnt)),
        "not detached"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited while a file was still open"
    );
    let mut bytes = Vec::new();
    open.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len(), expected_len);
    drop(open);
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "did not exit after the last close"
    );
}

#[test]
fn clear_errors_for_missing_database_and_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = musicfs()
        .args(["mount", "--db"])
        .arg(dir.path().join("none.db"))
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database here"), "{err}");

    let db = dir.path().join("new.db");
    musicfs_db_create(&db);
    rusqlite_set_version(&db, 999);
    let out = musicfs()
        .args(["mount", "--db"])
        .arg(&db)
        .arg(&mnt)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("newer than this musicfs"),
        "{err}"
    );
}

fn musicfs_db_create(db: &Path) {
    let empty = db.with_extension("empty");
    std::fs::create_dir(&empty).unwrap();
    let status = musicfs()
        .args(["scan", "--quiet", "--db"])
        .arg(db)
        .arg(&empty)
        .status()
        .unwrap();
    assert!(status.success());
}

fn rusqlite_set_version(db: &Path, v: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "user_version", v).unwrap();
}

fn walk_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walk_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn search_prints_matches_as_text_or_json_and_bad_queries_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let t = musicfs_tags::Track {
        artist: Some("Björk".into()),
        album: Some("Homogenic".into()),
        title: Some("Jóga".into()),
        date: Some("1997".into()),
        ..Default::default()
    };
    musicfs_tools::write_track(&music.join("a.flac"), musicfs_tools::Format::Flac, &t, 1).unwrap();
    let db = dir.path().join("s.db");
    let db_arg = db.to_str().unwrap();
    // A DB whose scans never kept the index: a clear error.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let created = musicfs()
        .args(["scan", "--quiet", "--no-search", "--db", db_arg])
        .arg(&empty)
        .status()
        .unwrap();
    assert!(created.success());
    let out = musicfs()
        .args(["search", "--db", db_arg, "bjork"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no search index"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scan = musicfs()
        .args(["scan", "--quiet", "--db", db_arg])
        .arg(&music)
        .status()
        .unwrap();
    assert!(scan.success());

    let out = musicfs()
        .args(["search", "--db", db_arg, "bjork", "joga"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Björk/Homogenic (1997)/Jóga.flac\tBjörk\tHomogenic\tJóga\n"
    );
    let out = musicfs()
        .args(["search", "--db", db_arg, "--json", "year:1990..1999"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["title"], "Jóga");
    assert_eq!(line["path"], "Björk/Homogenic (1997)/Jóga.flac");

    let out = musicfs()
        .args(["search", "--db", db_arg, "year:soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad query"));
}
