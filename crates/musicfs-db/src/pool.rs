use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;

use crate::schema::{SCHEMA_VERSION, check_header, header};
use crate::{DbError, Result};

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections kept; each serves one request at a time.
    pub max_size: u32,
    /// SQLite mmap window per connection in bytes; halves warm point-lookup latency. Touched
    /// pages count in RSS (shared with the page cache), up to the DB size.
    pub mmap_size: u64,
    /// SQLite page cache per connection, KiB.
    pub cache_kib: u32,
    /// When set, counts SQLite VM instructions run on pool connections, in thousands: a
    /// cheap, always-on measure of how much work queries do (a table scan shows at once).
    pub vm_kilosteps: Option<Arc<AtomicU64>>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            mmap_size: 2 << 30,
            cache_kib: 16 << 10,
            vm_kilosteps: None,
        }
    }
}

/// A pool of read-only connections (WAL readers, `query_only`). Each checkout sees the latest
/// committed state when its statement starts.
#[derive(Clone)]
pub struct ReadPool {
    pool: r2d2::Pool<SqliteConnectionManager>,
    path: PathBuf,
}

pub type ReadConn = PooledConnection<SqliteConnectionManager>;

impl ReadPool {
    /// Opens the pool and checks the DB is a musicfs DB of a schema this build reads. Costs one
    /// connection open and two pragma reads: nothing here grows with the library.
    pub fn open(path: &Path, options: &PoolOptions) -> Result<ReadPool> {
        let (mmap, cache) = (options.mmap_size, options.cache_kib);
        let counter = options.vm_kilosteps.clone();
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                c.busy_timeout(Duration::from_secs(5))?;
                c.execute_batch(&format!(
                    "PRAGMA query_only = 1; PRAGMA mmap_size = {mmap}; PRAGMA cache_size = -{cache};"
                ))?;
                c.set_prepared_statement_cache_capacity(64);
                if let Some(counter) = counter.clone() {
                    c.progress_handler(
                        1000,
                        Some(move || {
                            counter.fetch_add(1, Ordering::Relaxed);
                            false // never interrupt
                        }),
                    )?;
                }
                Ok(())
            });
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(1))
            // The default runs a query on every checkout: +1.5–3.5 µs per request.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|source| DbError::Pool {
                path: path.to_owned(),
                source,
            })?;
        let this = ReadPool {
            pool,
            path: path.to_owned(),
        };
        let conn = this.get()?;
        let (app_id, version) = header(&conn).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        check_header(path, &conn, app_id, version)?;
        if version < SCHEMA_VERSION {
            return Err(DbError::Corrupt(format!(
                "{}: schema version {version}, expected {SCHEMA_VERSION}: run musicfs-scan on it \
                 to migrate",
                path.display()
            )));
        }
        Ok(this)
    }

    pub fn get(&self) -> Result<ReadConn> {
        self.pool.get().map_err(|source| DbError::Pool {
            path: self.path.clone(),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
