use musicfs_db::queries::{self, EntryKind};
use musicfs_db::{FileRecord, NamePolicy, ReadPool, Writer};
use musicfs_tags::Track;

struct Policy {
    ci: bool,
}

impl NamePolicy for Policy {
    fn disambiguate(&self, name: &str, ext: &str, n: u32) -> String {
        match name
            .strip_suffix(&format!(".{ext}"))
            .filter(|_| !ext.is_empty())
        {
            Some(stem) => format!("{stem} ({n}).{ext}"),
            None => format!("{name} ({n})"),
        }
    }
    fn fold(&self, name: &str) -> Option<String> {
        self.ci.then(|| name.to_lowercase())
    }
}

const CS: Policy = Policy { ci: false };

fn setup() -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(&dir.path().join("m.db")).unwrap();
    (dir, writer)
}

fn add(w: &Writer, name: &[u8], path: &[&str], policy: &dyn NamePolicy) -> i64 {
    let origin = w.origin(b"/music").unwrap();
    let folder = w.folder(origin, b"a/b").unwrap();
    let track = Track::default();
    let id = w
        .put_file(
            folder,
            &FileRecord {
                name,
                size: 10,
                mtime_ns: 5,
                ext: "flac",
                track: &track,
                scan_error: None,
                scan_retry: false,
                identity: None,
                etag: None,
            },
        )
        .unwrap();
    let comps: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    w.place(id, &[(key(path), &comps)], "flac", policy, true)
        .unwrap();
    id
}

fn key(path: &[&str]) -> i64 {
    path.join("/").len() as i64 * 1_000 + path.last().unwrap().len() as i64
}

fn names(w: &Writer, dir: i64) -> Vec<String> {
    queries::readdir_page(w.conn(), dir, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn resolve(w: &Writer, path: &[&str]) -> Option<queries::EntryRow> {
    let mut dir = 1;
    let mut last = None;
    for c in path {
        let e = queries::lookup(w.conn(), dir, c).unwrap()?;
        dir = e.id;
        last = Some(e);
    }
    last
}

#[test]
fn places_creates_dirs_and_counts() {
    let (_d, w) = setup();
    add(&w, b"1.flac", &["A", "B", "01.flac"], &CS);
    add(&w, b"2.flac", &["A", "B", "02.flac"], &CS);
    let a = resolve(&w, &["A"]).unwrap();
    assert!(matches!(a.kind, EntryKind::Dir { nentries: 1, .. }));
    let b = resolve(&w, &["A", "B"]).unwrap();
    assert!(matches!(b.kind, EntryKind::Dir { nentries: 2, .. }));
    assert_eq!(names(&w, b.id), ["01.flac", "02.flac"]);
    let f = resolve(&w, &["A", "B", "02.flac"]).unwrap();
    assert!(matches!(
        f.kind,
        EntryKind::File {
            size: 10,
            mtime_ns: 5,
            ..
        }
    ));
}

#[test]
fn collisions_get_numbered_names_that_stay() {
    let (_d, w) = setup();
    let one = add(&w, b"1.flac", &["A", "T.flac"], &CS);
    let _two = add(&w, b"2.flac", &["A", "T.flac"], &CS);
    let _three = add(&w, b"3.flac", &["A", "T.flac"], &CS);
    let a = resolve(&w, &["A"]).unwrap().id;
    assert_eq!(names(&w, a), ["T.flac", "T (2).flac", "T (3).flac"]);
    // Removing the first does not rename the others (stable names).
    w.remove_file(one).unwrap();
    assert_eq!(names(&w, a), ["T (2).flac", "T (3).flac"]);
}

#[test]
fn a_file_name_pushes_a_directory_aside() {
    let (_d, w) = setup();
    add(&w, b"1.flac", &["X"], &CS);
    add(&w, b"2.flac", &["X", "y.flac"], &CS);
    assert_eq!(names(&w, 1), ["X", "X (2)"]);
}

#[test]
fn unchanged_key_keeps_the_inode() {
    let (_d, w) = setup();
    let id = add(&w, b"1.flac", &["A", "T.flac"], &CS);
    let before = resolve(&w, &["A", "T.flac"]).unwrap().id;
    let comps = vec!["A".to_string(), "T.flac".to_string()];
    let changes = w
        .place(id, &[(key(&["A", "T.flac"]), &comps)], "flac", &CS, false)
        .unwrap();
    assert_eq!(changes, 0);
    assert_eq!(resolve(&w, &["A", "T.flac"]).unwrap().id, before);
    // A new path gets a new, larger inode; the old one is gone and A is pruned.
    let comps = vec!["B".to_string(), "T.flac".to_string()];
    w.place(id, &[(key(&["B", "Tx.flac"]), &comps)], "flac", &CS, true)
        .unwrap();
    let after = resolve(&w, &["B", "T.flac"]).unwrap().id;
    assert!(after > before);
    assert!(resolve(&w, &["A"]).is_none(), "empty dir pruned");
}

#[test]
fn removing_the_last_file_prunes_up_to_the_root() {
    let (_d, w) = setup();
    let id = add(&w, b"1.flac", &["A", "B", "C", "t.flac"], &CS);
    w.remove_file(id).unwrap();
    assert!(names(&w, 1).is_empty());
    let root = queries::entry(w.conn(), 1).unwrap().unwrap();
    assert!(matches!(root.kind, EntryKind::Dir { nentries: 0, .. }));
    let n: i64 = w
        .conn()
        .query_row("SELECT count(*) FROM dirs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "only the root's dirs row remains");
}

#[test]
fn case_insensitive_mode_merges_dirs_and_numbers_files() {
    let (_d, w) = setup();
    let ci = Policy { ci: true };
    add(&w, b"1.flac", &["Radiohead", "T.flac"], &ci);
    add(&w, b"2.flac", &["radiohead", "t.flac"], &ci);
    assert_eq!(names(&w, 1), ["Radiohead"]);
    let dir = resolve(&w, &["Radiohead"]).unwrap().id;
    assert_eq!(names(&w, dir), ["T.flac", "t (2).flac"]);
}

#[test]
fn non_utf8_names_round_trip_and_unicity_holds() {
    let (_d, w) = setup();
    let raw: &[u8] = b"caf\xe9.flac";
    add(&w, raw, &["A", "x.flac"], &CS);
    let origin = w.origin(b"/music").unwrap();
    let got = queries::file_by_path(w.conn(), origin, b"a/b/caf\xe9.flac")
        .unwrap()
        .unwrap();
    assert_eq!(got.name, raw);
    let kind: String = w
        .conn()
        .query_row("SELECT typeof(name) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kind, "blob");
    let text: String = w
        .conn()
        .query_row(
            "SELECT typeof(path) FROM folders WHERE path = 'a/b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, "text", "UTF-8 paths are TEXT for sqlite3 users");
    let path = queries::backing_path(w.conn(), got.id)
        .unwrap()
        .unwrap()
        .absolute();
    assert_eq!(path, b"/music/a/b/caf\xe9.flac");
}

#[test]
fn remove_folder_removes_the_subtree() {
    let (_d, w) = setup();
    add(&w, b"1.flac", &["A", "1.flac"], &CS);
    add(&w, b"2.flac", &["A", "2.flac"], &CS);
    let origin = w.origin(b"/music").unwrap();
    let a = queries::folder_id(w.conn(), origin, b"a").unwrap().unwrap();
    assert_eq!(w.remove_folder(a).unwrap(), 2);
    assert!(names(&w, 1).is_empty());
    let left: i64 = w
        .conn()
        .query_row("SELECT count(*) FROM folders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "only the origin root folder is left");
}

#[test]
fn foreign_and_newer_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Writer::open(&foreign).err().unwrap().to_string();
    assert!(err.contains("not a musicfs database"), "{err}");

    let newer = dir.path().join("newer.db");
    drop(Writer::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = Writer::open(&newer).err().unwrap().to_string();
    assert!(err.contains("newer"), "{err}");
    let err = ReadPool::open(&newer, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("newer"), "{err}");

    let text = dir.path().join("text.db");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    assert!(Writer::open(&text).is_err());
}

#[test]
fn read_pool_sees_commits_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut w = Writer::open(&path).unwrap();
    let pool = ReadPool::open(&path, &Default::default()).unwrap();
    w.begin().unwrap();
    add(&w, b"1.flac", &["A", "1.flac"], &CS);
    assert!(
        queries::lookup(&pool.get().unwrap(), 1, "A")
            .unwrap()
            .is_none(),
        "uncommitted"
    );
    w.commit().unwrap();
    assert!(
        queries::lookup(&pool.get().unwrap(), 1, "A")
            .unwrap()
            .is_some()
    );
    assert!(
        pool.get()
            .unwrap()
            .execute("DELETE FROM entries", [])
            .is_err()
    );
}

/// The k-th file rendered to one name (untagged rips: `Unknown Artist/Unknown Album/01.wav`)
/// costs as much as the second: numbering resumes where it stopped instead of probing
/// `x (2)`, `x (3)`, ... one query each (k² in all).
#[test]
fn colliding_names_cost_the_same_whatever_their_number() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (_d, mut w) = setup();
    let steps = Arc::new(AtomicU64::new(0));
    let counter = steps.clone();
    w.conn()
        .progress_handler(
            100,
            Some(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                false
            }),
        )
        .unwrap();
    w.begin().unwrap();
    let cost = |range: std::ops::Range<u32>| {
        let before = steps.load(Ordering::Relaxed);
        for i in range {
            add(&w, format!("f{i}.flac").as_bytes(), &["U", "01.flac"], &CS);
        }
        steps.load(Ordering::Relaxed) - before
    };
    let first = cost(0..200);
    let later = cost(200..2000);
    w.commit().unwrap();
    let (first, later) = (first as f64 / 200.0, later as f64 / 1800.0);
    assert!(
        later < first * 1.5,
        "a collision costs {later:.0} VM steps (x100) late vs {first:.0} early"
    );
    let dir = w
        .conn()
        .query_row("SELECT id FROM entries WHERE name = 'U'", [], |r| r.get(0))
        .unwrap();
    let count: i64 = w
        .conn()
        .query_row(
            "SELECT count(*) FROM entries WHERE parent_id = ?1",
            [dir],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 2000);
    for name in ["01.flac", "01 (2).flac", "01 (2000).flac"] {
        assert!(
            queries::lookup(w.conn(), dir, name).unwrap().is_some(),
            "{name}"
        );
    }
    assert!(musicfs_db::check_consistency(w.conn()).unwrap().is_empty());
}

/// Numbering skips a name that the tags produce on their own, and resumes after a removal
/// without reusing a number (names already shown stay stable).
#[test]
fn numbering_skips_taken_names_and_never_reuses() {
    let (_d, mut w) = setup();
    w.begin().unwrap();
    add(&w, b"a.flac", &["D", "x.flac"], &CS);
    add(&w, b"b.flac", &["D", "x (2).flac"], &CS); // from its own tags
    let c = add(&w, b"c.flac", &["D", "x.flac"], &CS);
    add(&w, b"d.flac", &["D", "x.flac"], &CS);
    let dir = w
        .conn()
        .query_row("SELECT id FROM entries WHERE name = 'D'", [], |r| r.get(0))
        .unwrap();
    let mut got = names(&w, dir);
    got.sort();
    assert_eq!(got, ["x (2).flac", "x (3).flac", "x (4).flac", "x.flac"]);
    w.remove_file(c).unwrap();
    add(&w, b"e.flac", &["D", "x.flac"], &CS);
    let mut got = names(&w, dir);
    got.sort();
    assert_eq!(got, ["x (2).flac", "x (4).flac", "x (5).flac", "x.flac"]);
    w.commit().unwrap();
    assert!(musicfs_db::check_consistency(w.conn()).unwrap().is_empty());
}
