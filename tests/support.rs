//! Shared helpers of the end-to-end tests.

use std::path::{Path, PathBuf};

pub mod flaky_origin;

use std::process::Command;

pub use musicfs_tools::missing_prerequisite;

/// The shared real-world corpus (`../shared/corpus` beside the checkout, or `$MUSICFS_CORPUS`).
/// `None`, with a loud message, when it is absent: tests that need it skip.
pub fn shared_corpus() -> Option<PathBuf> {
    let path = std::env::var_os("MUSICFS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if path.is_dir() {
        Some(path)
    } else {
        missing_prerequisite(&format!(
            "no corpus at {} (set MUSICFS_CORPUS or put shared/ beside the checkout)",
            path.display()
        ));
        None
    }
}

/// The corpus of other projects' test files fetched by `tools/fetch_corpus.py`
/// (`$MUSICFS_REGISTRY_CORPUS`, else `$XDG_CACHE_HOME/musicfs/corpus`, else
/// `~/.cache/musicfs/corpus`). `None`, with a loud message, when it has not been fetched. Every
/// file of its manifest must be there with its recorded size: a half-extracted cache fails.
pub fn registry_corpus() -> Option<PathBuf> {
    let path = match std::env::var_os("MUSICFS_REGISTRY_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_default()
            .join("musicfs/corpus"),
    };
    let Ok(manifest) = std::fs::read_to_string(path.join("MANIFEST.tsv")) else {
        missing_prerequisite(&format!(
            "no registry corpus at {} (run `python3 tools/fetch_corpus.py`)",
            path.display()
        ));
        return None;
    };
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, size) = (cols[2], cols[4].parse::<u64>().unwrap());
        let meta = std::fs::metadata(path.join(file))
            .unwrap_or_else(|e| panic!("registry corpus incomplete: {file}: {e}"));
        assert_eq!(meta.len(), size, "registry corpus file changed: {file}");
    }
    Some(path)
}

/// Every file below `dir` whose extension the scanner takes as audio.
pub fn audio_files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_below(dir)
        .into_iter()
        .filter(|p| {
            use std::os::unix::ffi::OsStrExt;
            musicfs_tags::audio_extension(p.file_name().unwrap().as_bytes()).is_some()
        })
        .collect();
    files.sort();
    files
}

/// Runs a scan on another thread and fails the test if it does not finish in `limit`: a
/// hostile file must not hang the scanner.
pub fn scan_with_watchdog(cfg: ScanConfig, limit: Duration) -> Summary {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(musicfs_scan::scan(&cfg)).unwrap());
    rx.recv_timeout(limit)
        .expect("the scan hung")
        .expect("the scan failed")
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

/// Fails the test unless every file handle of the mount is released. The kernel sends RELEASE
/// asynchronously after close(), so this waits for it (up to 5 s).
pub fn assert_handles_released(mounted: &Mounted) {
    assert!(
        eventually(Duration::from_secs(5), || mounted.open_files() == 0).is_some(),
        "file handles leaked: {} still open",
        mounted.open_files()
    );
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
/// filesystem (readdir + stat). Any error fails the test: the tree must hold still.
pub fn walk_relative(dir: &Path) -> Vec<(String, bool)> {
    walk(dir, false)
}

/// [`walk_relative`] of a tree that changes while it is walked (a mount following a scanner):
/// a folder that vanished between its parent's listing and its own is skipped, as `find`
/// would report and go on.
pub fn walk_relative_live(dir: &Path) -> Vec<(String, bool)> {
    walk(dir, true)
}

fn walk(dir: &Path, live: bool) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let listing = match std::fs::read_dir(&d) {
            Err(err)
                if live && !prefix.is_empty() && err.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            listing => listing.unwrap(),
        };
        for e in listing {
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

/// A tmpfs of `size` mounted on `dir` (root only), unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing_prerequisite("cannot mount a tmpfs here (needs root)");
        }
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    pub fn resize(&self, size: &str) {
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
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Files in the DB at `db`, read without creating the file: an error while a scan is still
/// creating it (the file exists before its tables do), so a poller can wait for it.
pub fn try_file_count(db: &Path) -> rusqlite::Result<u64> {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
        .query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// [`try_file_count`] of a DB that must be there.
pub fn file_count(db: &Path) -> u64 {
    try_file_count(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()))
}

/// Starts sshd serving SFTP, or reports the missing prerequisite (a failure in CI).
pub fn ssh_server(dir: &Path) -> Option<musicfs_tools::servers::SshServer> {
    ssh_server_with(dir, "")
}

/// [`ssh_server`] with more `sshd_config` lines.
pub fn ssh_server_with(
    dir: &Path,
    extra_config: &str,
) -> Option<musicfs_tools::servers::SshServer> {
    match musicfs_tools::servers::SshServer::start_with(dir, extra_config) {
        Ok(server) => Some(server),
        Err(reason) => {
            missing_prerequisite(&format!("SFTP server: {reason}"));
            None
        }
    }
}

/// Starts an S3 server, or reports the missing prerequisite (a failure in CI).
pub fn s3_server() -> Option<musicfs_tools::servers::S3Server> {
    match musicfs_tools::servers::S3Server::start() {
        Ok(server) => Some(server),
        Err(reason) => {
            missing_prerequisite(&format!("S3 server: {reason}"));
            None
        }
    }
}

/// A generated library whose every name can also be an S3 key (UTF-8, no control
/// characters), so local, SFTP and S3 copies hold exactly the same files.
pub fn keyable_library(
    root: &Path,
    n: usize,
    seed: u64,
    formats: &[musicfs_tools::Format],
) -> Vec<GeneratedFile> {
    let files = musicfs_tools::generate_library_with(root, n, seed, formats).unwrap();
    files
        .into_iter()
        .filter(|f| {
            let rel = f.path.strip_prefix(root).unwrap();
            let keyable = rel
                .to_str()
                .is_some_and(|r| !r.chars().any(|c| c.is_ascii_control()));
            if !keyable {
                std::fs::remove_file(&f.path).unwrap();
            }
            keyable
        })
        .collect()
}

/// Test credentials for the S3 server (moto accepts any), set once per test process.
pub fn aws_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any S3 client of this process reads them.
    ONCE.call_once(|| unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "musicfs-test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "musicfs-test-secret");
    });
}

/// A new ed25519 key pair at `path`: the public half as a `known_hosts` key ("type base64"),
/// to stand for another server's host key.
pub fn another_host_key(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A keyable library of FLAC and MP3 files, each grown to about `bytes` with bytes that do
/// not repeat (as compressed audio does not): a cache test counts chunks and bytes, and the
/// zero frames of [`musicfs_tools::pad_audio`] would be stored once per file.
pub fn incompressible_library(
    root: &Path,
    n: usize,
    seed: u64,
    bytes: usize,
) -> Vec<GeneratedFile> {
    use std::io::Write;
    let formats = [musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3];
    let files = keyable_library(root, n, seed, &formats);
    let mut x = seed | 1;
    for f in &files {
        let len = std::fs::metadata(&f.path).unwrap().len() as usize;
        let noise: Vec<u8> = (len..bytes.max(len))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&f.path)
            .unwrap();
        file.write_all(&noise).unwrap();
    }
    files
}

/// A Python with mutagen (the tagging library Picard and beets use), for re-tags as real
/// tools write them: `$MUSICFS_PYTHON`, else the venv `.ci/run` makes
/// (`~/.cache/musicfs/venv`), else `python3`. None, loudly, when it cannot import mutagen.
pub fn mutagen_python() -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/musicfs/venv/bin/python"))
        .filter(|p| p.exists());
    let python = std::env::var_os("MUSICFS_PYTHON")
        .map(PathBuf::from)
        .or(venv)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&python)
        .args(["-c", "import mutagen"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else {
        missing_prerequisite(&format!(
            "{} cannot import mutagen (pip install mutagen, or set MUSICFS_PYTHON)",
            python.display()
        ));
        None
    }
}

/// Encodes `seconds` of noise into `out` with ffmpeg and its default layout for the
/// extension (M4A: `moov` after `mdat`), plus `extra` arguments. None, loudly, without ffmpeg.
pub fn ffmpeg_encode(out: &Path, seconds: u32, extra: &[&str]) -> Option<()> {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("anoisesrc=d={seconds}:c=pink:a=0.3"))
        .args(["-ac", "2"])
        .args(extra)
        .arg(out)
        .status();
    match status {
        Ok(s) if s.success() => Some(()),
        Ok(s) => panic!("ffmpeg failed ({s}) making {}", out.display()),
        Err(err) => {
            missing_prerequisite(&format!("no ffmpeg ({err}): apt-get install ffmpeg"));
            None
        }
    }
}
