mod common;

use std::os::unix::ffi::OsStrExt;

use common::*;
use musicfs_db::queries;
use musicfs_layout::{FileName, Layout};
use musicfs_scan::{ScanError, scan};
use musicfs_tags::Track;
use musicfs_tools::{Format, write_track};

#[test]
fn indexes_every_fixture_file_with_its_tags() {
    let fx = fixture(250, 7);
    let summary = fx.scan();
    assert_eq!(summary.added, fx.files.len() as u64);
    assert_eq!(summary.errors, 0);
    assert_consistent(&fx.db);

    let conn = fx.conn();
    let origin: i64 = conn
        .query_row("SELECT id FROM origins", [], |r| r.get(0))
        .unwrap();
    let layout = Layout::default_layout();
    let stored_tracks: std::collections::HashMap<i64, Track> = musicfs_db::Writer::open(&fx.db)
        .unwrap()
        .stored_tracks(0, 100_000)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.track))
        .collect();
    for f in &fx.files {
        let rel = f
            .path
            .strip_prefix(&fx.root)
            .unwrap()
            .as_os_str()
            .as_bytes();
        let stored = queries::file_by_path(&conn, origin, rel).unwrap().unwrap();
        let stored_track = &stored_tracks[&stored.id];
        let t = &f.track;
        assert_eq!(
            stored_track.format.as_deref(),
            Some(f.format.lofty_name()),
            "{:?}",
            f.path
        );
        let tags_only = Track {
            format: None,
            duration_ms: None,
            bitrate_kbps: None,
            sample_rate: None,
            bit_depth: None,
            channels: None,
            album_group: Default::default(),
            ..stored_track.clone()
        };
        assert_eq!(&tags_only, t, "{:?}", f.path);

        // The virtual path is the rendered one (or its disambiguated sibling).
        let (_, vpath) = vpath_of(&conn, &f.path).expect("file has an entry");
        let name = f.path.file_name().unwrap().as_bytes();
        let ext = f.format.ext();
        let stem = String::from_utf8_lossy(&name[..name.len() - ext.len() - 1]);
        let want = layout.render(stored_track, &FileName { stem: &stem, ext })[0]
            .components
            .join("/");
        let want_stem = want.strip_suffix(&format!(".{ext}")).unwrap();
        assert!(
            vpath == want || (vpath.starts_with(&format!("{want_stem} (")) && vpath.ends_with(ext)),
            "{vpath} vs {want}"
        );
    }
}

#[test]
fn rescan_without_changes_writes_nothing() {
    let fx = fixture(120, 3);
    fx.scan();
    let watcher = fx.conn();
    let before = data_version(&watcher);
    let snap = snapshot(&fx.db);
    let second = fx.scan();
    assert_eq!(second.unchanged, fx.files.len() as u64);
    assert_eq!(
        (
            second.added,
            second.changed,
            second.removed,
            second.relayout
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        data_version(&watcher),
        before,
        "a no-change rescan committed something"
    );
    assert_eq!(snapshot(&fx.db), snap);
}

#[test]
fn delta_add_modify_delete_rename() {
    let fx = fixture(150, 11);
    fx.scan();
    let conn = fx.conn();
    let keep = &fx.files[0].path;
    let (keep_inode, keep_vpath) = vpath_of(&conn, keep).unwrap();

    // add
    let new = fx.root.join("new.flac");
    let track = Track {
        title: Some("Brand New".into()),
        artist: Some("Newcomer".into()),
        album: Some("Debut".into()),
        date: Some("2026".into()),
        track: Some(1),
        ..Track::default()
    };
    write_track(&new, Format::Flac, &track, 1).unwrap();
    // modify: new title, same path on disk
    let modified = &fx.files[1].path;
    let old_vpath = vpath_of(&conn, modified).unwrap().1;
    let mut retitled = fx.files[1].track.clone();
    retitled.title = Some("Retitled".into());
    write_track(modified, fx.files[1].format, &retitled, 99).unwrap();
    bump_mtime(modified, 10);
    // delete
    let deleted = &fx.files[2].path;
    std::fs::remove_file(deleted).unwrap();
    // rename on disk (same folder)
    let renamed_from = &fx.files[3].path;
    let renamed_vpath = vpath_of(&conn, renamed_from).unwrap().1;
    let renamed_to = renamed_from.with_file_name("renamed.mp3.wav");
    let renamed_to = renamed_to.with_extension(fx.files[3].format.ext());
    std::fs::rename(renamed_from, &renamed_to).unwrap();

    let s = fx.scan();
    // The rename is recognized as one (same inode, size, mtime): followed, not re-read.
    assert_eq!(
        (s.added, s.changed, s.removed, s.moved),
        (1, 1, 1, 1),
        "{s:?}"
    );
    assert_consistent(&fx.db);
    assert_eq!(
        vpath_of(&conn, &new).unwrap().1,
        "Newcomer/Debut (2026)/01 - Brand New.flac"
    );
    let now = vpath_of(&conn, modified).unwrap().1;
    assert!(now.contains("Retitled") && now != old_vpath, "{now}");
    assert!(vpath_of(&conn, deleted).is_none());
    assert_eq!(vpath_of(&conn, &renamed_to).unwrap().1, renamed_vpath);
    // an untouched file keeps its path and its inode
    assert_eq!(vpath_of(&conn, keep).unwrap(), (keep_inode, keep_vpath));
}

#[test]
fn changed_file_with_same_rendered_path_keeps_its_inode() {
    let fx = fixture(60, 5);
    fx.scan();
    let conn = fx.conn();
    let f = fx.files.iter().find(|f| f.track.title.is_some()).unwrap();
    let before = vpath_of(&conn, &f.path).unwrap();
    let mut t = f.track.clone();
    t.genre = Some("Changed Genre".into());
    write_track(&f.path, f.format, &t, 5).unwrap();
    bump_mtime(&f.path, 20);
    let s = fx.scan();
    assert_eq!(s.changed, 1);
    assert_eq!(vpath_of(&conn, &f.path).unwrap(), before);
}

#[test]
fn removing_a_folder_prunes_the_virtual_tree() {
    let fx = fixture(400, 9);
    fx.scan();
    let artist_dir = fx.files[0]
        .path
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let gone: Vec<_> = fx
        .files
        .iter()
        .filter(|f| f.path.starts_with(&artist_dir))
        .collect();
    std::fs::remove_dir_all(&artist_dir).unwrap();
    let s = fx.scan();
    assert_eq!(s.removed, gone.len() as u64);
    assert_consistent(&fx.db);
    let conn = fx.conn();
    for f in gone {
        assert!(vpath_of(&conn, &f.path).is_none());
    }
    let folders: i64 = conn
        .query_row(
            "SELECT count(*) FROM folders WHERE path LIKE ?1",
            [format!(
                "{}%",
                artist_dir.file_name().unwrap().to_string_lossy()
            )],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(folders, 0);
}

#[test]
fn template_change_rerenders_from_stored_tags_without_reading_audio() {
    let fx = fixture(80, 13);
    fx.scan();
    let conn = fx.conn();
    let scanned: i64 = conn
        .query_row("SELECT max(scanned_ns) FROM files", [], |r| r.get(0))
        .unwrap();
    let mut cfg = fx.config();
    cfg.templates = vec![(String::new(), "%initial{$artist}/$artist/$title".into())];
    let s = scan(&cfg).unwrap();
    assert_eq!(s.relayout, fx.files.len() as u64);
    assert_eq!((s.added, s.changed, s.removed), (0, 0, 0));
    let after: i64 = conn
        .query_row("SELECT max(scanned_ns) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(scanned, after, "audio files were re-read");
    assert_consistent(&fx.db);
    let f = fx
        .files
        .iter()
        .find(|f| f.track.artist.is_some() && f.track.title.is_some())
        .unwrap();
    let artist = f.track.artist.as_deref().unwrap();
    let vpath = vpath_of(&conn, &f.path).unwrap().1;
    let initial: String = artist.chars().next().unwrap().to_uppercase().collect();
    assert!(
        vpath.starts_with(&format!("{initial}/{artist}/")),
        "{vpath}"
    );
    // The layout is stored: a scan without --template keeps it and changes nothing.
    let s = fx.scan();
    assert_eq!(s.relayout, 0);
    assert_eq!(vpath_of(&conn, &f.path).unwrap().1, vpath);
}

#[test]
fn several_views_make_top_level_folders() {
    let fx = fixture(40, 17);
    let mut cfg = fx.config();
    cfg.templates = vec![
        ("Artists".into(), "${artist|\"Unknown\"}/$title".into()),
        (
            "Genres".into(),
            "${genre|\"Unknown\"}/$artist - $title".into(),
        ),
    ];
    scan(&cfg).unwrap();
    assert_consistent(&fx.db);
    let conn = fx.conn();
    let top: Vec<String> = queries::readdir_page(&conn, 1, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(top, ["Artists", "Genres"]);
    let per_file: i64 = conn
        .query_row(
            "SELECT count(*) FROM entries WHERE file_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(per_file, 2 * fx.files.len() as i64);
}

#[test]
fn hostile_and_broken_files_are_indexed_with_their_cause() {
    let fx = fixture(10, 19);
    let hostile = fx.root.join("zero-channels.opus");
    musicfs_tools::write_hostile_opus(&hostile).unwrap();
    std::fs::write(
        fx.root.join("garbage.flac"),
        b"this is not a flac file at all",
    )
    .unwrap();
    std::fs::write(fx.root.join("empty.mp3"), b"").unwrap();
    std::fs::write(fx.root.join("cover.jpg"), b"not audio, ignored").unwrap();
    let s = fx.scan();
    assert_eq!(s.added, 13, "{s:?}");
    assert_eq!(s.errors, 3);
    assert_consistent(&fx.db);
    let conn = fx.conn();
    let errors: Vec<(String, String)> = conn
        .prepare("SELECT abs_path, scan_error FROM scan_errors ORDER BY abs_path")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for (path, cause) in &errors {
        assert!(!cause.is_empty(), "{path}");
    }
    let opus = errors
        .iter()
        .find(|(p, _)| p.ends_with("zero-channels.opus"))
        .unwrap();
    assert!(
        opus.1.contains("panicked"),
        "the lofty panic is contained and recorded: {opus:?}"
    );
    // Unreadable files still appear, named after the file.
    assert_eq!(
        vpath_of(&conn, &hostile).unwrap().1,
        "Unknown Artist/Unknown Album/zero-channels.opus"
    );
}

#[test]
fn non_utf8_file_names_round_trip_exactly() {
    let fx = fixture(5, 23);
    let name: &[u8] = b"caf\xe9 \xff.MP3";
    let path = fx.root.join(std::ffi::OsStr::from_bytes(name));
    write_track(&path, Format::Mp3, &Track::default(), 3).unwrap();
    fx.scan();
    let conn = fx.conn();
    let origin: i64 = conn
        .query_row("SELECT id FROM origins", [], |r| r.get(0))
        .unwrap();
    let f = queries::file_by_path(&conn, origin, name)
        .unwrap()
        .expect("stored");
    assert_eq!(f.name, name);
    assert_eq!(
        queries::backing_path(&conn, f.id)
            .unwrap()
            .unwrap()
            .absolute(),
        path.as_os_str().as_bytes()
    );
    let vpath = vpath_of(&conn, &path).unwrap().1;
    assert_eq!(
        vpath,
        "Unknown Artist/Unknown Album/caf\u{fffd} \u{fffd}.mp3"
    );
}

#[test]
fn empty_or_missing_origin_is_refused_and_nothing_is_lost() {
    let fx = fixture(30, 29);
    fx.scan();
    let snap = snapshot(&fx.db);
    for entry in std::fs::read_dir(&fx.root).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    match scan(&fx.config()) {
        Err(ScanError::Refused { reason, .. }) => assert!(reason.contains("empty"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(&fx.db), snap);
    std::fs::remove_dir(&fx.root).unwrap();
    assert!(matches!(scan(&fx.config()), Err(ScanError::Refused { .. })));
    assert_eq!(snapshot(&fx.db), snap);
    // Explicitly allowed: the library is emptied.
    std::fs::create_dir(&fx.root).unwrap();
    let mut cfg = fx.config();
    cfg.allow_empty = true;
    let s = scan(&cfg).unwrap();
    assert_eq!(s.removed, fx.files.len() as u64);
    assert_consistent(&fx.db);
}

#[test]
fn a_second_scanner_is_locked_out() {
    let fx = fixture(5, 31);
    let mut lock_name = fx.db.as_os_str().to_owned();
    lock_name.push(".scan-lock");
    let held = std::fs::File::create(&lock_name).unwrap();
    held.lock().unwrap();
    let err = scan(&fx.config()).unwrap_err();
    assert!(matches!(err, ScanError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("already running"));
    drop(held);
    fx.scan();
}

#[test]
fn small_batches_commit_progressively() {
    let n = 400;
    let fx = fixture(n, 37);
    // Create the DB first, so a reader can watch it from the scan's first commit.
    fx.scan();
    std::fs::remove_file(&fx.db).unwrap();
    let _ = std::fs::remove_dir_all(musicfs_search::default_dir(&fx.db));
    drop(musicfs_db::Writer::open(&fx.db).unwrap());
    let mut cfg = fx.config();
    cfg.batch_ops = 7;
    cfg.batch_time = std::time::Duration::from_secs(600); // only the op count closes a batch
    cfg.search = false;
    let (summary, seen) = file_counts_during(&fx, || scan(&cfg).unwrap());
    assert_eq!(summary.added, n as u64);
    // A reader saw the library fill in, a whole batch of 7 at a time (the last one excepted).
    let between: Vec<i64> = seen
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < n as i64)
        .collect();
    assert!(between.len() >= 3, "no progress seen mid-scan: {seen:?}");
    assert!(
        between.iter().all(|c| c % 7 == 0),
        "partial batches: {seen:?}"
    );
    assert_consistent(&fx.db);
}

/// (file id, scanned_ns, entry ids) of every file, keyed by its tags' title.
fn rows_by_title(
    conn: &rusqlite::Connection,
) -> std::collections::BTreeMap<String, (i64, i64, Vec<i64>)> {
    let mut stmt = conn
        .prepare(
            "SELECT f.id, f.scanned_ns, coalesce(f.title, f.name), \
             (SELECT group_concat(e.id) FROM entries e WHERE e.file_id = f.id) FROM files f",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let entries: String = r.get(3)?;
        Ok((
            r.get::<_, String>(2)?,
            (
                r.get(0)?,
                r.get(1)?,
                entries.split(',').map(|e| e.parse().unwrap()).collect(),
            ),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A folder renamed, a file renamed, a file moved to another folder: rows follow them, tags
/// are not read again, and entries whose rendered path is unchanged keep their inodes.
#[test]
fn moved_and_renamed_files_keep_their_rows_tags_and_inodes() {
    let fx = fixture(60, 71);
    fx.scan();
    let before = rows_by_title(&fx.conn());
    // The folder holding the first file, renamed; one file renamed; one moved elsewhere.
    let first = &fx.files[0].path;
    let album = first.parent().unwrap().to_owned();
    let in_album = std::fs::read_dir(&album).unwrap().count() as u64;
    let renamed_album = album.with_file_name("Renamed Album Folder");
    std::fs::rename(&album, &renamed_album).unwrap();
    let other = fx
        .files
        .iter()
        .find(|f| !f.path.starts_with(&album))
        .unwrap()
        .path
        .clone();
    let ext = other.extension().unwrap().to_str().unwrap();
    std::fs::rename(&other, other.with_file_name(format!("renamed.{ext}"))).unwrap();
    let third = fx
        .files
        .iter()
        .find(|f| !f.path.starts_with(&album) && f.path != other)
        .unwrap()
        .path
        .clone();
    let elsewhere = fx.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(&third, elsewhere.join(third.file_name().unwrap())).unwrap();

    let s = fx.scan();
    assert_eq!(
        (s.moved, s.added, s.removed, s.changed),
        (in_album + 2, 0, 0, 0),
        "{s:?}"
    );
    let after = rows_by_title(&fx.conn());
    assert_eq!(after.len(), before.len());
    // Every file kept its id, its tags (never re-read: scanned_ns unchanged), and its inodes
    // where the rendered path did not change (all of them: the template renders from tags,
    // except the renamed file if its title fell back to the file name).
    let mut kept = 0;
    for (title, (id, scanned, entries)) in &before {
        let (id2, scanned2, entries2) = &after[title];
        assert_eq!((id, scanned), (id2, scanned2), "{title}");
        if entries == entries2 {
            kept += 1;
        }
    }
    assert!(
        kept >= before.len() - 1,
        "{kept} of {} kept their inodes",
        before.len()
    );
    assert_consistent(&fx.db);

    // A hard link at a new place while the old stays is a file of its own.
    let linked = fx.root.join("elsewhere/hardlink.flac");
    let source: String = fx
        .conn()
        .query_row(
            "SELECT CAST(abs_path AS TEXT) FROM file_paths WHERE path LIKE '%.flac' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(renamed_album.exists());
    std::fs::hard_link(&source, &linked).unwrap();
    let s = fx.scan();
    assert_eq!((s.moved, s.added), (0, 1), "{s:?}");
    assert_consistent(&fx.db);
}

/// Removing a folder of many files commits in bounded transactions: a reader sees it shrink.
#[test]
fn a_removed_folder_goes_in_bounded_transactions() {
    let fx = fixture(300, 73);
    fx.scan();
    // Everything under one folder, then that folder removed.
    let n: i64 = fx
        .conn()
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    let keep = fx.dir.path().join("keep.flac");
    std::fs::copy(&fx.files[0].path, &keep).unwrap();
    for entry in std::fs::read_dir(&fx.root).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap_or(());
    }
    std::fs::create_dir(fx.root.join("one")).unwrap();
    std::fs::copy(&keep, fx.root.join("one/keep.flac")).unwrap();
    let mut cfg = fx.config();
    cfg.batch_ops = 20;
    cfg.batch_time = std::time::Duration::from_secs(600);
    cfg.search = false;
    let (s, seen) = file_counts_during(&fx, || scan(&cfg).unwrap());
    assert_eq!(s.removed as i64, n, "{s:?}");
    let between = seen.iter().filter(|&&c| c > 1 && c < n + 1).count();
    assert!(between >= 3, "removed in one go: {seen:?}");
    assert_consistent(&fx.db);
}

/// Real album folders whose tracks' tags are patchy (as in real libraries: 11 % miss the year,
/// 7 % the album, 4 % the artist) show as one virtual folder each; a compilation gets the
/// compilation artist; a flat folder of unrelated tracks is not merged.
#[test]
fn albums_with_patchy_tags_do_not_split() {
    use musicfs_tools::Rng;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let mut rng = Rng::new(2026);
    let formats = [Format::Flac, Format::Mp3];
    let albums = 135;
    for a in 0..albums {
        let folder = root.join(format!("rip {a:03}"));
        std::fs::create_dir_all(&folder).unwrap();
        let tracks = 6 + rng.below(7) as u32;
        let with_albumartist = rng.chance(40);
        for t in 1..=tracks {
            let mut track = Track {
                title: Some(format!("Song {t}")),
                artist: Some(format!("Artist {a}")),
                album: Some(format!("Album {a}")),
                albumartist: with_albumartist.then(|| format!("Artist {a}")),
                date: Some(format!("{}", 1960 + a % 60)),
                track: Some(t),
                ..Track::default()
            };
            if rng.chance(11) {
                track.date = None;
            }
            if rng.chance(7) {
                track.album = None;
            }
            if rng.chance(4) {
                track.artist = None;
                track.albumartist = None;
            }
            let format = formats[(t % 2) as usize];
            let path = folder.join(format!("{t:02}.{}", format.ext()));
            write_track(&path, format, &track, a * 100 + t).unwrap();
        }
    }
    // A compilation: one album, a different artist on every track, no album artist.
    let comp = root.join("compilation");
    std::fs::create_dir_all(&comp).unwrap();
    for t in 1..=5u32 {
        let track = Track {
            title: Some(format!("Hit {t}")),
            artist: Some(format!("Band {t}")),
            album: Some("Summer Hits".into()),
            date: Some("2001".into()),
            track: Some(t),
            ..Track::default()
        };
        write_track(
            &comp.join(format!("{t}.flac")),
            Format::Flac,
            &track,
            9000 + t,
        )
        .unwrap();
    }
    // A flat folder of unrelated singles.
    let flat = root.join("singles");
    std::fs::create_dir_all(&flat).unwrap();
    for t in 1..=4u32 {
        let track = Track {
            title: Some(format!("Single {t}")),
            artist: Some(format!("Solo {t}")),
            album: Some(format!("Single Album {t}")),
            ..Track::default()
        };
        write_track(
            &flat.join(format!("{t}.flac")),
            Format::Flac,
            &track,
            9100 + t,
        )
        .unwrap();
    }
    let db = dir.path().join("a.db");
    musicfs_scan::scan(&musicfs_scan::ScanConfig::new(&db, vec![root.clone()])).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Virtual album folders per real folder.
    let folders_of = |real: &str| -> std::collections::BTreeSet<String> {
        let mut stmt = conn
            .prepare(
                "SELECT t.vpath FROM tracks t JOIN files f ON f.id = t.id \
                 JOIN folders d ON d.id = f.folder_id WHERE d.path = ?1",
            )
            .unwrap();
        stmt.query_map([real], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|v| {
                let v = v.unwrap();
                v[..v.rfind('/').unwrap()].to_owned()
            })
            .collect()
    };
    let whole = (0..albums)
        .filter(|a| folders_of(&format!("rip {a:03}")).len() == 1)
        .count();
    assert!(
        whole * 100 >= albums as usize * 95,
        "only {whole} of {albums} albums show as one folder"
    );
    assert_eq!(
        folders_of("compilation"),
        std::collections::BTreeSet::from(["Various Artists/Summer Hits (2001)".to_owned()])
    );
    assert_eq!(
        folders_of("singles").len(),
        4,
        "{:?}",
        folders_of("singles")
    );
    assert_consistent(&db);

    // The majority moves with the folder: retagging most tracks moves the whole album.
    let first = root.join("rip 000");
    let names: Vec<_> = std::fs::read_dir(&first)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let before = folders_of("rip 000");
    for p in names.iter().take(names.len() / 2 + 1) {
        let mut t = musicfs_tags::read_track(p).unwrap();
        t.date = Some("1999".into());
        let format =
            musicfs_tools::Format::by_ext(p.extension().unwrap().to_str().unwrap()).unwrap();
        write_track(p, format, &t, 77).unwrap();
        bump_mtime(p, 30);
    }
    musicfs_scan::scan(&musicfs_scan::ScanConfig::new(&db, vec![root])).unwrap();
    let after = folders_of("rip 000");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before);
    assert!(
        after.iter().next().unwrap().ends_with("(1999)"),
        "{after:?}"
    );
    assert_consistent(&db);
}

/// Runs `work` while another connection polls `count(*) FROM files`: what `work` returned,
/// and every count a reader saw meanwhile.
fn file_counts_during<T: Send>(
    fx: &Fixture,
    work: impl FnOnce() -> T + Send,
) -> (T, std::collections::BTreeSet<i64>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let conn = fx.conn();
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                seen.insert(
                    conn.query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
                        .unwrap(),
                );
            }
            seen
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        (out, watcher.join().unwrap())
    })
}
