//! The FUSE adapter: each request calls an operation of `MusicFs` (ops.rs) and replies,
//! turning errors into errno through `FsError::errno`. Every mutation answers EROFS.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackingId, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem,
    FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use musicfs_db::queries;

use crate::FsError;
use crate::attr::{Kind, file_attr};
use crate::fuse_types::{ToErrno, negative_attr};
use crate::handles::{Handle, Handles, KernelBacking};
use crate::io::{BackingFile, Outcome};
use crate::ops::{MusicFs, log_error};
use crate::search::{RESULTS_TTL, SearchNode};

impl Filesystem for MusicFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if self.readdirplus {
            // Names with attributes in one reply saves a LOOKUP per entry for `ls -l`, but costs
            // the kernel an inode per entry: plain listings get ~3x slower (measured).
            let _ = config.add_capabilities(
                InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO,
            );
        }
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Reads (readahead) are background requests, and the kernel queues new ones behind
        // `max_background` pending ones: reads stuck on a dead disk must not hold up reads of
        // healthy files, so allow as many as the backing I/O pool can have in flight.
        let _ = config.set_max_background(self.io.max_in_flight());
        // Large requests for daemon reads: max_pages follows max(max_write, max_readahead), and
        // the kernel's readahead offer is only 128 KiB (musicfs never writes; max_write just
        // lifts the request size). The mount then raises the device's read_ahead_kb.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        if self.passthrough.load(Ordering::Relaxed) {
            let ok = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(2).is_ok();
            if !ok {
                tracing::info!("kernel does not offer FUSE passthrough; daemon reads");
            }
            self.passthrough.store(ok, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(result) = self.search_lookup(parent.0, name) {
            return match result {
                Ok(attr) => reply.entry(&RESULTS_TTL, &(&attr).into(), Generation(0)),
                Err(err) => {
                    self.log("lookup", &err);
                    reply.error(err.fuse_errno())
                }
            };
        }
        match self.do_lookup(parent.0, name) {
            Ok(Some(node)) => reply.entry(
                &self.ttl,
                &(&file_attr(&node, self.owner)).into(),
                Generation(0),
            ),
            Ok(None) => reply.entry(&self.ttl, &negative_attr(), Generation(0)),
            Err(err) => {
                self.log("lookup", &err);
                reply.error(err.fuse_errno())
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(node) = SearchNode::of(ino.0) {
            return match self.search_attr(node) {
                Ok(attr) => reply.attr(&RESULTS_TTL, &(&attr).into()),
                Err(err) => reply.error(err.fuse_errno()),
            };
        }
        match self.node(ino.0) {
            Ok(node) => reply.attr(&self.ttl, &(&file_attr(&node, self.owner)).into()),
            Err(err) => {
                self.log("getattr", &err);
                reply.error(err.fuse_errno())
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if let Some(node) = SearchNode::of(ino.0) {
            return match self.search_attr(node) {
                Ok(attr) if attr.kind == Kind::Directory => {
                    reply.opened(FileHandle(0), FopenFlags::empty())
                }
                Ok(_) => reply.error(Errno::ENOTDIR),
                Err(err) => reply.error(err.fuse_errno()),
            };
        }
        match self.node(ino.0) {
            // CACHE_DIR: the kernel keeps listings in its page cache; the watcher drops them
            // (inval_inode on the directory) when the scanner changes the directory.
            Ok(node) if node.file_id.is_none() => reply.opened(
                FileHandle(self.handles.open_dir()),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(err.fuse_errno()),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if let Some(node) = SearchNode::of(ino.0) {
            return match self.search_list(node, offset, |ino, off, kind, name| {
                reply.add(INodeNo(ino), off, kind.into(), name)
            }) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(err.fuse_errno()),
            };
        }
        let result = self.list(ino.0, fh.0, offset, false, |ino, off, kind, name, _| {
            reply.add(INodeNo(ino), off, kind.into(), name)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(err) => {
                self.log("readdir", &err);
                reply.error(err.fuse_errno())
            }
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        if let Some(node) = SearchNode::of(ino.0) {
            return match self.search_list(node, offset, |ino, off, _kind, name| {
                match SearchNode::of(ino).map(|n| self.search_attr(n)) {
                    Some(Ok(attr)) => reply.add(
                        INodeNo(ino),
                        off,
                        name,
                        &RESULTS_TTL,
                        &(&attr).into(),
                        Generation(0),
                    ),
                    _ => add_unlinked(&mut reply, ino, off, name),
                }
            }) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(err.fuse_errno()),
            };
        }
        let (owner, ttl) = (self.owner, self.ttl);
        let result = self.list(
            ino.0,
            fh.0,
            offset,
            true,
            |ino, off, _kind, name, node| match node {
                Some(node) => reply.add(
                    INodeNo(ino),
                    off,
                    name,
                    &ttl,
                    &(&file_attr(node, owner)).into(),
                    Generation(0),
                ),
                None => add_unlinked(&mut reply, ino, off, name),
            },
        );
        match result {
            Ok(()) => reply.ok(),
            Err(err) => {
                self.log("readdirplus", &err);
                reply.error(err.fuse_errno())
            }
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.close_dir(fh.0);
        reply.ok();
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let for_writing = flags.acc_mode() != fuser::OpenAccMode::O_RDONLY;
        let job = match self.prepare_open(ino.0, for_writing) {
            Ok(job) => job,
            Err(err) => {
                self.log("open", &err);
                return reply.error(err.fuse_errno());
            }
        };
        let (handles, passthrough) = (self.handles.clone(), self.passthrough.clone());
        let (path, deadline) = (job.path.clone(), self.io.deadline());
        self.io.run(
            {
                let pid = req.pid();
                move || job.open(pid)
            },
            move |outcome| match outcome {
                Outcome::Done(Ok(file)) => {
                    finish_open(Arc::new(file), ino.0, &handles, &passthrough, reply)
                }
                Outcome::Done(Err(err)) => {
                    log_error("open", &err);
                    reply.error(err.fuse_errno())
                }
                Outcome::TimedOut => {
                    tracing::warn!(
                        "open: {}: no answer from the disk in {deadline:?}; answered EIO",
                        path.display()
                    );
                    reply.error(Errno::EIO)
                }
                Outcome::Failed => reply.error(Errno::EIO),
            },
        );
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        thread_local! {
            /// Reused across requests: a cached read allocates nothing.
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let Some(file) = self.handles.file(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut reply = Some(reply);
        BUF.with_borrow_mut(|buf| {
            if let Some(range) = file.read_cached(offset, size, buf) {
                reply.take().expect("replied once").data(&buf[range]);
            }
        });
        let Some(reply) = reply else { return };
        let deadline = self.io.deadline();
        let reading = file.clone();
        self.io.run(
            move || reading.read_blocking(offset, size),
            move |outcome| match outcome {
                Outcome::Done(Ok(data)) => reply.data(&data),
                Outcome::Done(Err(source)) => {
                    let err = FsError::Backing {
                        path: file.path.clone(),
                        source,
                    };
                    log_error("read", &err);
                    reply.error(err.fuse_errno())
                }
                Outcome::TimedOut => {
                    tracing::warn!(
                        "read: {}: no answer from the disk in {deadline:?} (offset {offset}); \
                         answered EIO",
                        file.path.display()
                    );
                    reply.error(Errno::EIO)
                }
                Outcome::Failed => reply.error(Errno::EIO),
            },
        );
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Closing a file on a stuck share blocks as well: close it off the FUSE thread.
        if let Some(handle) = self.handles.remove(fh.0) {
            self.io.detach(move || drop(handle));
        }
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        const BSIZE: u64 = 4096;
        let totals = self
            .pool
            .get()
            .map_err(FsError::from)
            .and_then(|c| Ok(queries::totals(&c)?));
        match totals {
            // Media servers refuse a library that reports 0 bytes: never report less than one block.
            Ok((files, bytes)) => reply.statfs(
                (bytes.max(0) as u64).div_ceil(BSIZE).max(1),
                0,
                0,
                files.max(0) as u64,
                0,
                BSIZE as u32,
                255,
                BSIZE as u32,
            ),
            Err(err) => {
                self.log("statfs", &err);
                reply.error(err.fuse_errno())
            }
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match SearchNode::of(ino.0) {
            Some(SearchNode::Result(qid, rank)) => {
                match self.search_folder().and_then(|s| s.readlink(qid, rank)) {
                    Ok(target) => reply.data(&target),
                    Err(err) => reply.error(err.fuse_errno()),
                }
            }
            _ => reply.error(Errno::EINVAL), // not a symlink
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        if let Some(node) = SearchNode::of(ino.0) {
            return match self.search_attr(node) {
                Ok(_) => reply.ok(),
                Err(err) => reply.error(err.fuse_errno()),
            };
        }
        match self.node(ino.0) {
            Ok(_) => reply.ok(),
            Err(err) => reply.error(err.fuse_errno()),
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    /// No ioctl is supported. Answered quietly: Python's `open()` asks `isatty` (TCGETS) on
    /// every file, and a media server opens millions.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    // --- read-only: every mutation answers EROFS ---

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

/// A READDIRPLUS entry without attributes ("..", or a search result gone meanwhile): the
/// kernel does not link it, so nothing it carries is used.
fn add_unlinked(reply: &mut ReplyDirectoryPlus, ino: u64, offset: u64, name: &str) -> bool {
    reply.add(
        INodeNo(ino),
        offset,
        name,
        &Duration::ZERO,
        &negative_attr(),
        Generation(0),
    )
}

/// Replies to an open whose backing file is open: through kernel passthrough when allowed,
/// else served by the daemon. Files on network filesystems are always served by the daemon:
/// with passthrough the kernel reads them itself, and a reader would hang with the server,
/// past any deadline of ours.
fn finish_open(
    file: Arc<BackingFile>,
    ino: u64,
    handles: &Handles,
    passthrough: &AtomicBool,
    reply: ReplyOpen,
) {
    if let Some(local) = file.local_file()
        && passthrough.load(Ordering::Relaxed)
        && !file.on_network_fs
    {
        let opened = handles.backing(ino, || {
            reply
                .open_backing(local)
                .map(|id| Arc::new(id) as Arc<KernelBacking>)
        });
        match opened {
            Ok(token) => {
                let id = token
                    .downcast_ref::<BackingId>()
                    .expect("every backing token is made here, from a BackingId");
                let fh = handles.insert(Handle::Passthrough(token.clone(), file));
                return reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), id);
            }
            Err(err) => {
                // e.g. EPERM without CAP_SYS_ADMIN: serve from the daemon from now on.
                tracing::info!("kernel passthrough unavailable ({err}); daemon reads");
                passthrough.store(false, Ordering::Relaxed);
            }
        }
    }
    // KEEP_CACHE: the page cache survives reopen; the watcher drops it on a change.
    let fh = handles.insert(Handle::Direct(file));
    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
}
