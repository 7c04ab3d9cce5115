use std::path::PathBuf;

use fuser::Errno;

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
}

impl FsError {
    /// The errno a FUSE request answers with.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotADirectory => Errno::ENOTDIR,
            FsError::IsADirectory => Errno::EISDIR,
            FsError::ReadOnly => Errno::EROFS,
            FsError::BadHandle => Errno::EBADF,
            FsError::Outside { .. } => Errno::EACCES,
            FsError::BadQuery(_) => Errno::EINVAL,
            FsError::NoSearchIndex(_) => Errno::ENOENT,
            // Never serve bytes under a stale size: the kernel would cut or pad them.
            FsError::Changed { .. } => Errno::EIO,
            FsError::Backing { source, .. } => {
                source.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
            }
            FsError::Db(err) if err.is_busy() => Errno::EAGAIN,
            _ => Errno::EIO,
        }
    }
}
