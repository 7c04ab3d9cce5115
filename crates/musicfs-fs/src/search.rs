//! `/.search/<query>/`: a folder per query, listing the matches as symlinks into the tree.
//!
//! Symlinks, not file entries: a match *is* a file of the tree, so it opens the same file by
//! the same path (players follow links), shows where it lives (`ls -l`), and needs no second
//! read path. Names are `NNN - <file name>` in rank order, so they are unique and `ls` shows
//! the best match first. Results are capped at [`MAX_RESULTS`].
//!
//! Nothing here is in the DB: inodes are synthetic (bit 62 set; entry ids never get there),
//! and a query's results live in a bounded cache for [`RESULTS_TTL`]: long enough for `ls`
//! then `stat` of every entry to see one result set, short enough to follow the scanner. The
//! kernel is told the same TTL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use moka::sync::Cache;
use musicfs_db::{ReadPool, queries, search_rows};
use musicfs_search::{IndexReader, SearchError, SearchIndex};

use crate::FsError;
use crate::attr::{Attr, Kind, Owner};

pub(crate) const FOLDER_NAME: &str = ".search";
/// At most this many matches per query folder.
pub const MAX_RESULTS: usize = 1000;
pub(crate) const RESULTS_TTL: Duration = Duration::from_secs(5);

const BIT: u64 = 1 << 62;
const ROOT: u64 = BIT;
/// Low bits of a result inode: rank + 1 (so 0 is the query folder itself).
const RANK_BITS: u32 = 12;
const _: () = assert!(MAX_RESULTS < 1 << RANK_BITS);

/// What a synthetic inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchNode {
    Root,
    Query(u64),
    Result(u64, usize),
}

impl SearchNode {
    pub(crate) fn of(ino: u64) -> Option<SearchNode> {
        if ino & BIT == 0 {
            return None;
        }
        if ino == ROOT {
            return Some(SearchNode::Root);
        }
        let rest = ino & !BIT;
        let (qid, rank) = (rest >> RANK_BITS, (rest & ((1 << RANK_BITS) - 1)) as usize);
        Some(if rank == 0 {
            SearchNode::Query(qid)
        } else {
            SearchNode::Result(qid, rank - 1)
        })
    }

    pub(crate) fn ino(self) -> u64 {
        match self {
            SearchNode::Root => ROOT,
            SearchNode::Query(q) => BIT | (q << RANK_BITS),
            SearchNode::Result(q, rank) => BIT | (q << RANK_BITS) | (rank as u64 + 1),
        }
    }
}

/// One query's matches: (entry name, symlink target), in rank order.
pub(crate) struct Results {
    pub entries: Vec<(String, String)>,
}

/// An index opened for searching, shared by the requests using it.
type OpenIndex = Arc<(SearchIndex, IndexReader)>;
/// (device, inode) of a directory.
type DirIdentity = (u64, u64);

pub(crate) struct SearchFolder {
    pool: ReadPool,
    db: PathBuf,
    /// Opened on first use: the index may appear after the mount (the first scan builds it).
    /// With the (device, inode) of its directory: a rebuild swaps in a new directory, and the
    /// next query opens that one.
    index: Mutex<Option<(OpenIndex, Option<DirIdentity>)>>,
    by_query: Cache<String, u64>,
    results: Cache<u64, Arc<Results>>,
    next_qid: AtomicU64,
}

fn dir_identity(dir: &std::path::Path) -> Option<DirIdentity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Folder names cannot hold '/': `%2F` stands for it (and `%25` for '%').
fn decode(name: &str) -> String {
    name.replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%25", "%")
}

impl SearchFolder {
    pub(crate) fn new(pool: ReadPool, db: PathBuf) -> SearchFolder {
        SearchFolder {
            pool,
            db,
            index: Mutex::new(None),
            by_query: Cache::builder()
                .max_capacity(1024)
                .time_to_live(RESULTS_TTL)
                .build(),
            results: Cache::builder()
                .max_capacity(1024)
                .time_to_live(RESULTS_TTL)
                .build(),
            next_qid: AtomicU64::new(1),
        }
    }

    fn index(&self) -> Result<OpenIndex, FsError> {
        let mut slot = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let dir = {
            let conn = self.pool.get()?;
            queries::setting(&conn, musicfs_search::SETTING_DIR)?
        }
        .map(PathBuf::from)
        .unwrap_or_else(|| musicfs_search::default_dir(&self.db));
        let identity = dir_identity(&dir);
        if let Some((open, seen)) = slot.as_ref()
            && *seen == identity
        {
            return Ok(open.clone());
        }
        let open = Arc::new(SearchIndex::open_with_reader(&dir).map_err(search_error)?);
        *slot = Some((open.clone(), identity));
        Ok(open)
    }

    /// The folder of `name` (a query), running the query unless its results are cached.
    pub(crate) fn lookup_query(&self, name: &str) -> Result<u64, FsError> {
        if let Some(qid) = self.by_query.get(name)
            && self.results.contains_key(&qid)
        {
            return Ok(qid);
        }
        let query = decode(name);
        let open = self.index()?;
        let (index, reader) = &*open;
        let ids = index
            .search(reader, &query, MAX_RESULTS)
            .map_err(search_error)?;
        let conn = self.pool.get()?;
        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            // A match removed since the index commit has no path: skip it.
            let Some(vpath) = search_rows::file_vpath(&conn, id)? else {
                continue;
            };
            let base = vpath.rsplit('/').next().unwrap_or(&vpath);
            let name = format!("{:03} - {base}", entries.len() + 1);
            let name = within_name_max(name);
            entries.push((name, format!("../../{vpath}")));
        }
        let qid = self.next_qid.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1);
        self.results.insert(qid, Arc::new(Results { entries }));
        self.by_query.insert(name.to_owned(), qid);
        Ok(qid)
    }

    pub(crate) fn results(&self, qid: u64) -> Result<Arc<Results>, FsError> {
        self.results.get(&qid).ok_or(FsError::NotFound)
    }

    /// The result named `name` in query folder `qid`.
    pub(crate) fn lookup_result(&self, qid: u64, name: &str) -> Result<Option<usize>, FsError> {
        let results = self.results(qid)?;
        Ok(results.entries.iter().position(|(n, _)| n == name))
    }

    pub(crate) fn attr(&self, node: SearchNode, owner: Owner) -> Result<Attr, FsError> {
        let (kind, size, perm) = match node {
            SearchNode::Root => (Kind::Directory, 0, 0o555),
            SearchNode::Query(q) => (
                Kind::Directory,
                self.results(q)?.entries.len() as u64,
                0o555,
            ),
            SearchNode::Result(q, rank) => {
                let results = self.results(q)?;
                let (_, target) = results.entries.get(rank).ok_or(FsError::NotFound)?;
                (Kind::Symlink, target.len() as u64, 0o777)
            }
        };
        Ok(Attr {
            ino: node.ino(),
            size,
            blocks: 0,
            mtime: UNIX_EPOCH,
            kind,
            perm,
            uid: owner.uid,
            gid: owner.gid,
            blksize: 4096,
        })
    }

    pub(crate) fn readlink(&self, qid: u64, rank: usize) -> Result<Vec<u8>, FsError> {
        let results = self.results(qid)?;
        let (_, target) = results.entries.get(rank).ok_or(FsError::NotFound)?;
        Ok(target.as_bytes().to_vec())
    }
}

impl crate::ops::MusicFs {
    pub(crate) fn search_folder(&self) -> Result<&SearchFolder, FsError> {
        self.search.as_ref().ok_or(FsError::NotFound)
    }

    /// `Some` when (`parent`, `name`) is in the search folder (or is the folder itself).
    pub(crate) fn search_lookup(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
    ) -> Option<Result<Attr, FsError>> {
        let search = self.search.as_ref()?;
        let node = match (parent, SearchNode::of(parent)) {
            (1, _) if name == FOLDER_NAME => Ok(SearchNode::Root),
            (_, None) => return None,
            (_, Some(SearchNode::Root)) => match name.to_str() {
                Some(q) => search.lookup_query(q).map(SearchNode::Query),
                None => Err(FsError::BadQuery("a query must be UTF-8".into())),
            },
            (_, Some(SearchNode::Query(qid))) => match name.to_str() {
                Some(n) => search
                    .lookup_result(qid, n)
                    .and_then(|r| r.ok_or(FsError::NotFound))
                    .map(|rank| SearchNode::Result(qid, rank)),
                None => Err(FsError::NotFound),
            },
            (_, Some(SearchNode::Result(..))) => Err(FsError::NotADirectory),
        };
        Some(node.and_then(|n| search.attr(n, self.owner)))
    }

    pub(crate) fn search_attr(&self, node: SearchNode) -> Result<Attr, FsError> {
        self.search_folder()?.attr(node, self.owner)
    }

    /// Lists a search folder from `offset`; `add(ino, offset, kind, name)` returns true when
    /// the reply is full.
    pub(crate) fn search_list(
        &self,
        node: SearchNode,
        offset: u64,
        mut add: impl FnMut(u64, u64, Kind, &str) -> bool,
    ) -> Result<(), FsError> {
        let search = self.search_folder()?;
        let mut rows: Vec<(u64, Kind, String)> = vec![(node.ino(), Kind::Directory, ".".into())];
        match node {
            // Past queries are not listed: the folder is a door, `cd` into any query.
            SearchNode::Root => rows.push((1, Kind::Directory, "..".into())),
            SearchNode::Query(qid) => {
                rows.push((ROOT, Kind::Directory, "..".into()));
                let results = search.results(qid)?;
                for (rank, (name, _)) in results.entries.iter().enumerate() {
                    rows.push((
                        SearchNode::Result(qid, rank).ino(),
                        Kind::Symlink,
                        name.clone(),
                    ));
                }
            }
            SearchNode::Result(..) => return Err(FsError::NotADirectory),
        }
        for (i, (ino, kind, name)) in rows.iter().enumerate().skip(offset as usize) {
            if add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        Ok(())
    }
}

/// Entry names stay within NAME_MAX: the rank prefix may push a 255-byte file name over.
fn within_name_max(mut name: String) -> String {
    if name.len() > 255 {
        let mut cut = 255;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

fn search_error(err: SearchError) -> FsError {
    match err {
        SearchError::Syntax { .. } => FsError::BadQuery(err.to_string()),
        SearchError::Missing { .. } => FsError::NoSearchIndex(err.to_string()),
        other => FsError::Search(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_round_trip_and_never_meet_entry_ids() {
        for node in [
            SearchNode::Root,
            SearchNode::Query(1),
            SearchNode::Query((1 << 40) - 1),
            SearchNode::Result(7, 0),
            SearchNode::Result(7, MAX_RESULTS - 1),
        ] {
            assert_eq!(SearchNode::of(node.ino()), Some(node));
        }
        assert_eq!(SearchNode::of(1), None);
        assert_eq!(SearchNode::of(i64::MAX as u64 >> 2), None);
        assert_eq!(decode("ac%2Fdc 100%25"), "ac/dc 100%");
    }
}
