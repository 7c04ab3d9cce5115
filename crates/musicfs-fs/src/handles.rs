//! Open file handles: a backing file read by the daemon, or a kernel passthrough backing id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::io::BackingFile;

/// The kernel's token for a passthrough backing file (fuser's `BackingId`), held opaque here:
/// it only has to live while a handle uses it. Only the adapter looks inside.
pub(crate) type KernelBacking = dyn std::any::Any + Send + Sync;

pub(crate) enum Handle {
    /// The daemon serves reads from this file with `pread`.
    Direct(Arc<BackingFile>),
    /// The kernel reads the backing file itself; the id is held so it lives while the file
    /// is open, and the file so that it is closed off the FUSE threads (see io.rs).
    Passthrough(#[allow(dead_code)] Arc<KernelBacking>, Arc<BackingFile>),
}

/// One page of a directory listing, kept per open directory handle: the kernel asks for ~100
/// names at a time, a query returns up to a thousand rows, and the rest serve the next
/// requests without a query. Offsets are inodes, so a page fetched "after inode X" answers
/// every request whose offset lies inside it.
#[derive(Default)]
pub(crate) struct DirBuffer {
    /// The page holds the directory's first rows with inode > `after`; None before any fetch.
    pub after: Option<u64>,
    /// (inode, name, is_file, attributes when fetched) in inode order.
    pub rows: Vec<DirRow>,
    /// The page reaches the end of the directory.
    pub complete: bool,
    /// Rows carry attributes (READDIRPLUS); plain readdir fetches names only.
    pub with_attrs: bool,
}

pub(crate) struct DirRow {
    pub ino: u64,
    pub name: String,
    pub is_file: bool,
    pub node: Option<crate::attr::Node>,
}

impl DirBuffer {
    /// Whether the rows after inode `after` are exactly `rows[i..]` (plus more when incomplete).
    pub(crate) fn covers(&self, after: u64, with_attrs: bool) -> bool {
        let last = self.rows.last().map_or(0, |r| r.ino);
        (self.with_attrs || !with_attrs)
            && self
                .after
                .is_some_and(|start| start <= after && (after <= last || self.rows.is_empty()))
    }
}

#[derive(Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Arc<Mutex<DirBuffer>>>>,
    /// One backing id per inode, shared by all its open handles (the kernel requires reuse).
    backing: Mutex<HashMap<u64, Weak<KernelBacking>>>,
}

impl Handles {
    pub(crate) fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().unwrap().insert(fh, handle);
        fh
    }

    pub(crate) fn file(&self, fh: u64) -> Option<Arc<BackingFile>> {
        match self.open.lock().unwrap().get(&fh) {
            Some(Handle::Direct(file)) => Some(file.clone()),
            _ => None,
        }
    }

    /// Forgets a handle and returns it: the caller drops it where closing may block.
    pub(crate) fn remove(&self, fh: u64) -> Option<Handle> {
        self.open.lock().unwrap().remove(&fh)
    }

    /// The live backing id of `ino`, or a new one from `create`.
    pub(crate) fn backing(
        &self,
        ino: u64,
        create: impl FnOnce() -> std::io::Result<Arc<KernelBacking>>,
    ) -> std::io::Result<Arc<KernelBacking>> {
        let mut map = self.backing.lock().unwrap();
        if let Some(id) = map.get(&ino).and_then(Weak::upgrade) {
            return Ok(id);
        }
        let id = create()?;
        map.insert(ino, Arc::downgrade(&id));
        map.retain(|_, w| w.strong_count() > 0);
        Ok(id)
    }

    pub(crate) fn open_dir(&self) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.dirs.lock().unwrap().insert(fh, Arc::default());
        fh
    }

    pub(crate) fn dir(&self, fh: u64) -> Option<Arc<Mutex<DirBuffer>>> {
        self.dirs.lock().unwrap().get(&fh).cloned()
    }

    pub(crate) fn close_dir(&self, fh: u64) {
        self.dirs.lock().unwrap().remove(&fh);
    }

    /// One line per open file: its real path and the process that opened it.
    pub(crate) fn holders(&self) -> Vec<String> {
        let open = self.open.lock().unwrap();
        let mut lines: Vec<String> = open
            .values()
            .map(|h| {
                let file = match h {
                    Handle::Direct(f) | Handle::Passthrough(_, f) => f,
                };
                // FUSE names the opening thread: show its process.
                let pid = process_of(file.pid);
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_else(|_| "exited".into());
                format!("{} (pid {pid} {comm})", file.path.display())
            })
            .collect();
        lines.sort();
        lines
    }

    pub(crate) fn open_count(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

/// The process (thread group) of thread `tid`, or `tid` itself if it is gone.
fn process_of(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}
