//! Shared helpers of the end-to-end tests.

use std::path::{Path, PathBuf};

/// The shared real-world corpus (`../shared/corpus` beside the checkout, or `$MUSICFS_CORPUS`).
/// `None`, with a loud message, when it is absent: tests that need it skip.
pub fn shared_corpus() -> Option<PathBuf> {
    let path = std::env::var_os("MUSICFS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "\n*** SKIPPED: no corpus at {} (set MUSICFS_CORPUS or put shared/ beside the \
             checkout) ***\n",
            path.display()
        );
        None
    }
}

/// Every regular file below `dir` (not following symlinks).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

use std::time::{Duration, Instant};

use musicfs_fs::{MountConfig, Mounted};
use musicfs_scan::{ScanConfig, Summary};
use musicfs_tools::GeneratedFile;

/// A generated library of real audio files, scanned into a DB and mounted for real.
pub struct MountedLibrary {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub db: PathBuf,
    pub mnt: PathBuf,
    pub files: Vec<GeneratedFile>,
    pub mounted: Option<Mounted>,
}

impl MountedLibrary {
    pub fn new(n: usize, seed: u64) -> MountedLibrary {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("music");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let files = musicfs_tools::generate_library(&root, n, seed).unwrap();
        let db = dir.path().join("library.db");
        let mut lib = MountedLibrary {
            dir,
            root,
            db,
            mnt,
            files,
            mounted: None,
        };
        lib.scan();
        lib.mounted = Some(musicfs_fs::mount(lib.mount_config()).unwrap());
        lib
    }

    /// Kernel TTLs are long (60 s) on purpose: only invalidation can make changes visible.
    pub fn mount_config(&self) -> MountConfig {
        let mut cfg = MountConfig::new(&self.db, &self.mnt);
        cfg.poll_interval = Duration::from_millis(100);
        cfg
    }

    pub fn scan(&self) -> Summary {
        musicfs_scan::scan(&ScanConfig::new(&self.db, vec![self.root.clone()])).unwrap()
    }

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// (virtual path, absolute backing path) of every file, from the DB.
    pub fn placements(&self) -> Vec<(String, Vec<u8>)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT vpath, abs_path FROM tracks ORDER BY vpath")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, musicfs_db::PathBytes>(1)?.into_vec()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }
}

impl Drop for MountedLibrary {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().unwrap();
        }
    }
}

/// Polls `check` until it holds or `limit` passes; returns how long it took.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Every path below `dir` (relative, '/'-joined), files and directories, walked through the
/// filesystem (readdir + stat).
pub fn walk_relative(dir: &Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let is_dir = e.file_type().unwrap().is_dir();
            if is_dir {
                stack.push((e.path(), rel.clone()));
            }
            out.push((rel, is_dir));
        }
    }
    out
}
