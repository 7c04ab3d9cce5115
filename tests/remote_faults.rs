//! Remote origins under network faults, through the in-repo fault proxy: a black-holed server
//! fails reads after the mount's deadline and never blocks listings; a connection cut mid-scan
//! stops the scan without removing anything, and the next scan resumes without reading again
//! what was committed; a server gone silent stops a scan within two call timeouts; an SFTP
//! server refusing extra logins is still scanned whole.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musicfs_origin::OriginUrl;
use musicfs_scan::ScanConfig;
use musicfs_tests::{aws_credentials, file_count, files_below, s3_server, try_file_count};
use musicfs_tools::proxy::FaultProxy;

fn library(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("music");
    musicfs_tools::generate_library_with(
        &root,
        n,
        3,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    )
    .unwrap();
    root
}

fn remote_cfg(db: &Path, url: &str) -> ScanConfig {
    let mut cfg = ScanConfig::new(db, Vec::new());
    cfg.remotes = vec![OriginUrl::parse(url).unwrap()];
    cfg
}

/// Scans `url` into `db` (4 files in flight, a commit every 50 ms) and cuts the network
/// through `proxy` once 20 files are committed: a black hole, and with `reset` every
/// connection reset too (without, the server just goes silent). Returns the scan's outcome
/// and how long it took to give up after the cut.
fn scan_cut_off(
    db: &Path,
    url: &str,
    proxy: &FaultProxy,
    reset: bool,
) -> (
    Result<musicfs_scan::Summary, musicfs_scan::ScanError>,
    Duration,
) {
    let mut cfg = remote_cfg(db, url);
    cfg.remote_parallel = 4;
    cfg.batch_time = Duration::from_millis(50);
    let scan = std::thread::spawn(move || musicfs_scan::scan(&cfg));
    let started = Instant::now();
    while try_file_count(db).unwrap_or(0) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the scan made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.set_blackhole(true);
    if reset {
        proxy.reset_all();
    }
    let cut = Instant::now();
    let outcome = scan.join().unwrap();
    (outcome, cut.elapsed())
}

/// The network is back: the next scan of `url` reads only what the cut-off one did not
/// commit (`kept` of `total`), and removes nothing.
fn resumes(db: &Path, url: &str, proxy: &FaultProxy, kept: u64, total: u64) {
    proxy.set_blackhole(false);
    proxy.reset_all();
    let summary = musicfs_scan::scan(&remote_cfg(db, url)).unwrap();
    assert_eq!(summary.unchanged, kept, "{summary:?}");
    assert_eq!(summary.added + summary.changed, total - kept, "{summary:?}");
    assert_eq!(summary.removed, 0);
    assert_eq!(summary.errors, 0);
    assert_eq!(file_count(db), total);
}

#[test]
fn a_black_holed_server_fails_reads_at_the_deadline_and_never_blocks_listings() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 12);
    let Some(s3) = s3_server() else {
        return;
    };
    s3.upload("music", "", &root).unwrap();
    let proxy = FaultProxy::start(s3.port).unwrap();
    let url = format!(
        "s3://music?endpoint=http://127.0.0.1:{}&timeout_ms=20000",
        proxy.port
    );
    let db = dir.path().join("s3.db");
    musicfs_scan::scan(&remote_cfg(&db, &url)).unwrap();

    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut cfg = musicfs_fs::MountConfig::new(&db, &mnt);
    cfg.io_timeout = Duration::from_secs(2);
    let mounted = musicfs_fs::mount(cfg).unwrap();
    let files: Vec<PathBuf> = musicfs_tests::walk_relative(&mnt)
        .into_iter()
        .filter(|(p, is_dir)| !is_dir && !p.starts_with(".search"))
        .map(|(p, _)| mnt.join(p))
        .collect();
    assert!(files.len() >= 10);
    let first = std::fs::read(&files[0]).unwrap();
    assert!(!first.is_empty());

    proxy.set_blackhole(true);
    let reader = {
        let file = files[1].clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (std::fs::read(&file), started.elapsed())
        })
    };
    // While the read waits on the dead server, the tree still answers at once.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let listed = musicfs_tests::walk_relative(&mnt).len();
    assert!(listed > files.len());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "listing took {:?} while a read hung",
        started.elapsed()
    );
    let (outcome, took) = reader.join().unwrap();
    let err = outcome.expect_err("a read from a black hole must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        took < Duration::from_secs(8),
        "the read failed after {took:?}"
    );

    // The server comes back: reads work again, no remount.
    proxy.set_blackhole(false);
    proxy.reset_all();
    let again = std::fs::read(&files[2]).unwrap();
    assert!(!again.is_empty());
    mounted.unmount().unwrap();
}

#[test]
fn a_scan_cut_off_by_the_network_keeps_what_it_read_and_the_next_one_resumes() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 200);
    let Some(s3) = s3_server() else {
        return;
    };
    let uploaded = s3.upload("music", "", &root).unwrap().len() as u64;
    assert!(uploaded <= files_below(&root).len() as u64);
    let proxy = FaultProxy::start(s3.port).unwrap();
    proxy.set_delay(Duration::from_millis(5));
    let url = format!("{}&timeout_ms=1500", s3.url_via("music", "", proxy.port));
    let db = dir.path().join("s3.db");
    let (outcome, _) = scan_cut_off(&db, &url, &proxy, true);
    let kept = file_count(&db);
    assert!(kept >= 20 && kept < uploaded, "kept {kept} of {uploaded}");
    let err = outcome.expect_err("a scan that lost its origin must say so");
    assert!(err.to_string().contains("stopped answering"), "{err}");
    resumes(&db, &url, &proxy, kept, uploaded);
}

/// A server gone silent (a black hole, no reset: every call waits out its timeout, and on
/// SFTP closes sent without waiting are left unanswered) stops the scan after the call in
/// flight times out and one probe of the root confirms: two timeouts of 1.5 s. (SFTP took
/// 20 s when broken sessions were freed under the pool's lock, each waiting out its close,
/// and logins that timed out were retried as if merely refused.)
fn a_silent_server_stops_the_scan_soon(db: &Path, url: &str, proxy: &FaultProxy, total: u64) {
    let (outcome, gave_up) = scan_cut_off(db, url, proxy, false);
    assert!(
        gave_up < Duration::from_secs(6),
        "the scan took {gave_up:?} to give up on a silent server"
    );
    let kept = file_count(db);
    assert!(kept >= 20 && kept < total, "kept {kept} of {total}");
    let err = outcome.expect_err("a scan that lost its origin must say so");
    assert!(err.to_string().contains("stopped answering"), "{err}");
    resumes(db, url, proxy, kept, total);
}

#[test]
fn an_sftp_scan_whose_server_goes_silent_stops_soon_and_the_next_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 200);
    let Some(sshd) = musicfs_tests::ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let proxy = FaultProxy::start(sshd.port).unwrap();
    proxy.set_delay(Duration::from_millis(5));
    let url = format!("{}&timeout_ms=1500", sshd.url_via(&root, proxy.port));
    let total = files_below(&root).len() as u64;
    a_silent_server_stops_the_scan_soon(&dir.path().join("sftp.db"), &url, &proxy, total);
}

#[test]
fn an_s3_scan_whose_server_goes_silent_stops_soon_and_the_next_one_resumes() {
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 200);
    let Some(s3) = s3_server() else {
        return;
    };
    let uploaded = s3.upload("music", "", &root).unwrap().len() as u64;
    let proxy = FaultProxy::start(s3.port).unwrap();
    proxy.set_delay(Duration::from_millis(5));
    let url = format!("{}&timeout_ms=1500", s3.url_via("music", "", proxy.port));
    a_silent_server_stops_the_scan_soon(&dir.path().join("s3.db"), &url, &proxy, uploaded);
}

#[test]
fn a_server_refusing_extra_logins_is_scanned_with_the_sessions_it_allows() {
    let dir = tempfile::tempdir().unwrap();
    let root = library(dir.path(), 80);
    let expected = files_below(&root).len() as u64;
    // Two logins at a time, as a strict shared host might allow: the scan's pool grows while
    // files wait (latency keeps every session busy), so most of its extra logins are refused.
    let Some(sshd) = musicfs_tests::ssh_server_with(&dir.path().join("sshd"), "MaxStartups 2")
    else {
        return;
    };
    let proxy = FaultProxy::start(sshd.port).unwrap();
    proxy.set_delay(Duration::from_millis(5));
    let db = dir.path().join("sftp.db");
    let scanned = musicfs_scan::scan(&remote_cfg(&db, &sshd.url_via(&root, proxy.port)));
    let log = std::fs::read_to_string(sshd.dir.join("sshd.log")).unwrap();
    let summary = scanned.unwrap_or_else(|err| {
        panic!("refused extra logins must not stop the scan: {err}\nsshd's log:\n{log}")
    });
    assert_eq!(summary.added, expected);
    // No file failed either; the library has names that are not UTF-8, which must reach the
    // server byte for byte.
    assert_eq!(summary.errors, 0);
    assert!(
        log.contains("MaxStartups"),
        "the server never refused a login, so this tested nothing:\n{log}"
    );
}
