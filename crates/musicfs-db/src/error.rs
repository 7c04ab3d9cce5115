use std::path::PathBuf;

/// Every DB failure, with what was being done. The FUSE layer maps these to errno in one place.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: cannot open database: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path}: no database here; create it with `musicfs-scan --db {path} MUSIC_DIR` or mount \
         with a music folder"
    )]
    Missing { path: PathBuf },
    #[error(
        "{path}: damaged, or not a SQLite database ({cause}); `musicfs check --db {path}` \
         says more; rescanning into a new DB rebuilds it"
    )]
    Damaged { path: PathBuf, cause: String },
    #[error("{path}: not a musicfs database (application_id {found:#x})")]
    Foreign { path: PathBuf, found: i64 },
    #[error(
        "{path}: database schema version {found} is newer than this musicfs understands \
         ({supported}); upgrade musicfs"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: migration to schema version {version} failed: {source}")]
    Migrate {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: cannot open read pool: {source}")]
    Pool {
        path: PathBuf,
        #[source]
        source: r2d2::Error,
    },
    #[error("query `{query}` failed: {source}")]
    Query {
        query: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database is inconsistent: {0}")]
    Corrupt(String),
}

/// Attaches the query name to a rusqlite error.
pub(crate) trait QueryContext<T> {
    fn ctx(self, query: &'static str) -> Result<T, DbError>;
}

impl<T> QueryContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, query: &'static str) -> Result<T, DbError> {
        self.map_err(|source| DbError::Query { query, source })
    }
}

impl DbError {
    /// True when the underlying SQLite error is a busy/locked condition worth retrying.
    pub fn is_busy(&self) -> bool {
        let source = match self {
            DbError::Query { source, .. }
            | DbError::Open { source, .. }
            | DbError::Migrate { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
