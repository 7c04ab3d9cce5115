//! The filesystem core's types as fuser's: the only place besides the adapter
//! (`fuse.rs`) and the session (`mount.rs`) that names fuser.

use std::time::SystemTime;

use std::ffi::OsStr;

use fuser::{Errno, FileAttr, FileType, INodeNo, Notifier};

use crate::FsError;
use crate::attr::{Attr, Kind};
use crate::watch::KernelCache;

pub(crate) trait ToErrno {
    fn fuse_errno(&self) -> Errno;
}

impl ToErrno for FsError {
    fn fuse_errno(&self) -> Errno {
        Errno::from_i32(self.errno())
    }
}

impl KernelCache for Notifier {
    fn forget_entry(&self, parent: u64, name: &OsStr) {
        let _ = self.inval_entry(INodeNo(parent), name);
    }

    fn forget_inode(&self, ino: u64) {
        let _ = self.inval_inode(INodeNo(ino), 0, 0);
    }
}

impl From<Kind> for FileType {
    fn from(kind: Kind) -> FileType {
        match kind {
            Kind::Directory => FileType::Directory,
            Kind::File => FileType::RegularFile,
            Kind::Symlink => FileType::Symlink,
        }
    }
}

impl From<&Attr> for FileAttr {
    fn from(a: &Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.blocks,
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind: a.kind.into(),
            perm: a.perm,
            // 1 for directories means "unknown" to find(1): it must not assume a leaf.
            nlink: 1,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            flags: 0,
            blksize: a.blksize,
        }
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel "no such name" and lets it
/// cache that answer for the entry TTL (players probe `cover.jpg` in every folder).
pub(crate) fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 128 * 1024,
    }
}
