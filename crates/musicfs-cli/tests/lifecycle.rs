//! `musicfs mount` as a service runs it: restarted while a player holds a file, unmounted
//! from outside, given a mistyped folder or a bad DB, opened by Python.

mod support;

use support::{MountChild, first_file, is_mounted, musicfs, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A scanned library: (db, mountpoint).
fn library(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let music = dir.join("music");
    musicfs_tools::generate_library(&music, n, 5).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let db = dir.join("lib.db");
    let scan = musicfs()
        .args(["scan", "--quiet", "--db"])
        .arg(&db)
        .arg(&music)
        .status()
        .unwrap();
    assert!(scan.success());
    (db, mnt)
}

/// `musicfs mount --db DB MNT` with its stderr in `log`; returns once mounted.
fn mount(db: &Path, mnt: &Path, log: &Path) -> MountChild {
    let child = musicfs()
        .args(["mount", "--db"])
        .arg(db)
        .arg(mnt)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let child = MountChild::new(child, mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(mnt)),
        "never mounted"
    );
    child
}

fn exited_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A player holds a file; the service is restarted: the old instance detaches and waits for
/// the file to close; the new one mounts on the same path. When the old one finally exits it
/// must not take the new mount down with it, and a mount that disappears underneath exits
/// non-zero (so `Restart=on-failure` brings it back).
#[test]
fn a_detached_instance_never_unmounts_a_newer_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mnt) = library(dir.path(), 6);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut old = mount(&db, &mnt, &log_a);
    let held = std::fs::File::open(first_file(&mnt)).unwrap();
    signal(&old, libc::SIGINT);
    assert!(wait_for(Duration::from_secs(5), || !is_mounted(&mnt)));
    assert!(old.try_wait().unwrap().is_none(), "exited with a file open");

    let mut new = mount(&db, &mnt, &log_b);
    drop(held);
    let status = exited_within(&mut old, Duration::from_secs(10)).expect("old never exited");
    assert!(status.success(), "old instance: {status}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(is_mounted(&mnt), "the old instance unmounted the new mount");
    assert!(new.try_wait().unwrap().is_none(), "the new instance exited");
    assert!(std::fs::read(first_file(&mnt)).unwrap().len() > 100);

    // Unmounted from outside: an error exit, with the reason.
    let status = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(status.success());
    let status = exited_within(&mut new, Duration::from_secs(10)).expect("never exited");
    assert!(!status.success(), "a vanished mount exited {status}");
    let log = std::fs::read_to_string(&log_b).unwrap();
    assert!(log.contains("the mount disappeared"), "{log}");
}

/// While detached, Ctrl-C again names the files holding the mount and their processes;
/// once more stops at once.
#[test]
fn second_ctrl_c_says_who_holds_the_mount_and_third_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mnt) = library(dir.path(), 4);
    let log = dir.path().join("m.log");
    let mut child = mount(&db, &mnt, &log);
    let held = std::fs::File::open(first_file(&mnt)).unwrap();
    signal(&child, libc::SIGINT);
    assert!(wait_for(Duration::from_secs(5), || !is_mounted(&mnt)));
    signal(&child, libc::SIGINT);
    let me = format!("pid {}", std::process::id());
    assert!(
        wait_for(Duration::from_secs(5), || std::fs::read_to_string(&log)
            .unwrap()
            .contains(&me)),
        "holders not listed: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&dir.path().join("music").display().to_string()),
        "{text}"
    );
    assert!(text.contains("Ctrl-C once more"), "{text}");
    assert!(child.try_wait().unwrap().is_none());
    signal(&child, libc::SIGINT);
    assert!(
        exited_within(&mut child, Duration::from_secs(5)).is_some(),
        "third Ctrl-C did not stop it"
    );
    drop(held);
}

#[test]
fn a_missing_music_folder_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let db = dir.path().join("new.db");
    let log = dir.path().join("m.log");
    let child = musicfs()
        .args(["mount", "--db"])
        .arg(&db)
        .arg(dir.path().join("Musik"))
        .arg(&mnt)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Had it mounted, it would wait for Ctrl-C: the guard kills it when the test fails.
    let mut child = MountChild::new(child, &mnt);
    let status = exited_within(&mut child, Duration::from_secs(5)).expect("did not refuse at once");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("Musik") && err.contains("nothing was mounted"),
        "{err}"
    );
    assert!(!err.contains("absolute path"), "{err}");
    assert!(!db.exists(), "a DB was created");
    assert!(!is_mounted(&mnt));
}

/// A file that is not SQLite, given as the DB: every command fails at once, with the cause
/// said once.
#[test]
fn a_db_that_is_not_sqlite_fails_at_once_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "shopping list: milk, eggs, bread\n".repeat(100)).unwrap();
    for args in [
        vec!["mount", "--db", db.to_str().unwrap(), mnt.to_str().unwrap()],
        vec!["search", "--db", db.to_str().unwrap(), "milk"],
        vec!["stats", "--db", db.to_str().unwrap()],
    ] {
        let start = Instant::now();
        let out = musicfs().args(&args).output().unwrap();
        let took = start.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        assert_eq!(
            err.matches("not a database").count(),
            1,
            "{args:?}: cause not said exactly once: {err}"
        );
    }
}

#[test]
fn search_without_a_db_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = musicfs()
        .args(["search", "--db"])
        .arg(dir.path().join("none.db"))
        .arg("x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no database here"), "{err}");
    assert!(!err.contains("Error code"), "{err}");
}

#[test]
fn a_busy_mountpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mnt) = library(dir.path(), 2);
    let log = dir.path().join("m.log");
    let mut child = mount(&db, &mnt, &log);
    let out = musicfs()
        .args(["mount", "--db"])
        .arg(&db)
        .arg(&mnt)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("already a mount point"), "{err}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first mount suffered"
    );
    signal(&child, libc::SIGTERM);
    assert!(
        exited_within(&mut child, Duration::from_secs(10))
            .unwrap()
            .success()
    );
}

/// Python's `open()` asks every file `isatty` (an ioctl): answered ENOTTY, and not logged
/// (a media server scanning 10M tracks would write 30M log lines).
#[test]
fn ioctls_are_answered_quietly() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let (db, mnt) = library(dir.path(), 2);
    let log = dir.path().join("m.log");
    let mut child = mount(&db, &mnt, &log);
    let file = std::fs::File::open(first_file(&mnt)).unwrap();
    for _ in 0..50 {
        // SAFETY: TCGETS into a termios-sized buffer on an open fd.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TCGETS, &mut termios) };
        assert_eq!(rc, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
    drop(file);
    signal(&child, libc::SIGTERM);
    assert!(exited_within(&mut child, Duration::from_secs(10)).is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.to_lowercase().contains("ioctl"), "{text}");
}
