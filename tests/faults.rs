//! Failures around the DB (toward issue #5): a full disk, a corrupt file. A clean error, and
//! nothing already committed is lost.

use std::path::{Path, PathBuf};
use std::process::Command;

use musicfs_scan::{ScanConfig, ScanError, scan};

/// A tmpfs of `size` mounted on `dir` (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("\n*** SKIPPED: cannot mount a tmpfs here (needs root) ***\n");
        }
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

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
    // `musicfs check` names the damage.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let problems = musicfs_db::check_consistency(&conn);
    assert!(
        problems.map(|p| !p.is_empty()).unwrap_or(true),
        "check found nothing wrong"
    );
}
