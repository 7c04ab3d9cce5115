#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use musicfs_scan::{ScanConfig, Summary, scan};
use musicfs_tools::GeneratedFile;
use rusqlite::Connection;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub db: PathBuf,
    pub files: Vec<GeneratedFile>,
}

pub fn fixture(n: usize, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    std::fs::create_dir(&root).unwrap();
    let files = musicfs_tools::generate_library(&root, n, seed).unwrap();
    let db = dir.path().join("library.db");
    Fixture {
        dir,
        root,
        db,
        files,
    }
}

impl Fixture {
    pub fn config(&self) -> ScanConfig {
        ScanConfig::new(&self.db, vec![self.root.clone()])
    }

    pub fn scan(&self) -> Summary {
        scan(&self.config()).expect("scan")
    }

    pub fn conn(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }
}

pub fn assert_consistent(db: &Path) {
    let conn = Connection::open(db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    if version == 0 {
        // Killed before the schema transaction committed: an empty file, nothing to check
        // (the schema is created atomically; the next run creates it).
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "a half-created schema");
        return;
    }
    let problems = musicfs_db::check_consistency(&conn).unwrap();
    assert!(problems.is_empty(), "inconsistent DB: {problems:#?}");
}

/// (virtual path, size, title) of every placement.
pub type Tree = BTreeSet<(String, i64, Option<String>)>;

/// The observable library: the virtual tree and every real path. Which of two identical
/// duplicates gets " (2)" is not part of it.
pub fn snapshot(db: &Path) -> (Tree, BTreeSet<Vec<u8>>) {
    let conn = Connection::open(db).unwrap();
    let mut tree = BTreeSet::new();
    let mut stmt = conn
        .prepare("SELECT vpath, size, title FROM tracks")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
    {
        tree.insert(row.unwrap());
    }
    let mut real = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT abs_path FROM file_paths").unwrap();
    for row in stmt
        .query_map([], |r| r.get::<_, musicfs_db::PathBytes>(0))
        .unwrap()
    {
        real.insert(row.unwrap().into_vec());
    }
    (tree, real)
}

/// Virtual path of the entry for a real file (first placement).
pub fn vpath_of(conn: &Connection, real: &Path) -> Option<(i64, String)> {
    use std::os::unix::ffi::OsStrExt;
    conn.query_row(
        "SELECT p.entry_id, p.vpath FROM entry_paths p JOIN file_paths f ON f.file_id = p.file_id \
         WHERE CAST(f.abs_path AS BLOB) = CAST(?1 AS BLOB)",
        [musicfs_db::PathBytes::borrowed(real.as_os_str().as_bytes())],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

pub fn data_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .unwrap()
}

/// Moves a file's mtime forward so a rewrite of the same size is seen as a change.
pub fn bump_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
    f.set_modified(t).unwrap();
}
