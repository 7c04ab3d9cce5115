use std::path::PathBuf;

/// Mount and request failures. [`FsError::errno`] is the one place where errors become errno.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Db(#[from] musicfs_db::DbError),
    #[error("{path}: mountpoint must be an existing directory: {source}")]
    Mountpoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: already a mount point; unmount it first (fusermount3 -u {path})")]
    Busy { path: PathBuf },
    #[error("cannot mount on {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the mount disappeared (unmounted from outside, or the FUSE connection was \
         aborted); exiting with an error so a service manager restarts it"
    )]
    Vanished { path: PathBuf },
    #[error("no such entry")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error(
        "{path}: changed on disk since the last scan ({db} bytes in the DB, {disk} on disk); \
         rescan to serve it"
    )]
    Changed { path: PathBuf, db: u64, disk: u64 },
    #[error("{path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The backing path resolves outside every music folder (a symlink swapped in after the
    /// scan, or an edited row): never served.
    #[error(
        "{path}: leads to {target}, outside every music folder; not served \
         (scan with --follow-external-symlinks to allow symlinks out)"
    )]
    Outside { path: PathBuf, target: PathBuf },
    /// A `/.search/` folder name that is not a valid query.
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    NoSearchIndex(String),
    #[error("search: {0}")]
    Search(String),
    #[error("content cache: {0}")]
    Cache(#[from] musicfs_cache::CacheError),
}

impl FsError {
    /// The errno (libc's) a request answers with: the one place errors become errnos.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::Outside { .. } => libc::EACCES,
            FsError::BadQuery(_) => libc::EINVAL,
            FsError::NoSearchIndex(_) => libc::ENOENT,
            // Never serve bytes under a stale size: the kernel would cut or pad them.
            FsError::Changed { .. } => libc::EIO,
            FsError::Backing { source, .. } => source
                .raw_os_error()
                .filter(|&e| e > 0)
                .unwrap_or(libc::EIO),
            FsError::Db(err) if err.is_busy() => libc::EAGAIN,
            _ => libc::EIO,
        }
    }
}
