//! Open file handles: a backing file read by the daemon, or a kernel passthrough backing id.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use fuser::BackingId;

pub(crate) enum Handle {
    /// The daemon serves reads from this file with `pread`.
    Direct(Arc<File>),
    /// The kernel reads the backing file itself; held so the id lives while the file is open.
    Passthrough(#[allow(dead_code)] Arc<BackingId>),
}

#[derive(Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Handle>>,
    /// One backing id per inode, shared by all its open handles (the kernel requires reuse).
    backing: Mutex<HashMap<u64, Weak<BackingId>>>,
}

impl Handles {
    pub(crate) fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().unwrap().insert(fh, handle);
        fh
    }

    pub(crate) fn file(&self, fh: u64) -> Option<Arc<File>> {
        match self.open.lock().unwrap().get(&fh) {
            Some(Handle::Direct(file)) => Some(file.clone()),
            _ => None,
        }
    }

    pub(crate) fn remove(&self, fh: u64) {
        self.open.lock().unwrap().remove(&fh);
    }

    /// The live backing id of `ino`, or a new one from `create`.
    pub(crate) fn backing(
        &self,
        ino: u64,
        create: impl FnOnce() -> std::io::Result<BackingId>,
    ) -> std::io::Result<Arc<BackingId>> {
        let mut map = self.backing.lock().unwrap();
        if let Some(id) = map.get(&ino).and_then(Weak::upgrade) {
            return Ok(id);
        }
        let id = Arc::new(create()?);
        map.insert(ino, Arc::downgrade(&id));
        map.retain(|_, w| w.strong_count() > 0);
        Ok(id)
    }

    pub(crate) fn open_count(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}
