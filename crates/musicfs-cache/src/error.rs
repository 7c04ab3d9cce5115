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
    /// The cache folder is not the store whose chunks this library's rows describe (its disk
    /// not mounted, another `--cache-dir`, the folder deleted): nothing is changed, neither
    /// the rows forgotten nor a new store made, until the user says which (see the message).
    #[error(
        "{dir}: not the content cache this library's index describes: the index expects the \
         store {expected} ({files} cached file(s) in it), and {found}. Nothing was changed. If \
         the cache's disk is not mounted, mount it; if the cache is in another folder, pass that \
         folder with --cache-dir; to start a new cache in this folder and forget the old one, \
         run `musicfs cache clear --cache-dir {dir}`"
    )]
    NotThisCache {
        dir: PathBuf,
        expected: String,
        /// What the folder holds instead, as a clause.
        found: String,
        files: u64,
    },
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
