//! The `musicfs-scan` binary as cron runs it: exit codes, JSON, kill -9, other users.

#[path = "../../musicfs-scan/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
}

fn run(db: &Path, root: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("--db")
        .arg(db)
        .arg(root)
        .args(extra)
        .output()
        .expect("run musicfs-scan")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Mounts `db` for real and checks the tree it serves is the DB's, file for file: every
/// directory lists, every file stats with its DB size, and a sample reads byte-identical.
fn assert_mount_serves_consistent_tree(db: &Path, scratch: &Path) {
    let mnt = scratch.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(db, &mnt)).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT vpath, size, abs_path FROM tracks ORDER BY vpath")
        .unwrap();
    let rows: Vec<(String, i64, musicfs_db::PathBytes)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut served: Vec<String> = walk(&mnt)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix(&mnt).unwrap().to_str().unwrap().to_owned())
        .collect();
    served.sort();
    let in_db: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let first_difference = served.iter().zip(&in_db).find(|(a, b)| a != b);
    assert!(
        served.len() == in_db.len() && first_difference.is_none(),
        "the mount serves {} files, the DB holds {}; first difference {first_difference:?}",
        served.len(),
        in_db.len()
    );
    for (vpath, size, real) in rows.iter().step_by(25) {
        use std::os::unix::ffi::OsStrExt;
        let bytes = std::fs::read(mnt.join(vpath)).unwrap();
        assert_eq!(bytes.len() as i64, *size, "{vpath}");
        assert!(bytes == std::fs::read(std::ffi::OsStr::from_bytes(&real.0)).unwrap());
    }
    drop(stmt);
    drop(conn);
    mounted.unmount().unwrap();
}

#[test]
fn killed_at_any_moment_the_db_stays_consistent_and_the_next_run_converges() {
    let fx = fixture(1_500, 41);
    let reference = fx.dir.path().join("reference.db");
    musicfs_scan::scan(&musicfs_scan::ScanConfig::new(
        &reference,
        vec![fx.root.clone()],
    ))
    .unwrap();

    // 30 kill moments at random (seeded) delays. Rounds come in sixes: the first starts from
    // no DB (kills during schema creation and the first scan), the next ones resume from what
    // the previous kill left, every other one after touching 300 files (kills in the
    // changed-file path). So kills land in every phase, not only in quick no-change rescans.
    let mut rng = musicfs_tools::Rng::new(2026);
    let rounds = 30u64;
    let mut killed_mid_run = 0;
    for i in 0..rounds {
        if i % 6 == 0 {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = fx.db.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        } else if i % 2 == 1 {
            for f in fx.files.iter().step_by(5) {
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&f.path)
                    .map(|file| file.set_modified(std::time::SystemTime::now()));
            }
        }
        let delay_ms = 5 + (i % 6) * 30 + rng.below(30);
        let mut child = bin()
            .arg("--db")
            .arg(&fx.db)
            .arg(&fx.root)
            .args(["--batch-size", "20", "--batch-seconds", "0.02", "--quiet"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if fx.db.exists() {
            assert_consistent(&fx.db);
            // Mounting costs ~20 ms; every third kill keeps the test short.
            if i % 3 == 0 && musicfs_db::ReadPool::open(&fx.db, &Default::default()).is_ok() {
                assert_mount_serves_consistent_tree(&fx.db, fx.dir.path());
            }
        }
    }
    eprintln!("{killed_mid_run} of {rounds} kills landed mid-run");
    assert!(
        killed_mid_run >= 20,
        "only {killed_mid_run} of {rounds} kills landed mid-run"
    );
    let out = run(&fx.db, &fx.root, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_consistent(&fx.db);
    assert_eq!(snapshot(&fx.db), snapshot(&reference));
    assert_mount_serves_consistent_tree(&fx.db, fx.dir.path());

    // The search index, killed along with the DB writes 30 times, holds exactly the DB's
    // files (the outbox replayed what each kill interrupted), and nothing is left queued.
    let index = musicfs_search::SearchIndex::open(&musicfs_search::default_dir(&fx.db)).unwrap();
    let reader = index.reader().unwrap();
    let mut in_index = index.search(&reader, "-zzzzzzzz", 100_000).unwrap();
    in_index.sort();
    let conn = rusqlite::Connection::open(&fx.db).unwrap();
    let in_db: Vec<i64> = conn
        .prepare("SELECT id FROM files ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(in_index, in_db);
    let queued: i64 = conn
        .query_row("SELECT count(*) FROM search_queue", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 0);
}

#[test]
fn exit_codes_and_json_summary() {
    let fx = fixture(20, 43);
    let out = run(&fx.db, &fx.root, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["added"], 20);
    for key in ["changed", "removed", "unchanged", "errors", "seconds"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }

    // 5: finished, but some files could not be read.
    std::fs::write(fx.root.join("broken.flac"), b"nope").unwrap();
    let out = run(&fx.db, &fx.root, &["--json"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["added"].as_u64(), json["errors"].as_u64()),
        (Some(1), Some(1))
    );
    std::fs::remove_file(fx.root.join("broken.flac")).unwrap();

    // 3: another scanner holds the lock.
    let mut lock = fx.db.as_os_str().to_owned();
    lock.push(".scan-lock");
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    let out = run(&fx.db, &fx.root, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    drop(held);

    // 4: the origin is suddenly empty; nothing is removed.
    let moved = fx.dir.path().join("moved");
    std::fs::rename(&fx.root, &moved).unwrap();
    std::fs::create_dir(&fx.root).unwrap();
    let out = run(&fx.db, &fx.root, &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("refusing to scan"),
        "{}",
        stderr(&out)
    );
    let files: i64 = fx
        .conn()
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(files, 21, "broken.flac was indexed; nothing removed since");

    // 1: a bad template is reported with its column, before anything is written.
    let out = run(&fx.db, &moved, &["--template", "$artist/$titel"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("column 10"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `titel`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_file_and_environment() {
    let fx = fixture(10, 47);
    let config = fx.dir.path().join("musicfs.toml");
    std::fs::write(
        &config,
        format!(
            "roots = [{:?}]\n[templates]\nArtists = \"${{artist|\\\"Unknown\\\"}}/$title\"\n\
             Years = \"${{year|\\\"Unknown\\\"}}/$title\"\n",
            fx.root
        ),
    )
    .unwrap();
    let out = bin()
        .env("MUSICFS_DB", &fx.db)
        .env("MUSICFS_CONFIG", &config)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let views: Vec<String> = fx
        .conn()
        .prepare("SELECT name FROM views ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(views, ["Artists", "Years"]);
}

/// Root reads every folder whatever its mode, so the scanner runs as `nobody` here.
#[test]
fn an_unreadable_folder_keeps_its_files() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        // .ci/run installs it: in CI a missing prerequisite fails instead of skipping.
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false"),
            "prerequisite missing in CI: setpriv (util-linux)"
        );
        eprintln!("\n*** SKIPPED: setpriv (util-linux) is not installed ***\n");
        return;
    }
    let fx = fixture(120, 53);
    let chmod_all = |mode_dir: u32, mode_file: u32| {
        for e in walk(fx.dir.path()) {
            let mode = if e.is_dir() { mode_dir } else { mode_file };
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    chmod_all(0o777, 0o666);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_musicfs-scan"))
            .arg("--db")
            .arg(&fx.db)
            .arg(&fx.root)
            .arg("--json")
            .output()
            .unwrap()
    };
    let out = as_nobody();
    assert!(out.status.success(), "{}", stderr(&out));
    let before = snapshot(&fx.db);
    let album = fx.files[0].path.parent().unwrap();
    std::fs::set_permissions(album, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Also delete one file elsewhere: the rest of the scan still happens.
    let other = fx
        .files
        .iter()
        .find(|f| !f.path.starts_with(album))
        .unwrap();
    std::fs::remove_file(&other.path).unwrap();
    let out = as_nobody();
    std::fs::set_permissions(album, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot list folder"),
        "{}",
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["removed"], 1, "{json}");
    let after = snapshot(&fx.db);
    assert_eq!(after.1.len(), before.1.len() - 1);
    for f in fx.files.iter().filter(|f| f.path.starts_with(album)) {
        use std::os::unix::ffi::OsStrExt;
        assert!(
            after.1.contains(f.path.as_os_str().as_bytes()),
            "{:?} was removed",
            f.path
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
