//! Live updates: a thread tails the scanner's change log and invalidates what changed, in the
//! moka caches and in the kernel, within one poll interval of each commit.

use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use musicfs_db::{ReadPool, queries};

use crate::cache::Caches;

const BATCH: u32 = 10_000;

/// The kernel's caches of the mount, as the watcher sees them: names and inodes whose cached
/// answers went stale. Failures are ignored (the kernel may not hold the entry at all).
pub(crate) trait KernelCache: Send {
    /// The kernel forgets `name` in `parent` (its next lookup asks us).
    fn forget_entry(&self, parent: u64, name: &OsStr);
    /// The kernel forgets the attributes and cached pages of `ino`.
    fn forget_inode(&self, ino: u64);
}

pub(crate) struct Watcher {
    pub pool: ReadPool,
    pub caches: Arc<Caches>,
    pub kernel: Box<dyn KernelCache>,
    pub interval: Duration,
    pub stop: Arc<AtomicBool>,
}

impl Watcher {
    pub(crate) fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("musicfs-watch".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        // One dedicated connection: `data_version` is per connection, and changes only when
        // another connection commits. Cheap to poll (no I/O when nothing changed).
        let mut conn = match self.pool.get() {
            Ok(c) => c,
            Err(err) => return tracing::error!("live updates disabled: {err}"),
        };
        let data_version =
            |conn: &rusqlite::Connection| -> Option<i64> { queries::data_version(conn).ok() };
        let mut seen_version = data_version(&conn);
        let mut cursor = match queries::changes_range(&conn) {
            Ok((_, newest)) => newest,
            Err(err) => return tracing::error!("live updates disabled: {err}"),
        };
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(self.interval);
            // A replaced DB file (one stat per poll): serve the new one, forget the old.
            if self.pool.replaced() {
                drop(conn); // the swap waits for every connection of the old file
                match self.pool.reopen_if_replaced() {
                    Ok(mode) => tracing::warn!(
                        db = %self.pool.path().display(),
                        ?mode,
                        "the DB file was replaced; serving the new one"
                    ),
                    Err(err) => tracing::error!("the DB file was replaced, and: {err}"),
                }
                self.forget_everything();
                conn = match self.pool.get() {
                    Ok(c) => c,
                    Err(err) => return tracing::error!("live updates disabled: {err}"),
                };
                cursor = queries::changes_range(&conn).map_or(cursor, |(_, newest)| newest);
                seen_version = data_version(&conn);
                continue;
            }
            let version = data_version(&conn);
            if version == seen_version {
                continue;
            }
            seen_version = version;
            match self.catch_up(&conn, cursor) {
                Ok(next) => cursor = next,
                Err(err) => tracing::warn!("reading the change log: {err}"),
            }
        }
    }

    /// Drops every cached name and attribute, here and in the kernel (for the names this mount
    /// has cached, which cover what the kernel looked up recently): the tree may have changed
    /// anywhere. Kernel entries not cached here expire with their TTL.
    fn forget_everything(&self) {
        for (parent, name) in self.caches.cached_names() {
            self.kernel.forget_entry(parent, OsStr::new(&name));
        }
        for ino in self.caches.cached_inodes() {
            self.kernel.forget_inode(ino);
        }
        self.kernel.forget_inode(1);
        self.caches.invalidate_all();
    }

    /// Applies every change after `cursor`; returns the new cursor.
    fn catch_up(
        &self,
        conn: &rusqlite::Connection,
        mut cursor: i64,
    ) -> Result<i64, musicfs_db::DbError> {
        let (oldest, newest) = queries::changes_range(conn)?;
        if newest < cursor || (oldest > cursor + 1 && newest > cursor) {
            // The log was pruned past us (or the DB was replaced): forget everything cached
            // here; kernel entries expire with their TTL.
            tracing::warn!("change log moved past this mount; dropping all caches");
            self.forget_everything();
            return Ok(newest);
        }
        loop {
            let changes = queries::changes_since(conn, cursor, BATCH)?;
            for c in &changes {
                let (parent, entry) = (c.parent_id as u64, c.entry_id as u64);
                self.caches.invalidate(parent, &c.name, entry);
                // ENOENT means the kernel holds nothing for it: fine.
                self.kernel.forget_entry(parent, OsStr::new(&c.name));
                self.kernel.forget_inode(entry);
                self.kernel.forget_inode(parent);
                cursor = c.seq;
            }
            if changes.len() < BATCH as usize {
                return Ok(cursor);
            }
        }
    }
}
