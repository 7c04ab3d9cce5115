//! Files of remote origins (SFTP, S3), and of any origin with mirrors, read through the origin
//! layer with failover between mirrors.
//!
//! Reads go to the origin in windows that grow while the reader stays sequential (a player,
//! `cp`): the first read fetches [`FIRST_WINDOW`], each sequential miss doubles it up to
//! [`MAX_WINDOW`], a seek starts over small. So a seek costs one small round trip, and a long
//! read costs few. A read the current window answers is served on the FUSE thread without a
//! hop ([`RemoteFile::read_cached`] never waits: it gives up if a fetch holds the window).
//! Fetches run on the mount's I/O threads with its deadline, never on a FUSE worker; each goes
//! to the healthiest mirror whose copy has the size the DB knows, and fails over to the next.
//! Once the reader is sequential, the next window is fetched in the background, from one
//! stream to the end of the file where the origin can stream (S3: one GET, not one per
//! window); a stream that fails falls back to ranged reads with failover.

mod fetcher;
mod file;
mod prefetch;
mod registry;
#[cfg(test)]
mod tests;

pub(crate) use file::{OpenFailure, RemoteFile};
pub(crate) use prefetch::Prefetcher;
pub use registry::MirrorConfig;
pub(crate) use registry::{RemoteOrigins, warm_up};
