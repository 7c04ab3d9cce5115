//! The read path and failover against scripted origins: in-process, no mount, no root.

use std::sync::Arc;
use std::time::{Duration, Instant};

use musicfs_origin::scripted::{Fault, ScriptedOrigin};
use musicfs_origin::{Mirror, MirrorSet, Origin};

use super::file::FIRST_WINDOW;
use super::{OpenFailure, RemoteFile};

fn content(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

fn set(origins: &[&Arc<ScriptedOrigin>], timeout: Duration) -> Arc<MirrorSet> {
    let mirrors = origins
        .iter()
        .enumerate()
        .map(|(i, o)| Mirror::new((*o).clone() as Arc<dyn Origin>, i as u32 + 1))
        .collect();
    Arc::new(MirrorSet::new(mirrors, timeout))
}

/// `rel` of `set`, which must open (its size as the DB would know it: `size`).
fn opened(set: Arc<MirrorSet>, rel: &[u8], size: usize) -> RemoteFile {
    match RemoteFile::open(set, rel.to_vec(), size as u64, None, None) {
        Ok(file) => file,
        Err(_) => panic!("{} did not open", String::from_utf8_lossy(rel)),
    }
}

fn read_all(file: &RemoteFile, size: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < size {
        let got = file.read(out.len() as u64, chunk).unwrap();
        assert!(!got.is_empty());
        out.extend_from_slice(&got);
    }
    out
}

#[test]
fn a_sequential_read_fetches_few_growing_windows_and_a_seek_starts_small() {
    let origin = Arc::new(ScriptedOrigin::new("one"));
    let bytes = content(20 << 20, 0);
    origin.put(b"a/song.flac", bytes.clone());
    let file = opened(
        set(&[&origin], Duration::from_secs(5)),
        b"a/song.flac",
        bytes.len(),
    );
    let before = origin.calls();
    assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
    // 256K, 512K, 1M, 2M, 4M, then 8M windows: 20 MiB in 7 fetches, not 160.
    let fetches = origin.calls() - before;
    assert!(fetches <= 8, "{fetches} fetches for a sequential read");
    // A seek fetches one small window.
    let fetched = origin.bytes_fetched();
    file.read(1 << 20, 4096).unwrap();
    assert_eq!(origin.bytes_fetched() - fetched, FIRST_WINDOW as u64);
    // The window answers without the origin (the FUSE-thread fast path).
    let mut buf = Vec::new();
    assert!(file.read_cached((1 << 20) + 4096, 4096, &mut buf).is_some());
    assert_eq!(buf, bytes[(1 << 20) + 4096..(1 << 20) + 8192]);
}

#[test]
fn a_read_spanning_windows_is_whole_not_short() {
    let origin = Arc::new(ScriptedOrigin::new("one"));
    let bytes = content(6 << 20, 3);
    origin.put(b"x.flac", bytes.clone());
    let file = opened(
        set(&[&origin], Duration::from_secs(5)),
        b"x.flac",
        bytes.len(),
    );
    // The kernel's pattern that found it: a sequential start (the next window is then
    // prefetched), and a 1 MiB read from inside that window running past its end.
    file.read(0, 4096).unwrap();
    file.read(FIRST_WINDOW as u64, 4096).unwrap();
    let ahead_start = (FIRST_WINDOW * 3) as u64;
    for offset in [ahead_start + 100_000, 3 << 20, (6 << 20) - 1000] {
        let want = (1usize << 20).min(bytes.len() - offset as usize);
        let got = file.read(offset, 1 << 20).unwrap();
        assert_eq!(got.len(), want, "short read at {offset}");
        assert_eq!(got, bytes[offset as usize..offset as usize + want]);
    }
}

#[test]
fn a_hung_primary_fails_over_to_the_mirror_within_the_attempt_timeout() {
    let (primary, mirror) = (
        Arc::new(ScriptedOrigin::new("nas")),
        Arc::new(ScriptedOrigin::new("backup")),
    );
    let bytes = content(3 << 20, 7);
    primary.put(b"x.flac", bytes.clone());
    mirror.put(b"x.flac", bytes.clone());
    let set = set(&[&primary, &mirror], Duration::from_millis(200));
    let file = opened(set.clone(), b"x.flac", bytes.len());
    let head = file.read(0, 4096).unwrap();
    primary.set_fault(Fault::Hang);
    let started = Instant::now();
    let mut got = head;
    while got.len() < bytes.len() {
        got.extend(file.read(got.len() as u64, 128 << 10).unwrap());
    }
    assert_eq!(got, bytes, "bytes across the failover");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The primary is now the worse choice: new reads go to the mirror first.
    assert_ne!(set.mirrors[0].health(), musicfs_origin::Health::Healthy);
    assert_eq!(set.order()[0], 1);
    primary.set_fault(Fault::None);
}

#[test]
fn a_mirror_holding_another_size_never_serves_the_file() {
    let (primary, mirror) = (
        Arc::new(ScriptedOrigin::new("nas")),
        Arc::new(ScriptedOrigin::new("backup")),
    );
    let bytes = content(100_000, 1);
    primary.put(b"x.flac", bytes.clone());
    mirror.put(b"x.flac", content(90_000, 2)); // an older version
    primary.set_fault(Fault::Down);
    let set = set(&[&primary, &mirror], Duration::from_millis(200));
    let started = Instant::now();
    match RemoteFile::open(
        set.clone(),
        b"x.flac".to_vec(),
        bytes.len() as u64,
        None,
        None,
    ) {
        Ok(_) => panic!("opened from a mirror of another size"),
        Err(OpenFailure::Origin(err)) => assert!(err.is_origin_down(), "{err}"),
        Err(OpenFailure::Changed(_)) => panic!("the primary's copy was never seen"),
    }
    // Every round was retried with backoff (100 ms + 500 ms + 2 s), then it gave up.
    assert!(started.elapsed() >= Duration::from_millis(2600));
    assert_eq!(mirror.bytes_fetched(), 0);

    // Changed on every mirror: refused as changed, not served.
    primary.set_fault(Fault::None);
    primary.put(b"x.flac", content(95_000, 3));
    match RemoteFile::open(set, b"x.flac".to_vec(), bytes.len() as u64, None, None) {
        Err(OpenFailure::Changed(size)) => assert!(size == 95_000 || size == 90_000),
        _ => panic!("a file changed everywhere must be refused as changed"),
    }
}

#[test]
fn where_reads_tell_the_size_the_first_read_checks_it_and_open_asks_nothing() {
    let origin = Arc::new(ScriptedOrigin::new("s3like"));
    origin.set_tells_size(true);
    let bytes = content(600_000, 4);
    origin.put(b"x.flac", bytes.clone());
    let file = opened(
        set(&[&origin], Duration::from_secs(5)),
        b"x.flac",
        bytes.len(),
    );
    assert_eq!(origin.calls(), 0, "open made a request");
    assert_eq!(file.read(0, 4096).unwrap(), bytes[..4096]);
    assert_eq!(
        origin.calls(),
        1,
        "the first byte cost more than one request"
    );
    assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
}

#[test]
fn a_mirror_whose_read_tells_another_size_is_passed_over_not_failed() {
    let (primary, mirror) = (
        Arc::new(ScriptedOrigin::new("old")),
        Arc::new(ScriptedOrigin::new("right")),
    );
    primary.set_tells_size(true);
    mirror.set_tells_size(true);
    let bytes = content(300_000, 5);
    primary.put(b"x.flac", content(280_000, 6)); // another version
    mirror.put(b"x.flac", bytes.clone());
    let set = set(&[&primary, &mirror], Duration::from_secs(5));
    let file = opened(set.clone(), b"x.flac", bytes.len());
    let started = Instant::now();
    assert_eq!(file.read(0, bytes.len()).unwrap(), bytes);
    assert!(started.elapsed() < Duration::from_millis(100), "retried");
    assert_eq!(set.mirrors[0].health(), musicfs_origin::Health::Healthy);
    // Known now: later reads of this file go straight to the mirror.
    let asked = primary.calls();
    file.read(100_000, 4096).unwrap();
    assert_eq!(primary.calls(), asked);

    // Another version everywhere: the read fails at once, nothing is served.
    mirror.put(b"x.flac", content(310_000, 7));
    let file = opened(set, b"x.flac", bytes.len());
    let started = Instant::now();
    assert!(file.read(0, 4096).is_err());
    assert!(started.elapsed() < Duration::from_millis(100), "retried");
}

#[test]
fn a_stat_checked_mirror_serves_a_whole_sequential_read_after_a_disagreeing_one() {
    let (wrong, right) = (
        Arc::new(ScriptedOrigin::new("wrong")),
        Arc::new(ScriptedOrigin::new("right")),
    );
    wrong.set_tells_size(true);
    let bytes = content(3 << 20, 8);
    wrong.put(b"x.flac", content((3 << 20) - 1000, 9));
    right.put(b"x.flac", bytes.clone());
    let file = opened(
        set(&[&wrong, &right], Duration::from_secs(5)),
        b"x.flac",
        bytes.len(),
    );
    assert_eq!(read_all(&file, bytes.len(), 128 << 10), bytes);
}

#[test]
fn a_stream_stalling_mid_file_falls_back_to_the_mirror_with_identical_bytes() {
    let (primary, mirror) = (
        Arc::new(ScriptedOrigin::new("s3")),
        Arc::new(ScriptedOrigin::new("backup")),
    );
    primary.set_streams(true);
    primary.set_tells_size(true);
    let bytes = content(24 << 20, 2);
    primary.put(b"x.flac", bytes.clone());
    mirror.put(b"x.flac", bytes.clone());
    let set = set(&[&primary, &mirror], Duration::from_millis(300));
    let file = opened(set, b"x.flac", bytes.len());
    let mut got = Vec::new();
    while got.len() < 2 << 20 {
        got.extend(file.read(got.len() as u64, 128 << 10).unwrap());
    }
    // The stream is flowing (read ahead of the reader); now the server stops answering.
    primary.set_fault(Fault::Hang);
    let started = Instant::now();
    while got.len() < bytes.len() {
        let part = file.read(got.len() as u64, 128 << 10).unwrap();
        assert!(!part.is_empty());
        got.extend(part);
    }
    assert!(got == bytes, "bytes across the stall differ");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(mirror.bytes_fetched() > 0, "the mirror was never used");
    primary.set_fault(Fault::None);
}

#[test]
fn an_origin_back_during_the_retries_serves_the_read() {
    let origin = Arc::new(ScriptedOrigin::new("flaky"));
    let bytes = content(50_000, 9);
    origin.put(b"x.flac", bytes.clone());
    let set = set(&[&origin], Duration::from_millis(500));
    let file = opened(set, b"x.flac", bytes.len());
    origin.set_fault(Fault::Down);
    let back = {
        let origin = origin.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            origin.set_fault(Fault::None);
        })
    };
    assert_eq!(file.read(0, bytes.len()).unwrap(), bytes);
    back.join().unwrap();
}

/// The kernel's reads of a played file grow (16K, 64K, 128K, 256K, 512K, then 1M) and
/// straddle window ends: each byte is fetched once, not again by the read that straddles.
#[test]
fn reads_straddling_window_ends_fetch_each_byte_once() {
    for streams in [false, true] {
        let origin = Arc::new(ScriptedOrigin::new("one"));
        origin.set_streams(streams);
        let bytes = content(8 << 20, 9);
        origin.put(b"p.flac", bytes.clone());
        let file = opened(
            set(&[&origin], Duration::from_secs(5)),
            b"p.flac",
            bytes.len(),
        );
        let before = origin.bytes_fetched();
        let mut at = 0usize;
        for len in [16 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10]
            .into_iter()
            .chain(std::iter::repeat(1 << 20))
        {
            if at >= bytes.len() {
                break;
            }
            let got = file.read(at as u64, len).unwrap();
            assert_eq!(got, bytes[at..(at + len).min(bytes.len())]);
            at += got.len();
        }
        drop(file);
        let fetched = origin.bytes_fetched() - before;
        assert!(
            fetched <= bytes.len() as u64 + (bytes.len() as u64 / 50),
            "streams {streams}: fetched {fetched} for {} bytes",
            bytes.len()
        );
    }
}
