//! A long mixed run (toward issue #5): walkers, readers and open-file holders on a real mount
//! while the scanner adds and removes albums, rewrites files and switches the layout template
//! back and forth. Entries that did not change see zero errors, open files keep reading through
//! their moves, and no file handle leaks: the process's fd count returns to its baseline.
//!
//! Runs ~6 s by default; `MUSICFS_SOAK_SECS=600` for the long version (docs/reliability.md).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use musicfs_scan::ScanConfig;
use musicfs_tests::{MountedLibrary, eventually};

const TEMPLATE_A: &str = "${albumartist|artist|\"Unknown Artist\"}/${album|\"Unknown Album\"}[ ($year)]/[$track - ]${title|filename}";
/// Moves only files without an artist: every tagged entry keeps its path and inode.
const TEMPLATE_B: &str = "${albumartist|artist|\"No Artist\"}/${album|\"Unknown Album\"}[ ($year)]/[$track - ]${title|filename}";

/// Open fds of this process, split into (DB files, everything else).
fn fds(db: &Path) -> (usize, Vec<String>) {
    let db = db.to_string_lossy().into_owned();
    let mut on_db = 0;
    let mut other = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue; // the read_dir's own fd, closed meanwhile
        };
        let target = target.to_string_lossy().into_owned();
        if target.starts_with(&db) {
            on_db += 1;
        } else if !target.starts_with("/proc/") {
            other.push(target);
        }
    }
    other.sort();
    (on_db, other)
}

#[test]
fn mixed_load_with_scans_and_template_changes_has_no_errors_and_no_leaks() {
    let secs: u64 = std::env::var("MUSICFS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let lib = MountedLibrary::new(150, 97);
    let scan_with = |template: &str| {
        let mut cfg = ScanConfig::new(&lib.db, vec![lib.root.clone()]);
        cfg.templates = vec![(String::new(), template.to_owned())];
        musicfs_scan::scan(&cfg).unwrap()
    };
    scan_with(TEMPLATE_A);
    // Stable: tagged files of the original library; their paths never change below.
    let conn = lib.conn();
    let tagged: std::collections::HashSet<String> = {
        let mut stmt = conn
            .prepare("SELECT vpath FROM tracks WHERE coalesce(albumartist, artist) IS NOT NULL")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    drop(conn);
    let all = lib.placements();
    let stable: Vec<(String, Vec<u8>)> = all
        .iter()
        .filter(|(v, _)| tagged.contains(v))
        .cloned()
        .collect();
    let moving: Vec<(String, Vec<u8>)> = all
        .iter()
        .filter(|(v, _)| !tagged.contains(v))
        .cloned()
        .collect();
    assert!(
        stable.len() > 100 && !moving.is_empty(),
        "{} / {}",
        stable.len(),
        moving.len()
    );

    // The flip really moves the untagged files (and only them).
    scan_with(TEMPLATE_B);
    assert!(
        eventually(Duration::from_secs(5), || lib
            .mnt
            .join("No Artist")
            .is_dir())
        .is_some()
    );
    assert!(!lib.mnt.join("Unknown Artist").exists());
    scan_with(TEMPLATE_A);
    assert!(
        eventually(Duration::from_secs(5), || lib
            .mnt
            .join("Unknown Artist")
            .is_dir())
        .is_some()
    );

    // Warm the pool and caches, then take the fd baseline.
    for (vpath, _) in stable.iter().take(20) {
        std::fs::read(lib.mnt.join(vpath)).unwrap();
    }
    // Backing files are closed off the FUSE threads, asynchronously: wait until the warm-up's
    // are, so the baseline holds none.
    let root = lib.root.to_string_lossy().into_owned();
    eventually(Duration::from_secs(5), || {
        !fds(&lib.db).1.iter().any(|f| f.starts_with(&root))
    });
    let (db_fds_before, baseline) = fds(&lib.db);
    assert!(
        !baseline.iter().any(|f| f.starts_with(&root)),
        "backing files still open before the load: {baseline:#?}"
    );

    let stop = AtomicBool::new(false);
    let errors = AtomicUsize::new(0);
    let ops = AtomicUsize::new(0);
    let fail = |what: String| {
        errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("ERROR: {what}");
    };
    let mut scans = 0;
    std::thread::scope(|s| {
        // Readers: whole files, byte-compared.
        for t in 0..3 {
            let (stable, stop, ops, lib, fail) = (&stable, &stop, &ops, &lib, &fail);
            s.spawn(move || {
                let mut i = t * 11;
                while !stop.load(Ordering::Relaxed) {
                    let (vpath, real) = &stable[i % stable.len()];
                    i += 7;
                    let through = std::fs::read(lib.mnt.join(vpath));
                    let direct = std::fs::read(OsStr::from_bytes(real));
                    match (through, direct) {
                        (Ok(a), Ok(b)) if a == b => {}
                        (a, _) => fail(format!("read {vpath}: {:?}", a.map(|b| b.len()))),
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Listers: a stable file is always in its directory's listing.
        for t in 0..2 {
            let (stable, stop, ops, lib, fail) = (&stable, &stop, &ops, &lib, &fail);
            s.spawn(move || {
                let mut i = t * 13;
                while !stop.load(Ordering::Relaxed) {
                    let (vpath, _) = &stable[i % stable.len()];
                    i += 5;
                    let path = lib.mnt.join(vpath);
                    let listed = std::fs::read_dir(path.parent().unwrap()).map(|d| {
                        d.filter_map(Result::ok)
                            .any(|e| path.file_name() == Some(&e.file_name()))
                    });
                    if !matches!(listed, Ok(true)) {
                        fail(format!("list {vpath}: {listed:?}"));
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Holders: open a file (stable or about to move), read half, wait across scans, read
        // the rest: an open file reads its bytes whatever happens to its entry.
        {
            let (all, stop, ops, lib, fail) = (&all, &stop, &ops, &lib, &fail);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (vpath, real) = &all[i % all.len()];
                    i += 3;
                    let Ok(mut f) = std::fs::File::open(lib.mnt.join(vpath)) else {
                        continue; // a moving file between its two paths: not an error
                    };
                    let want = std::fs::read(OsStr::from_bytes(real)).unwrap();
                    let mut got = vec![0; want.len() / 2];
                    let ok = f.read_exact(&mut got).is_ok();
                    std::thread::sleep(Duration::from_millis(150));
                    let mut rest = Vec::new();
                    let ok = ok && f.read_to_end(&mut rest).is_ok();
                    got.extend(rest);
                    if !ok || got != want {
                        fail(format!(
                            "held {vpath}: {} of {} bytes",
                            got.len(),
                            want.len()
                        ));
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The scanner: albums come and go, files are rewritten, the template flips.
        let started = Instant::now();
        let mut round = 0u64;
        while started.elapsed() < Duration::from_secs(secs) {
            let churn = lib.root.join(format!("churn-{round}"));
            musicfs_tools::generate_library(&churn, 15, 5000 + round).unwrap();
            if round > 0 {
                let old = lib.root.join(format!("churn-{}", round - 1));
                if round.is_multiple_of(3) {
                    // Rewrite the previous album in place (changed files) before it goes.
                    for f in musicfs_tests::files_below(&old) {
                        let mut b = std::fs::read(&f).unwrap();
                        b.extend_from_slice(b"rewritten");
                        std::fs::write(&f, b).unwrap();
                    }
                    lib.scan();
                    scans += 1;
                }
                std::fs::remove_dir_all(old).unwrap();
            }
            scan_with(if round % 4 == 1 {
                TEMPLATE_B
            } else {
                TEMPLATE_A
            });
            scans += 1;
            round += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    let ops = ops.load(Ordering::Relaxed);
    eprintln!(
        "{secs} s: {ops} operations, {scans} scans, {} errors",
        errors.load(Ordering::Relaxed)
    );
    assert!(ops > 100, "only {ops} operations");
    assert!(scans >= 4, "only {scans} scans");
    assert_eq!(errors.load(Ordering::Relaxed), 0);

    // No leak: the mount closes every handle (RELEASE is asynchronous, so wait for it), and
    // the process's fds other than the DB's are exactly the baseline again.
    musicfs_tests::assert_handles_released(lib.mounted.as_ref().unwrap());
    let settled = eventually(Duration::from_secs(5), || fds(&lib.db).1 == baseline);
    let (db_fds_after, after) = fds(&lib.db);
    assert!(
        settled.is_some(),
        "fds leaked: before {baseline:#?}\nafter {after:#?}"
    );
    // DB fds: SQLite keeps one DB and one WAL fd per connection and one SHM fd per process,
    // and parks the fds of closed connections for reuse while other connections of the process
    // hold locks on the file. So the bound is the connections that can be open at once in this
    // process: the mount's pool (8) and watcher, and the in-process scanner's walkers (cores
    // + 2) and writer. It does not grow with time: 22 after 6 s and after 120 s (2,210 scans).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let connections = 8 + 1 + (cores + 2) + 1;
    let bound = 2 * connections + 1;
    assert!(
        db_fds_after <= bound.max(db_fds_before),
        "{db_fds_after} fds on the DB (bound {bound}, {db_fds_before} before)"
    );
}
