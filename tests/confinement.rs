//! Nothing outside the music folders is ever served: not through a symlink in the library, not
//! through a symlink swapped in after the scan, not through a DB row edited with sqlite3. And
//! no directory named by the DB is deleted unless musicfs made it.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use musicfs_scan::ScanConfig;
use musicfs_tests::{MountedLibrary, eventually, walk_relative};

const SECRET: &[u8] = b"root:$y$SECRET-HASH:19000:0:99999:7:::\n";

/// Every file of the mount whose bytes contain the secret.
fn leaks(mnt: &Path) -> Vec<String> {
    walk_relative(mnt)
        .into_iter()
        .filter(|(rel, is_dir)| !is_dir && !rel.starts_with(".search"))
        .filter(|(rel, _)| {
            std::fs::read(mnt.join(rel))
                .map(|b| b.windows(SECRET.len()).any(|w| w == SECRET))
                .unwrap_or(false)
        })
        .map(|(rel, _)| rel)
        .collect()
}

fn scan_errors(lib: &MountedLibrary) -> Vec<(String, String)> {
    let conn = lib.conn();
    let mut stmt = conn
        .prepare("SELECT CAST(abs_path AS TEXT), scan_error FROM scan_errors")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn file_rows_named(lib: &MountedLibrary, name: &str) -> i64 {
    lib.conn()
        .query_row("SELECT count(*) FROM files WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn a_symlink_out_of_the_library_is_skipped_and_reported() {
    let lib = MountedLibrary::new(6, 11);
    let secret = lib.dir.path().join("shadow");
    std::fs::write(&secret, SECRET).unwrap();
    symlink(&secret, lib.root.join("evil.flac")).unwrap();
    symlink("../shadow", lib.root.join("evil2.mp3")).unwrap();
    let s = lib.scan();
    assert_eq!(s.added, 0, "{s:?}");
    assert_eq!(file_rows_named(&lib, "evil.flac"), 0);
    assert_eq!(file_rows_named(&lib, "evil2.mp3"), 0);
    let errors = scan_errors(&lib);
    for name in ["evil.flac", "evil2.mp3"] {
        let (_, reason) = errors
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in scan_errors: {errors:?}"));
        assert!(reason.contains("outside every music folder"), "{reason}");
        assert!(reason.contains(secret.to_str().unwrap()), "{reason}");
    }
    assert_eq!(leaks(&lib.mnt), Vec::<String>::new());
    assert!(
        musicfs_db::check_consistency(&lib.conn())
            .unwrap()
            .is_empty()
    );

    // Removing the link removes its report.
    std::fs::remove_file(lib.root.join("evil.flac")).unwrap();
    lib.scan();
    let errors = scan_errors(&lib);
    assert!(
        !errors.iter().any(|(p, _)| p.ends_with("evil.flac")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|(p, _)| p.ends_with("evil2.mp3")));
}

#[test]
fn symlinks_within_and_between_music_folders_keep_working() {
    let lib = MountedLibrary::new(4, 12);
    // A second music folder, with one album linked into the first.
    let other = lib.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let real = other.join("linked.flac");
    std::fs::copy(&lib.files[0].path, &real).unwrap();
    symlink(&real, lib.root.join("linked.flac")).unwrap();
    let inner = lib.files[1].path.strip_prefix(&lib.root).unwrap();
    symlink(inner, lib.root.join("same-root.flac")).unwrap();
    let cfg = ScanConfig::new(&lib.db, vec![lib.root.clone(), other.clone()]);
    musicfs_scan::scan(&cfg).unwrap();
    assert_eq!(
        file_rows_named(&lib, "linked.flac"),
        2,
        "the link and its target"
    );
    assert_eq!(file_rows_named(&lib, "same-root.flac"), 1);
    // Each served with the bytes it points at.
    let conn = lib.conn();
    let mut stmt = conn
        .prepare(
            "SELECT vpath, abs_path FROM tracks \
             WHERE abs_path LIKE '%/linked.flac' OR abs_path LIKE '%/same-root.flac'",
        )
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (vpath, abs) in rows {
        let mnt_path = lib.mnt.join(&vpath);
        assert!(
            eventually(std::time::Duration::from_secs(5), || mnt_path.exists()).is_some(),
            "{vpath} not visible"
        );
        assert_eq!(
            std::fs::read(&mnt_path).unwrap(),
            std::fs::read(&abs).unwrap(),
            "{vpath}"
        );
    }
}

/// The backing path of a file as (virtual path, absolute backing path, size).
fn one_file(lib: &MountedLibrary) -> (PathBuf, PathBuf, u64) {
    let (vpath, abs) = lib.placements().into_iter().next().unwrap();
    let abs = PathBuf::from(String::from_utf8(abs).unwrap());
    let size = std::fs::metadata(&abs).unwrap().len();
    (lib.mnt.join(vpath), abs, size)
}

/// A secret file of exactly `size` bytes (so the size check cannot be what stops it).
fn sized_secret(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("secret.bin");
    let mut bytes = SECRET.repeat(size as usize / SECRET.len() + 1);
    bytes.truncate(size as usize);
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_symlink_swapped_in_after_the_scan_is_not_followed_out() {
    let lib = MountedLibrary::new(3, 13);
    let (mnt_path, abs, size) = one_file(&lib);
    let secret = sized_secret(lib.dir.path(), size);
    std::fs::remove_file(&abs).unwrap();
    symlink(&secret, &abs).unwrap();
    let err = std::fs::read(&mnt_path).expect_err("served the target of a swapped-in symlink");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}

#[test]
fn an_edited_row_cannot_name_a_file_outside() {
    let lib = MountedLibrary::new(3, 14);
    let (mnt_path, _, size) = one_file(&lib);
    let secret = sized_secret(lib.dir.path(), size);
    let conn = lib.conn();
    let file_id: i64 = conn
        .query_row(
            "SELECT id FROM tracks WHERE vpath = ?1",
            [mnt_path.strip_prefix(&lib.mnt).unwrap().to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    for name in [
        "../secret.bin".to_owned(),
        "../../secret.bin".to_owned(),
        secret.to_str().unwrap().to_owned(),
    ] {
        conn.execute(
            "UPDATE files SET name = ?1, \
             folder_id = (SELECT id FROM folders WHERE path = '') WHERE id = ?2",
            rusqlite::params![name, file_id],
        )
        .unwrap();
        let got = std::fs::read(&mnt_path);
        assert!(
            !got.as_ref().is_ok_and(|b| b.starts_with(&SECRET[..8])),
            "row name {name:?} served a file outside the library"
        );
        assert!(got.is_err(), "{name}: {got:?}");
    }
}

#[test]
fn external_symlinks_only_by_explicit_choice() {
    let lib = MountedLibrary::new(2, 15);
    let secret = lib.dir.path().join("shared.flac");
    std::fs::copy(&lib.files[0].path, &secret).unwrap();
    symlink(&secret, lib.root.join("external.flac")).unwrap();
    let mut cfg = ScanConfig::new(&lib.db, vec![lib.root.clone()]);
    cfg.follow_external_symlinks = true;
    musicfs_scan::scan(&cfg).unwrap();
    assert_eq!(file_rows_named(&lib, "external.flac"), 1);
    let vpath: String = lib
        .conn()
        .query_row(
            "SELECT vpath FROM tracks WHERE abs_path LIKE '%/external.flac'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let path = lib.mnt.join(vpath);
    assert!(eventually(std::time::Duration::from_secs(5), || path.exists()).is_some());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&secret).unwrap()
    );

    // A plain scan takes the choice back: the link goes, and is reported.
    lib.scan();
    assert_eq!(file_rows_named(&lib, "external.flac"), 0);
    assert!(
        scan_errors(&lib)
            .iter()
            .any(|(p, _)| p.ends_with("external.flac"))
    );
}

#[test]
fn a_search_index_path_from_the_db_is_never_deleted_unless_ours() {
    let lib = MountedLibrary::new(3, 16);
    let precious = lib.dir.path().join("precious");
    std::fs::create_dir_all(precious.join("sub")).unwrap();
    std::fs::write(precious.join("sub/thesis.txt"), "years of work").unwrap();
    lib.conn()
        .execute(
            "UPDATE settings SET value = ?1 WHERE key = 'search_index'",
            [precious.to_str().unwrap()],
        )
        .unwrap();
    // The index there is not trusted (no stamp): the scan wants to rebuild it, and must not.
    let summary = lib.scan();
    assert_eq!(summary.errors, 0);
    assert_eq!(
        std::fs::read_to_string(precious.join("sub/thesis.txt")).unwrap(),
        "years of work"
    );
    assert_eq!(std::fs::read_dir(&precious).unwrap().count(), 1);
}
