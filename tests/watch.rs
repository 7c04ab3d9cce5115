//! Live change detection: with the watcher running beside a mount, files added, changed,
//! removed or moved on disk show in the mount within about a second, without a manual scan;
//! reads through the mount are not taken for changes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use musicfs_scan::{ScanConfig, WatchOptions};
use musicfs_tags::Track;
use musicfs_tests::{MountedLibrary, eventually, walk_relative, walk_relative_live};
use musicfs_tools::{Format, write_track};

/// The watcher on `lib`'s music folder, in a thread, stopped on drop.
struct Watching(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Watching {
    fn start(lib: &MountedLibrary) -> Watching {
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = ScanConfig::new(&lib.db, vec![lib.root.clone()]);
        let opts = WatchOptions {
            initial_scan: false,
            ..Default::default()
        };
        let flag = stop.clone();
        let thread = std::thread::spawn(move || musicfs_scan::watch(&cfg, &opts, &flag).unwrap());
        std::thread::sleep(Duration::from_millis(200)); // watches set
        Watching(stop, Some(thread))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            t.join().unwrap();
        }
    }
}

fn shows(mnt: &Path, needle: &str) -> bool {
    walk_relative_live(mnt)
        .iter()
        .any(|(p, _)| p.contains(needle))
}

fn track(title: &str, artist: &str) -> Track {
    Track {
        title: Some(title.into()),
        artist: Some(artist.into()),
        album: Some("Watched Album".into()),
        ..Track::default()
    }
}

#[test]
fn changes_on_disk_show_in_the_mount_within_two_seconds() {
    let lib = MountedLibrary::new(30, 21);
    let _watching = Watching::start(&lib);
    let limit = Duration::from_secs(2);

    // Added in a new folder (created, then filled: both notifications).
    let folder = lib.root.join("New Artist/New Album");
    std::fs::create_dir_all(&folder).unwrap();
    write_track(
        &folder.join("01.flac"),
        Format::Flac,
        &track("Fresh Song", "Newcomer"),
        1,
    )
    .unwrap();
    let took = eventually(limit, || shows(&lib.mnt, "Fresh Song"))
        .expect("an added file did not show within 2 s");
    eprintln!("added file visible after {took:?}");

    // Tags changed in place.
    write_track(
        &folder.join("01.flac"),
        Format::Flac,
        &track("Retitled", "Newcomer"),
        1,
    )
    .unwrap();
    eventually(limit, || {
        shows(&lib.mnt, "Retitled") && !shows(&lib.mnt, "Fresh Song")
    })
    .expect("a retagged file did not change within 2 s");

    // Moved to another folder, then removed.
    let other = lib.root.join("Elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::rename(folder.join("01.flac"), other.join("moved.flac")).unwrap();
    eventually(limit, || {
        let conn = lib.conn();
        conn.query_row(
            "SELECT count(*) FROM files WHERE name = 'moved.flac' AND title = 'Retitled'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    })
    .expect("a moved file was not followed within 2 s");
    std::fs::remove_file(other.join("moved.flac")).unwrap();
    eventually(limit, || !shows(&lib.mnt, "Retitled")).expect("a removed file stayed");

    // A folder removed as a whole: its files leave the DB and the mount.
    let victim = lib.files[0].path.parent().unwrap().to_owned();
    let in_victim = lib
        .files
        .iter()
        .filter(|f| f.path.parent() == Some(victim.as_path()))
        .count();
    let count = || -> usize {
        lib.conn()
            .query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    };
    let files_in_mount = || {
        walk_relative_live(&lib.mnt)
            .iter()
            .filter(|(p, d)| !d && !p.starts_with(".search"))
            .count()
    };
    let (before, shown_before) = (count(), files_in_mount());
    std::fs::remove_dir_all(&victim).unwrap();
    eventually(limit, || {
        count() == before - in_victim && files_in_mount() == shown_before - in_victim
    })
    .expect("files of a removed folder stayed");
}

#[test]
fn reading_through_the_mount_is_not_a_change() {
    let lib = MountedLibrary::new(20, 22);
    let _watching = Watching::start(&lib);
    let seq_before: i64 = lib
        .conn()
        .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })
        .unwrap();
    let scanned_before: i64 = lib
        .conn()
        .query_row("SELECT max(scanned_ns) FROM files", [], |r| r.get(0))
        .unwrap();
    for (path, is_dir) in walk_relative(&lib.mnt) {
        if !is_dir && !path.starts_with(".search") {
            std::fs::read(lib.mnt.join(path)).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let seq_after: i64 = lib
        .conn()
        .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })
        .unwrap();
    let scanned_after: i64 = lib
        .conn()
        .query_row("SELECT max(scanned_ns) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seq_after, seq_before, "reads were taken for changes");
    assert_eq!(scanned_after, scanned_before, "files were read again");
}

#[test]
fn remote_origins_are_rescanned_on_their_interval() {
    musicfs_tests::aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    musicfs_tests::keyable_library(&root, 12, 21, &[Format::Flac, Format::Mp3]);
    let Some(s3) = musicfs_tests::s3_server() else {
        return;
    };
    let uploaded = s3.upload("watched", "", &root).unwrap().len() as i64;
    let db = dir.path().join("lib.db");
    let mut cfg = ScanConfig::new(&db, Vec::new());
    cfg.remotes = vec![musicfs_origin::OriginUrl::parse(&s3.url("watched", "")).unwrap()];
    let opts = WatchOptions {
        initial_scan: true,
        remote_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let watcher = std::thread::spawn(move || musicfs_scan::watch(&cfg, &opts, &flag));
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    };
    let files = || musicfs_tests::try_file_count(&db).unwrap_or(0) as i64;
    assert!(
        eventually(Duration::from_secs(20), || files() == uploaded).is_some(),
        "the first scan never finished: {} of {uploaded}",
        files()
    );

    // An object added to the bucket shows within the interval, with its tags read.
    let new = dir.path().join("new");
    let path = new.join("Remote Artist/Remote Album/01 Arrived.flac");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_track(
        &path,
        Format::Flac,
        &track("Arrived Remotely", "Remote Artist"),
        5,
    )
    .unwrap();
    s3.upload("watched", "", &new).unwrap();
    let arrived = "SELECT count(*) FROM files WHERE title = 'Arrived Remotely'";
    let took = eventually(Duration::from_secs(5), || count(arrived) == 1);
    assert!(took.is_some(), "an added object never showed");

    // One removed from it goes.
    s3.delete("watched", "Remote Artist/Remote Album/01 Arrived.flac")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || count(arrived) == 0).is_some(),
        "a removed object stayed"
    );
    assert_eq!(files(), uploaded);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap().unwrap();
}
