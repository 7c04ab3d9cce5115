//! Search (issue #6): the index the scanner keeps, queried as users type, on real files.

use std::collections::BTreeSet;
use std::path::Path;

use musicfs_scan::ScanConfig;
use musicfs_search::{SearchError, SearchIndex};
use musicfs_tags::Track;
use musicfs_tools::{Format, write_track};

fn track(artist: &str, album: &str, year: &str, title: &str) -> Track {
    Track {
        artist: Some(artist.into()),
        album: Some(album.into()),
        date: Some(year.into()),
        title: Some(title.into()),
        track: Some(1),
        ..Track::default()
    }
}

/// Titles matching `query`, through the index the scanner kept and the DB.
fn titles(db: &Path, query: &str) -> BTreeSet<String> {
    let index = SearchIndex::open(&musicfs_search::default_dir(db)).unwrap();
    let reader = index.reader().unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    index
        .search(&reader, query, 1000)
        .unwrap()
        .into_iter()
        .map(|id| {
            let r = musicfs_db::search_rows::search_record(&conn, id)
                .unwrap()
                .unwrap();
            r.title.unwrap_or(r.path)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn queries_find_what_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    std::fs::create_dir(&root).unwrap();
    let tracks = [
        (Format::Flac, track("Björk", "Homogenic", "1997", "Jóga")),
        (
            Format::Mp3,
            track("Radiohead", "OK Computer", "1997", "Paranoid Android"),
        ),
        (
            Format::Mp3,
            track("Radiohead", "OK Computer", "1997", "Karma Police"),
        ),
        (
            Format::Flac,
            track("David Bowie", "Low", "1977", "Warszawa"),
        ),
        (
            Format::Flac,
            track("David Bowie", "\"Heroes\"", "1977", "Heroes"),
        ),
        (
            Format::Aiff,
            track("David Bowie", "Hunky Dory", "1971", "Life on Mars?"),
        ),
        (
            Format::Opus,
            track("Sigur Rós", "Ágætis byrjun", "1999", "Svefn-g-englar"),
        ),
    ];
    for (i, (format, t)) in tracks.iter().enumerate() {
        write_track(
            &root.join(format!("{i}.{}", format.ext())),
            *format,
            t,
            i as u32,
        )
        .unwrap();
    }
    write_track(&root.join("mystery.wav"), Format::Wav, &Track::default(), 9).unwrap();
    let db = dir.path().join("s.db");
    musicfs_scan::scan(&ScanConfig::new(&db, vec![root])).unwrap();

    let bowie = ["Warszawa", "Heroes", "Life on Mars?"];
    for (query, want) in [
        // Accents and case fold both ways.
        ("bjork", set(&["Jóga"])),
        ("BJÖRK joga", set(&["Jóga"])),
        ("sigur ros agaetis", set(&["Svefn-g-englar"])),
        // Every word must match; words are prefixes (type-ahead).
        (
            "radiohead ok comp",
            set(&["Paranoid Android", "Karma Police"]),
        ),
        ("parano", set(&["Paranoid Android"])),
        ("radiohead karma", set(&["Karma Police"])),
        ("radiohead warszawa", set(&[])),
        // Fields and ranges.
        ("artist:bowie year:1970..1979", set(&bowie)),
        ("artist:bowie year:1977", set(&["Warszawa", "Heroes"])),
        ("year:..1975", set(&["Life on Mars?"])),
        ("year:1998..", set(&["Svefn-g-englar"])),
        ("format:opus", set(&["Svefn-g-englar"])),
        ("format:flac bowie", set(&["Warszawa", "Heroes"])),
        ("album:ok", set(&["Paranoid Android", "Karma Police"])),
        ("title:ok", set(&[])),
        // Phrases keep word order; exclusion.
        (
            "\"ok computer\"",
            set(&["Paranoid Android", "Karma Police"]),
        ),
        ("\"computer ok\"", set(&[])),
        ("bowie -low", set(&["Heroes", "Life on Mars?"])),
        // The real path, for untagged files.
        ("path:mystery", set(&["mystery.wav"])),
    ] {
        assert_eq!(titles(&db, query), want, "query {query:?}");
    }

    let index = SearchIndex::open(&musicfs_search::default_dir(&db)).unwrap();
    let reader = index.reader().unwrap();
    for bad in ["year:abc", "colour:red", "\"open", "year:.."] {
        match index.search(&reader, bad, 10) {
            Err(SearchError::Syntax { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Every query of a mix, as sets of file ids (what a rebuilt and a kept index must share).
fn answers(db: &Path, queries: &[String]) -> Vec<BTreeSet<i64>> {
    let index = SearchIndex::open(&musicfs_search::default_dir(db)).unwrap();
    let reader = index.reader().unwrap();
    queries
        .iter()
        .map(|q| {
            index
                .search(&reader, q, 100_000)
                .unwrap()
                .into_iter()
                .collect()
        })
        .collect()
}

fn db_ids(db: &Path) -> BTreeSet<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM files").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_index_follows_adds_changes_removes_and_equals_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let files = musicfs_tools::generate_library(&root, 200, 61).unwrap();
    let db = dir.path().join("k.db");
    let cfg = ScanConfig::new(&db, vec![root.clone()]);
    musicfs_scan::scan(&cfg).unwrap();
    // Everything (AllQuery via a match-all exclusion) equals the DB's files.
    let all = |db: &Path| answers(db, &["-zzzzzzzz".to_owned()]).remove(0);
    assert_eq!(all(&db), db_ids(&db));

    // Adds, changes (new tags), removes.
    musicfs_tools::generate_library(&root.join("added"), 20, 62).unwrap();
    for (i, f) in files.iter().take(10).enumerate() {
        let mut t = f.track.clone();
        t.title = Some(format!("Retitled Quokka {i}"));
        write_track(&f.path, f.format, &t, 1000 + i as u32).unwrap();
    }
    for f in files.iter().skip(10).take(15) {
        std::fs::remove_file(&f.path).unwrap();
    }
    let s = musicfs_scan::scan(&cfg).unwrap();
    assert_eq!((s.added, s.changed, s.removed), (20, 10, 15), "{s:?}");
    assert_eq!(all(&db), db_ids(&db));
    assert_eq!(answers(&db, &["quokka".to_owned()])[0].len(), 10);

    // A tag edited in the DB by hand (sqlite3) reaches the index at the next scan: triggers
    // queue it with the change itself.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let edited: i64 = conn
        .query_row(
            "UPDATE files SET title = 'Handmade Wombat' WHERE id = (SELECT max(id) FROM files) \
             RETURNING id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    musicfs_scan::scan(&cfg).unwrap();
    assert_eq!(
        answers(&db, &["wombat".to_owned()])[0],
        BTreeSet::from([edited])
    );

    // The kept index answers a query mix exactly as one rebuilt from scratch.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut queries: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT coalesce(artist, ''), coalesce(album, '') FROM files LIMIT 40",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .flat_map(|(a, b)| [a, b])
            .filter(|q| !musicfs_search::terms(q).is_empty())
            .map(|q| format!("\"{}\"", q.replace('"', "")))
            .collect()
    };
    queries.extend(
        [
            "year:1990..1999",
            "format:flac",
            "format:mp3 year:..1980",
            "-zzzz",
            "quokka",
        ]
        .map(String::from),
    );
    drop(conn);
    let kept = answers(&db, &queries);
    std::fs::remove_dir_all(musicfs_search::default_dir(&db)).unwrap();
    musicfs_scan::scan(&cfg).unwrap(); // nothing changed: rebuilds the index from the DB
    assert_eq!(answers(&db, &queries), kept);
    assert!(kept.iter().filter(|a| !a.is_empty()).count() > 20);

    // An index of an older schema version is rebuilt, not trusted.
    let stamp = musicfs_search::default_dir(&db).join("musicfs-search.stamp");
    let text = std::fs::read_to_string(&stamp).unwrap();
    std::fs::write(&stamp, text.replace("schema ", "schema 0")).unwrap();
    musicfs_scan::scan(&cfg).unwrap();
    assert!(std::fs::read_to_string(&stamp).unwrap() == text);
    assert_eq!(answers(&db, &queries), kept);

    // A damaged index is rebuilt too, not trusted.
    let meta = musicfs_search::default_dir(&db).join("meta.json");
    std::fs::write(&meta, b"{ not json").unwrap();
    musicfs_scan::scan(&cfg).unwrap();
    assert_eq!(answers(&db, &queries), kept);
}

#[test]
fn the_search_folder_in_a_mount_links_matches_into_the_tree() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    std::fs::create_dir(&root).unwrap();
    let tracks = [
        (
            "bjork.flac",
            Format::Flac,
            track("Björk", "Homogenic", "1997", "Jóga"),
        ),
        (
            "acdc.mp3",
            Format::Mp3,
            track("AC/DC", "Back in Black", "1980", "Hells Bells"),
        ),
        (
            "low.flac",
            Format::Flac,
            track("David Bowie", "Low", "1977", "Warszawa"),
        ),
        (
            "heroes.flac",
            Format::Flac,
            track("David Bowie", "Heroes", "1977", "Heroes"),
        ),
        (
            "mars.aiff",
            Format::Aiff,
            track("David Bowie", "Hunky Dory", "1971", "Life on Mars?"),
        ),
    ];
    for (i, (name, format, t)) in tracks.iter().enumerate() {
        write_track(&root.join(name), *format, t, i as u32).unwrap();
    }
    let db = dir.path().join("m.db");
    musicfs_scan::scan(&ScanConfig::new(&db, vec![root.clone()])).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut cfg = musicfs_fs::MountConfig::new(&db, &mnt);
    cfg.poll_interval = std::time::Duration::from_millis(100);
    let mounted = musicfs_fs::mount(cfg).unwrap();
    let search = mnt.join(".search");

    // Hidden from the root listing, but there.
    let root_names: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!root_names.iter().any(|n| n == ".search"), "{root_names:?}");
    assert!(search.is_dir());

    let listing = |q: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(search.join(q))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // A match is a symlink into the tree: same file, same bytes.
    let hits = listing("bjork");
    assert_eq!(hits, ["001 - 01 - Jóga.flac"]);
    let link = search.join("bjork").join(&hits[0]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let target = std::fs::canonicalize(&link).unwrap();
    assert_eq!(target, mnt.join("Björk/Homogenic (1997)/01 - Jóga.flac"));
    assert_eq!(
        std::fs::read(&link).unwrap(),
        std::fs::read(root.join("bjork.flac")).unwrap()
    );

    // Fields and ranges; a '/' in the query written as %2F.
    assert_eq!(listing("artist:bowie year:1970..1979").len(), 3);
    assert_eq!(listing("artist:bowie year:1977").len(), 2);
    assert_eq!(listing("ac%2Fdc"), ["001 - 01 - Hells Bells.mp3"]);
    assert!(listing("nothing-matches-this").is_empty());

    // Bad queries are EINVAL, not an empty folder; odd bytes too.
    let err = std::fs::read_dir(search.join("colour:red")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let err = std::fs::metadata(search.join(std::ffi::OsStr::from_bytes(b"\xff\xfe"))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));

    // Live: a file the scanner adds is found by the running mount.
    write_track(
        &root.join("new.flac"),
        Format::Flac,
        &track("Zola Jesus", "Okovi", "2017", "Exhumed"),
        9,
    )
    .unwrap();
    musicfs_scan::scan(&ScanConfig::new(&db, vec![root])).unwrap();
    assert!(
        musicfs_tests::eventually(std::time::Duration::from_secs(10), || {
            std::fs::read_dir(search.join("exhumed"))
                .map(|d| d.count())
                .ok()
                == Some(1)
        })
        .is_some(),
        "the new track never showed up in search"
    );
    mounted.unmount().unwrap();
}

/// A rebuild is made beside the index in place and swapped in at once: searches answer all
/// along (never "no index", never empty), and a tag edited with sqlite3 while the rebuild reads
/// the DB is in the rebuilt index.
#[test]
fn a_rebuild_never_empties_search_and_keeps_edits_made_during_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    musicfs_tools::generate_library(&root, 60, 21).unwrap();
    let db = dir.path().join("s.db");
    musicfs_scan::scan(&ScanConfig::new(&db, vec![root])).unwrap();
    let index_dir = musicfs_search::default_dir(&db);
    let artist: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT artist FROM files WHERE artist IS NOT NULL ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let query = format!("artist:\"{}\"", artist.replace('"', ""));
    assert!(!titles(&db, &query).is_empty());

    // Searches as a mount does them: reopening the index when its folder changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (failures, searches) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let searcher = {
        let (stop, failures, searches) = (stop.clone(), failures.clone(), searches.clone());
        let (index_dir, query) = (index_dir.clone(), query.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let found = SearchIndex::open_with_reader(&index_dir)
                    .and_then(|(i, reader)| i.search(&reader, &query, 5))
                    .map(|ids| ids.len());
                if !matches!(found, Ok(n) if n > 0) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                searches.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));

    // A rebuild (the stamp names another DB), with a sqlite3 edit landing after it has read
    // every page.
    let writer = musicfs_db::Writer::open(&db).unwrap();
    writer.set_setting("search_id", "someone-else").unwrap();
    let edited = AtomicBool::new(false);
    let progress = |done: u64, total: u64| {
        if done == total && total > 0 && !edited.swap(true, Ordering::SeqCst) {
            rusqlite::Connection::open(&db)
                .unwrap()
                .execute(
                    "UPDATE files SET title = 'Wombat Serenade' WHERE id = (SELECT min(id) FROM files)",
                    [],
                )
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    };
    let keeper = musicfs_search::IndexKeeper::open(&db, &writer, &progress).unwrap();
    drop(keeper);
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    searcher.join().unwrap();
    assert!(edited.load(Ordering::SeqCst), "no rebuild happened");
    assert!(searches.load(Ordering::Relaxed) > 10);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "searches failed or came back empty during the rebuild ({} searches)",
        searches.load(Ordering::Relaxed)
    );
    assert_eq!(titles(&db, "wombat"), set(&["Wombat Serenade"]));
}
