use std::path::PathBuf;

/// Why a scan stopped. Per-file problems are not errors: they are recorded and counted.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Db(#[from] musicfs_db::DbError),
    #[error(transparent)]
    Layout(#[from] musicfs_layout::LayoutError),
    #[error(
        "another musicfs-scan is already running on this database (lock {lock}); \
         wait for it to finish"
    )]
    Locked { lock: PathBuf },
    #[error("{path}: cannot create lock file: {source}")]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{root}: refusing to scan: {reason}")]
    Refused { root: PathBuf, reason: String },
    #[error("{root}: cannot scan this music folder: {source}")]
    BadRoot {
        root: PathBuf,
        source: std::io::Error,
    },
    /// A remote origin could not be opened or reached (and the DB has nothing from it yet).
    #[error("cannot scan: {0}")]
    Origin(musicfs_origin::OriginError),
    #[error("{root}: cannot watch for changes: {reason}")]
    Watch { root: PathBuf, reason: String },
    #[error("cannot start worker threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    #[error("the database writer stopped: {0}")]
    WriterGone(String),
}
