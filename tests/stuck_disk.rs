//! A stuck disk never freezes the mount. The music lives on a FUSE filesystem that stops
//! answering (as an NFS server or a sleeping USB disk does): opens and reads of its files block
//! in the kernel. While 16 such requests hang, every metadata request (listing, stat, statfs,
//! search) answers at once, healthy files read, the hung requests fail with EIO at their
//! deadline, and once the disk is back everything reads again.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use musicfs_scan::ScanConfig;
use musicfs_tags::Track;
use musicfs_tests::flaky_origin::{Behavior, FlakyOrigin};
use musicfs_tests::walk_relative;
use musicfs_tools::{Format, write_track};

const SICK: usize = 16;
const HEALTHY: usize = 4;
const DEADLINE: Duration = Duration::from_secs(3);

struct Setup {
    dir: tempfile::TempDir,
    origin: FlakyOrigin,
    db: PathBuf,
    /// (file name on the origin, its bytes)
    files: Vec<(String, Vec<u8>)>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..SICK + HEALTHY {
        let name = format!("t{i:02}.flac");
        let p = dir.path().join(&name);
        let t = Track {
            title: Some(format!("Track {i}")),
            artist: Some("Stuck".into()),
            album: Some(if i < SICK { "Sick" } else { "Healthy" }.into()),
            track: Some(i as u32 + 1),
            ..Track::default()
        };
        write_track(&p, Format::Flac, &t, i as u32).unwrap();
        files.push((name, std::fs::read(p).unwrap()));
    }
    let root = dir.path().join("origin");
    std::fs::create_dir(&root).unwrap();
    let origin = FlakyOrigin::mount(
        &root,
        files
            .iter()
            .map(|(n, b)| (n.clone(), b.clone(), Behavior::Normal))
            .collect(),
    );
    let db = dir.path().join("s.db");
    musicfs_scan::scan(&ScanConfig::new(&db, vec![root])).unwrap();
    Setup {
        dir,
        origin,
        db,
        files,
    }
}

/// The mount path of origin file `name`.
fn vpath(db: &Path, mnt: &Path, name: &str) -> PathBuf {
    let conn = rusqlite::Connection::open(db).unwrap();
    let v: String = conn
        .query_row(
            "SELECT vpath FROM tracks WHERE abs_path LIKE '%/' || ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    mnt.join(v)
}

/// Lists, stats, statfs and searches the mount a few times, and reads the healthy files;
/// returns the slowest metadata request (time, what).
fn metadata_answers_at_once(
    mnt: &Path,
    paths: &[PathBuf],
    files: &[(String, Vec<u8>)],
) -> (Duration, String) {
    let mut slowest = (Duration::ZERO, String::new());
    let mut timed = |what: String, f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        let took = start.elapsed();
        if took > slowest.0 {
            slowest = (took, what);
        }
    };
    for round in 0..5 {
        timed(format!("ls -R (round {round})"), &mut || {
            assert_eq!(
                walk_relative(mnt)
                    .iter()
                    .filter(|(p, d)| !d && !p.starts_with(".search"))
                    .count(),
                SICK + HEALTHY
            );
        });
        for p in paths {
            timed(format!("stat {}", p.display()), &mut || {
                assert!(std::fs::metadata(p).unwrap().len() > 0);
            });
        }
        timed("statfs".into(), &mut || {
            let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
            // SAFETY: a valid path and an out-parameter of the right type.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        });
        timed("search".into(), &mut || {
            let _ = std::fs::read_dir(mnt.join(".search/healthy"));
        });
    }
    // Healthy files on the same disk read, byte-identical.
    for (i, p) in paths.iter().enumerate().skip(SICK) {
        let start = Instant::now();
        assert_eq!(std::fs::read(p).unwrap(), files[i].1, "{}", p.display());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    slowest
}

fn run(passthrough: bool) {
    let s = setup();
    let mnt = s.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut cfg = musicfs_fs::MountConfig::new(&s.db, &mnt);
    cfg.io_timeout = DEADLINE;
    cfg.passthrough = passthrough;
    // A kernel TTL of 0: every stat below really reaches musicfs.
    cfg.ttl = Duration::ZERO;
    let mounted = musicfs_fs::mount(cfg).unwrap();
    let paths: Vec<PathBuf> = s.files.iter().map(|(n, _)| vpath(&s.db, &mnt, n)).collect();

    // The disk goes bad: half the sick files hang in open, half in read.
    for (i, (name, _)) in s.files.iter().take(SICK).enumerate() {
        let how = if i % 2 == 0 {
            Behavior::HangOpen
        } else {
            Behavior::Hang
        };
        s.origin.set_behavior(name, how);
    }
    let (tx, rx) = mpsc::channel();
    for path in paths.iter().take(SICK).cloned() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let got = std::fs::read(&path);
            let _ = tx.send((path, got.map_err(|e| e.raw_os_error()), start.elapsed()));
        });
    }
    drop(tx);
    std::thread::sleep(Duration::from_millis(300)); // let them all get stuck

    // Everything else answers at once. Checked on another thread: if the mount froze, the
    // watchdog heals the disk (unblocking everything) and fails the test instead of hanging.
    let (done_tx, done_rx) = mpsc::channel();
    let (mnt2, paths2, files2) = (mnt.clone(), paths.clone(), s.files.clone());
    std::thread::spawn(move || {
        let _ = done_tx.send(metadata_answers_at_once(&mnt2, &paths2, &files2));
    });
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(slowest) => assert!(
            slowest.0 < Duration::from_millis(100),
            "while 16 backing requests hang, `{}` took {:?}",
            slowest.1,
            slowest.0
        ),
        Err(_) => {
            s.origin.heal();
            panic!("the mount froze: metadata requests hung behind stuck backing I/O");
        }
    }

    // The hung requests fail with EIO at their deadline, not later and not never.
    let mut failed = 0;
    while let Ok((path, got, took)) = rx.recv_timeout(DEADLINE * 3) {
        assert_eq!(
            got.as_ref().err(),
            Some(&Some(libc::EIO)),
            "{}",
            path.display()
        );
        assert!(
            took >= DEADLINE && took < DEADLINE * 3,
            "{}: failed after {took:?}",
            path.display()
        );
        failed += 1;
    }
    assert_eq!(failed, SICK, "some hung reads never got an answer");

    // The disk comes back: everything reads again, without a remount.
    s.origin.heal();
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(std::fs::read(p).unwrap(), s.files[i].1, "{}", p.display());
    }
    mounted.unmount().unwrap();
}

#[test]
fn daemon_reads_never_freeze_metadata_requests() {
    run(false);
}

/// With passthrough on (the default as root), files on a network filesystem are still served
/// by the daemon: passthrough would let the kernel read them with no deadline.
#[test]
fn passthrough_mounts_serve_network_files_with_deadlines() {
    run(true);
}
