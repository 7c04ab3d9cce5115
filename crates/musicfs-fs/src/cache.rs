//! Bounded caches in front of the DB pool. Capacities are counts of entries; nothing here
//! grows with the library.
//!
//! A request that misses reads the DB, then caches what it read. Meanwhile the watcher may have
//! invalidated exactly that answer (the scanner committed a change): inserting it afterwards
//! would resurrect a stale answer, perhaps forever ("no such name" for a file just added).
//! So every read takes a [`Ticket`] first, and its answer is cached only if no invalidation
//! happened since; invalidations and ticketed inserts exclude each other. Entries also expire
//! after a TTL, which bounds the harm of any invalidation missed for another reason.

use std::sync::RwLock;
use std::time::Duration;

use moka::sync::Cache;

use crate::attr::Node;

/// Taken before reading the DB; proves at insert time that no invalidation ran in between.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct Caches {
    /// (parent inode, name) → node, or `None` for a name that does not exist (negative).
    lookups: Cache<(u64, String), Option<Node>>,
    /// inode → node.
    attrs: Cache<u64, Node>,
    /// Invalidations so far. Read-locked by inserts, write-locked by invalidations.
    epoch: RwLock<u64>,
}

impl Caches {
    pub(crate) fn new(lookup_capacity: u64, attr_capacity: u64, ttl: Duration) -> Caches {
        Caches {
            lookups: Cache::builder()
                .max_capacity(lookup_capacity)
                .time_to_live(ttl)
                .build(),
            attrs: Cache::builder()
                .max_capacity(attr_capacity)
                .time_to_live(ttl)
                .build(),
            epoch: RwLock::new(0),
        }
    }

    /// Call before reading the DB for an answer to cache.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(*self.epoch.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn lookup(&self, parent: u64, name: &str) -> Option<Option<Node>> {
        self.lookups.get(&(parent, name.to_owned()))
    }

    /// Caches a lookup's answer, unless an invalidation ran since `ticket` was taken.
    pub(crate) fn put_lookup(&self, ticket: Ticket, parent: u64, name: &str, node: Option<Node>) {
        let epoch = self.epoch.read().unwrap_or_else(|e| e.into_inner());
        if *epoch != ticket.0 {
            return;
        }
        self.lookups.insert((parent, name.to_owned()), node);
        if let Some(node) = node {
            self.attrs.insert(node.ino, node);
        }
    }

    pub(crate) fn attr(&self, ino: u64) -> Option<Node> {
        self.attrs.get(&ino)
    }

    /// Caches attributes, unless an invalidation ran since `ticket` was taken.
    pub(crate) fn put_attr(&self, ticket: Ticket, node: Node) {
        let epoch = self.epoch.read().unwrap_or_else(|e| e.into_inner());
        if *epoch == ticket.0 {
            self.attrs.insert(node.ino, node);
        }
    }

    /// Forgets one changed name and the attributes of the entry and its directory.
    pub(crate) fn invalidate(&self, parent: u64, name: &str, entry: u64) {
        let mut epoch = self.epoch.write().unwrap_or_else(|e| e.into_inner());
        *epoch += 1;
        self.lookups.invalidate(&(parent, name.to_owned()));
        self.attrs.invalidate(&entry);
        self.attrs.invalidate(&parent);
    }

    /// Every (parent, name) cached, positive or negative.
    pub(crate) fn cached_names(&self) -> Vec<(u64, String)> {
        self.lookups.iter().map(|(k, _)| (*k).clone()).collect()
    }

    /// Every inode whose attributes are cached.
    pub(crate) fn cached_inodes(&self) -> Vec<u64> {
        self.attrs.iter().map(|(k, _)| *k).collect()
    }

    /// Forgets everything (the change log was pruned past what this mount has seen).
    pub(crate) fn invalidate_all(&self) {
        let mut epoch = self.epoch.write().unwrap_or_else(|e| e.into_inner());
        *epoch += 1;
        self.lookups.invalidate_all();
        self.attrs.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ino: u64) -> Node {
        Node {
            ino,
            parent: 1,
            file_id: Some(7),
            size: 10,
            mtime_ns: 0,
        }
    }

    /// The interleaving that resurrected stale answers: a lookup reads "no such name" from
    /// the DB just before the scanner commits the name; the watcher invalidates; then the
    /// lookup caches its (now stale) answer.
    #[test]
    fn an_answer_read_before_an_invalidation_is_not_cached() {
        let caches = Caches::new(100, 100, Duration::from_secs(60));
        let ticket = caches.ticket(); // the lookup starts, reads the DB: absent
        caches.invalidate(1, "new.flac", 5); // commit + watcher
        caches.put_lookup(ticket, 1, "new.flac", None);
        assert_eq!(caches.lookup(1, "new.flac"), None, "stale negative cached");
        let ticket = caches.ticket();
        caches.invalidate(1, "x", 6);
        caches.put_attr(ticket, node(6));
        assert_eq!(caches.attr(6), None, "stale attributes cached");
        // Without an invalidation in between, answers are cached.
        let ticket = caches.ticket();
        caches.put_lookup(ticket, 1, "new.flac", Some(node(5)));
        assert_eq!(caches.lookup(1, "new.flac"), Some(Some(node(5))));
        assert_eq!(caches.attr(5), Some(node(5)));
    }

    #[test]
    fn entries_expire() {
        let caches = Caches::new(100, 100, Duration::from_millis(50));
        caches.put_lookup(caches.ticket(), 1, "a", None);
        assert!(caches.lookup(1, "a").is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(caches.lookup(1, "a").is_none());
    }
}
