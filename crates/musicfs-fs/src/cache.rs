//! Bounded caches in front of the DB pool. Capacities are counts of entries; nothing here
//! grows with the library.

use moka::sync::Cache;

use crate::attr::Node;

pub(crate) struct Caches {
    /// (parent inode, name) → node, or `None` for a name that does not exist (negative).
    lookups: Cache<(u64, String), Option<Node>>,
    /// inode → node.
    attrs: Cache<u64, Node>,
}

impl Caches {
    pub(crate) fn new(lookup_capacity: u64, attr_capacity: u64) -> Caches {
        Caches {
            lookups: Cache::new(lookup_capacity),
            attrs: Cache::new(attr_capacity),
        }
    }

    pub(crate) fn lookup(&self, parent: u64, name: &str) -> Option<Option<Node>> {
        self.lookups.get(&(parent, name.to_owned()))
    }

    pub(crate) fn put_lookup(&self, parent: u64, name: &str, node: Option<Node>) {
        self.lookups.insert((parent, name.to_owned()), node);
        if let Some(node) = node {
            self.attrs.insert(node.ino, node);
        }
    }

    pub(crate) fn attr(&self, ino: u64) -> Option<Node> {
        self.attrs.get(&ino)
    }

    pub(crate) fn put_attr(&self, node: Node) {
        self.attrs.insert(node.ino, node);
    }

    /// Forgets one changed name and the attributes of the entry and its directory.
    pub(crate) fn invalidate(&self, parent: u64, name: &str, entry: u64) {
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
        self.lookups.invalidate_all();
        self.attrs.invalidate_all();
    }
}
