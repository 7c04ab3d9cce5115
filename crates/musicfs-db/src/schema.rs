//! Opening a DB for writing and bringing its schema up to date.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{DbError, Result};

/// `PRAGMA application_id` of every musicfs DB ('MUFS').
pub const APPLICATION_ID: i64 = 0x4D55_4653;

/// Forward migrations, in order. Index i takes `user_version` i to i + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../sql/001_init.sql"),
    include_str!("../../../sql/002_changes.sql"),
    include_str!("../../../sql/003_retry.sql"),
    include_str!("../../../sql/004_search.sql"),
    include_str!("../../../sql/005_skipped.sql"),
    include_str!("../../../sql/006_name_counters.sql"),
    include_str!("../../../sql/007_file_identity.sql"),
    include_str!("../../../sql/008_album_groups.sql"),
    include_str!("../../../sql/009_remote_origins.sql"),
    include_str!("../../../sql/010_content_cache.sql"),
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Pragmas of the single writer connection. WAL lets mounts read while the scanner writes;
/// synchronous=NORMAL is durable at each checkpoint and never corrupts on a crash.
const WRITER_PRAGMAS: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    PRAGMA foreign_keys = ON;
    PRAGMA cache_size = -32768;
    PRAGMA temp_store = MEMORY;
";

/// Opens (creating if needed) the DB at `path` for writing and migrates it to
/// [`SCHEMA_VERSION`]. Refuses a file that is not a musicfs DB or is from a newer musicfs.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let open_err = |source| DbError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(open_err)?;
    // Reading the header first turns "file is not a database" into a clear open error.
    let (app_id, version) = header(&conn).map_err(open_err)?;
    check_header(path, &conn, app_id, version)?;
    conn.execute_batch(WRITER_PRAGMAS).map_err(open_err)?;
    migrate(path, &mut conn, version)?;
    Ok(conn)
}

pub(crate) fn header(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let app_id = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok((app_id, version))
}

/// A DB is ours when it carries our application_id, or is brand new (no tables at all).
pub(crate) fn check_header(
    path: &Path,
    conn: &Connection,
    app_id: i64,
    version: i64,
) -> Result<()> {
    if app_id == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|source| DbError::Open {
                path: path.to_owned(),
                source,
            })?;
        if tables > 0 {
            return Err(DbError::Foreign {
                path: path.to_owned(),
                found: app_id,
            });
        }
    } else if app_id != APPLICATION_ID {
        return Err(DbError::Foreign {
            path: path.to_owned(),
            found: app_id,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies every pending migration in one exclusive transaction: a process killed midway
/// leaves the DB at the version it had, never between two (a first run killed while creating
/// the schema leaves an empty file; the next run creates it all).
fn migrate(path: &Path, conn: &mut Connection, from: i64) -> Result<()> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let err = |version: i64| {
        move |source| DbError::Migrate {
            path: path.to_owned(),
            version,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(err(from + 1))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = i as i64 + 1;
        tx.execute_batch(sql).map_err(err(version))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(err(version))?;
    }
    tx.commit().map_err(err(SCHEMA_VERSION))?;
    tracing::info!(path = %path.display(), from, to = SCHEMA_VERSION, "migrated database schema");
    Ok(())
}
