//! Whole-DB consistency checks: the invariants the writer keeps at every commit. O(N): for
//! tests, `musicfs check`, and after a crash, never on a hot path.

use rusqlite::Connection;

use crate::Result;
use crate::error::QueryContext;

/// (description, query returning one row per violation).
const INVARIANTS: &[(&str, &str)] = &[
    (
        "directory child count differs from its entries",
        "SELECT d.id FROM dirs d WHERE d.nentries != \
         (SELECT count(*) FROM entries e WHERE e.parent_id = d.id)",
    ),
    (
        "directory entry without a dirs row",
        "SELECT e.id FROM entries e WHERE e.file_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM dirs d WHERE d.id = e.id)",
    ),
    (
        "dirs row for a file entry or no entry",
        "SELECT d.id FROM dirs d LEFT JOIN entries e ON e.id = d.id \
         WHERE e.id IS NULL OR e.file_id IS NOT NULL",
    ),
    (
        "entry whose parent is not a directory",
        "SELECT e.id FROM entries e JOIN entries p ON p.id = e.parent_id \
         WHERE p.file_id IS NOT NULL",
    ),
    (
        "name counter of a directory that does not exist",
        "SELECT n.parent_id FROM name_counters n \
         WHERE NOT EXISTS (SELECT 1 FROM dirs d WHERE d.id = n.parent_id)",
    ),
    (
        "empty directory left behind (not the root)",
        "SELECT id FROM dirs WHERE nentries = 0 AND id != 1",
    ),
    (
        "totals differ from the files table",
        "SELECT 1 FROM totals WHERE files != (SELECT count(*) FROM files) \
         OR bytes != (SELECT coalesce(sum(size), 0) FROM files)",
    ),
    (
        "content cache: a stored chunk's use count differs from its chunk rows",
        "SELECT r.hash FROM chunk_refs r WHERE r.refs != \
         (SELECT count(*) FROM chunks c WHERE c.hash = r.hash)",
    ),
    (
        "content cache: a chunk row whose chunk is not stored",
        "SELECT c.file_id FROM chunks c WHERE NOT EXISTS \
         (SELECT 1 FROM chunk_refs r WHERE r.hash = c.hash)",
    ),
    (
        "content cache: totals differ from the stored chunks",
        "SELECT 1 FROM cache_totals WHERE bytes != (SELECT coalesce(sum(len), 0) FROM chunk_refs) \
         OR chunks != (SELECT count(*) FROM chunk_refs)",
    ),
    (
        "content cache: a cached file claims more bytes than its chunks hold",
        "SELECT c.file_id FROM cached_files c WHERE c.cached > \
         (SELECT coalesce(sum(len), 0) FROM chunks k WHERE k.file_id = c.file_id)",
    ),
    (
        "file without exactly one entry per view",
        "SELECT f.id FROM files f WHERE \
         (SELECT count(*) FROM entries e WHERE e.file_id = f.id) != \
         max(1, (SELECT count(*) FROM views))",
    ),
];

/// Every violated invariant, as "description: N rows (first ids ...)". Empty when consistent.
pub fn check_consistency(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .ctx("integrity_check")?;
    if integrity != "ok" {
        problems.push(format!("integrity_check: {integrity}"));
    }
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .ctx("foreign_key_check")?;
    if fk > 0 {
        problems.push(format!("foreign_key_check: {fk} violations"));
    }
    for (what, sql) in INVARIANTS {
        let mut stmt = conn.prepare(sql).ctx("check_consistency")?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .ctx("check_consistency")?
            .collect::<rusqlite::Result<_>>()
            .ctx("check_consistency")?;
        if !ids.is_empty() {
            let first: Vec<String> = ids.iter().take(5).map(i64::to_string).collect();
            problems.push(format!(
                "{what}: {} rows (ids {})",
                ids.len(),
                first.join(", ")
            ));
        }
    }
    Ok(problems)
}
