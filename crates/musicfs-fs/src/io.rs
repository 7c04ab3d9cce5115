//! Backing I/O off the FUSE worker threads.
//!
//! A disk or network share that stops answering blocks `open`, `read` and even `close` in the
//! kernel, uninterruptibly. Were those calls made on FUSE worker threads, a handful of stuck
//! reads would take every worker, and `ls` or `stat` of anything would hang too. So every call
//! that may touch a backing file runs on a blocking thread of one small tokio runtime, and the
//! FUSE worker returns at once; the reply (fuser replies are `Send`) is sent from the runtime
//! when the call finishes, or with `EIO` when the deadline passes first. A stuck thread stays
//! stuck; the pool grows past it (up to its cap) so healthy files keep reading.
//!
//! The one exception is a read the page cache can answer whole: `preadv2(RWF_NOWAIT)` never
//! waits for a disk, so cached reads are served on the FUSE thread without a hop.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a call handed to [`BackingIo::run`] ended.
pub(crate) enum Outcome<T> {
    Done(T),
    /// The deadline passed first; the call may still be running (and its result is dropped).
    TimedOut,
    /// The call panicked.
    Failed,
}

pub(crate) struct BackingIo {
    runtime: Option<tokio::runtime::Runtime>,
    deadline: Duration,
    threads: usize,
}

impl BackingIo {
    /// `threads`: cap on calls in flight at once (stuck ones included); more wait in a queue,
    /// and still get their answer at their deadline.
    pub(crate) fn new(deadline: Duration, threads: usize) -> io::Result<BackingIo> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads.max(1))
            .thread_keep_alive(Duration::from_secs(10))
            .thread_name("musicfs-io")
            .enable_time()
            .build()?;
        Ok(BackingIo {
            runtime: Some(runtime),
            deadline,
            threads: threads.max(1),
        })
    }

    /// Backing calls that may be in flight at once.
    pub(crate) fn max_in_flight(&self) -> u16 {
        self.threads.min(u16::MAX as usize) as u16
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs `call` on a blocking thread and hands its outcome to `done`, exactly once: when it
    /// returns, or at the deadline, whichever comes first. Returns at once.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
        done: impl FnOnce(Outcome<T>) + Send + 'static,
    ) {
        let deadline = self.deadline;
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        runtime.spawn(async move {
            let call = tokio::task::spawn_blocking(call);
            done(match tokio::time::timeout(deadline, call).await {
                Ok(Ok(value)) => Outcome::Done(value),
                Ok(Err(_)) => Outcome::Failed,
                Err(_) => Outcome::TimedOut,
            });
        });
    }

    /// Runs `call` on a blocking thread with no answer expected (closing a file: `close` on a
    /// stuck share blocks too).
    pub(crate) fn detach(&self, call: impl FnOnce() + Send + 'static) {
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        drop(runtime.spawn_blocking(call));
    }
}

impl Drop for BackingIo {
    /// Never waits for stuck calls: an unmount must not hang on the disk that hung.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Filesystems whose server can vanish (`statfs.f_type`): FUSE (sshfs, rclone, s3fs...), NFS,
/// SMB/CIFS, 9p, Ceph, AFS, Coda, GlusterFS (as FUSE), Lustre, GFS2, OCFS2.
const NETWORK_FS_MAGIC: &[u32] = &[
    0x6573_5546, // FUSE
    0x0000_6969, // NFS
    0x0000_517B, // SMB
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x0102_1997, // 9p
    0x00C3_6400, // Ceph
    0x5346_414F, // AFS
    0x6B41_4653, // kAFS
    0x7375_7245, // Coda
    0x0BD0_0BD0, // Lustre
    0x0116_1970, // GFS2
    0x7461_636F, // OCFS2
];

/// Whether `file` lives on a filesystem whose server can stop answering. Unknown: assume so.
pub(crate) fn on_network_fs(file: &File) -> bool {
    // SAFETY: statfs is plain data; fstatfs fills it for an open fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return true;
    }
    NETWORK_FS_MAGIC.contains(&(st.f_type as u32))
}

/// Where an open file's bytes come from.
pub(crate) enum Content {
    /// A file of a local origin (or of a network filesystem mounted by the OS).
    Local(File),
    /// A file of a remote origin, read in ranges.
    Remote(Box<crate::remote::RemoteFile>),
}

/// An open backing file, with what its reads need to answer and to say what went wrong.
pub(crate) struct BackingFile {
    pub content: Content,
    /// The size the DB (and the kernel) knows: reads never go past it.
    pub size: u64,
    pub path: PathBuf,
    /// The process that opened it (for "who holds the mount").
    pub pid: u32,
    /// On a filesystem whose server can stop answering ([`on_network_fs`]), or remote.
    pub on_network_fs: bool,
    /// `RWF_NOWAIT` is refused by this file's filesystem (FUSE, some network filesystems):
    /// skip the attempt and go straight to a blocking thread.
    nowait_unsupported: AtomicBool,
}

impl BackingFile {
    pub(crate) fn new(file: File, size: u64, path: PathBuf, pid: u32) -> BackingFile {
        BackingFile {
            pid,
            on_network_fs: on_network_fs(&file),
            content: Content::Local(file),
            size,
            path,
            nowait_unsupported: AtomicBool::new(false),
        }
    }

    pub(crate) fn remote(
        file: crate::remote::RemoteFile,
        size: u64,
        path: PathBuf,
        pid: u32,
    ) -> BackingFile {
        BackingFile {
            pid,
            on_network_fs: true,
            content: Content::Remote(Box::new(file)),
            size,
            path,
            nowait_unsupported: AtomicBool::new(true),
        }
    }

    /// The local file, for kernel passthrough (`None` for remote files).
    pub(crate) fn local_file(&self) -> Option<&File> {
        match &self.content {
            Content::Local(file) => Some(file),
            Content::Remote(_) => None,
        }
    }

    /// Bytes wanted by a read of `size` at `offset` (the file ends at `self.size`).
    fn wanted(&self, offset: u64, size: u32) -> usize {
        self.size.saturating_sub(offset).min(size as u64) as usize
    }

    /// Fills `buf` from memory alone (the page cache, a remote file's window or cached
    /// chunks): the range of `buf` holding the answer, or `None` when part of it would
    /// need the disk or the network (then nothing is used).
    pub(crate) fn read_cached(
        &self,
        offset: u64,
        size: u32,
        buf: &mut Vec<u8>,
    ) -> Option<std::ops::Range<usize>> {
        let wanted = self.wanted(offset, size);
        if wanted == 0 {
            return Some(0..0);
        }
        let file = match &self.content {
            Content::Local(file) => file,
            Content::Remote(remote) => return remote.read_cached(offset, wanted, buf),
        };
        if self.nowait_unsupported.load(Ordering::Relaxed) {
            return None;
        }
        buf.resize(wanted, 0);
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: wanted,
        };
        // SAFETY: one iovec over `buf`'s `wanted` initialized bytes; the fd is open.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                offset as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error().raw_os_error();
            if err == Some(libc::EOPNOTSUPP) || err == Some(libc::EINVAL) {
                self.nowait_unsupported.store(true, Ordering::Relaxed);
            }
            return None;
        }
        (n as usize == wanted).then_some(0..wanted)
    }

    /// Reads `size` bytes at `offset` (fewer at the end of the file), waiting for the disk.
    /// Call on a blocking thread.
    pub(crate) fn read_blocking(&self, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = match &self.content {
            Content::Local(file) => file,
            Content::Remote(remote) => return remote.read(offset, self.wanted(offset, size)),
        };
        let mut buf = vec![0; self.wanted(offset, size)];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}
