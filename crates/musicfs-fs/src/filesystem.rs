//! The FUSE operations. Each one is a small method returning `Result<_, FsError>`; the trait
//! impl below only replies, turning errors into errno through `FsError::errno`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use musicfs_db::{ReadPool, queries};

use crate::FsError;
use crate::attr::{Node, Owner, file_attr, negative_attr};
use crate::cache::Caches;
use crate::handles::{DirRow, Handle, Handles};

/// Rows fetched per readdir query; a kernel request holds ~100 names, the rest are buffered
/// in the directory handle for the next requests.
const READDIR_PAGE: u32 = 1024;
/// Offsets of "." and ".."; a child with inode `id` has offset `id + 2` (inodes start at 2
/// for children), so an offset always names the last entry returned, whatever changed since.
const DOT_OFFSET: u64 = 1;
const DOTDOT_OFFSET: u64 = 2;

pub(crate) struct MusicFs {
    pub pool: ReadPool,
    pub caches: Arc<Caches>,
    pub handles: Arc<Handles>,
    pub owner: Owner,
    pub ttl: Duration,
    pub passthrough: AtomicBool,
    /// Answer READDIRPLUS (names with attributes) when the kernel asks.
    pub readdirplus: bool,
}

type Result<T> = std::result::Result<T, FsError>;

impl MusicFs {
    fn node(&self, ino: u64) -> Result<Node> {
        if let Some(node) = self.caches.attr(ino) {
            return Ok(node);
        }
        let conn = self.pool.get()?;
        let row = queries::entry(&conn, ino as i64)?.ok_or(FsError::NotFound)?;
        let node = Node::from_row(&row);
        self.caches.put_attr(node);
        Ok(node)
    }

    fn do_lookup(&self, parent: u64, name: &OsStr) -> Result<Option<Node>> {
        // Virtual names are UTF-8; any other byte string cannot exist here.
        let Ok(name) = std::str::from_utf8(name.as_bytes()) else {
            return Ok(None);
        };
        if let Some(hit) = self.caches.lookup(parent, name) {
            return Ok(hit);
        }
        let conn = self.pool.get()?;
        let node = queries::lookup(&conn, parent as i64, name)?.map(|r| Node::from_row(&r));
        if node.is_none() && queries::entry(&conn, parent as i64)?.is_none() {
            return Err(FsError::NotFound); // the directory itself is gone: not cacheable
        }
        self.caches.put_lookup(parent, name, node);
        Ok(node)
    }

    /// Children of `dir` after `offset`, fed to `add` until it reports a full buffer. Pages are
    /// buffered in the handle `fh` (from opendir) so consecutive requests share one query.
    /// `with_attrs`: READDIRPLUS needs attributes; plain readdir reads names from the index.
    fn list(
        &self,
        dir: u64,
        fh: u64,
        offset: u64,
        with_attrs: bool,
        mut add: impl FnMut(u64, u64, FileType, &str, Option<&Node>) -> bool,
    ) -> Result<()> {
        let node = self.node(dir)?;
        if node.file_id.is_some() {
            return Err(FsError::NotADirectory);
        }
        if offset < DOT_OFFSET && add(dir, DOT_OFFSET, FileType::Directory, ".", Some(&node)) {
            return Ok(());
        }
        if offset < DOTDOT_OFFSET
            && add(node.parent, DOTDOT_OFFSET, FileType::Directory, "..", None)
        {
            return Ok(());
        }
        let buffer = self.handles.dir(fh).unwrap_or_default();
        let mut buffer = buffer.lock().unwrap();
        let mut after = offset.saturating_sub(DOTDOT_OFFSET);
        loop {
            if buffer.covers(after, with_attrs) {
                let start = buffer.rows.partition_point(|r| r.ino <= after);
                for row in &buffer.rows[start..] {
                    let kind = if row.is_file {
                        FileType::RegularFile
                    } else {
                        FileType::Directory
                    };
                    if add(
                        row.ino,
                        row.ino + DOTDOT_OFFSET,
                        kind,
                        &row.name,
                        row.node.as_ref(),
                    ) {
                        return Ok(());
                    }
                    after = row.ino;
                }
                if buffer.complete {
                    return Ok(());
                }
            }
            let conn = self.pool.get()?;
            let (after_i, limit) = (after as i64, READDIR_PAGE);
            buffer.rows = if with_attrs {
                queries::readdir_page(&conn, dir as i64, after_i, limit)?
                    .iter()
                    .map(|row| {
                        let node = Node::from_row(row);
                        DirRow {
                            ino: node.ino,
                            name: row.name.clone(),
                            is_file: node.file_id.is_some(),
                            node: Some(node),
                        }
                    })
                    .collect()
            } else {
                queries::readdir_names(&conn, dir as i64, after_i, limit)?
                    .into_iter()
                    .map(|(id, name, is_file)| DirRow {
                        ino: id as u64,
                        name,
                        is_file,
                        node: None,
                    })
                    .collect()
            };
            buffer.complete = buffer.rows.len() < READDIR_PAGE as usize;
            buffer.after = Some(after);
            buffer.with_attrs = with_attrs;
        }
    }

    fn do_open(
        &self,
        ino: u64,
        flags: OpenFlags,
        reply: &ReplyOpen,
    ) -> Result<(u64, Option<Arc<fuser::BackingId>>)> {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return Err(FsError::ReadOnly);
        }
        let node = self.node(ino)?;
        let file_id = node.file_id.ok_or(FsError::IsADirectory)?;
        let path = {
            let conn = self.pool.get()?;
            queries::backing_path(&conn, file_id)?.ok_or(FsError::NotFound)?
        };
        let path = PathBuf::from(OsStr::from_bytes(&path));
        let backing_err = |source| FsError::Backing {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(backing_err)?;
        let disk = file.metadata().map_err(backing_err)?.len();
        if disk != node.size {
            return Err(FsError::Changed {
                path,
                db: node.size,
                disk,
            });
        }
        if self.passthrough.load(Ordering::Relaxed) {
            match self.handles.backing(ino, || reply.open_backing(&file)) {
                Ok(id) => {
                    let fh = self.handles.insert(Handle::Passthrough(id.clone()));
                    return Ok((fh, Some(id)));
                }
                Err(err) => {
                    // e.g. EPERM without CAP_SYS_ADMIN: serve from the daemon from now on.
                    tracing::info!("kernel passthrough unavailable ({err}); daemon reads");
                    self.passthrough.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok((self.handles.insert(Handle::Direct(Arc::new(file))), None))
    }

    /// Reads into a per-thread buffer reused across requests (no allocation per read) and
    /// hands the bytes to `reply`.
    fn do_read(&self, fh: u64, offset: u64, size: u32, reply: impl FnOnce(&[u8])) -> Result<()> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let file = self.handles.file(fh).ok_or(FsError::BadHandle)?;
        BUF.with_borrow_mut(|buf| {
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            let buf = &mut buf[..size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(FsError::Backing {
                            path: PathBuf::from(format!("open file {fh}")),
                            source,
                        });
                    }
                }
            }
            reply(&buf[..filled]);
            Ok(())
        })
    }

    fn log(&self, op: &str, err: &FsError) {
        match err {
            FsError::NotFound | FsError::ReadOnly => {}
            FsError::Changed { .. } | FsError::Backing { .. } => tracing::warn!("{op}: {err}"),
            _ => tracing::error!("{op}: {err}"),
        }
    }
}

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
        match self.do_lookup(parent.0, name) {
            Ok(Some(node)) => reply.entry(&self.ttl, &file_attr(&node, self.owner), Generation(0)),
            Ok(None) => reply.entry(&self.ttl, &negative_attr(), Generation(0)),
            Err(err) => {
                self.log("lookup", &err);
                reply.error(err.errno())
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino.0) {
            Ok(node) => reply.attr(&self.ttl, &file_attr(&node, self.owner)),
            Err(err) => {
                self.log("getattr", &err);
                reply.error(err.errno())
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino.0) {
            // CACHE_DIR: the kernel keeps listings in its page cache; the watcher drops them
            // (inval_inode on the directory) when the scanner changes the directory.
            Ok(node) if node.file_id.is_none() => reply.opened(
                FileHandle(self.handles.open_dir()),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(err.errno()),
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
        let result = self.list(ino.0, fh.0, offset, false, |ino, off, kind, name, _| {
            reply.add(INodeNo(ino), off, kind, name)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(err) => {
                self.log("readdir", &err);
                reply.error(err.errno())
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
                    &file_attr(node, owner),
                    Generation(0),
                ),
                // "..": the kernel does not link it; its attributes are not used.
                None => reply.add(
                    INodeNo(ino),
                    off,
                    name,
                    &Duration::ZERO,
                    &negative_attr(),
                    Generation(0),
                ),
            },
        );
        match result {
            Ok(()) => reply.ok(),
            Err(err) => {
                self.log("readdirplus", &err);
                reply.error(err.errno())
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

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino.0, flags, &reply) {
            Ok((fh, Some(id))) => {
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id)
            }
            // KEEP_CACHE: the page cache survives reopen; the watcher drops it on a change.
            Ok((fh, None)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(err) => {
                self.log("open", &err);
                reply.error(err.errno())
            }
        }
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
        let mut reply = Some(reply);
        let result = self.do_read(fh.0, offset, size, |data| {
            reply.take().expect("replied once").data(data)
        });
        match result {
            Ok(()) => {}
            Err(err) => {
                let Some(reply) = reply else { return };
                self.log("read", &err);
                reply.error(err.errno())
            }
        }
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
        self.handles.remove(fh.0);
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
                reply.error(err.errno())
            }
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match self.node(ino.0) {
            Ok(_) => reply.ok(),
            Err(err) => reply.error(err.errno()),
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
