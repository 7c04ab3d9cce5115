//! Search over the library: a tantivy index beside the DB, kept by the scanner, read by the
//! CLI and the mount's `/.search/` folder. The DB stays the source of truth: the index stores
//! file ids only, and can always be rebuilt from `files` (see `keep.rs`).

mod index;
mod keep;
mod query;
mod schema;

use std::path::PathBuf;

pub use index::{SearchIndex, default_dir};
pub use keep::{IndexKeeper, SETTING_DIR, document};
pub use schema::{SEARCH_SCHEMA_VERSION, TEXT_FIELDS, terms};
/// The reader type of [`SearchIndex::reader`] (reloads on the scanner's commits).
pub use tantivy::IndexReader;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("bad query {query:?} at column {column}: {reason}")]
    Syntax {
        query: String,
        column: usize,
        reason: String,
    },
    #[error(
        "{dir}: no search index (run musicfs-scan on the library once: it builds and keeps it)"
    )]
    Missing { dir: PathBuf },
    #[error("{dir}: search index: {source}")]
    Index {
        dir: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("{dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{dir}: not a musicfs search index (no musicfs stamp); refusing to delete or replace it. \
         Point `settings.search_index` at a new folder or remove that row"
    )]
    NotOurs { dir: PathBuf },
    #[error(transparent)]
    Db(#[from] musicfs_db::DbError),
}
