use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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
///
/// The pool follows its path: when the file there is replaced (`mv new.db library.db`, a
/// restored backup, `VACUUM INTO` then rename), [`ReadPool::reopen_if_replaced`] swaps in
/// connections to the new file. Connections already checked out finish on the old one.
#[derive(Clone)]
pub struct ReadPool {
    current: Arc<RwLock<Current>>,
    path: PathBuf,
    options: PoolOptions,
}

/// How the pool's connections open the file. Always `query_only`: nothing here can write SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read-write file access. Like any SQLite user, the last connection to close checkpoints
    /// and removes the `-wal` and `-shm` files, so they never outlive their DB file (a stale
    /// WAL beside a replaced DB file would be applied to it).
    Shared,
    /// The file or its folder is read-only to us, but a `-shm` exists: WAL reads still work.
    ReadOnly,
    /// Read-only media without `-shm`, or a stale WAL of a replaced file that another process
    /// still holds: read the main file alone (`immutable=1`). No live updates.
    Immutable,
}

struct Current {
    /// `None` only while a replaced file is being swapped (under the write lock).
    pool: Option<r2d2::Pool<SqliteConnectionManager>>,
    mode: OpenMode,
    /// (device, inode) of the file the pool's connections have open.
    identity: Option<(u64, u64)>,
}

/// Whether any process has one of `paths` open (scans `/proc/*/fd`; run once per replaced
/// DB file, never per request). Unknown (no /proc) counts as held.
fn held_by_any_process(paths: &[&Path]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let wanted: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
        .collect();
    for proc_dir in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue; // not a process, or gone
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.contains(&target)
            {
                return true;
            }
        }
    }
    false
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

pub type ReadConn = PooledConnection<SqliteConnectionManager>;

impl ReadPool {
    /// Opens the pool and checks the DB is a musicfs DB of a schema this build reads. Costs one
    /// connection open and two pragma reads: nothing here grows with the library.
    pub fn open(path: &Path, options: &PoolOptions) -> Result<ReadPool> {
        if !path.is_file() {
            return Err(DbError::Missing {
                path: path.to_owned(),
            });
        }
        let identity = identity(path);
        let mode = Self::probe(path)?;
        let pool = Self::build(path, options, mode)?;
        let this = ReadPool {
            current: Arc::new(RwLock::new(Current {
                pool: Some(pool),
                mode,
                identity,
            })),
            path: path.to_owned(),
            options: options.clone(),
        };
        Self::check(path, &*this.get()?)?;
        Ok(this)
    }

    /// The most capable mode the file allows: read-write access, else read-only WAL reads,
    /// else the main file alone. One connection open and one page read per mode tried.
    fn probe(path: &Path) -> Result<OpenMode> {
        let mut last = None;
        for mode in [OpenMode::Shared, OpenMode::ReadOnly, OpenMode::Immutable] {
            let attempt =
                rusqlite::Connection::open_with_flags(Self::target(path, mode), Self::flags(mode))
                    // Parses the schema (pages past the header): a damaged one fails here, at
                    // once, not later as a pool that cannot make connections.
                    .and_then(|c| {
                        c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                            r.get::<_, i64>(0)
                        })
                    });
            match attempt {
                Ok(_) => return Ok(mode),
                // Fail at once, whatever the mode: no pool of connections can help.
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                    ) =>
                {
                    return Err(DbError::Damaged {
                        path: path.to_owned(),
                        cause: e.to_string(),
                    });
                }
                // Not a permission problem (corrupt, not a DB): the checks report it clearly.
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if !matches!(
                        e.code,
                        rusqlite::ErrorCode::ReadOnly
                            | rusqlite::ErrorCode::CannotOpen
                            | rusqlite::ErrorCode::PermissionDenied
                    ) =>
                {
                    return Ok(mode);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(DbError::Open {
            path: path.to_owned(),
            source: last.expect("three attempts"),
        })
    }

    fn flags(mode: OpenMode) -> OpenFlags {
        let access = match mode {
            OpenMode::Shared => OpenFlags::SQLITE_OPEN_READ_WRITE,
            _ => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    }

    /// The URI to open: `immutable=1` makes SQLite ignore `-wal`/`-shm` and take no locks.
    fn target(path: &Path, mode: OpenMode) -> String {
        use std::fmt::Write;
        let mut uri = String::from("file:");
        for &b in path.as_os_str().as_encoded_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                    uri.push(b as char)
                }
                _ => {
                    let _ = write!(uri, "%{b:02X}");
                }
            }
        }
        if mode == OpenMode::Immutable {
            uri.push_str("?immutable=1");
        }
        uri
    }

    /// How the current connections open the file.
    pub fn mode(&self) -> OpenMode {
        self.current.read().unwrap_or_else(|e| e.into_inner()).mode
    }

    /// Whether the file at the pool's path is another file than the one it has open; if so,
    /// opens and checks the new one and serves from it from now on. Returns whether it
    /// swapped. A missing path (mid-rename) or a new file that fails its checks keeps the
    /// old pool serving, and the check is retried on the next call.
    ///
    /// The caller must hold no connection of this pool. The old connections all close before
    /// the new file is opened: the last one removes the old file's `-wal`/`-shm`, which would
    /// otherwise be read as the new file's. If another process keeps them alive, the new file
    /// is read alone ([`OpenMode::Immutable`]) rather than through a stale WAL.
    pub fn replaced(&self) -> bool {
        let now = identity(&self.path);
        now.is_some()
            && now
                != self
                    .current
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .identity
    }

    /// See [`ReadPool::replaced`]; returns the mode the new file is read in, `None` if the
    /// file was not replaced.
    pub fn reopen_if_replaced(&self) -> Result<Option<OpenMode>> {
        if !self.replaced() {
            return Ok(None);
        }
        // Check the new file first, alone (immutable: no WAL, no locks), so a bad replacement
        // (not a musicfs DB, newer schema) leaves the old one serving.
        let now = identity(&self.path);
        {
            let conn = rusqlite::Connection::open_with_flags(
                Self::target(&self.path, OpenMode::Immutable),
                Self::flags(OpenMode::Immutable),
            )
            .map_err(|source| DbError::Open {
                path: self.path.clone(),
                source,
            })?;
            Self::check(&self.path, &conn)?;
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.pool.take() {
            // Requests holding a connection finish (new ones wait on the lock); bounded, so a
            // stuck request cannot hold the swap forever.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while old.state().idle_connections < old.state().connections
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        // SQLite does not checkpoint into a moved file, so the old file's WAL outlives it, and
        // any opener would apply it to the new file. Nobody can open the old file again; once
        // no process holds its -wal/-shm, they are garbage: remove them, as SQLite would have.
        let sidecar = |suffix: &str| {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            PathBuf::from(p)
        };
        let (wal, shm) = (sidecar("-wal"), sidecar("-shm"));
        if wal.exists() && !held_by_any_process(&[&wal, &shm]) {
            tracing::info!(wal = %wal.display(), "removing the replaced DB file's WAL");
            let _ = std::fs::remove_file(&wal);
            let _ = std::fs::remove_file(&shm);
        }
        let stale_wal = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        let mode = if stale_wal {
            OpenMode::Immutable
        } else {
            Self::probe(&self.path).unwrap_or(OpenMode::Immutable)
        };
        // Past the drop there is no old file to go back to: on error, requests fail cleanly
        // (EIO) until the next poll swaps successfully.
        current.identity = None;
        let pool = Self::build(&self.path, &self.options, mode)?;
        *current = Current {
            pool: Some(pool),
            mode,
            identity: now,
        };
        Ok(Some(mode))
    }

    fn build(
        path: &Path,
        options: &PoolOptions,
        mode: OpenMode,
    ) -> Result<r2d2::Pool<SqliteConnectionManager>> {
        let (mmap, cache) = (options.mmap_size, options.cache_kib);
        let counter = options.vm_kilosteps.clone();
        let manager = SqliteConnectionManager::file(Self::target(path, mode))
            .with_flags(Self::flags(mode))
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
        r2d2::Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(1))
            // The default runs a query on every checkout: +1.5–3.5 µs per request.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|source| DbError::Pool {
                path: path.to_owned(),
                source,
            })
    }

    /// A musicfs DB of the schema this build reads.
    fn check(path: &Path, conn: &rusqlite::Connection) -> Result<()> {
        let (app_id, version) = header(conn).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        check_header(path, conn, app_id, version)?;
        if version < SCHEMA_VERSION {
            return Err(DbError::Corrupt(format!(
                "{}: schema version {version}, expected {SCHEMA_VERSION}: run musicfs-scan on it \
                 to migrate",
                path.display()
            )));
        }
        // O(1) probes of the tree's anchor rows: a DB whose schema or first pages are damaged
        // is refused here, not discovered by every request. (Damage deeper in a b-tree shows
        // on the requests that reach it; `musicfs check` reads everything.)
        let probe = conn.query_row(
            "SELECT (SELECT count(*) FROM entries WHERE id = 1) + \
                    (SELECT count(*) FROM dirs WHERE id = 1) + \
                    (SELECT count(*) FROM totals WHERE id = 1)",
            [],
            |r| r.get::<_, i64>(0),
        );
        match probe {
            Ok(3) => Ok(()),
            Ok(_) => Err(DbError::Damaged {
                path: path.to_owned(),
                cause: "the root of the tree is missing".into(),
            }),
            Err(err) => Err(DbError::Damaged {
                path: path.to_owned(),
                cause: err.to_string(),
            }),
        }
    }

    pub fn get(&self) -> Result<ReadConn> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let Some(pool) = current.pool.as_ref() else {
            return Err(DbError::Corrupt(format!(
                "{}: the DB file was replaced and the new one cannot be opened yet",
                self.path.display()
            )));
        };
        pool.get().map_err(|source| DbError::Pool {
            path: self.path.clone(),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
