//! Scale properties of the mount on synthetic DBs: big directories list completely and stably;
//! mounting reads (almost) nothing, whatever the library size.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use musicfs_db::{FileRecord, NamePolicy, PoolOptions, ReadPool, Writer};
use musicfs_fs::MountConfig;
use musicfs_tools::synthetic::{Shape, write_synthetic_db};

fn synthetic(dir: &Path, shape: Shape) -> PathBuf {
    let root = dir.join("backing");
    std::fs::create_dir_all(&root).unwrap();
    let template = root.join("template.flac");
    musicfs_tools::write_track(
        &template,
        musicfs_tools::Format::Flac,
        &Default::default(),
        1,
    )
    .unwrap();
    let db = dir.join("synthetic.db");
    write_synthetic_db(&db, shape, &root, &[&template]).unwrap();
    db
}

fn mountpoint(dir: &Path) -> PathBuf {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    mnt
}

struct Plain;
impl NamePolicy for Plain {
    fn disambiguate(&self, name: &str, _ext: &str, n: u32) -> String {
        format!("{name} ({n})")
    }
    fn fold(&self, _name: &str) -> Option<String> {
        None
    }
}

#[test]
fn a_100k_entry_directory_lists_completely_and_stably_while_the_scanner_writes() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        artists: 100_000,
        albums_per_artist: 1,
        tracks_per_album: 1,
    };
    let db = synthetic(dir.path(), shape);
    let mnt = mountpoint(dir.path());
    let mounted = musicfs_fs::mount(MountConfig::new(&db, &mnt)).unwrap();

    let names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 100_000);
    assert_eq!(
        names.iter().collect::<HashSet<_>>().len(),
        100_000,
        "a name was listed twice"
    );

    // The kernel now holds that listing (FOPEN_CACHE_DIR): a second one in this mount would
    // not reach musicfs. Remount, so the listing below is paged out of the DB for real.
    mounted.unmount().unwrap();
    let mounted = musicfs_fs::mount(MountConfig::new(&db, &mnt)).unwrap();

    // List again, slowly, while a writer removes 2,000 artists and adds 2,000 new ones,
    // committing in small batches: every artist that stays must be listed exactly once.
    let doomed: HashSet<String> = (0..2_000u64)
        .map(|a| format!("Artist {:07}", a * 50))
        .collect();
    let commits_during = std::sync::atomic::AtomicUsize::new(0);
    let listing_done = std::sync::atomic::AtomicBool::new(false);
    let started = std::sync::Barrier::new(2);
    let listing = std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let mut names = Vec::new();
            let mut entries = std::fs::read_dir(&mnt).unwrap();
            started.wait();
            for (i, e) in entries.by_ref().enumerate() {
                names.push(e.unwrap().file_name().into_string().unwrap());
                if i % 500 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            listing_done.store(true, std::sync::atomic::Ordering::SeqCst);
            names
        });
        started.wait();
        let mut w = Writer::open(&db).unwrap();
        let track = musicfs_tags::Track::default();
        for batch in 0..20u64 {
            w.begin().unwrap();
            for i in 0..100u64 {
                let k = batch * 100 + i;
                w.remove_file((k * 50 + 1) as i64).unwrap(); // artist k*50's only track
                let name = format!("new-{k}.flac");
                let id = w
                    .put_file(
                        1,
                        &FileRecord {
                            name: name.as_bytes(),
                            size: 1,
                            mtime_ns: 0,
                            ext: "flac",
                            track: &track,
                            scan_error: None,
                            scan_retry: false,
                            identity: None,
                            etag: None,
                        },
                    )
                    .unwrap();
                let comps = vec![format!("New Artist {k:05}"), "x.flac".to_string()];
                w.place(id, &[(id, &comps)], "flac", &Plain, true).unwrap();
            }
            w.commit().unwrap();
            if !listing_done.load(std::sync::atomic::Ordering::SeqCst) {
                commits_during.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        lister.join().unwrap()
    });
    let overlapped = commits_during.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        overlapped >= 5,
        "only {overlapped} of 20 commits landed while the listing ran"
    );
    let mut seen = HashSet::new();
    for name in &listing {
        assert!(
            seen.insert(name),
            "{name} listed twice while the scanner wrote"
        );
    }
    for a in 0..100_000u64 {
        let name = format!("Artist {a:07}");
        if !doomed.contains(&name) {
            assert!(
                seen.contains(&name),
                "{name} was skipped while the scanner wrote"
            );
        }
    }
    mounted.unmount().unwrap();
}

#[test]
fn mounting_a_million_track_db_reads_almost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        artists: 1_000,
        albums_per_artist: 10,
        tracks_per_album: 100,
    };
    let db = synthetic(dir.path(), shape);
    let mnt = mountpoint(dir.path());

    let started = Instant::now();
    let mounted = musicfs_fs::mount(MountConfig::new(&db, &mnt)).unwrap();
    let root = std::fs::read_dir(&mnt).unwrap().count(); // DirEntry values would pin the mount
    let ready = started.elapsed();
    assert_eq!(root, 1_000);
    let deep = mnt.join("Artist 0000999/Album 009 (1993)/100 - Track 100 of Album 009.flac");
    assert!(std::fs::metadata(&deep).unwrap().len() > 0);
    let work = mounted.vm_kilosteps();
    mounted.unmount().unwrap();

    // Positive control: the same counter on one full pass over `entries`.
    let counter = Arc::new(AtomicU64::new(0));
    let pool = ReadPool::open(
        &db,
        &PoolOptions {
            vm_kilosteps: Some(counter.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let rows: i64 = pool
        .get()
        .unwrap()
        .query_row("SELECT count(name) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert!(rows > 1_000_000);
    let full_pass = counter.load(Ordering::Relaxed);
    eprintln!(
        "mount + root listing + deep stat: {work}K VM steps in {ready:?}; one pass over entries: {full_pass}K"
    );
    assert!(
        full_pass > 1_000,
        "the counter misses a scan ({full_pass}K)"
    );
    assert!(
        work * 50 < full_pass,
        "mount did {work}K VM steps, a full pass is {full_pass}K"
    );
}
