//! Origins: where music files really live. A local folder, an SFTP server or an S3 bucket,
//! behind one blocking interface ([`Origin`]): list a folder, stat a file, read a byte range,
//! check health. The scanner and the mount call it from their own worker threads (never from a
//! FUSE worker); async clients run on one small shared runtime ([`runtime`]).
//!
//! Credentials come from where their tools keep them (`~/.ssh`, ssh-agent, the AWS variables and
//! `~/.aws`), are held only in memory, and never appear in `Debug`, errors or URLs.

mod error;
pub mod local;
mod mirrors;
mod range;
mod runtime;
mod s3;
mod s3_http;
mod s3_listing;
#[cfg(feature = "scripted")]
pub mod scripted;
mod secret;
mod sftp;
mod url;

use std::sync::Arc;
use std::time::Duration;

pub use error::{OriginError, Result};
pub use local::LocalOrigin;
pub use mirrors::{Health, Mirror, MirrorSet, RETRY_BACKOFF};
pub use range::RangeReader;
pub use runtime::runtime;
pub use s3::S3Origin;
pub use sftp::SftpOrigin;
pub use url::{OriginUrl, redact_url};

/// One child of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub is_dir: bool,
    pub meta: Meta,
    /// Why this name is listed but cannot be served (S3: a key that is no usable path, such
    /// as macOS's `Icon\r` or `a//b`; `name` is then escaped): to report, never to read.
    pub refused: Option<String>,
}

/// What the origin says about a file: enough to tell whether it changed since the last scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i64,
    /// S3's entity tag (content-derived): a better change marker than the mtime.
    pub etag: Option<String>,
}

/// A library's storage. Paths are relative to the origin root, `/`-separated bytes, empty for
/// the root. Every call may block on the network for up to the origin's timeout.
pub trait Origin: Send + Sync {
    fn url(&self) -> &OriginUrl;
    /// The children of the folder at `rel`: files and subfolders (symlinks are not followed).
    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>>;
    fn stat(&self, rel: &[u8]) -> Result<Meta>;
    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Whether [`Origin::read_at_sized`] tells the file's whole size (S3: a ranged GET's
    /// `Content-Range`), so a reader can check the size on its first read instead of with a
    /// request of its own.
    fn reads_tell_size(&self) -> bool {
        false
    }
    /// [`Origin::read_at`], and the file's whole size where the answer tells it. `etag`: the
    /// version scanned, where the origin keeps ETags (S3); a read of any other version fails
    /// with [`OriginError::Changed`], so bytes of two versions are never mixed. Other origins
    /// ignore it (the size check is theirs).
    fn read_at_sized(
        &self,
        rel: &[u8],
        offset: u64,
        len: usize,
        _etag: Option<&str>,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        Ok((self.read_at(rel, offset, len)?, None))
    }
    /// A cheap round trip proving the origin answers and its root exists; returns its latency.
    fn check(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        self.stat_root()?;
        Ok(started.elapsed())
    }
    /// Whether the root exists and has anything in it.
    fn stat_root(&self) -> Result<bool>;
    /// Bytes of file content fetched so far (listings and headers not counted).
    fn bytes_fetched(&self) -> u64;

    /// A handle for several ranged reads of `rel`, for origins where opening a file costs a
    /// round trip of its own (SFTP: open and close are requests): a tag read's head and tail
    /// then cost one open, not one per range. `None`: every read is as cheap through
    /// [`Origin::read_at`]. Opening may block on the network like any call.
    fn open(&self, _rel: &[u8]) -> Result<Option<Box<dyn OpenFile>>> {
        Ok(None)
    }

    /// A reader of `rel` from `offset` to its end in one request, for a sequential reader
    /// (a player), where the origin can stream (S3: one GET instead of a GET per window).
    /// Each wait for more bytes fails after `stall`. `etag` as for [`Origin::read_at_sized`].
    /// `None`: not supported here, use [`Origin::read_at`].
    fn stream_from(
        &self,
        _rel: &[u8],
        _offset: u64,
        _stall: Duration,
        _etag: Option<&str>,
    ) -> Option<Result<Box<dyn std::io::Read + Send>>> {
        None
    }
}

/// One file of an origin, open for ranged reads (see [`Origin::open`]); closed on drop.
pub trait OpenFile: Send {
    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>>;
}

/// Opens the origin at `url` with credentials from the environment. Network origins connect
/// lazily: opening never blocks, the first call does.
///
/// A URL built by hand rather than by [`OriginUrl::parse`] is refused as `parse` would refuse
/// it when it holds a password: the scanner stores the URL of what it opened.
pub fn open(url: &OriginUrl) -> Result<Arc<dyn Origin>> {
    if let Some(part) = url.part_with_password() {
        return Err(OriginError::BadUrl {
            url: redact_url(&url.to_string()),
            reason: format!("its {part} holds a password, which is never stored or shown"),
        });
    }
    Ok(match url {
        OriginUrl::Local(_) => Arc::new(LocalOrigin::new(url.clone())),
        OriginUrl::Sftp { .. } => Arc::new(SftpOrigin::new(url.clone())?),
        OriginUrl::S3 { .. } => Arc::new(S3Origin::new(url.clone())?),
    })
}

/// `a/b` joined with `c`, as origin-relative bytes.
pub fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

fn timeout_option(url: &OriginUrl, default: Duration) -> Duration {
    url.option("timeout_ms")
        .and_then(|v| v.parse().ok())
        .map_or(default, Duration::from_millis)
}
