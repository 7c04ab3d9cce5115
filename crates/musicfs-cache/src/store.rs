//! Chunk files on disk: `<dir>/ab/abcdef0123456789`, named by the xxh3-64 of their bytes in
//! hex (sharded by the first two digits, 256 folders). A chunk is written to a temporary file
//! and renamed into place, so a writer killed mid-chunk leaves no partial chunk under a
//! chunk's name; every read checks the bytes against the name anyway (a disk that lost or
//! flipped bytes), removes a chunk that fails, and reports it missing. Several processes may
//! share a store: a chunk's content is fixed by its name, so two writers of one chunk write
//! the same bytes, and the last rename wins harmlessly.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
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

/// Temporary files are `<pid>-<n>` with `n` from this counter: unique among the processes
/// sharing a store, and among the stores of one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

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

    /// Opens the store at `dir`, creating it; clears temporary files left by dead writers.
    pub fn open(dir: &Path) -> Result<ChunkStore> {
        let tmp = dir.join(".tmp");
        fs::create_dir_all(&tmp).map_err(|e| CacheError::io(&tmp, e))?;
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
        let path = self.dir.join(".store-id");
        match fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(CacheError::io(&path, err)),
        }
        let mut random = [0u8; 16];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(|e| CacheError::io(Path::new("/dev/urandom"), e))?;
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        // The first writer wins; a racing one reads its id.
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(id.as_bytes())
                    .map_err(|e| CacheError::io(&path, e))?;
                Ok(id)
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| CacheError::io(&path, e)),
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
        fs::metadata(self.path(hash)).is_ok_and(|m| m.len() == len as u64)
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
        let tmp = self.tmp.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&tmp).and_then(|mut f| f.write_all(data));
        if let Err(err) = written {
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
                fs::create_dir_all(shard)?;
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
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
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
        return Some(File::open(path));
    }
    /// `RESOLVE_CACHED` (Linux 5.12): fail with EAGAIN rather than look a name up on disk.
    const RESOLVE_CACHED: u64 = 0x20;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Some(Err(ErrorKind::InvalidInput.into()));
    };
    // SAFETY: open_how is plain data; zero is the documented default for unused fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
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
}
