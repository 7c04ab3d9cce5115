//! The content cache's index (schema version 10): which file is made of which chunks, which
//! version of it they are, and what may be evicted. Reads take any connection (the mount's
//! read pool: never waits on a writer); changes go through [`CacheIndex`], one short
//! transaction each, so the scanner and the mount share the DB without "database is locked".
//! The chunk files themselves are the cache crate's.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::QueryContext;
use crate::{PathBytes, Result};

pub const CACHED_FILE: &str =
    "SELECT size, mtime_ns, etag, cached FROM cached_files WHERE file_id = ?1";
pub const FILE_CHUNKS: &str =
    "SELECT seq, offset, len, hash FROM chunks WHERE file_id = ?1 AND seq >= ?2 ORDER BY seq";
pub const FILE_VERSION: &str = "SELECT size, mtime_ns, etag FROM files WHERE id = ?1";
pub const LEAST_RECENT: &str =
    "SELECT file_id FROM cached_files ORDER BY last_access, file_id LIMIT ?1";
pub const UNUSED_CHUNKS: &str = "SELECT hash, len FROM chunk_refs WHERE refs = 0 LIMIT ?1";
pub const CHUNK_REFS: &str = "SELECT refs FROM chunk_refs WHERE hash = ?1";

/// A version of a file on its origin: what the scanner saw. Cached bytes serve a file only
/// while the DB's version is the one they were fetched as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<String>,
}

/// One chunk of a file: `len` bytes at `offset`, stored under `hash` (xxh3-64 as i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRow {
    pub seq: u32,
    pub offset: u64,
    pub len: u32,
    pub hash: i64,
}

/// What the cache holds of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    pub version: FileVersion,
    /// Bytes from the start held in chunks.
    pub cached: u64,
}

/// `cache_totals`, and counts for `musicfs cache stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheTotals {
    /// Bytes of chunk files (each stored chunk once).
    pub bytes: u64,
    pub chunks: u64,
    pub hits: u64,
    pub misses: u64,
    pub repaired: u64,
    pub evicted: u64,
}

/// Counters a mount adds to `cache_totals` now and then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
    pub repaired: u64,
    pub evicted: u64,
}

impl CacheCounters {
    pub fn is_zero(&self) -> bool {
        *self == CacheCounters::default()
    }
}

/// The DB's version of `file_id` (None: no such file any more).
pub fn file_version(conn: &Connection, file_id: i64) -> Result<Option<FileVersion>> {
    conn.prepare_cached(FILE_VERSION)
        .ctx("file_version")?
        .query_row(params![file_id], |r| {
            Ok(FileVersion {
                size: r.get::<_, i64>(0)? as u64,
                mtime_ns: r.get(1)?,
                etag: r.get(2)?,
            })
        })
        .optional()
        .ctx("file_version")
}

pub fn cached_file(conn: &Connection, file_id: i64) -> Result<Option<CachedFile>> {
    conn.prepare_cached(CACHED_FILE)
        .ctx("cached_file")?
        .query_row(params![file_id], |r| {
            Ok(CachedFile {
                version: FileVersion {
                    size: r.get::<_, i64>(0)? as u64,
                    mtime_ns: r.get(1)?,
                    etag: r.get(2)?,
                },
                cached: r.get::<_, i64>(3)? as u64,
            })
        })
        .optional()
        .ctx("cached_file")
}

/// The chunks of `file_id` from `from_seq` on, in order. A file's list is bounded by its size
/// (a 2 GB file: ~32K rows of 24 bytes).
pub fn file_chunks(conn: &Connection, file_id: i64, from_seq: u32) -> Result<Vec<ChunkRow>> {
    let mut stmt = conn.prepare_cached(FILE_CHUNKS).ctx("file_chunks")?;
    let rows = stmt
        .query_map(params![file_id, from_seq], |r| {
            Ok(ChunkRow {
                seq: r.get(0)?,
                offset: r.get::<_, i64>(1)? as u64,
                len: r.get(2)?,
                hash: r.get(3)?,
            })
        })
        .ctx("file_chunks")?;
    rows.collect::<rusqlite::Result<_>>().ctx("file_chunks")
}

pub fn cache_totals(conn: &Connection) -> Result<CacheTotals> {
    conn.prepare_cached(
        "SELECT bytes, chunks, hits, misses, repaired, evicted FROM cache_totals WHERE id = 1",
    )
    .ctx("cache_totals")?
    .query_row([], |r| {
        Ok(CacheTotals {
            bytes: r.get::<_, i64>(0)? as u64,
            chunks: r.get::<_, i64>(1)? as u64,
            hits: r.get::<_, i64>(2)? as u64,
            misses: r.get::<_, i64>(3)? as u64,
            repaired: r.get::<_, i64>(4)? as u64,
            evicted: r.get::<_, i64>(5)? as u64,
        })
    })
    .ctx("cache_totals")
}

/// What `musicfs cache stats` shows beyond the totals: files with cached bytes, files held
/// whole, and the bytes the cached files' chunks add up to (over `cache_totals.bytes`: the
/// dedup ratio). Reads every cached file's row: bounded by the cache, not the library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub files: u64,
    pub complete: u64,
    pub logical_bytes: u64,
}

pub fn cache_use(conn: &Connection) -> Result<CacheUse> {
    let (files, complete): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(cached = size), 0) FROM cached_files",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx("cache_use")?;
    let logical: i64 = conn
        .query_row(
            "SELECT coalesce(sum(len * refs), 0) FROM chunk_refs",
            [],
            |r| r.get(0),
        )
        .ctx("cache_use")?;
    Ok(CacheUse {
        files: files as u64,
        complete: complete as u64,
        logical_bytes: logical as u64,
    })
}

/// The one writer of the cache index in a process, on its own connection: each change is one
/// short IMMEDIATE transaction (milliseconds), and the 10 s busy timeout waits out a scanner's
/// batch rather than failing.
pub struct CacheIndex {
    conn: Connection,
}

impl CacheIndex {
    pub fn open(path: &Path) -> Result<CacheIndex> {
        Ok(CacheIndex {
            conn: crate::schema::open_writer(path)?,
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Records `chunks` (in order, the first at `chunks[0].seq`) of `file_id` as `version`,
    /// and that the first `cached_to` bytes are held. Chunks of another version are dropped
    /// first (their stored chunks stay while another file uses them). Returns false, changing
    /// nothing, when the file is gone, the DB knows another version by now, or the chunks do
    /// not continue what is held (a gap would make `cached` lie).
    pub fn add_chunks(
        &mut self,
        file_id: i64,
        version: &FileVersion,
        chunks: &[ChunkRow],
        cached_to: u64,
        now_ns: i64,
    ) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("add_chunks")?;
        if file_version(&tx, file_id)?.as_ref() != Some(version) {
            return Ok(false);
        }
        let held = cached_file(&tx, file_id)?;
        let held_to = match &held {
            Some(h) if h.version == *version => h.cached,
            Some(_) => {
                tx.prepare_cached("DELETE FROM chunks WHERE file_id = ?1")
                    .ctx("add_chunks")?
                    .execute(params![file_id])
                    .ctx("add_chunks")?;
                0
            }
            None => 0,
        };
        let start = chunks.first().map_or(cached_to, |c| c.offset);
        if start > held_to {
            return Ok(false);
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO chunks (file_id, seq, offset, len, hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .ctx("add_chunks")?;
            for c in chunks {
                insert
                    .execute(params![file_id, c.seq, c.offset as i64, c.len, c.hash])
                    .ctx("add_chunks")?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO cached_files (file_id, size, mtime_ns, etag, cached, last_access) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (file_id) DO UPDATE SET \
             size = excluded.size, mtime_ns = excluded.mtime_ns, etag = excluded.etag, \
             cached = max(excluded.cached, CASE WHEN size = excluded.size AND \
             mtime_ns = excluded.mtime_ns AND etag IS excluded.etag THEN cached ELSE 0 END), \
             last_access = max(last_access, excluded.last_access)",
        )
        .ctx("add_chunks")?
        .execute(params![
            file_id,
            version.size as i64,
            version.mtime_ns,
            version.etag,
            cached_to.max(held_to) as i64,
            now_ns
        ])
        .ctx("add_chunks")?;
        tx.commit().ctx("add_chunks")?;
        Ok(true)
    }

    /// The chunk store this DB's cache rows describe (`settings.cache_store`).
    pub fn store_id(&self) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT value FROM settings WHERE key = 'cache_store'")
            .ctx("store_id")?
            .query_row([], |r| r.get(0))
            .optional()
            .ctx("store_id")
    }

    pub fn set_store_id(&self, id: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('cache_store', ?1)",
            )
            .ctx("set_store_id")?
            .execute(params![id])
            .ctx("set_store_id")?;
        Ok(())
    }

    /// Forgets every cached file and stored chunk row, leaving chunk files alone (rows that
    /// describe another store, whose files are not these). Bounded transactions.
    pub fn forget_all(&mut self) -> Result<u64> {
        let mut forgotten = 0;
        loop {
            let ids: Vec<i64> = {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT file_id FROM cached_files LIMIT 512")
                    .ctx("forget_all")?;
                let rows = stmt.query_map([], |r| r.get(0)).ctx("forget_all")?;
                rows.collect::<rusqlite::Result<_>>().ctx("forget_all")?
            };
            if ids.is_empty() {
                break;
            }
            forgotten += ids.len() as u64;
            self.forget_files(&ids)?;
        }
        loop {
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM chunk_refs WHERE hash IN \
                     (SELECT hash FROM chunk_refs WHERE refs = 0 LIMIT 4096)",
                )
                .ctx("forget_all")?
                .execute([])
                .ctx("forget_all")?;
            if n == 0 {
                break;
            }
        }
        Ok(forgotten)
    }

    /// Marks files as read now (eviction takes the least recently read first).
    pub fn touch(&mut self, file_ids: &[i64], now_ns: i64) -> Result<()> {
        let tx = self.conn.transaction().ctx("touch")?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE cached_files SET last_access = ?2 WHERE file_id = ?1")
                .ctx("touch")?;
            for id in file_ids {
                stmt.execute(params![id, now_ns]).ctx("touch")?;
            }
        }
        tx.commit().ctx("touch")
    }

    pub fn add_counters(&mut self, c: CacheCounters) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE cache_totals SET hits = hits + ?1, misses = misses + ?2, \
                 repaired = repaired + ?3, evicted = evicted + ?4 WHERE id = 1",
            )
            .ctx("add_counters")?
            .execute(params![
                c.hits as i64,
                c.misses as i64,
                c.repaired as i64,
                c.evicted as i64
            ])
            .ctx("add_counters")?;
        Ok(())
    }

    pub fn totals(&self) -> Result<CacheTotals> {
        cache_totals(&self.conn)
    }

    /// Up to `limit` cached files, least recently read first.
    pub fn least_recent(&self, limit: u32) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(LEAST_RECENT).ctx("least_recent")?;
        let rows = stmt
            .query_map(params![limit], |r| r.get(0))
            .ctx("least_recent")?;
        rows.collect::<rusqlite::Result<_>>().ctx("least_recent")
    }

    /// Forgets what the cache holds of these files; their chunks no other file uses become
    /// unused ([`CacheIndex::unused_chunks`]).
    pub fn forget_files(&mut self, file_ids: &[i64]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("forget_files")?;
        for id in file_ids {
            tx.prepare_cached("DELETE FROM chunks WHERE file_id = ?1")
                .ctx("forget_files")?
                .execute(params![id])
                .ctx("forget_files")?;
            tx.prepare_cached("DELETE FROM cached_files WHERE file_id = ?1")
                .ctx("forget_files")?
                .execute(params![id])
                .ctx("forget_files")?;
        }
        tx.commit().ctx("forget_files")
    }

    /// Files cached from the origin whose root (path or URL, as stored) is `root`; all cached
    /// files if None. Bounded by the cache, not the library.
    pub fn cached_files_of(&self, root: Option<&[u8]>) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.file_id FROM cached_files c JOIN files f ON f.id = c.file_id \
                 JOIN folders d ON d.id = f.folder_id JOIN origins o ON o.id = d.origin_id \
                 WHERE ?1 IS NULL OR o.root = ?1",
            )
            .ctx("cached_files_of")?;
        let rows = stmt
            .query_map(params![root.map(PathBytes::borrowed)], |r| r.get(0))
            .ctx("cached_files_of")?;
        rows.collect::<rusqlite::Result<_>>().ctx("cached_files_of")
    }

    /// How many file chunks use the stored chunk `hash` (None: not stored).
    pub fn chunk_refs(&self, hash: i64) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(CHUNK_REFS)
            .ctx("chunk_refs")?
            .query_row(params![hash], |r| r.get(0))
            .optional()
            .ctx("chunk_refs")
    }

    /// Up to `limit` stored chunks no file uses: (hash, len). Delete their files, then
    /// [`CacheIndex::drop_unused`].
    pub fn unused_chunks(&self, limit: u32) -> Result<Vec<(i64, u32)>> {
        let mut stmt = self
            .conn
            .prepare_cached(UNUSED_CHUNKS)
            .ctx("unused_chunks")?;
        let rows = stmt
            .query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("unused_chunks")?;
        rows.collect::<rusqlite::Result<_>>().ctx("unused_chunks")
    }

    /// Drops the rows of chunks whose files were deleted, if still unused (a file may have
    /// taken one up again meanwhile: that row stays, and its chunk is fetched again).
    pub fn drop_unused(&mut self, hashes: &[i64]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("drop_unused")?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM chunk_refs WHERE hash = ?1 AND refs = 0")
                .ctx("drop_unused")?;
            for h in hashes {
                stmt.execute(params![h]).ctx("drop_unused")?;
            }
        }
        tx.commit().ctx("drop_unused")
    }
}
