//! The musicfs FUSE filesystem: the virtual tree served straight from the DB.
//!
//! Every `lookup`, `getattr` and `readdir` is an indexed query through a pool of read-only
//! connections, fronted by bounded moka caches; nothing is loaded at mount, so mounting is
//! O(1) and memory is bounded by cache capacities, never by the library. A watcher thread
//! tails the scanner's change log and invalidates exactly what changed, in the caches and in
//! the kernel, so kernel TTLs can be long and still correct.

mod attr;
mod backing;
mod cache;
mod drain;
mod error;
mod fuse;
mod fuse_types;
mod handles;
mod io;
mod mount;
mod mountinfo;
mod ops;
mod remote;
mod search;
mod watch;

pub use error::FsError;
pub use mount::{MirrorConfig, MountConfig, Mounted, mount};
pub use mountinfo::is_mount_point;
pub use search::MAX_RESULTS as MAX_SEARCH_RESULTS;
