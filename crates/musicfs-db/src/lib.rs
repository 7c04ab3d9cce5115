//! The musicfs database: the single source of truth for the library and its virtual tree.
//!
//! - [`schema`]: opens a DB for writing, applies the migrations in `sql/`, refuses foreign or
//!   newer DBs.
//! - [`ReadPool`]: read-only WAL connections for the mount and the scanner's comparisons.
//! - [`queries`]: every read query, as prepared cached statements.
//! - [`Writer`]: the only code that changes library rows; keeps files, entries and dirs
//!   consistent in each transaction.
//! - [`cache_index`]: the content cache's rows (which file is made of which chunks), read on
//!   any connection and changed by [`cache_index::CacheIndex`] in short transactions.

pub mod cache_index;
mod check;
mod error;
mod pathbytes;
mod pool;
pub mod queries;
pub mod schema;
pub mod search_rows;
mod writer;

pub use check::check_consistency;
pub use error::DbError;
pub use pathbytes::PathBytes;
pub use pool::{OpenMode, PoolOptions, ReadPool};
pub use schema::SCHEMA_VERSION;
pub use writer::{FileRecord, NamePolicy, StoredTrack, Writer};

/// Setting (`settings.key`): "1" when the last scan indexed symlinks leading outside every
/// music folder (`--follow-external-symlinks`); the mount then serves them too.
pub const FOLLOW_EXTERNAL_SYMLINKS: &str = "follow_external_symlinks";

/// The FUSE inode of the root directory.
pub const ROOT_ID: i64 = 1;

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// The DB used when none is given: `$XDG_DATA_HOME/musicfs/library.db`, else
/// `~/.local/share/musicfs/library.db`.
pub fn default_db_path() -> Option<std::path::PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })?;
    Some(data.join("musicfs").join("library.db"))
}
