//! Every hot query must be an index search: a full scan of `entries` or `files` at 10M rows
//! is seconds, not microseconds.

use musicfs_db::{Writer, queries};

fn plan(conn: &rusqlite::Connection, sql: &str, nparams: usize) -> Vec<String> {
    let params: Vec<i64> = vec![1; nparams];
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    stmt.query_map(rusqlite::params_from_iter(params), |r| {
        r.get::<_, String>(3)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn assert_indexed(conn: &rusqlite::Connection, name: &str, sql: &str, nparams: usize) {
    let lines = plan(conn, sql, nparams);
    for line in &lines {
        assert!(
            (!line.starts_with("SCAN") || line == "SCAN CONSTANT ROW")
                && !line.contains("TEMP B-TREE"),
            "{name}: `{line}` in plan {lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("SEARCH")),
        "{name}: no index search in {lines:#?}"
    );
}

#[test]
fn hot_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(&dir.path().join("m.db")).unwrap();
    let c = writer.conn();
    assert_indexed(c, "lookup(dir, name)", queries::LOOKUP, 2);
    assert_indexed(c, "getattr(inode)", queries::ENTRY, 1);
    assert_indexed(c, "readdir page", queries::READDIR_PAGE, 3);
    assert_indexed(c, "readdir names", queries::READDIR_NAMES, 3);
    let names_plan = plan(c, queries::READDIR_NAMES, 3).join(" ");
    assert!(
        names_plan.contains("COVERING INDEX entries_by_parent"),
        "{names_plan}"
    );
    assert_indexed(c, "folder by path", queries::FOLDER_ID, 2);
    assert_indexed(c, "file by path", queries::FILE_IN_FOLDER, 2);
    assert_indexed(c, "folder files", queries::FOLDER_FILES, 1);
    assert_indexed(c, "child folders", queries::CHILD_FOLDERS, 1);
    assert_indexed(c, "backing path", queries::BACKING_PATH, 1);
    assert_indexed(c, "skipped of a folder", queries::SKIPPED_NAMES, 1);
    assert_indexed(c, "files by identity", queries::FILES_BY_IDENTITY, 2);
    assert_indexed(c, "origin has files", queries::ORIGIN_HAS_FILES, 1);
    for (name, sql) in [
        ("next file entry", queries::NEXT_FILE_ENTRY),
        ("previous file entry", queries::PREVIOUS_FILE_ENTRY),
    ] {
        assert_indexed(c, name, sql, 1);
        let lines = plan(c, sql, 1).join(" | ");
        assert!(
            lines.contains("sqlite_autoindex_entries_1"),
            "{name}: {lines}"
        );
    }
    assert_indexed(
        c,
        "entries of a file",
        "SELECT id FROM entries WHERE file_id = ?1",
        1,
    );
    assert_indexed(
        c,
        "case-insensitive find",
        "SELECT id FROM entries WHERE parent_id = ?1 AND name_fold = ?2",
        2,
    );
    use musicfs_db::search_rows;
    assert_indexed(c, "search record", search_rows::SEARCH_RECORD, 1);
    assert_indexed(
        c,
        "search records page",
        search_rows::SEARCH_RECORDS_PAGE,
        2,
    );
    assert_indexed(c, "search queue page", search_rows::SEARCH_QUEUE_PAGE, 2);
    // The recursive walk up the parents: every step a primary-key read (its plan also scans
    // the CTE's own queue, which is the level list, not a table).
    let vpath = plan(c, search_rows::FILE_VPATH, 1).join(" | ");
    assert!(
        !vpath.contains("SCAN e") && !vpath.contains("SCAN entries"),
        "{vpath}"
    );
    assert!(
        vpath.contains("SEARCH e USING INTEGER PRIMARY KEY"),
        "{vpath}"
    );
}

/// The content cache's queries: per-file reads are key searches; eviction's "least recently
/// read first" and "unused chunks" walk their own index from its start, under a LIMIT.
#[test]
fn cache_queries_use_indexes() {
    use musicfs_db::cache_index as q;
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(&dir.path().join("m.db")).unwrap();
    let c = writer.conn();
    assert_indexed(c, "cached file", q::CACHED_FILE, 1);
    assert_indexed(c, "file chunks", q::FILE_CHUNKS, 2);
    assert_indexed(c, "file version", q::FILE_VERSION, 1);
    assert_indexed(c, "chunk refs", q::CHUNK_REFS, 1);
    for (name, sql, index) in [
        ("least recent", q::LEAST_RECENT, "cached_files_by_access"),
        ("unused chunks", q::UNUSED_CHUNKS, "chunk_refs_unused"),
    ] {
        let lines = plan(c, sql, 1).join(" | ");
        assert!(
            lines.contains(&format!("INDEX {index}")) && !lines.contains("TEMP B-TREE"),
            "{name}: {lines}"
        );
    }
    // A chunk's users, for eviction and `sqlite3` questions ("what is shared").
    assert_indexed(
        c,
        "chunks by hash",
        "SELECT file_id FROM chunks WHERE hash = ?1",
        1,
    );
}

#[test]
fn the_guard_catches_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(&dir.path().join("m.db")).unwrap();
    let lines = plan(writer.conn(), "SELECT id FROM files WHERE title = ?1", 1);
    assert!(lines.iter().any(|l| l.starts_with("SCAN")), "{lines:?}");
}
