//! The operations of the filesystem, as methods returning `Result<_, FsError>`: state, caches,
//! queries. `fuse.rs` adapts them to FUSE replies.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use musicfs_db::{ReadPool, queries};

use crate::FsError;
use crate::attr::{Kind, Node, Owner};
use crate::cache::Caches;
use crate::handles::{DirRow, Handles};
use crate::io::{BackingFile, BackingIo};

/// Rows fetched per readdir query; a kernel request holds ~100 names, the rest are buffered
/// in the directory handle for the next requests.
pub(crate) const READDIR_PAGE: u32 = 1024;
/// Offsets of "." and ".."; a child with inode `id` has offset `id + 2` (inodes start at 2
/// for children), so an offset always names the last entry returned, whatever changed since.
pub(crate) const DOT_OFFSET: u64 = 1;
pub(crate) const DOTDOT_OFFSET: u64 = 2;

pub(crate) struct MusicFs {
    pub pool: ReadPool,
    pub caches: Arc<Caches>,
    pub handles: Arc<Handles>,
    pub owner: Owner,
    pub ttl: Duration,
    pub passthrough: Arc<AtomicBool>,
    /// Every call that may touch a backing file runs here, never on a FUSE worker.
    pub io: BackingIo,
    /// Answer READDIRPLUS (names with attributes) when the kernel asks.
    pub readdirplus: bool,
    /// `/.search/`, when enabled.
    pub search: Option<crate::search::SearchFolder>,
    /// Remote origins (SFTP, S3), opened when a file of theirs is first opened.
    pub remotes: Arc<crate::remote::RemoteOrigins>,
    /// The content cache (None: disabled, or the DB is not writable).
    pub cache: Option<musicfs_cache::Cache>,
    /// Fetches the start of the next track into the cache (with the cache, unless disabled).
    pub prefetch: Option<Arc<crate::remote::Prefetcher>>,
}

pub(crate) type Result<T> = std::result::Result<T, FsError>;

impl MusicFs {
    pub(crate) fn node(&self, ino: u64) -> Result<Node> {
        if let Some(node) = self.caches.attr(ino) {
            return Ok(node);
        }
        let ticket = self.caches.ticket();
        let conn = self.pool.get()?;
        let row = queries::entry(&conn, ino as i64)?.ok_or(FsError::NotFound)?;
        let node = Node::from_row(&row);
        self.caches.put_attr(ticket, node);
        Ok(node)
    }

    pub(crate) fn do_lookup(&self, parent: u64, name: &OsStr) -> Result<Option<Node>> {
        // Virtual names are UTF-8; any other byte string cannot exist here.
        let Ok(name) = std::str::from_utf8(name.as_bytes()) else {
            return Ok(None);
        };
        if let Some(hit) = self.caches.lookup(parent, name) {
            return Ok(hit);
        }
        let ticket = self.caches.ticket();
        let conn = self.pool.get()?;
        let node = queries::lookup(&conn, parent as i64, name)?.map(|r| Node::from_row(&r));
        if node.is_none() && queries::entry(&conn, parent as i64)?.is_none() {
            return Err(FsError::NotFound); // the directory itself is gone: not cacheable
        }
        self.caches.put_lookup(ticket, parent, name, node);
        Ok(node)
    }

    /// Children of `dir` after `offset`, fed to `add` until it reports a full buffer. Pages are
    /// buffered in the handle `fh` (from opendir) so consecutive requests share one query.
    /// `with_attrs`: READDIRPLUS needs attributes; plain readdir reads names from the index.
    pub(crate) fn list(
        &self,
        dir: u64,
        fh: u64,
        offset: u64,
        with_attrs: bool,
        mut add: impl FnMut(u64, u64, Kind, &str, Option<&Node>) -> bool,
    ) -> Result<()> {
        let node = self.node(dir)?;
        if node.file_id.is_some() {
            return Err(FsError::NotADirectory);
        }
        if offset < DOT_OFFSET && add(dir, DOT_OFFSET, Kind::Directory, ".", Some(&node)) {
            return Ok(());
        }
        if offset < DOTDOT_OFFSET && add(node.parent, DOTDOT_OFFSET, Kind::Directory, "..", None) {
            return Ok(());
        }
        let buffer = self.handles.dir(fh).unwrap_or_default();
        let mut buffer = buffer.lock().unwrap();
        let mut after = offset.saturating_sub(DOTDOT_OFFSET);
        loop {
            if buffer.covers(after, with_attrs) {
                let start = buffer.rows.partition_point(|r| r.ino <= after);
                for row in &buffer.rows[start..] {
                    let kind = if row.is_file {
                        Kind::File
                    } else {
                        Kind::Directory
                    };
                    if add(
                        row.ino,
                        row.ino + DOTDOT_OFFSET,
                        kind,
                        &row.name,
                        row.node.as_ref(),
                    ) {
                        return Ok(());
                    }
                    after = row.ino;
                }
                if buffer.complete {
                    return Ok(());
                }
            }
            let conn = self.pool.get()?;
            let (after_i, limit) = (after as i64, READDIR_PAGE);
            buffer.rows = if with_attrs {
                queries::readdir_page(&conn, dir as i64, after_i, limit)?
                    .iter()
                    .map(|row| {
                        let node = Node::from_row(row);
                        DirRow {
                            ino: node.ino,
                            name: row.name.clone(),
                            is_file: node.file_id.is_some(),
                            node: Some(node),
                        }
                    })
                    .collect()
            } else {
                queries::readdir_names(&conn, dir as i64, after_i, limit)?
                    .into_iter()
                    .map(|(id, name, is_file)| DirRow {
                        ino: id as u64,
                        name,
                        is_file,
                        node: None,
                    })
                    .collect()
            };
            buffer.complete = buffer.rows.len() < READDIR_PAGE as usize;
            buffer.after = Some(after);
            buffer.with_attrs = with_attrs;
        }
    }

    /// The DB half of an open, on the FUSE thread: which file, and where its bytes are. Never
    /// touches the backing file (that is [`OpenJob::open`], on a blocking thread).
    pub(crate) fn prepare_open(&self, ino: u64, for_writing: bool) -> Result<OpenJob> {
        if for_writing {
            return Err(FsError::ReadOnly);
        }
        let node = self.node(ino)?;
        let file_id = node.file_id.ok_or(FsError::IsADirectory)?;
        let backing = {
            let conn = self.pool.get()?;
            queries::backing_path(&conn, file_id)?.ok_or(FsError::NotFound)?
        };
        Ok(OpenJob {
            ino,
            file_id,
            size: node.size,
            path: PathBuf::from(OsStr::from_bytes(&backing.absolute())),
            backing,
            pool: self.pool.clone(),
            remotes: self.remotes.clone(),
            cache: self.cache.clone(),
            prefetch: self.prefetch.clone(),
        })
    }

    pub(crate) fn log(&self, op: &str, err: &FsError) {
        log_error(op, err)
    }
}

/// Logs a request's failure at the level it deserves (a missing name is no news).
pub(crate) fn log_error(op: &str, err: &FsError) {
    {
        match err {
            FsError::NotFound | FsError::ReadOnly => {}
            FsError::BadQuery(_) | FsError::NoSearchIndex(_) => tracing::info!("{op}: {err}"),
            FsError::Changed { .. } | FsError::Backing { .. } | FsError::Outside { .. } => {
                tracing::warn!("{op}: {err}")
            }
            _ => tracing::error!("{op}: {err}"),
        }
    }
}

/// An open, prepared from the DB on the FUSE thread, done on a blocking thread.
pub(crate) struct OpenJob {
    ino: u64,
    file_id: i64,
    /// The size the DB knows.
    pub size: u64,
    pub path: PathBuf,
    backing: queries::BackingPath,
    pool: ReadPool,
    remotes: Arc<crate::remote::RemoteOrigins>,
    cache: Option<musicfs_cache::Cache>,
    prefetch: Option<Arc<crate::remote::Prefetcher>>,
}

impl OpenJob {
    /// Opens the backing file beneath its music folder and checks its size against the DB
    /// (never bytes under a stale size). May block on the disk: call on a blocking thread.
    pub(crate) fn open(self, pid: u32) -> Result<BackingFile> {
        if self.remotes.serves(&self.backing.root, &self.backing.kind) {
            return self.open_remote(pid);
        }
        let file = crate::backing::open_beneath(&self.backing.root, &self.backing.rel, || {
            outside_policy(&self.pool)
        })
        .map_err(|err| match err {
            crate::backing::OpenError::Io(source) => FsError::Backing {
                path: self.path.clone(),
                source,
            },
            crate::backing::OpenError::Outside(target) => FsError::Outside {
                path: self.path.clone(),
                target,
            },
        })?;
        let disk = file
            .metadata()
            .map_err(|source| FsError::Backing {
                path: self.path.clone(),
                source,
            })?
            .len();
        if disk != self.size {
            return Err(FsError::Changed {
                path: self.path,
                db: self.size,
                disk,
            });
        }
        Ok(BackingFile::new(file, self.size, self.path, pid))
    }
}

impl OpenJob {
    /// Opens a file of a remote origin: its size is checked against the DB (one round trip),
    /// its bytes are fetched as they are read.
    fn open_remote(self, pid: u32) -> Result<BackingFile> {
        let set = self
            .remotes
            .get(
                self.backing.origin_id,
                &self.backing.root,
                &self.backing.kind,
            )
            .map_err(|e| FsError::Backing {
                path: self.path.clone(),
                source: e.into_io(),
            })?;
        if let Some(prefetch) = &self.prefetch {
            prefetch.opened(self.file_id);
        }
        let cached = self.file_cache();
        let (rel, etag) = (self.backing.rel, self.backing.etag);
        match crate::remote::RemoteFile::open(set, rel, self.size, etag, cached) {
            Ok(file) => {
                if let Some(prefetch) = self.prefetch {
                    let ino = self.ino;
                    file.on_started(Box::new(move || prefetch.started(ino)));
                }
                Ok(BackingFile::remote(file, self.size, self.path, pid))
            }
            Err(crate::remote::OpenFailure::Changed(disk)) => Err(FsError::Changed {
                path: self.path,
                db: self.size,
                disk,
            }),
            Err(crate::remote::OpenFailure::Origin(err)) => Err(FsError::Backing {
                path: self.path,
                source: err.into_io(),
            }),
        }
    }
}

impl OpenJob {
    /// The cache's view of this file, where its origin is cached. A cache that cannot be read
    /// is passed over (the file is read from its origin), never an error.
    fn file_cache(&self) -> Option<musicfs_cache::FileCache> {
        let cache = self.cache.as_ref()?;
        if !self.remotes.caches(&self.backing.root, &self.backing.kind) {
            return None;
        }
        let opened = (|| {
            let conn = self.pool.get()?;
            let Some(version) = musicfs_db::cache_index::file_version(&conn, self.file_id)? else {
                return Ok(None);
            };
            if version.size != self.size {
                return Ok(None); // the scanner changed it since the lookup: not this version
            }
            musicfs_cache::FileCache::open(cache, &conn, self.file_id, version)
                .map(Some)
                .map_err(FsError::from)
        })();
        opened.unwrap_or_else(|err: FsError| {
            tracing::warn!("{}: content cache not used: {err}", self.path.display());
            None
        })
    }
}

/// Every music folder's root, and whether the last scan let external symlinks in. Read
/// only when a backing path leaves its own root (rare); any failure means "refuse".
fn outside_policy(pool: &ReadPool) -> (Vec<Vec<u8>>, bool) {
    let Ok(conn) = pool.get() else {
        return (Vec::new(), false);
    };
    let roots = queries::origins(&conn)
        .map(|o| o.into_iter().map(|(_, root)| root).collect())
        .unwrap_or_default();
    let follow = queries::setting(&conn, musicfs_db::FOLLOW_EXTERNAL_SYMLINKS)
        .ok()
        .flatten()
        .is_some_and(|v| v == "1");
    (roots, follow)
}
