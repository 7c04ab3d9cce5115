//! The origin layer against real servers on loopback: the same library read through a local
//! folder, SFTP (OpenSSH's sshd) and S3 (moto) lists, stats and reads the same.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use musicfs_origin::{Origin, OriginError, OriginUrl, SftpOrigin};
use musicfs_tests::{another_host_key, files_below, s3_server, ssh_server};
use musicfs_tools::proxy::FaultProxy;

fn open(url: &str) -> Arc<dyn Origin> {
    musicfs_origin::open(&OriginUrl::parse(url).unwrap()).unwrap()
}

/// Every file below `rel`, walked through the origin: (relative path, size).
fn walk(origin: &dyn Origin, rel: &[u8], out: &mut Vec<(Vec<u8>, u64)>) {
    for entry in origin.list(rel).unwrap() {
        let path = musicfs_origin::join(rel, &entry.name);
        if entry.is_dir {
            walk(origin, &path, out);
        } else {
            out.push((path, entry.meta.size));
        }
    }
}

/// Every file below `root`: (relative path bytes, size), sorted.
fn local_files(root: &Path) -> Vec<(Vec<u8>, u64)> {
    let mut local: Vec<(Vec<u8>, u64)> = files_below(root)
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap();
            (
                rel.as_os_str().as_bytes().to_vec(),
                std::fs::metadata(p).unwrap().len(),
            )
        })
        .collect();
    local.sort();
    local
}

/// The origin shows exactly the files `expected` of `root`, with their sizes and bytes
/// (whole, and a range in the middle).
fn assert_same_as_local(origin: &dyn Origin, root: &Path, expected: &[(Vec<u8>, u64)]) {
    let mut listed = Vec::new();
    walk(origin, b"", &mut listed);
    listed.sort();
    assert_eq!(listed.len(), expected.len(), "file count");
    for (got, want) in listed.iter().zip(expected) {
        assert_eq!(
            got,
            want,
            "{} vs {}",
            String::from_utf8_lossy(&got.0),
            String::from_utf8_lossy(&want.0)
        );
    }
    for (rel, size) in expected.iter().take(5) {
        let bytes = std::fs::read(root.join(std::ffi::OsStr::from_bytes(rel))).unwrap();
        assert_eq!(origin.stat(rel).unwrap().size, *size);
        assert_eq!(origin.read_at(rel, 0, *size as usize + 10).unwrap(), bytes);
        let mid = (*size / 3) as usize;
        assert_eq!(
            origin.read_at(rel, mid as u64, 1000).unwrap(),
            bytes[mid..(mid + 1000).min(bytes.len())]
        );
        assert!(origin.read_at(rel, *size + 5, 10).unwrap().is_empty());
    }
    let missing = origin.stat(b"no/such/file.flac").unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(origin.check().is_ok());
    assert!(origin.bytes_fetched() > 0);
}

fn library(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("music");
    musicfs_tools::generate_library(&root, 40, 7).unwrap();
    root
}

#[test]
fn sftp_origin_serves_the_library_and_checks_host_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path());
    let Some(server) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let origin = open(&server.url(&root));
    assert_same_as_local(origin.as_ref(), &root, &local_files(&root));

    // A host whose key is not in known_hosts is refused, OpenSSH's way.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let url = format!(
        "sftp://127.0.0.1:{}{}?identity_file={}&known_hosts={}",
        server.port,
        root.display(),
        server.identity_file.display(),
        empty.display()
    );
    let err = open(&url).list(b"").unwrap_err();
    assert!(matches!(err, OriginError::HostKey { .. }), "{err}");
    assert!(
        err.to_string().contains("Host key verification failed"),
        "{err}"
    );
    assert!(
        err.to_string().contains("No ED25519 host key is known"),
        "{err}"
    );

    // A changed key (another server's) is refused with the warning.
    let other = dir.path().join("other_host");
    let key = another_host_key(&other);
    let changed = dir.path().join("changed_known_hosts");
    std::fs::write(&changed, format!("[127.0.0.1]:{} {}\n", server.port, key)).unwrap();
    let err = open(&url.replace(empty.to_str().unwrap(), changed.to_str().unwrap()))
        .list(b"")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );

    // A key the server does not accept is an authentication failure, not a hang.
    let stranger = dir.path().join("stranger");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    let url = server.url(&root).replace(
        server.identity_file.to_str().unwrap(),
        stranger.to_str().unwrap(),
    );
    let err = open(&url).list(b"").unwrap_err();
    assert!(matches!(err, OriginError::Auth { .. }), "{err}");
}

#[test]
fn sftp_origin_reports_a_dead_server_as_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path());
    let Some(mut server) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let url = format!("{}&timeout_ms=2000", server.url(&root));
    server.kill();
    let err = open(&url).list(b"").unwrap_err();
    assert!(err.is_origin_down(), "{err}");
}

/// One call of an origin, for a test to make after each fault.
type Call<'a> = dyn Fn() -> Result<(), OriginError> + 'a;

/// A pooled SFTP session whose connection died while it sat idle (cut, as by a NAT that
/// forgot it or a server restart) costs one retry on a new login, never an error, on every
/// kind of call; and a session idle past the idle limit is not reused at all.
#[test]
fn dead_or_long_idle_sftp_sessions_are_replaced_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path());
    let Some(server) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let proxy = FaultProxy::start(server.port).unwrap();
    let url = OriginUrl::parse(&server.url_via(&root, proxy.port)).unwrap();
    let files = local_files(&root);
    let (rel, size) = &files[0];
    let bytes = std::fs::read(root.join(std::ffi::OsStr::from_bytes(rel))).unwrap();
    let len = *size as usize + 10;

    let origin = SftpOrigin::new(url.clone()).unwrap();
    assert_eq!(origin.read_at(rel, 0, len).unwrap(), bytes);
    assert_eq!(proxy.connections(), 1);
    let calls: [(&str, &Call); 5] = [
        ("read", &|| {
            assert_eq!(origin.read_at(rel, 0, len)?, bytes);
            Ok(())
        }),
        ("open", &|| {
            let mut file = origin.open(rel)?.expect("SFTP opens files");
            assert_eq!(file.read_at(0, len)?, bytes);
            Ok(())
        }),
        ("stat", &|| {
            assert_eq!(origin.stat(rel)?.size, *size);
            Ok(())
        }),
        ("list", &|| {
            assert!(!origin.list(b"")?.is_empty());
            Ok(())
        }),
        ("check", &|| origin.check().map(|_| ())),
    ];
    for (what, call) in calls {
        let before = proxy.connections();
        proxy.reset_all();
        call().unwrap_or_else(|e| panic!("{what} after the connection died: {e}"));
        assert_eq!(proxy.connections(), before + 1, "{what}: one new login");
    }

    let origin = SftpOrigin::new(url)
        .unwrap()
        .with_idle_limit(std::time::Duration::from_millis(300));
    let before = proxy.connections();
    origin.stat(rel).unwrap();
    origin.stat(rel).unwrap();
    assert_eq!(proxy.connections(), before + 1, "reused while fresh");
    std::thread::sleep(std::time::Duration::from_millis(500));
    origin.stat(rel).unwrap();
    assert_eq!(
        proxy.connections(),
        before + 2,
        "replaced once idle too long"
    );
}

#[test]
fn s3_origin_serves_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path());
    let Some(server) = s3_server() else {
        return;
    };
    let uploaded = server.upload("music", "lib/rock", &root).unwrap();
    let expected: Vec<(Vec<u8>, u64)> = local_files(&root)
        .into_iter()
        .filter(|(rel, _)| uploaded.iter().any(|u| u.as_bytes() == rel.as_slice()))
        .collect();
    assert!(expected.len() > 30, "most names are valid keys");
    // SAFETY: set before any thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test-secret");
    }
    let origin = open(&server.url("music", "lib/rock"));
    assert_same_as_local(origin.as_ref(), &root, &expected);
    let listed = origin.list(b"").unwrap();
    assert!(listed.iter().all(|e| e.is_dir || e.meta.etag.is_some()));

    // An empty prefix answers, and says it is empty.
    assert!(!open(&server.url("music", "lib/jazz")).stat_root().unwrap());
    // A dead server is unreachable, quickly.
    let port = server.port;
    drop(server);
    let err = open(&format!(
        "s3://music/lib/rock?endpoint=http://127.0.0.1:{port}"
    ))
    .list(b"")
    .unwrap_err();
    assert!(err.is_origin_down(), "{err}");
}
