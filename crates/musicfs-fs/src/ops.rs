//! The operations of the filesystem, as methods returning `Result<_, FsError>`: state, caches,
//! queries. `filesystem.rs` adapts them to FUSE replies.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{FileType, OpenAccMode, OpenFlags, ReplyOpen};
use musicfs_db::{ReadPool, queries};

use crate::FsError;
use crate::attr::{Node, Owner};
use crate::cache::Caches;
use crate::handles::{DirRow, Handle, Handles};

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
    pub passthrough: AtomicBool,
    /// Answer READDIRPLUS (names with attributes) when the kernel asks.
    pub readdirplus: bool,
    /// `/.search/`, when enabled.
    pub search: Option<crate::search::SearchFolder>,
}

pub(crate) type Result<T> = std::result::Result<T, FsError>;

impl MusicFs {
    pub(crate) fn node(&self, ino: u64) -> Result<Node> {
        if let Some(node) = self.caches.attr(ino) {
            return Ok(node);
        }
        let conn = self.pool.get()?;
        let row = queries::entry(&conn, ino as i64)?.ok_or(FsError::NotFound)?;
        let node = Node::from_row(&row);
        self.caches.put_attr(node);
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
        let conn = self.pool.get()?;
        let node = queries::lookup(&conn, parent as i64, name)?.map(|r| Node::from_row(&r));
        if node.is_none() && queries::entry(&conn, parent as i64)?.is_none() {
            return Err(FsError::NotFound); // the directory itself is gone: not cacheable
        }
        self.caches.put_lookup(parent, name, node);
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
        mut add: impl FnMut(u64, u64, FileType, &str, Option<&Node>) -> bool,
    ) -> Result<()> {
        let node = self.node(dir)?;
        if node.file_id.is_some() {
            return Err(FsError::NotADirectory);
        }
        if offset < DOT_OFFSET && add(dir, DOT_OFFSET, FileType::Directory, ".", Some(&node)) {
            return Ok(());
        }
        if offset < DOTDOT_OFFSET
            && add(node.parent, DOTDOT_OFFSET, FileType::Directory, "..", None)
        {
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
                        FileType::RegularFile
                    } else {
                        FileType::Directory
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

    pub(crate) fn do_open(
        &self,
        ino: u64,
        flags: OpenFlags,
        reply: &ReplyOpen,
    ) -> Result<(u64, Option<Arc<fuser::BackingId>>)> {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return Err(FsError::ReadOnly);
        }
        let node = self.node(ino)?;
        let file_id = node.file_id.ok_or(FsError::IsADirectory)?;
        let path = {
            let conn = self.pool.get()?;
            queries::backing_path(&conn, file_id)?.ok_or(FsError::NotFound)?
        };
        let path = PathBuf::from(OsStr::from_bytes(&path));
        let backing_err = |source| FsError::Backing {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(backing_err)?;
        let disk = file.metadata().map_err(backing_err)?.len();
        if disk != node.size {
            return Err(FsError::Changed {
                path,
                db: node.size,
                disk,
            });
        }
        if self.passthrough.load(Ordering::Relaxed) {
            match self.handles.backing(ino, || reply.open_backing(&file)) {
                Ok(id) => {
                    let fh = self.handles.insert(Handle::Passthrough(id.clone()));
                    return Ok((fh, Some(id)));
                }
                Err(err) => {
                    // e.g. EPERM without CAP_SYS_ADMIN: serve from the daemon from now on.
                    tracing::info!("kernel passthrough unavailable ({err}); daemon reads");
                    self.passthrough.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok((self.handles.insert(Handle::Direct(Arc::new(file))), None))
    }

    /// Reads into a per-thread buffer reused across requests (no allocation per read) and
    /// hands the bytes to `reply`.
    pub(crate) fn do_read(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
        reply: impl FnOnce(&[u8]),
    ) -> Result<()> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let file = self.handles.file(fh).ok_or(FsError::BadHandle)?;
        BUF.with_borrow_mut(|buf| {
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            let buf = &mut buf[..size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(FsError::Backing {
                            path: PathBuf::from(format!("open file {fh}")),
                            source,
                        });
                    }
                }
            }
            reply(&buf[..filled]);
            Ok(())
        })
    }

    pub(crate) fn log(&self, op: &str, err: &FsError) {
        match err {
            FsError::NotFound | FsError::ReadOnly => {}
            FsError::BadQuery(_) | FsError::NoSearchIndex(_) => tracing::info!("{op}: {err}"),
            FsError::Changed { .. } | FsError::Backing { .. } => tracing::warn!("{op}: {err}"),
            _ => tracing::error!("{op}: {err}"),
        }
    }
}
