//! Live change detection: with the watcher running beside a mount, files added, changed,
//! removed or moved on disk show in the mount within about a second, without a manual scan;
//! reads through the mount are not taken for changes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use musicfs_scan::{ScanConfig, WatchOptions};
use musicfs_tags::Track;
use musicfs_tests::{MountedLibrary, eventually, walk_relative};
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
    walk_relative(mnt).iter().any(|(p, _)| p.contains(needle))
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
        walk_relative(&lib.mnt)
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
