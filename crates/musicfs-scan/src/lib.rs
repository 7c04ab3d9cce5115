//! The scanner: walks music folders in parallel, reads tags of new and changed files, renders
//! their virtual paths, and writes only the delta to the DB through one writer thread.
//!
//! Invariants a user relies on:
//! - a file whose size and mtime match the DB is never opened;
//! - a folder that cannot be fully listed keeps all its rows (never delete on doubt);
//! - a missing, unreadable or suddenly empty origin root is refused ([`ScanError::Refused`]);
//! - every commit leaves files, entries and dirs consistent, so a scan killed at any instant
//!   is completed by the next run;
//! - memory is bounded by the largest single folder and the writer channel, not the library.

mod albums;
mod config;
mod error;
mod lock;
mod policy;
mod relayout;
mod remote;
mod scan;
mod summary;
mod walk;
mod watch;
mod write;

pub use config::{ScanConfig, Scope};
pub use error::ScanError;
pub use scan::scan;
pub use summary::Summary;
pub use watch::{WatchOptions, watch};
