use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, Origin, OriginUrl};

/// A folder on this machine (a local disk, or a NAS mounted by the OS). The scanner walks local
/// origins itself (inodes, symlink policy) and the mount opens their files beneath the root;
/// this implementation serves health checks, mirrors and tests.
pub struct LocalOrigin {
    url: OriginUrl,
    root: PathBuf,
    fetched: AtomicU64,
}

impl LocalOrigin {
    pub fn new(url: OriginUrl) -> LocalOrigin {
        let root = match &url {
            OriginUrl::Local(root) => root.clone(),
            _ => panic!("LocalOrigin needs a local URL"),
        };
        LocalOrigin {
            url,
            root,
            fetched: AtomicU64::new(0),
        }
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }
}

fn local(path: PathBuf) -> impl FnOnce(std::io::Error) -> OriginError {
    move |source| OriginError::Local { path, source }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        size: m.len(),
        mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        etag: None,
    }
}

impl Origin for LocalOrigin {
    fn url(&self) -> &OriginUrl {
        &self.url
    }

    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        let dir = self.path(rel);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(local(dir.clone()))? {
            let entry = entry.map_err(local(dir.clone()))?;
            let kind = entry.file_type().map_err(local(entry.path()))?;
            if kind.is_symlink() {
                continue;
            }
            let meta = entry.metadata().map_err(local(entry.path()))?;
            entries.push(Entry {
                name: entry.file_name().as_bytes().to_vec(),
                is_dir: kind.is_dir(),
                meta: meta_of(&meta),
            });
        }
        Ok(entries)
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        let path = self.path(rel);
        let meta = std::fs::metadata(&path).map_err(local(path))?;
        Ok(meta_of(&meta))
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(rel);
        let file = std::fs::File::open(&path).map_err(local(path.clone()))?;
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(local(path)(e)),
            }
        }
        buf.truncate(filled);
        self.fetched.fetch_add(filled as u64, Ordering::Relaxed);
        Ok(buf)
    }

    fn stat_root(&self) -> Result<bool> {
        let mut dir = std::fs::read_dir(&self.root).map_err(local(self.root.clone()))?;
        Ok(dir.next().is_some())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}
