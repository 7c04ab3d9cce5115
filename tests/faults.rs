//! Failures around the DB (toward issue #5): a full disk, a corrupt file. A clean error, and
//! nothing already committed is lost.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use musicfs_scan::{ScanConfig, ScanError, scan};
use musicfs_tests::Tmpfs;

fn tree(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT vpath, size FROM tracks ORDER BY vpath")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_full_disk_stops_the_scan_cleanly_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 1_500, 11).unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("dbfs"), "1m") else {
        return;
    };
    let db = fs.0.join("library.db");

    let mut cfg = ScanConfig::new(&db, vec![music.clone()]);
    cfg.batch_ops = 100; // commit often: some batches land before the disk fills
    let err = scan(&cfg).expect_err("a 1 MiB disk cannot hold 1,500 tracks");
    assert!(matches!(err, ScanError::Db(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("full") || message.contains("disk"),
        "unclear error: {message}"
    );

    // What was committed is consistent and readable.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let problems = musicfs_db::check_consistency(&conn).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    eprintln!("disk full after {kept} committed files: {message}");

    // Room again: the next run completes and equals a clean scan.
    fs.resize("64m");
    scan(&cfg).unwrap();
    let reference = dir.path().join("reference.db");
    scan(&ScanConfig::new(&reference, vec![music])).unwrap();
    assert_eq!(tree(&db), tree(&reference));
}

#[test]
fn a_corrupt_database_is_a_clear_error_for_scan_and_mount() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 50, 13).unwrap();
    let db = dir.path().join("library.db");
    scan(&ScanConfig::new(&db, vec![music.clone()])).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    // Keep the header page (schema), garble every table and index page after it: whatever a
    // scan reads first is damaged, whatever the page layout of this run.
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();

    let err = scan(&ScanConfig::new(&db, vec![music]))
        .expect_err("a corrupt DB must not be scanned into");
    let message = err.to_string();
    assert!(
        message.contains("malformed")
            || message.contains("corrupt")
            || message.contains("not a database"),
        "{message}"
    );
    // The mount refuses it at once, saying why (not: mounts, then fails every request).
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let err = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt))
        .err()
        .expect("a corrupt DB must not be mounted");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(!musicfs_fs::is_mount_point(
        &std::fs::canonicalize(&mnt).unwrap()
    ));
    // `musicfs check` names the damage: as problems, or as SQLite's own "malformed".
    let conn = rusqlite::Connection::open(&db).unwrap();
    match musicfs_db::check_consistency(&conn) {
        Ok(problems) => assert!(!problems.is_empty(), "check found nothing wrong"),
        Err(err) => {
            let text = format!("{err}");
            assert!(
                text.contains("malformed") || text.contains("corrupt"),
                "{text}"
            );
        }
    }
}

fn walked_files(mnt: &Path) -> Vec<String> {
    let mut files: Vec<String> = musicfs_tests::walk_relative(mnt)
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(p, _)| p)
        .collect();
    files.sort();
    files
}

fn vpaths(db: &Path) -> Vec<String> {
    tree(db).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_mount_follows_its_db_through_vacuum_and_replacement() {
    let lib = musicfs_tests::MountedLibrary::new(30, 21);
    let before = walked_files(&lib.mnt);
    assert_eq!(before, vpaths(&lib.db));

    // VACUUM in place (sqlite3 library.db VACUUM): same tree, same bytes.
    lib.conn().execute_batch("VACUUM").unwrap();
    assert_eq!(walked_files(&lib.mnt), before);
    for (vpath, real) in lib.placements() {
        let real = std::ffi::OsStr::from_bytes(&real);
        assert_eq!(
            std::fs::read(lib.mnt.join(&vpath)).unwrap(),
            std::fs::read(real).unwrap()
        );
    }

    // Replaced: another library scanned into another file, then renamed over the DB (a
    // restored backup, a rebuild). The mount serves the new tree, not a mix with the old
    // file's WAL.
    let other = lib.dir.path().join("other");
    musicfs_tools::generate_library(&other, 20, 22).unwrap();
    let new_db = lib.dir.path().join("new.db");
    scan(&ScanConfig::new(&new_db, vec![other.clone()])).unwrap();
    let expected = vpaths(&new_db);
    assert_ne!(expected, before);
    std::fs::rename(&new_db, &lib.db).unwrap();
    let swapped = musicfs_tests::eventually(std::time::Duration::from_secs(10), || {
        walked_files(&lib.mnt) == expected
    });
    assert!(
        swapped.is_some(),
        "the mount still serves {:?}",
        walked_files(&lib.mnt)
    );
    for (vpath, _) in tree(&lib.db) {
        let through = std::fs::read(lib.mnt.join(&vpath)).unwrap();
        let conn = lib.conn();
        let real: musicfs_db::PathBytes = conn
            .query_row(
                "SELECT abs_path FROM tracks WHERE vpath = ?1",
                [&vpath],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            through == std::fs::read(std::ffi::OsStr::from_bytes(&real.0)).unwrap(),
            "{vpath}"
        );
    }
    let conn = lib.conn();
    assert!(musicfs_db::check_consistency(&conn).unwrap().is_empty());
    drop(conn);

    // Live updates go on against the new file: a scan adding a track shows up.
    let added = other.join("Late Addition.flac");
    let t = musicfs_tags::Track {
        artist: Some("Zeta Late".into()),
        title: Some("Late".into()),
        ..Default::default()
    };
    musicfs_tools::write_track(&added, musicfs_tools::Format::Flac, &t, 5).unwrap();
    scan(&ScanConfig::new(&lib.db, vec![other])).unwrap();
    assert!(
        musicfs_tests::eventually(std::time::Duration::from_secs(10), || {
            lib.mnt.join("Zeta Late").is_dir()
        })
        .is_some(),
        "live updates stopped after the replacement"
    );
}

#[test]
fn a_read_only_db_is_served_and_a_scan_into_it_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 40, 23).unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("dbfs"), "16m") else {
        return;
    };
    let db = fs.0.join("library.db");
    scan(&ScanConfig::new(&db, vec![music.clone()])).unwrap();
    let expected = vpaths(&db);
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.0)
        .status()
        .unwrap();
    assert!(status.success());

    // Served: read-only media (no -shm can be created) are read as the main file alone.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt)).unwrap();
    assert_eq!(walked_files(&mnt), expected);
    mounted.unmount().unwrap();

    // A scan that has something to write says why it cannot, and changes nothing.
    musicfs_tools::generate_library(&music.join("more"), 3, 24).unwrap();
    let err = scan(&ScanConfig::new(&db, vec![music])).expect_err("the DB is read-only");
    let message = err.to_string();
    assert!(
        message.to_lowercase().contains("read-only") || message.contains("readonly"),
        "unclear error: {message}"
    );
    let conn = rusqlite::Connection::open_with_flags(
        format!("file:{}?immutable=1", db.display()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let files: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(files as usize, expected.len());
}
