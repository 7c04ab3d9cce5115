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
fn building_dir(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".building");
    PathBuf::from(p)
}

/// Removes `dir` if it exists and musicfs made it; refuses to touch anything else.
fn remove_ours(dir: &Path) -> Result<(), SearchError> {
    let io = |source| SearchError::Io {
        dir: dir.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io(err)),
        Ok(meta) if meta.is_dir() && is_ours(dir) => std::fs::remove_dir_all(dir).map_err(io),
        Ok(_) => Err(SearchError::NotOurs {
            dir: dir.to_owned(),
        }),
    }
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
        let building = building_dir(dir);
        let io = |source| SearchError::Io {
            dir: building.clone(),
            source,
        };
        remove_ours(&building)?;
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
            // The old index now sits at `building`. A reader that read its meta.json just
            // before the swap opens its segment files a moment later: give it that moment.
            // (If the process exits first, the next rebuild clears it.)
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(2));
                let _ = remove_ours(&building);
            });
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
