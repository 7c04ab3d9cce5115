use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, CacheError>;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A cache folder or file another user could read or change: the cache is not used.
    #[error("{path}: refused as the content cache: it {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("reading the content to chunk: {0}")]
    Read(std::io::Error),
    #[error("content cache index: {0}")]
    Db(#[source] musicfs_db::DbError),
}

impl CacheError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> CacheError {
        CacheError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
