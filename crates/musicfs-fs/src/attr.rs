//! Attributes of virtual entries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use musicfs_db::queries::{EntryKind, EntryRow};

/// What an entry is, in the filesystem's own terms (the FUSE adapter maps it to fuser's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Directory,
    File,
    Symlink,
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

/// What the filesystem keeps of an entry: enough for attributes, open and readdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub ino: u64,
    pub parent: u64,
    /// `Some` for files.
    pub file_id: Option<i64>,
    pub size: u64,
    pub mtime_ns: i64,
}

impl Node {
    pub(crate) fn from_row(row: &EntryRow) -> Node {
        let (file_id, size, mtime_ns) = match row.kind {
            EntryKind::File {
                file_id,
                size,
                mtime_ns,
            } => (Some(file_id), size.max(0) as u64, mtime_ns),
            EntryKind::Dir { nentries, mtime_ns } => (None, nentries.max(0) as u64, mtime_ns),
        };
        Node {
            ino: row.id as u64,
            parent: row.parent_id.unwrap_or(row.id) as u64,
            file_id,
            size,
            mtime_ns,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        if self.file_id.is_some() {
            Kind::File
        } else {
            Kind::Directory
        }
    }
}

/// Owner and modes of every entry (read-only: 0555 directories, 0444 files).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Preferred I/O size reported to readers: large reads through FUSE cost fewer round trips.
const BLKSIZE: u32 = 128 * 1024;

pub(crate) fn file_attr(node: &Node, owner: Owner) -> FileAttr {
    let mtime = if node.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(node.mtime_ns as u64)
    } else {
        UNIX_EPOCH
    };
    let is_file = node.file_id.is_some();
    FileAttr {
        ino: INodeNo(node.ino),
        size: node.size,
        blocks: node.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: node.kind().into(),
        perm: if is_file { 0o444 } else { 0o555 },
        // 1 for directories means "unknown" to find(1): it must not assume a leaf.
        nlink: 1,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        flags: 0,
        blksize: BLKSIZE,
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
        blksize: BLKSIZE,
    }
}
