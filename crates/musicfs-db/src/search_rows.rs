//! What the search index reads from the DB: one document's fields per file, the outbox
//! (`search_queue`), and a hit's virtual path. Every query is a primary-key or index range.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::QueryContext;
use crate::{PathBytes, Result};

/// The searchable fields of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRecord {
    pub file_id: i64,
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub albumartist: Option<String>,
    pub genre: Option<String>,
    pub year: Option<i64>,
    pub ext: String,
    pub format: Option<String>,
    /// Folder path and file name inside the origin, '/'-joined (lossy UTF-8).
    pub path: String,
}

pub const SEARCH_RECORD: &str = concat!(
    "SELECT f.id, f.title, f.artist, f.album, f.albumartist, f.genre, f.year, ",
    "f.ext, f.format, d.path, f.name FROM files f JOIN folders d ON d.id = f.folder_id ",
    "WHERE f.id = ?1"
);
pub const SEARCH_RECORDS_PAGE: &str = concat!(
    "SELECT f.id, f.title, f.artist, f.album, f.albumartist, f.genre, f.year, ",
    "f.ext, f.format, d.path, f.name FROM files f JOIN folders d ON d.id = f.folder_id ",
    "WHERE f.id > ?1 ORDER BY f.id LIMIT ?2"
);
pub const SEARCH_QUEUE_PAGE: &str =
    "SELECT seq, file_id FROM search_queue WHERE seq > ?1 ORDER BY seq LIMIT ?2";
/// The virtual path of a file's first entry: up the parent chain, one primary-key read per
/// level (the `entry_paths` view walks the whole tree and is for humans).
pub const FILE_VPATH: &str = "WITH RECURSIVE up(id, parent_id, name, depth) AS ( \
       SELECT id, parent_id, name, 0 FROM entries \
       WHERE id = (SELECT min(id) FROM entries WHERE file_id = ?1) \
     UNION ALL \
       SELECT e.id, e.parent_id, e.name, up.depth + 1 FROM entries e \
       JOIN up ON e.id = up.parent_id WHERE up.parent_id <> 1 \
     ) SELECT group_concat(name, '/') FROM (SELECT name FROM up ORDER BY depth DESC)";

fn record(r: &Row<'_>) -> rusqlite::Result<SearchRecord> {
    let dir = r.get::<_, PathBytes>(9)?.into_vec();
    let name = r.get::<_, PathBytes>(10)?.into_vec();
    let mut path = String::from_utf8_lossy(&dir).into_owned();
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(&String::from_utf8_lossy(&name));
    Ok(SearchRecord {
        file_id: r.get(0)?,
        title: r.get(1)?,
        artist: r.get(2)?,
        album: r.get(3)?,
        albumartist: r.get(4)?,
        genre: r.get(5)?,
        year: r.get(6)?,
        ext: r.get(7)?,
        format: r.get(8)?,
        path,
    })
}

/// The document of `file_id`; `None` if the file is gone.
pub fn search_record(conn: &Connection, file_id: i64) -> Result<Option<SearchRecord>> {
    conn.prepare_cached(SEARCH_RECORD)
        .ctx("search_record")?
        .query_row(params![file_id], record)
        .optional()
        .ctx("search_record")
}

/// Up to `limit` documents with file id > `after`, in id order (rebuilding the index).
pub fn search_records_page(conn: &Connection, after: i64, limit: u32) -> Result<Vec<SearchRecord>> {
    let mut stmt = conn
        .prepare_cached(SEARCH_RECORDS_PAGE)
        .ctx("search_records_page")?;
    let rows = stmt
        .query_map(params![after, limit], record)
        .ctx("search_records_page")?;
    rows.collect::<rusqlite::Result<_>>()
        .ctx("search_records_page")
}

/// Up to `limit` logged (seq, file id) with seq > `after`, in order.
pub fn search_queue_page(conn: &Connection, after: i64, limit: u32) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn
        .prepare_cached(SEARCH_QUEUE_PAGE)
        .ctx("search_queue_page")?;
    let rows = stmt
        .query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx("search_queue_page")?;
    rows.collect::<rusqlite::Result<_>>()
        .ctx("search_queue_page")
}

/// The newest seq in the search log (0 when empty).
pub fn search_queue_newest(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM search_queue")
        .ctx("search_queue_newest")?
        .query_row([], |r| r.get(0))
        .ctx("search_queue_newest")
}

/// Forgets log rows with seq ≤ `upto` (applied and committed to the index).
pub fn search_queue_clear(conn: &Connection, upto: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM search_queue WHERE seq <= ?1")
        .ctx("search_queue_clear")?
        .execute(params![upto])
        .ctx("search_queue_clear")?;
    Ok(())
}

/// The virtual path of the file's first entry, if it has one.
pub fn file_vpath(conn: &Connection, file_id: i64) -> Result<Option<String>> {
    conn.prepare_cached(FILE_VPATH)
        .ctx("file_vpath")?
        .query_row(params![file_id], |r| r.get(0))
        .ctx("file_vpath")
}
