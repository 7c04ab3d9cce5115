//! Attributes of virtual entries, in the filesystem's own terms (`fuse_types` maps them to
//! fuser's).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use musicfs_db::queries::{EntryKind, EntryRow};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Directory,
    File,
    Symlink,
}

/// What `stat` shows of an entry. Every time is the one `mtime` (read-only: nothing is ever
/// accessed or changed through the mount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ino: u64,
    pub size: u64,
    /// In 512-byte units.
    pub blocks: u64,
    pub mtime: SystemTime,
    pub kind: Kind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub blksize: u32,
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

pub(crate) fn file_attr(node: &Node, owner: Owner) -> Attr {
    let mtime = if node.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(node.mtime_ns as u64)
    } else {
        UNIX_EPOCH
    };
    Attr {
        ino: node.ino,
        size: node.size,
        blocks: node.size.div_ceil(512),
        mtime,
        kind: node.kind(),
        perm: if node.file_id.is_some() { 0o444 } else { 0o555 },
        uid: owner.uid,
        gid: owner.gid,
        blksize: BLKSIZE,
    }
}
