//! Remote origins end to end: a library served from SFTP (sshd) and S3 (moto) scans into the
//! same tree as the local copy, mounts and serves the same bytes; rescans read nothing that did
//! not change; an unreachable origin deletes nothing; tag reads fetch a small part of big files.

use std::path::{Path, PathBuf};

use musicfs_origin::OriginUrl;
use musicfs_scan::{ScanConfig, ScanError, Summary};
use musicfs_tests::{
    another_host_key, aws_credentials, files_below, keyable_library, s3_server, ssh_server,
    walk_relative,
};
use musicfs_tools::proxy::FaultProxy;

/// Sets test credentials for the S3 server (moto accepts any) once per process.
fn library(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("music");
    keyable_library(&root, n, 11, &musicfs_tools::Format::ALL);
    root
}

fn scan_remote(db: &Path, url: &str) -> Result<Summary, ScanError> {
    let mut cfg = ScanConfig::new(db, Vec::new());
    cfg.remotes = vec![OriginUrl::parse(url).unwrap()];
    musicfs_scan::scan(&cfg)
}

fn count_files(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap()
}

/// (path, is a folder) of every entry, and (path, bytes) of every file.
type View = (Vec<(String, bool)>, Vec<(String, Vec<u8>)>);

/// Mounts `db` on `mnt`, returns the virtual tree and the bytes of every file read through it.
fn mounted_view(db: &Path, mnt: &Path) -> View {
    std::fs::create_dir_all(mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(db, mnt)).unwrap();
    let mut tree = walk_relative(mnt);
    tree.retain(|(p, _)| !p.starts_with(".search"));
    tree.sort();
    let mut contents = Vec::new();
    for (path, is_dir) in &tree {
        if !is_dir {
            let bytes = std::fs::read(mnt.join(path))
                .unwrap_or_else(|e| panic!("{path}: read through the mount: {e}"));
            contents.push((path.clone(), bytes));
        }
    }
    mounted.unmount().unwrap();
    (tree, contents)
}

#[test]
fn local_sftp_and_s3_copies_give_the_same_tree_and_bytes() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 40);
    let Some(sshd) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let Some(s3) = s3_server() else {
        return;
    };
    s3.upload("music", "library", &root).unwrap();

    let local_db = dir.path().join("local.db");
    musicfs_scan::scan(&ScanConfig::new(&local_db, vec![root.clone()])).unwrap();
    let sftp_db = dir.path().join("sftp.db");
    let sftp = scan_remote(&sftp_db, &sshd.url(&root)).unwrap();
    let s3_db = dir.path().join("s3.db");
    let s3_summary = scan_remote(&s3_db, &s3.url("music", "library")).unwrap();
    let n = files_below(&root).len() as u64;
    assert_eq!(sftp.added, n, "{sftp:?}");
    assert_eq!(s3_summary.added, n, "{s3_summary:?}");
    assert_eq!(sftp.errors + s3_summary.errors, 0);

    let (local_tree, local_bytes) = mounted_view(&local_db, &dir.path().join("mnt-local"));
    let (sftp_tree, sftp_bytes) = mounted_view(&sftp_db, &dir.path().join("mnt-sftp"));
    let (s3_tree, s3_bytes) = mounted_view(&s3_db, &dir.path().join("mnt-s3"));
    assert!(local_tree.len() > n as usize);
    assert_eq!(
        sftp_tree, local_tree,
        "SFTP tree differs from the local one"
    );
    assert_eq!(s3_tree, local_tree, "S3 tree differs from the local one");
    for ((path, want), ((_, from_sftp), (_, from_s3))) in
        local_bytes.iter().zip(sftp_bytes.iter().zip(&s3_bytes))
    {
        assert!(from_sftp == want, "{path}: SFTP bytes differ");
        assert!(from_s3 == want, "{path}: S3 bytes differ");
    }

    // The origins are recorded by URL and kind, with no credential anywhere in the DB.
    let conn = rusqlite::Connection::open(&s3_db).unwrap();
    let (root_url, kind): (String, String) = conn
        .query_row("SELECT root, kind FROM origins", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(root_url.starts_with("s3://music/library"), "{root_url}");
    assert_eq!(kind, "s3");
    drop(conn);
    let db_bytes = std::fs::read(&s3_db).unwrap();
    assert!(!contains(&db_bytes, b"musicfs-test-secret"));
}

#[test]
fn sftp_serves_names_that_are_not_utf8_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    musicfs_tools::generate_library_with(
        &root,
        80,
        3,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    )
    .unwrap();
    let odd = files_below(&root)
        .iter()
        .filter(|p| std::str::from_utf8(p.as_os_str().as_encoded_bytes()).is_err())
        .count();
    assert!(
        odd > 0,
        "the generated library has no name that is not UTF-8"
    );
    let Some(sshd) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let local_db = dir.path().join("local.db");
    musicfs_scan::scan(&ScanConfig::new(&local_db, vec![root.clone()])).unwrap();
    let sftp_db = dir.path().join("sftp.db");
    let sftp = scan_remote(&sftp_db, &sshd.url(&root)).unwrap();
    assert_eq!(sftp.errors, 0, "{sftp:?}");
    let (local_tree, local_bytes) = mounted_view(&local_db, &dir.path().join("mnt-local"));
    let (sftp_tree, sftp_bytes) = mounted_view(&sftp_db, &dir.path().join("mnt-sftp"));
    assert_eq!(sftp_tree, local_tree);
    for ((path, want), (_, got)) in local_bytes.iter().zip(&sftp_bytes) {
        assert!(got == want, "{path}: SFTP bytes differ");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn remote_rescans_read_only_what_changed() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 30);
    let Some(s3) = s3_server() else {
        return;
    };
    s3.upload("music", "", &root).unwrap();
    let url = s3.url("music", "");
    let db = dir.path().join("s3.db");
    let first = scan_remote(&db, &url).unwrap();
    assert!(first.added > 20 && first.bytes_fetched > 0, "{first:?}");

    let again = scan_remote(&db, &url).unwrap();
    assert_eq!(
        (again.added, again.changed, again.removed),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.unchanged, first.added);
    assert_eq!(again.bytes_fetched, 0, "an unchanged object is not read");

    // Rewrite one object with new content (new ETag), add one, delete one.
    let files = files_below(&root);
    let changed = &files[0];
    let mut bytes = std::fs::read(changed).unwrap();
    bytes.extend_from_slice(b"trailing bytes");
    std::fs::write(changed, &bytes).unwrap();
    let removed = &files[1];
    std::fs::remove_file(removed).unwrap();
    std::fs::copy(&files[2], root.join("added.flac")).unwrap();
    s3.upload("music", "", &root).unwrap();
    s3.delete(
        "music",
        removed.strip_prefix(&root).unwrap().to_str().unwrap(),
    )
    .unwrap();
    let third = scan_remote(&db, &url).unwrap();
    // Re-uploading identical bytes keeps the ETag (content-derived): those are unchanged.
    assert_eq!(
        (third.added, third.changed, third.removed),
        (1, 1, 1),
        "{third:?}"
    );
}

#[test]
fn an_unreachable_or_empty_remote_origin_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 20);
    let Some(mut sshd) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let url = format!("{}&timeout_ms=3000", sshd.url(&root));
    let db = dir.path().join("sftp.db");
    let first = scan_remote(&db, &url).unwrap();
    let stored = count_files(&db);
    assert_eq!(stored as u64, first.added);

    sshd.kill();
    let err = scan_remote(&db, &url).unwrap_err();
    assert!(matches!(err, ScanError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    assert_eq!(count_files(&db), stored);

    // Back, but the folder is empty (a share not mounted on the server): refused too.
    sshd.restart().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let moved = dir.path().join("moved-away");
    std::fs::rename(&root, &moved).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let err = scan_remote(&db, &url).unwrap_err();
    assert!(err.to_string().contains("answers empty"), "{err}");
    assert_eq!(count_files(&db), stored);

    // A changed host key stops the scan with OpenSSH's warning, before anything is changed.
    std::fs::remove_dir(&root).unwrap();
    std::fs::rename(&moved, &root).unwrap();
    let other = dir.path().join("other_host_key");
    let key = another_host_key(&other);
    std::fs::write(
        &sshd.known_hosts,
        format!("[127.0.0.1]:{} {}\n", sshd.port, key),
    )
    .unwrap();
    let err = scan_remote(&db, &url).unwrap_err();
    assert!(
        err.to_string()
            .contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
    assert_eq!(count_files(&db), stored);
}

#[test]
fn tag_reads_of_big_remote_files_fetch_a_small_part() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let files = musicfs_tools::generate_library_with(
        &root,
        24,
        5,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    )
    .unwrap();
    // Real tracks are megabytes of audio after the tags: pad each file to about 3 MB.
    for f in &files {
        musicfs_tools::pad_audio(&f.path, f.format, 3 << 20).unwrap();
    }
    let Some(s3) = s3_server() else {
        return;
    };
    let Some(sshd) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let uploaded = s3.upload("big", "", &root).unwrap();
    let titled_uploaded = files
        .iter()
        .filter(|f| {
            let rel = f.path.strip_prefix(&root).unwrap();
            uploaded.iter().any(|u| Path::new(u) == rel)
        })
        .filter(|f| f.track.title.is_some())
        .count();
    let total: u64 = uploaded
        .iter()
        .map(|u| std::fs::metadata(root.join(u)).unwrap().len())
        .sum();
    // Only the S3 copy's files (keys) are compared: the SFTP copy holds the same ones.
    for f in &files {
        let rel = f.path.strip_prefix(&root).unwrap();
        if !uploaded.iter().any(|u| Path::new(u) == rel) {
            std::fs::remove_file(&f.path).unwrap();
        }
    }
    // Bytes are counted on the wire (a proxy before each server), not as the client reports
    // them: read-ahead a client asks for and throws away costs the same as bytes it keeps.
    let s3_proxy = FaultProxy::start(s3.port).unwrap();
    let ssh_proxy = FaultProxy::start(sshd.port).unwrap();
    let urls = [
        ("s3", s3.url_via("big", "", s3_proxy.port), &s3_proxy),
        ("sftp", sshd.url_via(&root, ssh_proxy.port), &ssh_proxy),
    ];
    for (kind, url, proxy) in urls {
        let db = dir.path().join(format!("{kind}.db"));
        let summary = scan_remote(&db, &url).unwrap();
        assert_eq!(summary.added as usize, uploaded.len(), "{kind}");
        let (wire, _) = proxy.bytes();
        for (what, bytes) in [("fetched", summary.bytes_fetched), ("on the wire", wire)] {
            let share = bytes as f64 / total as f64;
            assert!(
                share < 0.05,
                "{kind}: tag reads {what}: {bytes} of {total} bytes ({:.1} %)",
                share * 100.0
            );
        }
        // And the tags were read (not just names): titles are in the DB.
        let titled: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM files WHERE title IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(titled as usize, titled_uploaded, "{kind}");
    }
}
