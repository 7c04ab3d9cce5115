//! Every read query, as prepared cached statements. `EXPLAIN QUERY PLAN` tests
//! (tests/query_plans.rs) guard that each one is an index search, never a table scan.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::QueryContext;
use crate::{PathBytes, Result};

/// One entry of the virtual tree with the attributes `getattr` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    /// The FUSE inode.
    pub id: i64,
    /// None only for the root.
    pub parent_id: Option<i64>,
    pub name: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir {
        nentries: i64,
        mtime_ns: i64,
    },
    File {
        file_id: i64,
        size: i64,
        mtime_ns: i64,
    },
}

/// What the scanner compares against the disk: one stored file of one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: i64,
    pub folder_id: i64,
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
    /// The last read failed for a transient reason: read again even if unchanged.
    pub retry: bool,
    /// `files.ino`: NULL for rows older than schema version 7, until listed once.
    pub ino: Option<i64>,
    /// Its album-group values were resolved (`files.grouped`).
    pub grouped: bool,
    /// The S3 ETag when it was read (`files.etag`).
    pub etag: Option<String>,
}

/// A stored file found by its (device, inode): a candidate for "moved here".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileByIdentity {
    pub id: i64,
    pub folder_id: i64,
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
}

macro_rules! entry_select {
    ($where:literal) => {
        concat!(
            "SELECT e.id, e.parent_id, e.name, e.file_id, f.size, f.mtime_ns, d.nentries, d.mtime_ns \
             FROM entries e LEFT JOIN files f ON f.id = e.file_id LEFT JOIN dirs d ON d.id = e.id ",
            $where
        )
    };
}

pub const LOOKUP: &str = entry_select!("WHERE e.parent_id = ?1 AND e.name = ?2");
pub const ENTRY: &str = entry_select!("WHERE e.id = ?1");
pub const READDIR_PAGE: &str =
    entry_select!("WHERE e.parent_id = ?1 AND e.id > ?2 ORDER BY e.id LIMIT ?3");
/// readdir without attributes: answered from the covering index `entries_by_parent`.
pub const READDIR_NAMES: &str = "SELECT id, name, file_id IS NOT NULL FROM entries \
     WHERE parent_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
pub const FOLDER_ID: &str = "SELECT id FROM folders WHERE origin_id = ?1 AND path = ?2";
pub const CHILD_FOLDERS: &str = "SELECT id, path FROM folders WHERE parent_id = ?1";
pub const FOLDER_FILES: &str = "SELECT id, name, size, mtime_ns, scan_retry, ino, folder_id, grouped, \
     etag FROM files WHERE folder_id = ?1";
pub const FILE_IN_FOLDER: &str = "SELECT id, name, size, mtime_ns, scan_retry, ino, folder_id, \
     grouped, etag FROM files \
     WHERE folder_id = ?1 AND name = ?2";
pub const FILES_BY_IDENTITY: &str =
    "SELECT id, folder_id, name, size, mtime_ns FROM files WHERE ino = ?2 AND dev = ?1";
pub const BACKING_PATH: &str = "SELECT o.id, o.root, d.path, f.name, o.kind, f.etag FROM files f \
     JOIN folders d ON d.id = f.folder_id JOIN origins o ON o.id = d.origin_id WHERE f.id = ?1";
pub const SKIPPED_NAMES: &str = "SELECT name FROM skipped WHERE folder_id = ?1";
pub const CHANGES_SINCE: &str =
    "SELECT seq, parent_id, name, entry_id FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2";
pub const CHANGES_RANGE: &str = "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM changes";
/// The file entry after / before `?1` in its directory, in name order (track order, where
/// names start with the track number): (entry id, file id).
pub const NEXT_FILE_ENTRY: &str = "SELECT n.id, n.file_id FROM entries e JOIN entries n \
     ON n.parent_id = e.parent_id AND n.name > e.name WHERE e.id = ?1 AND n.file_id IS NOT NULL \
     ORDER BY n.name LIMIT 1";
pub const PREVIOUS_FILE_ENTRY: &str = "SELECT n.id, n.file_id FROM entries e JOIN entries n \
     ON n.parent_id = e.parent_id AND n.name < e.name WHERE e.id = ?1 AND n.file_id IS NOT NULL \
     ORDER BY n.name DESC LIMIT 1";
pub const TOTALS: &str = "SELECT files, bytes FROM totals WHERE id = 1";
pub const ORIGIN_HAS_FILES: &str = "SELECT EXISTS (SELECT 1 FROM folders d \
     JOIN files f ON f.folder_id = d.id WHERE d.origin_id = ?1)";

fn entry_row(r: &Row<'_>) -> rusqlite::Result<EntryRow> {
    let file_id: Option<i64> = r.get(3)?;
    let kind = match file_id {
        Some(file_id) => EntryKind::File {
            file_id,
            size: r.get(4)?,
            mtime_ns: r.get(5)?,
        },
        None => EntryKind::Dir {
            nentries: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            mtime_ns: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
        },
    };
    Ok(EntryRow {
        id: r.get(0)?,
        parent_id: r.get(1)?,
        name: r.get(2)?,
        kind,
    })
}

fn stored_file(r: &Row<'_>) -> rusqlite::Result<StoredFile> {
    Ok(StoredFile {
        id: r.get(0)?,
        name: r.get::<_, PathBytes>(1)?.into_vec(),
        size: r.get(2)?,
        mtime_ns: r.get(3)?,
        retry: r.get(4)?,
        ino: r.get(5)?,
        folder_id: r.get(6)?,
        grouped: r.get(7)?,
        etag: r.get(8)?,
    })
}

/// The entry named `name` in directory `parent`.
pub fn lookup(conn: &Connection, parent: i64, name: &str) -> Result<Option<EntryRow>> {
    let mut stmt = conn.prepare_cached(LOOKUP).ctx("lookup")?;
    stmt.query_row(params![parent, name], entry_row)
        .optional()
        .ctx("lookup")
}

/// The entry with inode `id`.
pub fn entry(conn: &Connection, id: i64) -> Result<Option<EntryRow>> {
    let mut stmt = conn.prepare_cached(ENTRY).ctx("entry")?;
    stmt.query_row(params![id], entry_row)
        .optional()
        .ctx("entry")
}

/// Up to `limit` entries of directory `dir` with inode greater than `after`, in inode order.
/// Inodes only grow, so paging by the last inode seen never loses or repeats an entry that
/// stays in the directory while the scanner writes.
pub fn readdir_page(conn: &Connection, dir: i64, after: i64, limit: u32) -> Result<Vec<EntryRow>> {
    let mut stmt = conn.prepare_cached(READDIR_PAGE).ctx("readdir_page")?;
    let rows = stmt
        .query_map(params![dir, after, limit], entry_row)
        .ctx("readdir_page")?;
    rows.collect::<rusqlite::Result<_>>().ctx("readdir_page")
}

/// Like [`readdir_page`] without attributes: (inode, name, is_file). Reads only the covering
/// index, the cheapest way to list a directory.
pub fn readdir_names(
    conn: &Connection,
    dir: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<(i64, String, bool)>> {
    let mut stmt = conn.prepare_cached(READDIR_NAMES).ctx("readdir_names")?;
    let rows = stmt
        .query_map(params![dir, after, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .ctx("readdir_names")?;
    rows.collect::<rusqlite::Result<_>>().ctx("readdir_names")
}

/// The id of the folder at `path` (relative, '' for the root) of an origin.
pub fn folder_id(conn: &Connection, origin_id: i64, path: &[u8]) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(FOLDER_ID).ctx("folder_id")?;
    stmt.query_row(params![origin_id, PathBytes::borrowed(path)], |r| r.get(0))
        .optional()
        .ctx("folder_id")
}

/// Direct subfolders of a folder: (id, relative path).
pub fn child_folders(conn: &Connection, folder_id: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut stmt = conn.prepare_cached(CHILD_FOLDERS).ctx("child_folders")?;
    let rows = stmt
        .query_map(params![folder_id], |r| {
            Ok((r.get(0)?, r.get::<_, PathBytes>(1)?.into_vec()))
        })
        .ctx("child_folders")?;
    rows.collect::<rusqlite::Result<_>>().ctx("child_folders")
}

/// The stored files directly in one folder (bounded by that folder's size).
pub fn folder_files(conn: &Connection, folder_id: i64) -> Result<Vec<StoredFile>> {
    let mut stmt = conn.prepare_cached(FOLDER_FILES).ctx("folder_files")?;
    let rows = stmt
        .query_map(params![folder_id], stored_file)
        .ctx("folder_files")?;
    rows.collect::<rusqlite::Result<_>>().ctx("folder_files")
}

/// The stored file at `path` relative to an origin root.
pub fn file_by_path(conn: &Connection, origin_id: i64, path: &[u8]) -> Result<Option<StoredFile>> {
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    let Some(folder) = folder_id(conn, origin_id, dir)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(FILE_IN_FOLDER).ctx("file_by_path")?;
    stmt.query_row(params![folder, PathBytes::borrowed(name)], stored_file)
        .optional()
        .ctx("file_by_path")
}

/// Where a file's bytes are: its origin root and its path relative to that root. The mount
/// opens `rel` beneath `root`, so no row (edited or stale) can name a file outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingPath {
    pub origin_id: i64,
    /// Absolute path bytes of the origin root.
    pub root: Vec<u8>,
    /// Path bytes relative to the root (never empty).
    pub rel: Vec<u8>,
    /// `origins.kind`: `local`, `sftp` or `s3` (then `root` is the origin's URL).
    pub kind: String,
    /// The S3 ETag scanned (`files.etag`): reads of the file ask for that version only.
    pub etag: Option<String>,
}

impl BackingPath {
    /// `root/rel`, for messages and for callers that do not need the beneath rule.
    pub fn absolute(&self) -> Vec<u8> {
        [&self.root[..], b"/", &self.rel[..]].concat()
    }
}

/// The backing file of a stored file.
pub fn backing_path(conn: &Connection, file_id: i64) -> Result<Option<BackingPath>> {
    let mut stmt = conn.prepare_cached(BACKING_PATH).ctx("backing_path")?;
    stmt.query_row(params![file_id], |r| {
        let mut rel = r.get::<_, PathBytes>(2)?.into_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&r.get::<_, PathBytes>(3)?.0);
        Ok(BackingPath {
            origin_id: r.get(0)?,
            root: r.get::<_, PathBytes>(1)?.into_vec(),
            rel,
            kind: r.get(4)?,
            etag: r.get(5)?,
        })
    })
    .optional()
    .ctx("backing_path")
}

/// The file entry next to `entry` in its directory in name order (`after`: the next one,
/// else the previous one): (entry id, file id).
pub fn sibling_file(conn: &Connection, entry: i64, after: bool) -> Result<Option<(i64, i64)>> {
    let sql = if after {
        NEXT_FILE_ENTRY
    } else {
        PREVIOUS_FILE_ENTRY
    };
    conn.prepare_cached(sql)
        .ctx("sibling_file")?
        .query_row(params![entry], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ctx("sibling_file")
}

/// Every origin: (id, absolute root path bytes). The table is tiny (one row per music folder).
pub fn origins(conn: &Connection) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, root FROM origins ORDER BY id")
        .ctx("origins")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, PathBytes>(1)?.into_vec()))
        })
        .ctx("origins")?;
    rows.collect::<rusqlite::Result<_>>().ctx("origins")
}

/// Names of a folder's skipped files (see `skipped` in docs/schema.md).
pub fn skipped_names(conn: &Connection, folder_id: i64) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(SKIPPED_NAMES).ctx("skipped_names")?;
    let rows = stmt
        .query_map(params![folder_id], |r| {
            Ok(r.get::<_, PathBytes>(0)?.into_vec())
        })
        .ctx("skipped_names")?;
    rows.collect::<rusqlite::Result<_>>().ctx("skipped_names")
}

/// Every origin: (id, root, kind). The table is tiny (one row per music folder).
pub fn origins_with_kind(conn: &Connection) -> Result<Vec<(i64, Vec<u8>, String)>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, root, kind FROM origins ORDER BY id")
        .ctx("origins_with_kind")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, PathBytes>(1)?.into_vec(), r.get(2)?))
        })
        .ctx("origins_with_kind")?;
    rows.collect::<rusqlite::Result<_>>()
        .ctx("origins_with_kind")
}

/// Files of one origin. Counts through its folders: O(its files), for `musicfs origins`,
/// never on a request path.
pub fn origin_file_count(conn: &Connection, origin_id: i64) -> Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM files f JOIN folders d ON d.id = f.folder_id WHERE d.origin_id = ?1",
    )
    .ctx("origin_file_count")?
    .query_row(params![origin_id], |r| r.get(0))
    .ctx("origin_file_count")
}

/// Whether any file is stored for an origin (the mass-delete guard).
pub fn origin_has_files(conn: &Connection, origin_id: i64) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached(ORIGIN_HAS_FILES)
        .ctx("origin_has_files")?;
    stmt.query_row(params![origin_id], |r| r.get(0))
        .ctx("origin_has_files")
}

/// One change to the virtual tree (see `changes` in docs/schema.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub parent_id: i64,
    pub name: String,
    pub entry_id: i64,
}

/// Up to `limit` changes with seq > `after`, oldest first.
pub fn changes_since(conn: &Connection, after: i64, limit: u32) -> Result<Vec<Change>> {
    let mut stmt = conn.prepare_cached(CHANGES_SINCE).ctx("changes_since")?;
    let rows = stmt
        .query_map(params![after, limit], |r| {
            Ok(Change {
                seq: r.get(0)?,
                parent_id: r.get(1)?,
                name: r.get(2)?,
                entry_id: r.get(3)?,
            })
        })
        .ctx("changes_since")?;
    rows.collect::<rusqlite::Result<_>>().ctx("changes_since")
}

/// (oldest, newest) seq still in the change log; (0, 0) when empty. O(1): rowid ends.
pub fn changes_range(conn: &Connection) -> Result<(i64, i64)> {
    conn.prepare_cached(CHANGES_RANGE)
        .ctx("changes_range")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx("changes_range")
}

/// (files, bytes) in the library.
pub fn totals(conn: &Connection) -> Result<(i64, i64)> {
    conn.prepare_cached(TOTALS)
        .ctx("totals")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx("totals")
}

/// A value of `settings` (read side: the mount and the CLI).
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .ctx("setting")?
        .query_row(params![key], |r| r.get(0))
        .optional()
        .ctx("setting")
}

/// The stored views (layout templates): (name, template), in order.
pub fn views(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, template FROM views ORDER BY id")
        .ctx("views")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx("views")?;
    rows.collect::<rusqlite::Result<_>>().ctx("views")
}

/// The id of the origin rooted at `root` (absolute path bytes), if known.
pub fn origin_id(conn: &Connection, root: &[u8]) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM origins WHERE root = ?1")
        .ctx("origin_id")?
        .query_row(params![PathBytes::borrowed(root)], |r| r.get(0))
        .optional()
        .ctx("origin_id")
}

/// `PRAGMA data_version`: changes when another connection commits (free to poll).
pub fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .ctx("data_version")
}

/// What `musicfs stats` shows. O(N) counts: for a user's command, never a hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub schema_version: i64,
    pub origins: i64,
    pub files: i64,
    pub unreadable: i64,
    pub directories: i64,
    pub entries: i64,
}

pub fn stats(conn: &Connection) -> Result<Stats> {
    let count = |sql: &str| -> Result<i64> { conn.query_row(sql, [], |r| r.get(0)).ctx("stats") };
    Ok(Stats {
        schema_version: count("PRAGMA user_version")?,
        origins: count("SELECT count(*) FROM origins")?,
        files: count("SELECT count(*) FROM files")?,
        unreadable: count("SELECT count(*) FROM files WHERE scan_error IS NOT NULL")?,
        directories: count("SELECT count(*) FROM dirs")?,
        entries: count("SELECT count(*) FROM entries")?,
    })
}

/// Stored files with this (device, inode) (more than one only for hard links).
pub fn files_by_identity(conn: &Connection, dev: i64, ino: i64) -> Result<Vec<FileByIdentity>> {
    let mut stmt = conn
        .prepare_cached(FILES_BY_IDENTITY)
        .ctx("files_by_identity")?;
    let rows = stmt
        .query_map(params![dev, ino], |r| {
            Ok(FileByIdentity {
                id: r.get(0)?,
                folder_id: r.get(1)?,
                name: r.get::<_, PathBytes>(2)?.into_vec(),
                size: r.get(3)?,
                mtime_ns: r.get(4)?,
            })
        })
        .ctx("files_by_identity")?;
    rows.collect::<rusqlite::Result<_>>()
        .ctx("files_by_identity")
}

/// A stored file's tags (to re-place it without reading audio).
pub fn stored_track(conn: &Connection, file_id: i64) -> Result<Option<musicfs_tags::Track>> {
    let sql = format!(
        "SELECT {} FROM files WHERE id = ?1",
        crate::writer::TRACK_COLUMNS
    );
    conn.prepare_cached(&sql)
        .ctx("stored_track")?
        .query_row(params![file_id], |r| crate::writer::track_from_row(r, 0))
        .optional()
        .ctx("stored_track")
}

/// Every stored file of a folder with its tags. Bounded by the folder.
pub fn folder_tracks(conn: &Connection, folder_id: i64) -> Result<Vec<crate::StoredTrack>> {
    let sql = format!(
        "SELECT id, name, ext, {} FROM files WHERE folder_id = ?1",
        crate::writer::TRACK_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql).ctx("folder_tracks")?;
    let rows = stmt
        .query_map(params![folder_id], |r| {
            Ok(crate::StoredTrack {
                id: r.get(0)?,
                name: r.get::<_, PathBytes>(1)?.into_vec(),
                ext: r.get(2)?,
                track: crate::writer::track_from_row(r, 3)?,
            })
        })
        .ctx("folder_tracks")?;
    rows.collect::<rusqlite::Result<_>>().ctx("folder_tracks")
}
