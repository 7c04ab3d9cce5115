//! Local folders, and opening by a path relative to a root so that no `..` or symlink leads
//! out of it (`open(root, O_PATH)` then `openat2(RESOLVE_BENEATH)`; the mount opens local
//! files through these too).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, Origin, OriginUrl};

/// A folder on this machine (a local disk, or a NAS mounted by the OS). The scanner walks local
/// origins itself (inodes, symlink policy) and the mount opens their files beneath the root;
/// this implementation serves health checks, mirrors and tests.
pub struct LocalOrigin {
    url: OriginUrl,
    root: PathBuf,
    fetched: AtomicU64,
}

impl LocalOrigin {
    pub fn new(url: OriginUrl) -> LocalOrigin {
        let root = match &url {
            OriginUrl::Local(root) => root.clone(),
            _ => panic!("LocalOrigin needs a local URL"),
        };
        LocalOrigin {
            url,
            root,
            fetched: AtomicU64::new(0),
        }
    }

    /// Opens `rel` resolved beneath the root: nothing outside it is ever read.
    fn open(&self, rel: &[u8]) -> io::Result<File> {
        let dir = open_root(self.root.as_os_str().as_bytes())?;
        openat2_beneath(dir.as_raw_fd(), rel)
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `open(root, O_PATH | O_DIRECTORY)`: a handle to resolve beneath. Opened per request, so a
/// remounted disk is seen at once (a cached fd would keep pointing at the old one).
pub fn open_root(root: &[u8]) -> io::Result<OwnedFd> {
    let c = cstring(root)?;
    // SAFETY: a valid NUL-terminated path; the returned fd is owned by us.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, rel, O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`. EXDEV: the path
/// (through `..` or a symlink) leads outside `dir`.
pub fn openat2_beneath(dir: RawFd, rel: &[u8]) -> io::Result<File> {
    let c = cstring(rel)?;
    // SAFETY: open_how is plain data; zero is the documented default for unused fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // The kernel answers EAGAIN when a concurrent rename could have let a `..` escape: retry.
    for _ in 0..16 {
        // SAFETY: valid pointers to a NUL-terminated path and an open_how of the given size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            return Ok(unsafe { File::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

fn local(path: PathBuf) -> impl FnOnce(std::io::Error) -> OriginError {
    move |source| OriginError::Local { path, source }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        size: m.len(),
        mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        etag: None,
    }
}

impl Origin for LocalOrigin {
    fn url(&self) -> &OriginUrl {
        &self.url
    }

    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        let dir = self.path(rel);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(local(dir.clone()))? {
            let entry = entry.map_err(local(dir.clone()))?;
            let kind = entry.file_type().map_err(local(entry.path()))?;
            if kind.is_symlink() {
                continue;
            }
            let meta = entry.metadata().map_err(local(entry.path()))?;
            entries.push(Entry {
                name: entry.file_name().as_bytes().to_vec(),
                is_dir: kind.is_dir(),
                meta: meta_of(&meta),
                refused: None,
            });
        }
        Ok(entries)
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        let path = self.path(rel);
        let meta = self
            .open(rel)
            .and_then(|f| f.metadata())
            .map_err(local(path))?;
        Ok(meta_of(&meta))
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(rel);
        let file = self.open(rel).map_err(local(path.clone()))?;
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(local(path)(e)),
            }
        }
        buf.truncate(filled);
        self.fetched.fetch_add(filled as u64, Ordering::Relaxed);
        Ok(buf)
    }

    fn stat_root(&self) -> Result<bool> {
        let mut dir = std::fs::read_dir(&self.root).map_err(local(self.root.clone()))?;
        Ok(dir.next().is_some())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}
