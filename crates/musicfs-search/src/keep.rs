//! Keeping the index equal to the DB, from the scanner's writer thread.
//!
//! The DB is the source of truth. Triggers log every changed file id in `search_queue` in the
//! same transaction as the change; after each committed batch the keeper re-reads those files
//! and rewrites their documents; every [`COMMIT_EVERY`] and at the end of a scan it commits the
//! index, and only then clears the log rows that commit holds. A crash anywhere replays the log
//! next time (deleting and re-adding a document is idempotent). An index that is missing, unreadable, of another schema version, built for
//! another DB, or holding another number of documents than the DB has files is rebuilt from
//! `files`: never from audio.

use std::path::Path;

use musicfs_db::Writer;
use musicfs_db::search_rows::{self, SearchRecord};
use tantivy::{IndexWriter, TantivyDocument, Term};

use crate::SearchError;
use crate::index::{SearchIndex, default_dir, index_error};
use crate::schema::Fields;

/// Settings keys in the DB.
pub const SETTING_DIR: &str = "search_index";
const SETTING_ID: &str = "search_id";
/// Documents read from the DB per query while rebuilding or draining the queue.
const PAGE: u32 = 10_000;
/// Index commits are costly (a segment and an fsync each): at most one per this interval while
/// a scan runs (the DB's batch time), and one at its end. Longer intervals buy little speed
/// and cost memory (docs/benchmarks.md: every batch 92 MiB, 1 s 125 MiB, 5 s 160 MiB).
pub const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct IndexKeeper {
    index: SearchIndex,
    writer: IndexWriter,
    /// Log rows up to this seq are in the writer; up to `committed`, in a committed index.
    applied: i64,
    committed: i64,
    last_commit: std::time::Instant,
}

/// The search document of one file.
pub fn document(f: &Fields, r: &SearchRecord) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_u64(f.file_id, r.file_id as u64);
    for (field, value) in [
        (f.title, &r.title),
        (f.artist, &r.artist),
        (f.album, &r.album),
        (f.albumartist, &r.albumartist),
        (f.genre, &r.genre),
    ] {
        if let Some(v) = value {
            d.add_text(field, v);
            d.add_text(f.any, v);
        }
    }
    d.add_text(f.path, &r.path);
    d.add_text(f.any, &r.path);
    if let Some(y) = r.year {
        d.add_i64(f.year, y);
    }
    d.add_text(f.format, r.ext.to_lowercase());
    if let Some(format) = &r.format
        && !format.eq_ignore_ascii_case(&r.ext)
    {
        d.add_text(f.format, format.to_lowercase());
    }
    d
}

fn db_error(source: musicfs_db::DbError) -> SearchError {
    SearchError::Db(source)
}

impl IndexKeeper {
    /// Opens the index of the DB behind `db` (a committed state, outside a transaction),
    /// rebuilding it if it cannot be trusted; `progress(done, total)` reports a rebuild.
    pub fn open(
        db: &Path,
        writer: &Writer,
        progress: &dyn Fn(u64, u64),
    ) -> Result<IndexKeeper, SearchError> {
        let dir = match writer.setting(SETTING_DIR).map_err(db_error)? {
            Some(dir) => dir.into(),
            // Absolute: the setting must mean the same from any working directory.
            None => std::path::absolute(default_dir(db)).map_err(|source| SearchError::Io {
                dir: default_dir(db),
                source,
            })?,
        };
        let db_id = match writer.setting(SETTING_ID).map_err(db_error)? {
            Some(id) => id,
            None => {
                let id = new_id();
                writer.set_setting(SETTING_ID, &id).map_err(db_error)?;
                id
            }
        };
        if let Some(index) = SearchIndex::open_trusted(&dir, &db_id)? {
            let mut keeper = IndexKeeper::new(index)?;
            keeper.apply_queue(writer)?;
            keeper.commit(writer)?;
            let files = musicfs_db::queries::totals(writer.conn())
                .map_err(db_error)?
                .0;
            if keeper.index.num_docs()? == files as u64 {
                return Ok(keeper);
            }
            tracing::warn!(
                "{}: search index out of step with the DB; rebuilding",
                dir.display()
            );
            drop(keeper);
        }
        let index = SearchIndex::create_beside(&dir)?;
        let mut keeper = IndexKeeper::with_heap(index, crate::index::REBUILD_HEAP)?;
        let replay_after = keeper.rebuild(writer, progress)?;
        let IndexKeeper {
            index, writer: big, ..
        } = keeper;
        // Back to the scan's small heap (one writer at a time: tantivy locks the index).
        drop(big);
        index.finish_build(&db_id)?;
        let index = index.install(&dir)?;
        let mut keeper = IndexKeeper::new(index)?;
        writer
            .set_setting(SETTING_DIR, &dir.to_string_lossy())
            .map_err(db_error)?;
        // Files changed while the rebuild read the DB (a user's sqlite3, say) are logged after
        // `replay_after`: apply them now, so no edit made during a rebuild is lost.
        keeper.applied = replay_after;
        keeper.committed = replay_after;
        keeper.apply_queue(writer)?;
        keeper.commit(writer)?;
        Ok(keeper)
    }

    fn new(index: SearchIndex) -> Result<IndexKeeper, SearchError> {
        IndexKeeper::with_heap(index, crate::index::WRITER_HEAP)
    }

    fn with_heap(index: SearchIndex, heap: usize) -> Result<IndexKeeper, SearchError> {
        Ok(IndexKeeper {
            writer: index.writer_with_heap(heap)?,
            index,
            applied: 0,
            committed: 0,
            last_commit: std::time::Instant::now(),
        })
    }

    /// Every file of the DB into the (empty) index, committed. Returns the newest log row it
    /// covers (rows logged after it started must still be applied); clears nothing: the new
    /// index is not in place yet.
    fn rebuild(
        &mut self,
        writer: &Writer,
        progress: &dyn Fn(u64, u64),
    ) -> Result<i64, SearchError> {
        let covered = search_rows::search_queue_newest(writer.conn()).map_err(db_error)?;
        let total = musicfs_db::queries::totals(writer.conn())
            .map_err(db_error)?
            .0 as u64;
        let fields = *self.index.fields();
        let mut after = 0;
        let mut done = 0;
        progress(0, total);
        loop {
            let page =
                search_rows::search_records_page(writer.conn(), after, PAGE).map_err(db_error)?;
            let Some(last) = page.last() else { break };
            after = last.file_id;
            for r in &page {
                self.writer
                    .add_document(document(&fields, r))
                    .map_err(index_error(self.index.dir()))?;
            }
            done += page.len() as u64;
            progress(done, total);
        }
        self.writer
            .commit()
            .map_err(index_error(self.index.dir()))?;
        Ok(covered)
    }

    /// Applies the logged changes (committed DB state) to the index writer, and commits the
    /// index if the last commit is [`COMMIT_EVERY`] old. Returns how many documents were
    /// rewritten or deleted. Call after each DB commit, outside a transaction.
    pub fn apply_queue(&mut self, writer: &Writer) -> Result<usize, SearchError> {
        let fields = *self.index.fields();
        let mut applied = 0;
        loop {
            let rows = search_rows::search_queue_page(writer.conn(), self.applied, PAGE)
                .map_err(db_error)?;
            let Some(&(last, _)) = rows.last() else { break };
            for (_, id) in rows {
                self.writer
                    .delete_term(Term::from_field_u64(fields.file_id, id as u64));
                if let Some(r) = search_rows::search_record(writer.conn(), id).map_err(db_error)? {
                    self.writer
                        .add_document(document(&fields, &r))
                        .map_err(index_error(self.index.dir()))?;
                }
                applied += 1;
            }
            self.applied = last;
        }
        if self.applied > self.committed && self.last_commit.elapsed() >= COMMIT_EVERY {
            self.commit(writer)?;
        }
        Ok(applied)
    }

    /// Commits what was applied, then clears the log rows the commit holds. Call at the end
    /// of a scan (and it is called every [`COMMIT_EVERY`] by `apply_queue`).
    pub fn commit(&mut self, writer: &Writer) -> Result<(), SearchError> {
        if self.applied > self.committed {
            self.writer
                .commit()
                .map_err(index_error(self.index.dir()))?;
            search_rows::search_queue_clear(writer.conn(), self.applied).map_err(db_error)?;
            self.committed = self.applied;
        }
        self.last_commit = std::time::Instant::now();
        Ok(())
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }
}

/// An id for "this DB" (stamped into its index): time and process, hashed.
fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:032x}", nanos ^ ((std::process::id() as u128) << 64))
}
