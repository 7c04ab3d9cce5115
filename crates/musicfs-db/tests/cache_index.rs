//! The content cache's rows: totals kept by triggers whoever writes, a changed file's old
//! chunks replaced, gaps refused, removed files leaving the cache.

use musicfs_db::cache_index::{self, CacheIndex, ChunkRow, FileVersion};
use musicfs_db::{FileRecord, Writer};
use musicfs_tags::Track;

fn file(w: &Writer, name: &[u8], size: i64, mtime_ns: i64) -> i64 {
    let origin = w.origin(b"/music").unwrap();
    let folder = w.folder(origin, b"a").unwrap();
    w.put_file(
        folder,
        &FileRecord {
            name,
            size,
            mtime_ns,
            ext: "flac",
            track: &Track::default(),
            scan_error: None,
            scan_retry: false,
            identity: None,
            etag: None,
        },
    )
    .unwrap()
}

fn version(size: u64, mtime_ns: i64) -> FileVersion {
    FileVersion {
        size,
        mtime_ns,
        etag: None,
    }
}

fn chunks(first_seq: u32, offset: u64, lens_hashes: &[(u32, i64)]) -> Vec<ChunkRow> {
    let mut at = offset;
    lens_hashes
        .iter()
        .enumerate()
        .map(|(k, &(len, hash))| {
            let c = ChunkRow {
                seq: first_seq + k as u32,
                offset: at,
                len,
                hash,
            };
            at += len as u64;
            c
        })
        .collect()
}

#[test]
fn totals_follow_every_change_and_shared_chunks_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let w = Writer::open(&db).unwrap();
    let a = file(&w, b"a.flac", 300, 1);
    let b = file(&w, b"b.flac", 300, 1);
    let mut index = CacheIndex::open(&db).unwrap();
    let v = version(300, 1);
    // a: three chunks; b: the same middle chunk (shared bytes), two of its own.
    assert!(
        index
            .add_chunks(a, &v, &chunks(0, 0, &[(100, 1), (100, 2)]), 200, 10)
            .unwrap()
    );
    assert!(
        index
            .add_chunks(a, &v, &chunks(2, 200, &[(100, 3)]), 300, 11)
            .unwrap()
    );
    assert!(
        index
            .add_chunks(
                b,
                &v,
                &chunks(0, 0, &[(100, 4), (100, 2), (100, 5)]),
                300,
                12
            )
            .unwrap()
    );
    let t = index.totals().unwrap();
    assert_eq!((t.bytes, t.chunks), (500, 5));
    let usage = cache_index::cache_use(index.conn()).unwrap();
    assert_eq!(
        (usage.files, usage.complete, usage.logical_bytes),
        (2, 2, 600)
    );
    assert_eq!(index.least_recent(10).unwrap(), vec![a, b]);

    // A gap is refused: `cached` must never claim bytes it does not hold.
    let c = file(&w, b"c.flac", 300, 1);
    assert!(
        !index
            .add_chunks(c, &v, &chunks(1, 100, &[(100, 6)]), 200, 13)
            .unwrap()
    );
    assert!(cache_index::cached_file(index.conn(), c).unwrap().is_none());

    // Forgetting a leaves its own chunks unused (to delete) and the shared one in use.
    index.forget_files(&[a]).unwrap();
    let mut unused = index.unused_chunks(10).unwrap();
    unused.sort();
    assert_eq!(unused, vec![(1, 100), (3, 100)]);
    index.drop_unused(&[1, 3]).unwrap();
    let t = index.totals().unwrap();
    assert_eq!((t.bytes, t.chunks), (300, 3));
    assert_eq!(index.chunk_refs(2).unwrap(), Some(1));

    // The scanner removing b (its file is gone) takes its cache rows with it.
    drop(index);
    w.remove_file(b).unwrap();
    let index = CacheIndex::open(&db).unwrap();
    assert!(cache_index::cached_file(index.conn(), b).unwrap().is_none());
    assert_eq!(index.unused_chunks(10).unwrap().len(), 3);
    let problems: Vec<String> = musicfs_db::check_consistency(index.conn())
        .unwrap()
        .into_iter()
        .filter(|p| p.contains("content cache"))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    // And the check sees a count edited by hand.
    index
        .conn()
        .execute("UPDATE chunk_refs SET refs = refs + 1 WHERE hash = 2", [])
        .unwrap();
    let problems = musicfs_db::check_consistency(index.conn()).unwrap();
    assert!(
        problems.iter().any(|p| p.contains("use count")),
        "{problems:?}"
    );
}

#[test]
fn a_changed_file_keeps_its_old_chunks_until_the_new_version_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let w = Writer::open(&db).unwrap();
    let a = file(&w, b"a.flac", 200, 1);
    let mut index = CacheIndex::open(&db).unwrap();
    let old = version(200, 1);
    assert!(
        index
            .add_chunks(a, &old, &chunks(0, 0, &[(100, 1), (100, 2)]), 200, 1)
            .unwrap()
    );

    // A rescan sees a new version: the old rows stay (a basis to fetch the new one in part).
    file(&w, b"a.flac", 210, 2);
    let new = version(210, 2);
    assert!(
        !index
            .add_chunks(a, &old, &chunks(0, 0, &[(100, 1)]), 100, 2)
            .unwrap()
    );
    let held = cache_index::cached_file(index.conn(), a).unwrap().unwrap();
    assert_eq!((held.version, held.cached), (old, 200));
    assert_eq!(
        cache_index::file_chunks(index.conn(), a, 0).unwrap().len(),
        2
    );

    // The new version's first chunks replace the old list; the reused chunk stays stored.
    assert!(
        index
            .add_chunks(a, &new, &chunks(0, 0, &[(110, 7), (100, 2)]), 210, 3)
            .unwrap()
    );
    let held = cache_index::cached_file(index.conn(), a).unwrap().unwrap();
    assert_eq!((held.version, held.cached), (new, 210));
    let hashes: Vec<i64> = cache_index::file_chunks(index.conn(), a, 0)
        .unwrap()
        .iter()
        .map(|c| c.hash)
        .collect();
    assert_eq!(hashes, vec![7, 2]);
    assert_eq!(index.unused_chunks(10).unwrap(), vec![(1, 100)]);
    assert_eq!(index.chunk_refs(2).unwrap(), Some(1));
}
