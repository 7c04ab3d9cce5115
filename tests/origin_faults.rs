//! A misbehaving music folder (toward issue #5), through a real FUSE filesystem: a read that
//! hangs forever, a disk that answers EIO, a file deleted between listing and reading. The scan
//! finishes on time, reports each with its cause, keeps the healthy files, and the next scan
//! (disk healed) reads what it could not.

use std::time::{Duration, Instant};

use musicfs_scan::ScanConfig;
use musicfs_tags::Track;
use musicfs_tests::flaky_origin::{Behavior, FlakyOrigin};
use musicfs_tests::{eventually, scan_with_watchdog};
use musicfs_tools::{Format, write_track};

fn flac_bytes(dir: &std::path::Path, title: &str, seed: u32) -> Vec<u8> {
    let p = dir.join(format!("{title}.flac"));
    let t = Track {
        title: Some(title.into()),
        artist: Some("Flaky".into()),
        ..Track::default()
    };
    write_track(&p, Format::Flac, &t, seed).unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn hung_failing_and_vanishing_files_are_reported_and_retried_when_healed() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (name, behavior)) in [
        ("ok-1", Behavior::Normal),
        ("ok-2", Behavior::Normal),
        ("hang", Behavior::Hang),
        ("eio", Behavior::Eio),
        ("vanish", Behavior::Vanish),
    ]
    .into_iter()
    .enumerate()
    {
        files.push((
            format!("{name}.flac"),
            flac_bytes(dir.path(), name, i as u32),
            behavior,
        ));
    }
    let root = dir.path().join("origin");
    std::fs::create_dir(&root).unwrap();
    let origin = FlakyOrigin::mount(&root, files);

    let db = dir.path().join("f.db");
    let mut cfg = ScanConfig::new(&db, vec![root.clone()]);
    cfg.tag_timeout = Duration::from_secs(1);
    let start = Instant::now();
    let summary = scan_with_watchdog(cfg.clone(), Duration::from_secs(30));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the hung read held the scan for {took:?}"
    );
    // The vanished file is not indexed; the hung and failing ones are, by name, with a cause.
    assert_eq!((summary.added, summary.errors), (4, 2), "{summary:?}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert!(musicfs_db::check_consistency(&conn).unwrap().is_empty());
    let rows =
        |conn: &rusqlite::Connection| -> Vec<(String, Option<String>, Option<String>, bool)> {
            let mut stmt = conn
                .prepare("SELECT name, title, scan_error, scan_retry FROM files ORDER BY name")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
    let first = rows(&conn);
    let names: Vec<&str> = first.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["eio.flac", "hang.flac", "ok-1.flac", "ok-2.flac"]);
    let (eio, hang) = (&first[0], &first[1]);
    assert!(
        eio.2.as_deref().unwrap().contains("Input/output error") && eio.3,
        "{eio:?}"
    );
    assert!(
        hang.2.as_deref().unwrap().contains("time limit") && hang.3,
        "{hang:?}"
    );
    for ok in &first[2..] {
        assert!(ok.1.is_some() && ok.2.is_none() && !ok.3, "{ok:?}");
    }

    // A rescan with the disk still sick stays on time and changes nothing it could read.
    let again = scan_with_watchdog(cfg.clone(), Duration::from_secs(30));
    assert_eq!(
        (again.unchanged, again.changed, again.errors),
        (2, 2, 2),
        "{again:?}"
    );

    // Healed: the stuck reader comes back, and the next scan reads both files for real.
    origin.heal();
    assert!(
        eventually(Duration::from_secs(10), || musicfs_tags::stuck_reads() == 0).is_some(),
        "abandoned tag readers never came back"
    );
    let healed = scan_with_watchdog(cfg, Duration::from_secs(30));
    assert_eq!(
        (healed.unchanged, healed.changed, healed.errors),
        (2, 2, 0),
        "{healed:?}"
    );
    for (name, title, error, retry) in rows(&conn) {
        assert!(title.is_some() && error.is_none() && !retry, "{name}");
    }
    assert!(musicfs_db::check_consistency(&conn).unwrap().is_empty());
}

#[test]
fn an_origin_unmounted_mid_scan_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(usb) = musicfs_tests::Tmpfs::mount(&dir.path().join("usb"), "64m") else {
        return;
    };
    let generated = musicfs_tools::generate_library(&usb.0, 60, 31).unwrap();
    let db = dir.path().join("u.db");
    musicfs_scan::scan(&ScanConfig::new(&db, vec![usb.0.clone()])).unwrap();
    let count = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&db), generated.len() as i64);

    // The next scan takes a slow origin first (one read hangs until its time limit), then the
    // disk. Both roots pass the up-front checks; the disk is unplugged while the slow origin is
    // scanned, leaving its empty mountpoint folder behind.
    let slow = dir.path().join("slow");
    std::fs::create_dir(&slow).unwrap();
    let _origin = FlakyOrigin::mount(
        &slow,
        vec![(
            "hang.flac".into(),
            flac_bytes(dir.path(), "hang", 1),
            Behavior::Hang,
        )],
    );
    let mut cfg = ScanConfig::new(&db, vec![slow.clone(), usb.0.clone()]);
    cfg.tag_timeout = Duration::from_secs(3);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(musicfs_scan::scan(&cfg)).unwrap());
    std::thread::sleep(Duration::from_millis(800));
    let status = std::process::Command::new("umount")
        .arg("-l")
        .arg(&usb.0)
        .status()
        .unwrap();
    assert!(status.success());
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the scan hung");
    let err = result.expect_err("an origin that vanished mid-scan must stop the scan");
    assert!(err.to_string().contains("vanished"), "{err}");
    // Nothing of the unplugged disk was removed.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM files f JOIN folders d ON d.id = f.folder_id \
             JOIN origins o ON o.id = d.origin_id WHERE o.root = ?1",
            [usb.0.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        kept,
        generated.len() as i64,
        "files of the unplugged disk were removed"
    );
    assert!(musicfs_db::check_consistency(&conn).unwrap().is_empty());
}
