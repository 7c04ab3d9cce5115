//! Chunk files on disk: `<dir>/ab/abcdef0123456789`, named by the xxh3-64 of their bytes in
//! hex (sharded by the first two digits, 256 folders). A chunk is written to a temporary file
//! and renamed into place, so a writer killed mid-chunk leaves no partial chunk under a
//! chunk's name; every read checks the bytes against the name anyway (a disk that lost or
//! flipped bytes), removes a chunk that fails, and reports it missing. Several processes may
//! share a store: a chunk's content is fixed by its name, so two writers of one chunk write
//! the same bytes, and the last rename wins harmlessly.
//!
//! The store is private: its folders are 0700 and its files 0600 (set explicitly, whatever
//! the umask), it refuses a folder another user owns or could write to, and it never follows
//! a symbolic link in it (the folder itself, its sub-folders, temporary and chunk files):
//! cached music of a private bucket is readable by its owner only.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{CacheError, Result};

/// Temporary files older than this are a dead writer's leftovers; a live writer renames its
/// own within a chunk's write.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// xxh3-64 of a chunk's bytes: its name in the store, and its `hash` in the `chunks` table
/// (the same 64 bits as a signed SQLite INTEGER: [`ChunkHash::to_sql`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash(pub u64);

impl ChunkHash {
    pub fn of(data: &[u8]) -> ChunkHash {
        ChunkHash(xxh3_64(data))
    }

    pub fn to_sql(self) -> i64 {
        self.0 as i64
    }

    pub fn from_sql(value: i64) -> ChunkHash {
        ChunkHash(value as u64)
    }
}

impl std::fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Mode of every folder of the store: its owner's only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file of the store (chunks, temporaries, `.store-id`).
pub const FILE_MODE: u32 = 0o600;

pub struct ChunkStore {
    dir: PathBuf,
    tmp: PathBuf,
    corruptions: AtomicU64,
}

impl ChunkStore {
    /// `$XDG_CACHE_HOME/musicfs/chunks`, else `~/.cache/musicfs/chunks`.
    pub fn default_dir() -> PathBuf {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/var/cache"));
        cache.join("musicfs").join("chunks")
    }

    /// Opens the store at `dir`, creating it (missing parents too, 0700); clears temporary
    /// files left by dead writers. Refuses ([`CacheError::Unsafe`]) a folder that is a
    /// symbolic link, owned by another user, or writable by group or others, and a store
    /// whose sub-folders are; fixes the modes of the folders it owns to 0700 (a store made by
    /// an older version, under a umask of 022, was 0755).
    pub fn open(dir: &Path) -> Result<ChunkStore> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)
                .map_err(|e| CacheError::io(parent, e))?;
        }
        private_dir(dir)?;
        let entries = fs::read_dir(dir).map_err(|e| CacheError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CacheError::io(dir, e))?;
            let name = entry.file_name();
            let path = entry.path();
            let shard = name.len() == 2 && name.to_str().is_some_and(is_hex);
            if shard || name == ".tmp" {
                let meta = fs::symlink_metadata(&path).map_err(|e| CacheError::io(&path, e))?;
                check_private_dir(&path, &meta)?;
            } else if name == ".store-id" {
                let meta = fs::symlink_metadata(&path).map_err(|e| CacheError::io(&path, e))?;
                check_private_file(&path, &meta)?;
            }
        }
        let tmp = dir.join(".tmp");
        private_dir(&tmp)?;
        let store = ChunkStore {
            dir: dir.to_owned(),
            tmp,
            corruptions: AtomicU64::new(0),
        };
        store.sweep_stale_tmp();
        Ok(store)
    }

    /// Removes temporary files of writers that are gone: at once when the process named in
    /// the file (`<pid>-<n>`) no longer runs, else once older than [`STALE_TMP`] (a reused
    /// pid, or a process in another PID namespace sharing the store).
    fn sweep_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next()?.parse::<u32>().ok());
            let dead = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            let stale = dead
                || entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The store's identity (`<dir>/.store-id`, made once): a DB's cache rows are valid only
    /// for the store they were written with (not after `--cache-dir` changed, or the folder
    /// was deleted and made again).
    pub fn id(&self) -> Result<String> {
        if let Some(id) = ChunkStore::peek_id(&self.dir)? {
            return Ok(id);
        }
        let path = self.dir.join(".store-id");
        let id: String = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // The first writer wins; a racing one reads its id.
        match create_private(&path) {
            Ok(mut f) => {
                f.write_all(id.as_bytes())
                    .map_err(|e| CacheError::io(&path, e))?;
                Ok(id)
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => ChunkStore::peek_id(&self.dir)?
                .ok_or_else(|| {
                    CacheError::io(&path, std::io::Error::other("empty store identity"))
                }),
            Err(err) => Err(CacheError::io(&path, err)),
        }
    }

    /// The identity of the store at `dir` if it has one, creating nothing (`None`: no such
    /// folder, or a folder no store was opened in). Never follows a symbolic link.
    pub fn peek_id(dir: &Path) -> Result<Option<String>> {
        let path = dir.join(".store-id");
        let mut text = String::new();
        let read = open_nofollow(&path).and_then(|mut f| f.read_to_string(&mut text));
        match read {
            Ok(_) => Ok(Some(text.trim().to_owned()).filter(|id| !id.is_empty())),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(CacheError::io(&path, err)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the chunk `hash` lives.
    pub fn path(&self, hash: ChunkHash) -> PathBuf {
        let name = hash.to_string();
        self.dir.join(&name[..2]).join(name)
    }

    /// Whether the chunk is stored with `len` bytes (not verified: see [`ChunkStore::get`]).
    pub fn contains(&self, hash: ChunkHash, len: usize) -> bool {
        fs::symlink_metadata(self.path(hash)).is_ok_and(|m| m.is_file() && m.len() == len as u64)
    }

    /// Stores `data` under its hash. Returns the hash and whether bytes were written (false:
    /// the store had it already).
    pub fn put(&self, data: &[u8]) -> Result<(ChunkHash, bool)> {
        let staged = self.stage(data)?;
        let (hash, new) = (staged.hash, staged.is_new());
        self.publish(staged)?;
        Ok((hash, new))
    }

    /// Writes `data` under a temporary name: no reader, here or in another process sharing
    /// the store, sees it until [`ChunkStore::publish`]. The writer stages a batch, records
    /// its rows, then publishes: a process killed in between leaves temporary files (swept
    /// at the next open), never a chunk file that no row names, which nothing would delete.
    pub fn stage(&self, data: &[u8]) -> Result<Staged> {
        let hash = ChunkHash::of(data);
        let len = data.len() as u64;
        if self.contains(hash, data.len()) {
            return Ok(Staged {
                hash,
                len,
                tmp: None,
            });
        }
        // `<pid>-<random>`: the pid tells the sweep whose it is; the random part makes the
        // name unguessable, and it is created exclusively, never through a link.
        let tmp = self.tmp.join(format!(
            "{}-{:016x}",
            std::process::id(),
            u64::from_ne_bytes(random_bytes::<8>())
        ));
        let mut file = create_private(&tmp).map_err(|e| CacheError::io(&tmp, e))?;
        if let Err(err) = file.write_all(data) {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::io(&tmp, err));
        }
        Ok(Staged {
            hash,
            len,
            tmp: Some(tmp),
        })
    }

    /// Moves a staged chunk under its name (nothing to do if the store had it already).
    pub fn publish(&self, mut staged: Staged) -> Result<()> {
        let Some(tmp) = staged.tmp.take() else {
            return Ok(());
        };
        let path = self.path(staged.hash);
        let renamed = fs::rename(&tmp, &path).or_else(|err| match err.kind() {
            ErrorKind::NotFound => {
                let shard = path.parent().expect("a chunk path has a shard folder");
                private_dir(shard).map_err(|e| std::io::Error::other(e.to_string()))?;
                fs::rename(&tmp, &path)
            }
            _ => Err(err),
        });
        if let Err(err) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::io(&path, err));
        }
        Ok(())
    }

    /// The bytes of chunk `hash` (`len` of them), checked against the hash. `None` if it is
    /// not stored, or was damaged: a damaged chunk is removed, logged and counted.
    pub fn get(&self, hash: ChunkHash, len: usize) -> Result<Option<Vec<u8>>> {
        let mut data = Vec::with_capacity(len);
        Ok(self.get_into(hash, len, &mut data)?.then_some(data))
    }

    /// Appends the bytes of chunk `hash` to `out` (one copy less than [`ChunkStore::get`]
    /// for a reader assembling a range); false, `out` unchanged, if missing or damaged.
    pub fn get_into(&self, hash: ChunkHash, len: usize, out: &mut Vec<u8>) -> Result<bool> {
        let path = self.path(hash);
        let mut file = match open_nofollow(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
            // A symbolic link under a chunk's name: never followed, removed as damaged.
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
                self.corruptions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{}: a symbolic link, not a chunk; removed", path.display());
                let _ = fs::remove_file(&path);
                return Ok(false);
            }
            Err(err) => return Err(CacheError::io(&path, err)),
        };
        let at = out.len();
        out.reserve(len + 1);
        // One byte more than wanted: a chunk file that grew is as damaged as one cut short.
        let read = (&mut file).take(len as u64 + 1).read_to_end(out);
        if let Err(err) = read {
            out.truncate(at);
            return Err(CacheError::io(&path, err));
        }
        let got = out.len() - at;
        if got == len && ChunkHash::of(&out[at..]) == hash {
            return Ok(true);
        }
        let matches = got == len;
        out.truncate(at);
        self.corruptions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "{}: damaged chunk ({got} bytes, {len} expected{}); removed, it will be fetched again",
            path.display(),
            if matches {
                ", content does not match its hash"
            } else {
                ""
            }
        );
        let _ = fs::remove_file(&path);
        Ok(false)
    }

    /// Reads chunk `hash` into `out` (exactly its length) and checks it, for a reader that
    /// must not wait on the disk when `wait` is false (a FUSE thread): then the chunk file is
    /// opened only if its path is in the kernel's lookup cache (`RESOLVE_CACHED`) and read
    /// only from the page cache (`RWF_NOWAIT`). Never removes or counts anything: a chunk
    /// that is [`ChunkRead::Unusable`] is left to [`ChunkStore::get_into`], which does.
    pub fn read_verified(&self, hash: ChunkHash, out: &mut [u8], wait: bool) -> ChunkRead {
        let Some(file) = open_chunk(&self.path(hash), wait) else {
            return ChunkRead::WouldBlock;
        };
        let Ok(file) = file else {
            return ChunkRead::Unusable;
        };
        // One byte more than wanted: a chunk file that grew is as damaged as one cut short.
        let mut extra = 0u8;
        let flags = if wait { 0 } else { libc::RWF_NOWAIT };
        let mut done = 0usize;
        while done <= out.len() {
            let rest = &mut out[done..];
            let iov = [
                libc::iovec {
                    iov_base: rest.as_mut_ptr().cast(),
                    iov_len: rest.len(),
                },
                libc::iovec {
                    iov_base: (&raw mut extra).cast(),
                    iov_len: 1,
                },
            ];
            let skip = usize::from(rest.is_empty());
            // SAFETY: the iovecs cover live, writable memory of their stated lengths; the fd
            // is open.
            let n = unsafe {
                libc::preadv2(
                    file.as_raw_fd(),
                    iov[skip..].as_ptr(),
                    (2 - skip) as i32,
                    done as libc::off_t,
                    flags,
                )
            };
            match n {
                0 => break,
                n if n > 0 => done += n as usize,
                _ if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted => {}
                _ if !wait => return ChunkRead::WouldBlock,
                _ => return ChunkRead::Unusable,
            }
            if !wait && done < out.len() {
                // Part of it is not in memory (or it was cut short: the waiting read tells).
                return ChunkRead::WouldBlock;
            }
        }
        match done == out.len() && ChunkHash::of(out) == hash {
            true => ChunkRead::Verified,
            false => ChunkRead::Unusable,
        }
    }

    /// Removes chunk `hash`; returns whether it was there.
    pub fn remove(&self, hash: ChunkHash) -> Result<bool> {
        let path = self.path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(CacheError::io(&path, err)),
        }
    }

    /// Damaged chunks found (and removed) by this process.
    pub fn corruptions(&self) -> u64 {
        self.corruptions.load(Ordering::Relaxed)
    }
}

/// A chunk written by [`ChunkStore::stage`], not yet published. Dropped unpublished, its
/// temporary file is removed.
#[derive(Debug)]
pub struct Staged {
    pub hash: ChunkHash,
    pub len: u64,
    /// None: the store held the chunk already.
    tmp: Option<PathBuf>,
}

impl Staged {
    /// Whether publishing it adds a file to the store (else the store had it).
    pub fn is_new(&self) -> bool {
        self.tmp.is_some()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// What [`ChunkStore::read_verified`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkRead {
    /// `out` holds the chunk, checked against its hash.
    Verified,
    /// Not without waiting on the disk (asked not to).
    WouldBlock,
    /// Missing, damaged, or unreadable: not served.
    Unusable,
}

/// Opens a chunk file; `None` when `wait` is false and that would wait on the disk (a path
/// not in the kernel's lookup cache).
fn open_chunk(path: &Path, wait: bool) -> Option<std::io::Result<File>> {
    use std::os::unix::ffi::OsStrExt;
    if wait {
        return Some(open_nofollow(path));
    }
    /// `RESOLVE_CACHED` (Linux 5.12): fail with EAGAIN rather than look a name up on disk.
    const RESOLVE_CACHED: u64 = 0x20;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Some(Err(ErrorKind::InvalidInput.into()));
    };
    // SAFETY: open_how is plain data; zero is the documented default for unused fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = RESOLVE_CACHED;
    // SAFETY: valid pointers to a NUL-terminated path and an open_how of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd >= 0 {
        // SAFETY: a fresh descriptor we own.
        return Some(Ok(unsafe { File::from_raw_fd(fd as i32) }));
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // Not cached, or a kernel without openat2 / RESOLVE_CACHED: the waiting path opens it.
        Some(libc::EAGAIN) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EINTR) => None,
        _ => Some(Err(err)),
    }
}

/// Opens a file of the store for reading, failing (`ELOOP`) on a symbolic link.
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates a file of the store: exclusively (`O_EXCL`: never an existing file, nor through a
/// symbolic link), mode 0600 set explicitly (a umask may only have narrowed it).
fn create_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Makes the folder `path` (0700, set explicitly), or checks the one there with
/// [`check_private_dir`].
fn private_dir(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| CacheError::io(path, e)),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).map_err(|e| CacheError::io(path, e))?;
            check_private_dir(path, &meta)
        }
        Err(err) => Err(CacheError::io(path, err)),
    }
}

/// A folder of the store must be a real folder (not a symbolic link), this user's, and
/// writable by nobody else (else another user may have put files or links in it); one that
/// is only readable by others is made 0700.
fn check_private_dir(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.file_type().is_symlink() {
        return Err(unsafe_path(
            path,
            "is a symbolic link; the cache never follows one (pass the folder it points to)",
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_path(path, "is not a folder"));
    }
    check_owner(path, meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_path(
            path,
            &format!(
                "is writable by group or others (mode {:04o}): another user may have put files                  in it; if you trust what is in it, `chmod 700` it, else remove it",
                meta.mode() & 0o7777
            ),
        ));
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| CacheError::io(path, e))?;
    }
    Ok(())
}

/// A file of the store found at open (`.store-id`): a regular file of this user, made 0600.
fn check_private_file(path: &Path, meta: &Metadata) -> Result<()> {
    if !meta.is_file() {
        return Err(unsafe_path(
            path,
            "is not a regular file (a symbolic link is never followed)",
        ));
    }
    check_owner(path, meta)?;
    if meta.mode() & 0o7777 != FILE_MODE {
        fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| CacheError::io(path, e))?;
    }
    Ok(())
}

fn check_owner(path: &Path, meta: &Metadata) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_path(
            path,
            &format!(
                "is owned by another user (uid {}, you are uid {me}): they could read or replace                  the cached music; use a folder of your own (--cache-dir)",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

fn unsafe_path(path: &Path, why: &str) -> CacheError {
    CacheError::Unsafe {
        path: path.to_owned(),
        why: why.to_owned(),
    }
}

fn is_hex(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `N` bytes from the kernel's random source (`getrandom`, which blocks only before the
/// pool is seeded at boot).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let mut done = 0;
    while done < N {
        // SAFETY: writes at most N - done bytes into the live array from `done`.
        let n = unsafe { libc::getrandom(out[done..].as_mut_ptr().cast(), N - done, 0) };
        if n > 0 {
            done += n as usize;
        } else if std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            // No getrandom (a kernel before 3.17): the clock and pid, unpredictable enough
            // with O_EXCL behind them.
            let seed = xxh3_64(
                &[
                    &SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos()
                        .to_ne_bytes()[..],
                    &std::process::id().to_ne_bytes(),
                    &(done as u64).to_ne_bytes(),
                ]
                .concat(),
            );
            for (i, b) in out[done..].iter_mut().enumerate() {
                *b = (seed >> ((i % 8) * 8)) as u8;
            }
            done = N;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn files_in(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != ".tmp")
            .map(|e| fs::read_dir(e.path()).map_or(0, |d| d.count()))
            .sum()
    }

    #[test]
    fn the_same_bytes_are_stored_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let data = vec![7u8; 70_000];
        let (hash, written) = store.put(&data).unwrap();
        assert!(written);
        assert_eq!(store.put(&data).unwrap(), (hash, false));
        assert_eq!(files_in(dir.path()), 1);
        assert_eq!(store.get(hash, data.len()).unwrap(), Some(data));
        assert!(
            store
                .path(hash)
                .starts_with(dir.path().join(&hash.to_string()[..2]))
        );
        assert_eq!(ChunkHash::from_sql(hash.to_sql()), hash);
    }

    #[test]
    fn a_damaged_chunk_is_never_served_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 31) as u8).collect();
        let (hash, _) = store.put(&data).unwrap();
        let path = store.path(hash);
        // A flipped byte.
        let mut flipped = data.clone();
        flipped[12_345] ^= 0x40;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(store.get(hash, data.len()).unwrap(), None);
        assert!(!path.exists(), "a damaged chunk stays");
        // Cut short, and grown.
        for bad in [&data[..40_000], &[&data[..], b"x"].concat()[..]] {
            store.put(&data).unwrap();
            fs::write(&path, bad).unwrap();
            assert_eq!(store.get(hash, data.len()).unwrap(), None);
        }
        assert_eq!(store.corruptions(), 3);
        // Missing: not an error, not a corruption.
        assert_eq!(store.get(ChunkHash(1), 10).unwrap(), None);
        assert_eq!(store.corruptions(), 3);
        // Stored again, served again.
        store.put(&data).unwrap();
        assert_eq!(store.get(hash, data.len()).unwrap(), Some(data));
    }

    #[test]
    fn a_reader_that_cannot_wait_gets_only_whole_matching_chunks_and_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (hash, _) = store.put(&data).unwrap();
        let path = store.path(hash);
        let mut out = vec![0u8; data.len()];
        for wait in [true, false] {
            out.fill(0);
            // Just written: in the page cache, so the reader that cannot wait gets it too.
            assert_eq!(
                store.read_verified(hash, &mut out, wait),
                ChunkRead::Verified
            );
            assert_eq!(out, data);
        }
        let mut flipped = data.clone();
        flipped[65_000] ^= 1;
        let grown = [&data[..], b"x"].concat();
        // Not served, waiting or not (a short chunk may just not be in memory yet).
        let refused = |out: &mut Vec<u8>| {
            assert_eq!(store.read_verified(hash, out, true), ChunkRead::Unusable);
            assert_ne!(store.read_verified(hash, out, false), ChunkRead::Verified);
        };
        for bad in [&flipped[..], &grown[..], &data[..60_000]] {
            fs::write(&path, bad).unwrap();
            refused(&mut out);
            assert!(
                path.exists(),
                "the reader removed a chunk: repairs are get_into's"
            );
        }
        fs::remove_file(&path).unwrap();
        refused(&mut out);
        assert_eq!(store.corruptions(), 0);
    }

    #[test]
    fn a_truncated_chunk_is_written_again_by_the_next_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let data = vec![3u8; 20_000];
        let (hash, _) = store.put(&data).unwrap();
        fs::write(store.path(hash), &data[..100]).unwrap();
        assert_eq!(store.put(&data).unwrap(), (hash, true));
        assert_eq!(store.get(hash, data.len()).unwrap(), Some(data));
    }

    #[test]
    fn stale_temporary_files_are_swept_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        drop(ChunkStore::open(dir.path()).unwrap());
        let tmp = dir.path().join(".tmp");
        // Pid 1 runs (stale by age only); this process runs; 4194305 is above any pid_max.
        let (stale, fresh) = (
            tmp.join("1-0"),
            tmp.join(format!("{}-0", std::process::id())),
        );
        let dead = tmp.join("4194305-7");
        fs::write(&stale, b"half a chunk").unwrap();
        fs::write(&fresh, b"being written").unwrap();
        fs::write(&dead, b"a killed writer's").unwrap();
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE_TMP)
            .unwrap();
        drop(ChunkStore::open(dir.path()).unwrap());
        assert!(!stale.exists());
        assert!(!dead.exists(), "a dead writer's temporary file was kept");
        assert!(fresh.exists(), "a live writer's temporary file was removed");
    }

    #[test]
    fn a_staged_chunk_is_invisible_until_published_and_gone_if_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let data = vec![5u8; 30_000];
        let staged = store.stage(&data).unwrap();
        let hash = staged.hash;
        assert!(staged.is_new());
        assert!(!store.contains(hash, data.len()), "visible before publish");
        drop(staged);
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
        assert_eq!(files_in(dir.path()), 0);
        let staged = store.stage(&data).unwrap();
        store.publish(staged).unwrap();
        assert_eq!(store.get(hash, data.len()).unwrap(), Some(data.clone()));
        // Stored already: nothing new to publish.
        assert!(!store.stage(&data).unwrap().is_new());
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }

    #[test]
    fn two_stores_on_one_folder_write_the_same_chunks_at_once_safely() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<Arc<ChunkStore>> = (0..2)
            .map(|_| Arc::new(ChunkStore::open(dir.path()).unwrap()))
            .collect();
        let chunks: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..64u8)
                .map(|i| (0..30_000u32).map(|j| (j as u8) ^ i).collect())
                .collect(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (store, chunks) = (stores[t % 2].clone(), chunks.clone());
                std::thread::spawn(move || {
                    for c in chunks.iter() {
                        store.put(c).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(files_in(dir.path()), chunks.len());
        for c in chunks.iter() {
            let got = stores[1].get(ChunkHash::of(c), c.len()).unwrap();
            assert_eq!(got.as_ref(), Some(c));
        }
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }

    /// Every folder and file below `dir`, with its mode, never following a link.
    fn modes_below(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let meta = fs::symlink_metadata(&d).unwrap();
            out.push((d.clone(), true, meta.mode() & 0o7777));
            for e in fs::read_dir(&d).unwrap().flatten() {
                let meta = fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    stack.push(e.path());
                } else {
                    out.push((e.path(), false, meta.mode() & 0o7777));
                }
            }
        }
        out
    }

    #[test]
    fn folders_are_0700_and_files_0600_also_in_a_store_made_with_looser_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a").join("chunks");
        let store = ChunkStore::open(&root).unwrap();
        store.id().unwrap();
        let (hash, _) = store.put(&[9u8; 20_000]).unwrap();
        let staged = store.stage(&[8u8; 20_000]).unwrap();
        let modes = modes_below(dir.path().join("a").as_path());
        assert!(modes.len() >= 6, "{modes:?}");
        for (path, is_dir, mode) in &modes {
            let want = if *is_dir { DIR_MODE } else { FILE_MODE };
            assert_eq!(*mode, want, "{}", path.display());
        }
        drop(staged);
        // A store as an older version left it under umask 022: opened, it is made private.
        let shard = store.path(hash).parent().unwrap().to_owned();
        for (path, mode) in [
            (&root, 0o755),
            (&shard, 0o755),
            (&root.join(".tmp"), 0o711),
            (&root.join(".store-id"), 0o644),
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        drop(ChunkStore::open(&root).unwrap());
        for (path, mode) in [
            (&root, DIR_MODE),
            (&shard, DIR_MODE),
            (&root.join(".tmp"), DIR_MODE),
            (&root.join(".store-id"), FILE_MODE),
        ] {
            let got = fs::metadata(path).unwrap().mode() & 0o7777;
            assert_eq!(got, mode, "{}", path.display());
        }
    }

    #[test]
    fn a_folder_others_can_write_to_or_own_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chunks");
        let store = ChunkStore::open(&root).unwrap();
        let (hash, _) = store.put(&[1u8; 20_000]).unwrap();
        let shard = store.path(hash).parent().unwrap().to_owned();
        drop(store);
        for (path, mode) in [(&root, 0o775), (&root, 0o757), (&shard, 0o770)] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
            let err = ChunkStore::open(&root).err().expect("opened").to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("writable by group or others"), "{err}");
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();
        }
        ChunkStore::open(&root).unwrap();
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::lchown(&root, Some(65534), None).unwrap();
            let err = ChunkStore::open(&root).err().expect("opened").to_string();
            assert!(err.contains("owned by another user (uid 65534"), "{err}");
            std::os::unix::fs::lchown(&shard, Some(65534), None).unwrap();
            std::os::unix::fs::lchown(&root, Some(0), None).unwrap();
            let err = ChunkStore::open(&root).err().expect("opened").to_string();
            assert!(err.contains(&shard.display().to_string()), "{err}");
        }
    }

    #[test]
    fn no_symbolic_link_is_followed_into_or_inside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (dir.path().join("chunks"), dir.path().join("elsewhere"));
        fs::create_dir(&elsewhere).unwrap();
        // The folder itself a link.
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let err = ChunkStore::open(&root).err().expect("opened").to_string();
        assert!(err.contains("symbolic link"), "{err}");
        fs::remove_file(&root).unwrap();
        let store = ChunkStore::open(&root).unwrap();
        let data = vec![4u8; 20_000];
        let hash = ChunkHash::of(&data);
        // Links at every temporary name a counter would give: a write goes through none.
        let victim = elsewhere.join("victim");
        fs::write(&victim, b"not yours").unwrap();
        for n in 0..2048 {
            let name = root
                .join(".tmp")
                .join(format!("{}-{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, name).unwrap();
        }
        store.put(&data).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"not yours");
        // A chunk's name a link to the right bytes: not served through it, and removed.
        let outside = elsewhere.join("chunk");
        fs::write(&outside, &data).unwrap();
        fs::remove_file(store.path(hash)).unwrap();
        std::os::unix::fs::symlink(&outside, store.path(hash)).unwrap();
        assert!(!store.contains(hash, data.len()));
        let mut out = vec![0u8; data.len()];
        for wait in [true, false] {
            assert_ne!(
                store.read_verified(hash, &mut out, wait),
                ChunkRead::Verified
            );
        }
        assert_eq!(store.get(hash, data.len()).unwrap(), None);
        assert!(fs::symlink_metadata(store.path(hash)).is_err(), "link kept");
        assert_eq!(fs::read(&outside).unwrap(), data);
        // A shard folder that is a link: the store is refused.
        let shard = store.path(hash).parent().unwrap().to_owned();
        fs::remove_dir(&shard).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &shard).unwrap();
        let err = ChunkStore::open(&root).err().expect("opened").to_string();
        assert!(err.contains(&shard.display().to_string()), "{err}");
        // The identity file a link: refused too, and never read through.
        fs::remove_file(&shard).unwrap();
        fs::write(elsewhere.join("id"), b"someone-elses").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("id"), root.join(".store-id")).unwrap();
        assert!(ChunkStore::open(&root).is_err());
        assert!(ChunkStore::peek_id(&root).is_err());
    }

    #[test]
    fn temporary_names_are_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let names: std::collections::HashSet<_> = (0..64u8)
            .map(|i| store.stage(&[i; 100]).unwrap())
            .map(|s| s.tmp.clone().unwrap().file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 64);
        for name in &names {
            let suffix = name.to_str().unwrap().split('-').nth(1).unwrap();
            assert_eq!(suffix.len(), 16, "{name:?}");
        }
    }
}
