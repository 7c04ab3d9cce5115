//! Code shared by the `musicfs` and `musicfs-scan` binaries. Binary-facing: errors are
//! `anyhow` here, typed in every library crate below.

pub mod cache_cli;
pub mod config;
pub mod scan_cli;

/// The ids of the files matching `query` (docs/search.md), best first, from the index the
/// scanner keeps for the DB at `db`.
pub fn search_ids(
    conn: &rusqlite::Connection,
    db: &std::path::Path,
    query: &str,
    limit: usize,
) -> anyhow::Result<Vec<i64>> {
    let dir = musicfs_db::queries::setting(conn, musicfs_search::SETTING_DIR)?
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| musicfs_search::default_dir(db));
    let (index, reader) = musicfs_search::SearchIndex::open_with_reader(&dir)?;
    Ok(index.search(&reader, query, limit)?)
}
