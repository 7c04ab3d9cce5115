//! The index directory: opening it, knowing whether it can be trusted, searching it.

use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::schema::Value;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::SearchError;
use crate::schema::{self, Fields, SEARCH_SCHEMA_VERSION, TOKENIZER};

/// Beside every index: what it was built for. An index whose stamp differs (another schema
/// version, another DB) is rebuilt, never trusted.
const STAMP: &str = "musicfs-search.stamp";
/// Written first into every index directory musicfs creates: only a directory carrying it (or
/// a stamp) is ever deleted or replaced, whatever path the DB's settings name.
const OWNER: &str = "musicfs-search.owner";

/// Whether `dir` is an index directory musicfs made (and may therefore delete or replace).
fn is_ours(dir: &Path) -> bool {
    dir.join(OWNER).is_file() || dir.join(STAMP).is_file()
}

/// The sibling directory a rebuild writes into before it replaces `dir`.
/// Unique per build: a leftover that is not ours (or not ours any more) never blocks a build.
fn building_dir(dir: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut p = dir.as_os_str().to_owned();
    p.push(format!(".building-{}-{nanos}", std::process::id()));
    PathBuf::from(p)
}

/// Siblings of `dir` left by builds that a kill interrupted (or old indexes swapped out).
fn leftover_builds(dir: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Vec::new();
    };
    let mut prefix = name.to_owned();
    prefix.push(".building");
    let prefix = prefix.to_string_lossy().into_owned();
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::fs::read_dir(parent)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes `dir` if it exists and musicfs made it; refuses to touch anything else. The
/// markers go last: a removal cut short by a kill leaves a folder still marked ours, which the
/// next attempt finishes (a marker deleted first would leave it untouchable forever).
fn remove_ours(dir: &Path) -> Result<(), SearchError> {
    let io = |source| SearchError::Io {
        dir: dir.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io(err)),
        Ok(meta) if meta.is_dir() && is_ours(dir) => {}
        Ok(_) => {
            return Err(SearchError::NotOurs {
                dir: dir.to_owned(),
            });
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name == STAMP || name == OWNER {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io)?;
        } else {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    for marker in [STAMP, OWNER] {
        match std::fs::remove_file(dir.join(marker)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(err)),
            _ => {}
        }
    }
    std::fs::remove_dir(dir).map_err(io)
}

/// Heap of the index writer: segments are flushed when it fills. 20 MB keeps the scanner's
/// memory bounded whatever the library size (tantivy's minimum per thread is 15 MB); the
/// first scan of 100K files peaks at ~125 MB RSS with search, 55 MB without.
pub(crate) const WRITER_HEAP: usize = 20_000_000;
/// A rebuild runs before the walk, alone: a bigger heap makes fewer, larger segments
/// (measured at 1M tracks: 13.4 s instead of 17.2 s).
pub(crate) const REBUILD_HEAP: usize = 50_000_000;

pub struct SearchIndex {
    index: Index,
    fields: Fields,
    dir: PathBuf,
}

/// Wraps a tantivy error with the index directory it happened in.
pub(crate) fn index_error(dir: &Path) -> impl Fn(tantivy::TantivyError) -> SearchError + '_ {
    move |source| SearchError::Index {
        dir: dir.to_owned(),
        source,
    }
}

/// Completions offered for the word being typed.
const COMPLETIONS: usize = 16;
/// Terms looked at per segment to find them (a 2-letter prefix can have thousands).
const COMPLETION_SCAN: usize = 20_000;

/// The [`COMPLETIONS`] most frequent terms of `field` that start with `prefix`, across
/// segments.
fn completions(
    searcher: &tantivy::Searcher,
    field: tantivy::schema::Field,
    prefix: &str,
) -> Vec<String> {
    let mut freq: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
    let mut upper = prefix.as_bytes().to_vec();
    upper.push(0xFF); // above every UTF-8 continuation of the prefix
    for segment in searcher.segment_readers() {
        let Ok(inverted) = segment.inverted_index(field) else {
            continue;
        };
        let Ok(mut stream) = inverted.terms().range().ge(prefix).lt(&upper).into_stream() else {
            continue;
        };
        let mut scanned = 0;
        while scanned < COMPLETION_SCAN && stream.advance() {
            *freq.entry(stream.key().to_vec()).or_default() += stream.value().doc_freq as u64;
            scanned += 1;
        }
    }
    let mut terms: Vec<(Vec<u8>, u64)> = freq.into_iter().collect();
    terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    terms
        .into_iter()
        .take(COMPLETIONS)
        .filter_map(|(t, _)| String::from_utf8(t).ok())
        .collect()
}

/// The index directory of the DB at `db`: `<db>.search/`.
pub fn default_dir(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".search");
    PathBuf::from(p)
}

/// Swaps two paths atomically (both must exist).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: valid NUL-terminated paths relative to the working directory (or absolute).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn stamp_text(db_id: &str) -> String {
    format!("schema {SEARCH_SCHEMA_VERSION}\ndb {db_id}\n")
}

impl SearchIndex {
    /// Opens the index at `dir` if it exists, was built by this schema version for the DB
    /// `db_id`, and tantivy can read it. `Ok(None)` when it must be (re)built.
    pub fn open_trusted(dir: &Path, db_id: &str) -> Result<Option<SearchIndex>, SearchError> {
        match std::fs::read_to_string(dir.join(STAMP)) {
            Ok(stamp) if stamp == stamp_text(db_id) => {}
            _ => return Ok(None),
        }
        match Index::open_in_dir(dir) {
            Ok(index) => Ok(Some(Self::wrap(index, dir))),
            Err(err) => {
                tracing::warn!(
                    "{}: search index unreadable ({err}); rebuilding",
                    dir.display()
                );
                Ok(None)
            }
        }
    }

    /// Opens the index for searching (a mount, the CLI). Errors say how to get one.
    pub fn open(dir: &Path) -> Result<SearchIndex, SearchError> {
        let stamp = std::fs::read_to_string(dir.join(STAMP)).map_err(|_| SearchError::Missing {
            dir: dir.to_owned(),
        })?;
        if !stamp.starts_with(&format!("schema {SEARCH_SCHEMA_VERSION}\n")) {
            return Err(SearchError::Missing {
                dir: dir.to_owned(),
            });
        }
        let index = Index::open_in_dir(dir).map_err(index_error(dir))?;
        Ok(Self::wrap(index, dir))
    }

    /// Opens the index at `dir` with a reader. A rebuild swaps a new directory in at any
    /// moment: an open that read the old `meta.json` and then looked for its segments in the
    /// new directory fails; it is retried, so a searcher never fails because of a rebuild.
    pub fn open_with_reader(dir: &Path) -> Result<(SearchIndex, IndexReader), SearchError> {
        let identity = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
        };
        let mut attempts = 0;
        loop {
            let before = identity();
            let opened = Self::open(dir).and_then(|index| {
                let reader = index.reader()?;
                Ok((index, reader))
            });
            attempts += 1;
            match opened {
                Err(_) if attempts < 5 && identity() != before => continue,
                other => return other,
            }
        }
    }

    /// An empty index to rebuild `dir` with, built beside it (`<dir>.building`) so the index
    /// in place keeps answering searches until [`SearchIndex::install`] swaps the two.
    /// Stamped for a DB only by `finish_build`: a build interrupted midway is started over.
    pub fn create_beside(dir: &Path) -> Result<SearchIndex, SearchError> {
        if dir.exists() && !is_ours(dir) {
            return Err(SearchError::NotOurs {
                dir: dir.to_owned(),
            });
        }
        // Builds a kill interrupted, and old indexes a kill kept from being removed: ours go,
        // anything else is left alone (and does not stand in the way).
        for leftover in leftover_builds(dir) {
            if let Err(err) = remove_ours(&leftover) {
                tracing::warn!("{err}");
            }
        }
        let building = building_dir(dir);
        let io = |source| SearchError::Io {
            dir: building.clone(),
            source,
        };
        std::fs::create_dir_all(&building).map_err(io)?;
        std::fs::write(building.join(OWNER), "musicfs search index\n").map_err(io)?;
        let (schema, _) = schema::build();
        let index = Index::create_in_dir(&building, schema).map_err(index_error(&building))?;
        Ok(Self::wrap(index, &building))
    }

    /// Marks a fully built index as belonging to `db_id`.
    pub fn finish_build(&self, db_id: &str) -> Result<(), SearchError> {
        let tmp = self.dir.join(format!("{STAMP}.tmp"));
        let io = |source| SearchError::Io {
            dir: self.dir.clone(),
            source,
        };
        std::fs::write(&tmp, stamp_text(db_id)).map_err(io)?;
        std::fs::rename(&tmp, self.dir.join(STAMP)).map_err(io)
    }

    /// Puts this finished build (made by `create_beside`) in place of `dir` in one atomic
    /// step (`renameat2(RENAME_EXCHANGE)`), then deletes the old index. Readers holding the
    /// old one keep reading it until they reopen; nobody ever sees no index or a partial one.
    /// Returns the index opened at `dir`. Call with no writer open on this index.
    pub fn install(self, dir: &Path) -> Result<SearchIndex, SearchError> {
        let io = |source| SearchError::Io {
            dir: dir.to_owned(),
            source,
        };
        let building = self.dir.clone();
        drop(self);
        if dir.exists() {
            if !is_ours(dir) {
                return Err(SearchError::NotOurs {
                    dir: dir.to_owned(),
                });
            }
            exchange(&building, dir).map_err(io)?;
            // The old index now sits at `building`. Readers that opened it keep their files;
            // one caught mid-open retries (`open_with_reader`). A kill here leaves it for the
            // next rebuild's cleanup.
            remove_ours(&building)?;
        } else {
            std::fs::rename(&building, dir).map_err(io)?;
        }
        let index = Index::open_in_dir(dir).map_err(index_error(dir))?;
        Ok(Self::wrap(index, dir))
    }

    fn wrap(index: Index, dir: &Path) -> SearchIndex {
        index.tokenizers().register(TOKENIZER, schema::analyzer());
        let fields = schema::build().1;
        SearchIndex {
            index,
            fields,
            dir: dir.to_owned(),
        }
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn writer_with_heap(&self, heap: usize) -> Result<IndexWriter, SearchError> {
        self.index
            .writer_with_num_threads(1, heap)
            .map_err(index_error(&self.dir))
    }

    /// A reader that picks up the scanner's commits by itself (a running mount).
    pub fn reader(&self) -> Result<IndexReader, SearchError> {
        self.index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(index_error(&self.dir))
    }

    /// File ids matching `query`, best first, at most `limit`.
    pub fn search(
        &self,
        reader: &IndexReader,
        query: &str,
        limit: usize,
    ) -> Result<Vec<i64>, SearchError> {
        let searcher = reader.searcher();
        let complete = |field, prefix: &str| completions(&searcher, field, prefix);
        let parsed = crate::query::parse(query, &self.fields, &complete)?;
        let hits = searcher
            .search(&parsed, &TopDocs::with_limit(limit.max(1)).order_by_score())
            .map_err(index_error(&self.dir))?;
        let mut ids = Vec::with_capacity(hits.len());
        for (_, address) in hits {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_error(&self.dir))?;
            if let Some(id) = doc.get_first(self.fields.file_id).and_then(|v| v.as_u64()) {
                ids.push(id as i64);
            }
        }
        Ok(ids)
    }

    /// Documents in the index (what the last commit holds).
    pub fn num_docs(&self) -> Result<u64, SearchError> {
        let reader = self
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error(&self.dir))?;
        Ok(reader.searcher().num_docs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build folder whose removal a kill cut short is still ours (markers go last) and is
    /// finished off by the next build; a leftover that is not ours is left alone and does not
    /// stop the build.
    #[test]
    fn interrupted_removals_are_finished_and_foreign_leftovers_do_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lib.db.search");
        // Half removed: its index files gone, its marker still there.
        let ours = tmp.path().join("lib.db.search.building-1-1");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join(OWNER), "x").unwrap();
        std::fs::write(ours.join("abc.idx"), "x").unwrap();
        // Not ours (no marker): someone's folder, or one of an older version's half removals.
        let foreign = tmp.path().join("lib.db.search.building-2-2");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();

        let index = SearchIndex::create_beside(&dir).unwrap();
        assert!(!ours.exists(), "an interrupted removal was not finished");
        assert_eq!(
            std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
            "keep me"
        );
        index.finish_build("db").unwrap();
        let index = index.install(&dir).unwrap();
        assert!(dir.join(STAMP).is_file());
        drop(index);
        // A rebuild swaps the new one in and removes the old one entirely.
        let again = SearchIndex::create_beside(&dir).unwrap();
        again.finish_build("db").unwrap();
        drop(again.install(&dir).unwrap());
        let leftovers: Vec<_> = leftover_builds(&dir)
            .into_iter()
            .filter(|p| p != &foreign)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
