//! The content cache end to end, on real mounts of a library served by sshd (through a
//! proxy that counts the bytes the server sends): a file played once plays again without the
//! server, also after a remount with the server down; uncached reads then fail fast and
//! delete nothing; a damaged chunk is fetched again, never served; eviction keeps the cap
//! with files open; the same bytes at two paths are stored once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musicfs_cache::CacheConfig;
use musicfs_fs::{MountConfig, Mounted};
use musicfs_origin::OriginUrl;
use musicfs_scan::ScanConfig;
use musicfs_tests::{file_count, incompressible_library, ssh_server, walk_relative};
use musicfs_tools::proxy::FaultProxy;
use musicfs_tools::servers::SshServer;

/// `musicfs check`'s invariants, the cache's among them (reference counts, totals, claims).
fn assert_consistent(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let problems = musicfs_db::check_consistency(&conn).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// The cache of a private bucket is its user's only: every folder of the store 0700, every
/// file 0600, whatever the umask, and nothing in it a symbolic link.
fn assert_private(cache_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![cache_dir.to_owned()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        let mode = std::fs::symlink_metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}: mode {mode:04o}", dir.display());
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
                continue;
            }
            assert!(meta.is_file(), "{}: not a file", e.path().display());
            let mode = meta.mode() & 0o7777;
            assert_eq!(mode, 0o600, "{}: mode {mode:04o}", e.path().display());
            files += 1;
        }
    }
    assert!(files > 1, "nothing cached in {}", cache_dir.display());
}

/// sshd serving `root` through a proxy that counts the bytes it sends, and `root` scanned
/// from it into `dir/lib.db` (any file the scan could not read is named in the failure).
fn served(dir: &Path, root: &Path) -> Option<(SshServer, FaultProxy, ScanConfig)> {
    let sshd = ssh_server(&dir.join("sshd"))?;
    let proxy = FaultProxy::start(sshd.port).unwrap();
    let db = dir.join("lib.db");
    let mut scan = ScanConfig::new(&db, Vec::new());
    scan.remotes = vec![OriginUrl::parse(&sshd.url_via(root, proxy.port)).unwrap()];
    let summary = musicfs_scan::scan(&scan).unwrap();
    let errors: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT abs_path || ': ' || scan_error FROM scan_errors")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(summary.errors, 0, "{errors:?}");
    Some((sshd, proxy, scan))
}

/// `db` mounted at `mnt` with its cache in `chunks`.
fn cached_mount(db: &Path, mnt: &Path, chunks: PathBuf, prefetch: bool) -> Mounted {
    std::fs::create_dir_all(mnt).unwrap();
    let mut cfg = MountConfig::new(db, mnt);
    cfg.cache = Some(CacheConfig::new(chunks));
    cfg.prefetch = prefetch;
    musicfs_fs::mount(cfg).unwrap()
}

/// The path in the mount and the file id of the file at `rel` in the library.
fn track(db: &Path, mnt: &Path, rel: &str) -> (PathBuf, i64) {
    let (vpath, id): (String, i64) = rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT t.vpath, t.id FROM tracks t JOIN file_paths p ON p.file_id = t.id \
             WHERE p.path = ?1",
            [rel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (mnt.join(vpath), id)
}

/// A library of `n` files of ~`bytes` each on sshd, scanned through a counting proxy.
struct Remote {
    dir: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
    cache_dir: PathBuf,
    sshd: SshServer,
    proxy: FaultProxy,
}

impl Remote {
    fn new(n: usize, bytes: usize) -> Option<Remote> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("music");
        incompressible_library(&root, n, 21, bytes);
        let (sshd, proxy, _) = served(dir.path(), &root)?;
        let db = dir.path().join("lib.db");
        Some(Remote {
            cache_dir: dir.path().join("chunks"),
            dir,
            root,
            db,
            sshd,
            proxy,
        })
    }

    fn mount(&self, cap: u64) -> (Mounted, PathBuf) {
        let mnt = self.dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut cfg = MountConfig::new(&self.db, &mnt);
        let mut cache = CacheConfig::new(self.cache_dir.clone());
        cache.max_bytes = cap;
        cache.min_free_bytes = 0;
        cfg.cache = Some(cache);
        // Counted here: only what is read (prefetch has its own test).
        cfg.prefetch = false;
        cfg.io_timeout = Duration::from_secs(8);
        cfg.mirror_attempt_timeout = Duration::from_secs(2);
        (musicfs_fs::mount(cfg).unwrap(), mnt)
    }

    /// (virtual path, original bytes) of every file, biggest first.
    fn files(&self, mnt: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        let mut stmt = conn
            .prepare("SELECT t.vpath, p.path FROM tracks t JOIN file_paths p ON p.file_id = t.id ORDER BY t.size DESC, t.vpath")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .map(|(v, rel)| (mnt.join(v), std::fs::read(self.root.join(rel)).unwrap()))
            .collect()
    }

    /// Bytes the server sent since the last call.
    fn fetched(&self, since: &mut u64) -> u64 {
        let now = self.proxy.bytes().0;
        now - std::mem::replace(since, now)
    }

    /// The server is gone: sshd killed, its sessions cut.
    fn kill_server(&mut self) {
        self.sshd.kill();
        self.proxy.reset_all();
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    fn totals(&self) -> (i64, i64, i64, i64) {
        self.conn()
            .query_row(
                "SELECT bytes, chunks, hits, repaired FROM cache_totals",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    /// Bytes of chunk files on disk, counted by walking the store.
    fn bytes_on_disk(&self) -> u64 {
        musicfs_tests::files_below(&self.cache_dir)
            .iter()
            .filter(|p| {
                let rel = p.strip_prefix(&self.cache_dir).unwrap();
                !rel.to_string_lossy().starts_with('.')
            })
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    }
}

#[test]
fn played_files_play_again_without_the_server_and_after_a_remount() {
    let Some(mut remote) = Remote::new(6, 3 << 20) else {
        return;
    };
    let (mounted, mnt) = remote.mount(1 << 30);
    let files = remote.files(&mnt);
    let (played, size) = (&files[0], files[0].1.len() as u64);
    let mut wire = remote.proxy.bytes().0;
    assert!(std::fs::read(&played.0).unwrap() == played.1, "first play");
    let first = remote.fetched(&mut wire);
    assert!(
        first >= size,
        "the first play fetched {first} of {size} bytes"
    );
    mounted.flush_cache();
    assert!(std::fs::read(&played.0).unwrap() == played.1, "second play");
    let second = remote.fetched(&mut wire);
    assert!(second < 16 << 10, "the second play fetched {second} bytes");
    mounted.unmount().unwrap();

    // The index says what is cached, and the chunk files are all there.
    let (complete, chunked): (i64, i64) = remote
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM cached_files WHERE cached = size), \
             (SELECT sum(len) FROM chunks)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((complete, chunked), (1, size as i64));
    let (bytes, chunks, _, _) = remote.totals();
    assert_eq!(
        bytes as u64, size,
        "incompressible bytes are stored once each"
    );
    assert!(chunks as u64 >= size / (256 << 10), "{chunks} chunks");
    assert_eq!(remote.bytes_on_disk(), size);
    assert_private(&remote.cache_dir);

    // Every origin down: the mount starts, lists and stats as usual, plays the cached file,
    // fails an uncached one with EIO within the deadline, and deletes nothing.
    remote.kill_server();
    let files_before = file_count(&remote.db);
    let (mounted, mnt) = remote.mount(1 << 30);
    assert!(walk_relative(&mnt).len() as u64 > files_before);
    assert!(
        std::fs::read(&played.0).unwrap() == played.1,
        "offline play"
    );
    let other = &files[1];
    let started = Instant::now();
    let err = std::fs::read(&other.0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(file_count(&remote.db), files_before);
    assert_eq!(remote.totals().0 as u64, size, "the cache kept what it had");

    // The server comes back: reads use it again, without a remount.
    remote.sshd.restart().unwrap();
    let back = musicfs_tests::eventually(Duration::from_secs(20), || {
        std::fs::read(&other.0).is_ok_and(|b| b == other.1)
    });
    assert!(
        back.is_some(),
        "the origin came back, the mount did not use it"
    );
    mounted.unmount().unwrap();
    assert!(remote.totals().2 > 0, "cache hits are counted");
    assert_consistent(&remote.db);
}

#[test]
fn a_damaged_or_missing_chunk_is_fetched_again_never_served() {
    let Some(remote) = Remote::new(3, 2 << 20) else {
        return;
    };
    let (mounted, mnt) = remote.mount(1 << 30);
    let files = remote.files(&mnt);
    let (path, want) = &files[0];
    assert!(std::fs::read(path).unwrap() == *want);
    mounted.unmount().unwrap();

    // One chunk flipped in place, one cut short, one deleted.
    let hashes: Vec<i64> = remote
        .conn()
        .prepare("SELECT hash FROM chunks ORDER BY seq LIMIT 3")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let chunk_path = |h: i64| {
        let name = format!("{:016x}", h as u64);
        remote.cache_dir.join(&name[..2]).join(name)
    };
    let mut flipped = std::fs::read(chunk_path(hashes[0])).unwrap();
    flipped[100] ^= 0x20;
    std::fs::write(chunk_path(hashes[0]), &flipped).unwrap();
    let cut = std::fs::read(chunk_path(hashes[1])).unwrap();
    std::fs::write(chunk_path(hashes[1]), &cut[..cut.len() / 2]).unwrap();
    std::fs::remove_file(chunk_path(hashes[2])).unwrap();

    let (mounted, _) = remote.mount(1 << 30);
    let got = std::fs::read(path).unwrap();
    assert!(got == *want, "a damaged chunk was served");
    mounted.flush_cache();
    // And the cache holds good copies again.
    assert!(std::fs::read(path).unwrap() == *want);
    mounted.unmount().unwrap();
    for h in &hashes {
        let bytes = std::fs::read(chunk_path(*h)).unwrap();
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(&bytes),
            *h as u64,
            "chunk {h:x} not restored"
        );
    }
    assert!(remote.totals().3 >= 1, "repairs are counted");
}

#[test]
fn eviction_keeps_the_cap_and_never_evicts_an_open_file() {
    let Some(remote) = Remote::new(6, 1_500_000) else {
        return;
    };
    let cap: u64 = 4 << 20;
    let (mounted, mnt) = remote.mount(cap);
    let files = remote.files(&mnt);
    // Held open (a player paused on it) while the others are played.
    let open = std::fs::File::open(&files[0].0).unwrap();
    assert!(std::fs::read(&files[0].0).unwrap() == files[0].1);
    for (path, want) in &files[1..] {
        assert!(std::fs::read(path).unwrap() == *want);
        mounted.flush_cache();
        let stored = remote.totals().0 as u64;
        assert!(
            stored <= cap + (256 << 10),
            "{stored} bytes over a {cap} cap"
        );
        assert!(remote.bytes_on_disk() <= cap + (256 << 10));
    }
    let open_id: i64 = remote
        .conn()
        .query_row(
            "SELECT t.id FROM tracks t WHERE ?1 LIKE '%' || t.vpath",
            [files[0].0.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let (cached, size): (i64, i64) = remote
        .conn()
        .query_row(
            "SELECT cached, size FROM cached_files WHERE file_id = ?1",
            [open_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the open file was evicted");
    assert_eq!(cached, size);
    let evicted: i64 = remote
        .conn()
        .query_row("SELECT evicted FROM cache_totals", [], |r| r.get(0))
        .unwrap_or(0);
    drop(open);
    mounted.unmount().unwrap();
    let evicted_after: i64 = remote
        .conn()
        .query_row("SELECT evicted FROM cache_totals", [], |r| r.get(0))
        .unwrap();
    assert!(evicted.max(evicted_after) >= 2, "{evicted_after} evictions");
    // The least recently played went first: the last played is still there.
    let last_cached: i64 = remote
        .conn()
        .query_row(
            "SELECT count(*) FROM cached_files WHERE cached = size",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(last_cached >= 2, "{last_cached}");
    assert_consistent(&remote.db);
}

#[test]
fn the_same_bytes_at_two_paths_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let files = incompressible_library(&root, 2, 33, 1 << 20);
    // The same file in another folder: another path, the same bytes.
    let copy_dir = root.join("Copies");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join(files[0].path.file_name().unwrap());
    std::fs::copy(&files[0].path, &copy).unwrap();
    let Some(_served) = served(dir.path(), &root) else {
        return;
    };
    let (db, mnt) = (dir.path().join("lib.db"), dir.path().join("mnt"));
    let mounted = cached_mount(&db, &mnt, dir.path().join("chunks"), false);
    let want = std::fs::read(&copy).unwrap();
    let mut read = 0;
    for (path, is_dir) in walk_relative(&mnt) {
        if !is_dir && !path.starts_with(".search") {
            let bytes = std::fs::read(mnt.join(&path)).unwrap();
            read += (bytes == want) as usize;
        }
    }
    assert_eq!(read, 2, "both paths read");
    mounted.unmount().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stats = musicfs_cache::stats(&conn).unwrap();
    let size = want.len() as u64;
    let other = std::fs::metadata(&files[1].path).unwrap().len();
    assert_eq!(stats.usage.logical_bytes, 2 * size + other);
    assert_eq!(stats.totals.bytes, size + other, "the copy is stored once");
    assert!(stats.dedup_ratio() > 1.3, "{}", stats.dedup_ratio());

    // Another cache folder (as the cache's disk not mounted): the rows describe chunks it
    // does not have. The mount runs without a cache, and nothing is forgotten or made there.
    let other = dir.path().join("other-chunks");
    let files_cached = stats.usage.files;
    let mounted = cached_mount(&db, &mnt, other.clone(), false);
    let plays = walk_relative(&mnt)
        .into_iter()
        .filter(|(p, d)| !d && !p.starts_with(".search"))
        .filter(|(p, _)| std::fs::read(mnt.join(p)).unwrap() == want)
        .count();
    assert_eq!(
        plays, 2,
        "the mount without its cache plays from the origin"
    );
    mounted.unmount().unwrap();
    assert!(!other.exists(), "a new cache was made in the wrong folder");
    assert_eq!(
        musicfs_cache::stats(&conn).unwrap(),
        stats,
        "the cache changed"
    );
    assert_eq!(stats.usage.files, files_cached);
    // `cache clear` with that folder: the rows are forgotten, and the new folder fills in.
    assert_eq!(
        musicfs_cache::clear(&db, &other, None).unwrap(),
        (files_cached, 0)
    );
    drop(conn);
    let mounted = cached_mount(&db, &mnt, other, false);
    mounted.flush_cache();
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(musicfs_cache::stats(&conn).unwrap().usage.files, 0);
    let any = walk_relative(&mnt)
        .into_iter()
        .find(|(p, d)| !d && !p.starts_with(".search"))
        .unwrap();
    let bytes = std::fs::read(mnt.join(&any.0)).unwrap();
    mounted.unmount().unwrap();
    let stats = musicfs_cache::stats(&conn).unwrap();
    assert_eq!(
        (stats.usage.complete, stats.totals.bytes),
        (1, bytes.len() as u64)
    );
}

/// Re-tagged FLAC, MP3 and M4A files of 3 MiB (a longer title, then a new 100 KB cover): the
/// next play fetches a small part of each, counted on the wire, and plays the new bytes.
#[test]
fn a_retagged_file_is_fetched_in_part() {
    use musicfs_tools::retag::{Edit, grow, longer_title, new_cover, retag};
    let Some(corpus) = musicfs_tests::registry_corpus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let formats = [musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3];
    let generated = musicfs_tests::keyable_library(&root, 24, 5, &formats);
    let pick = |ext: &str| {
        generated
            .iter()
            .find(|f| {
                f.path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case(ext))
            })
            .unwrap()
            .path
            .clone()
    };
    let m4a = root.join("Lena").join("lena.m4a");
    std::fs::create_dir_all(m4a.parent().unwrap()).unwrap();
    std::fs::copy(corpus.join("npm-audio-lena/package/lena.m4a"), &m4a).unwrap();
    for (k, path) in [pick("flac"), pick("mp3"), m4a.clone()].iter().enumerate() {
        grow(path, 3 << 20, 40 + k as u64).unwrap();
    }
    // A real Ogg Vorbis file of 4.6 MB (an Ogg stream cannot be grown with bytes after it):
    // a re-tag renumbers every page after the comment header.
    let ogg = root.join("Singularity").join("Nebula.ogg");
    std::fs::create_dir_all(ogg.parent().unwrap()).unwrap();
    std::fs::copy(
        corpus.join("deb-singularity-music/usr/share/games/singularity/music/Nebula.ogg"),
        &ogg,
    )
    .unwrap();
    let edited = [pick("flac"), pick("mp3"), m4a, ogg];
    let Some((_sshd, proxy, scan)) = served(dir.path(), &root) else {
        return;
    };
    let (db, mnt) = (dir.path().join("lib.db"), dir.path().join("mnt"));
    let mount = || cached_mount(&db, &mnt, dir.path().join("chunks"), false);
    let vpath = |path: &Path| {
        track(
            &db,
            &mnt,
            path.strip_prefix(&root).unwrap().to_str().unwrap(),
        )
        .0
    };
    let mounted = mount();
    for path in &edited {
        assert!(std::fs::read(vpath(path)).unwrap() == std::fs::read(path).unwrap());
    }
    mounted.unmount().unwrap();

    let edits: [(&str, &Edit<'static>); 2] =
        [("longer title", &longer_title), ("new cover", &new_cover)];
    for (name, edit) in edits {
        for path in &edited {
            retag(path, edit).unwrap();
        }
        let rescan = musicfs_scan::scan(&scan).unwrap();
        assert_eq!(rescan.changed, edited.len() as u64, "{name}: {rescan:?}");
        let mounted = mount();
        for path in &edited {
            let want = std::fs::read(path).unwrap();
            let before = proxy.bytes().0;
            let got = std::fs::read(vpath(path)).unwrap();
            let fetched = proxy.bytes().0 - before;
            assert!(got == want, "{name}: {}: other bytes", path.display());
            eprintln!(
                "{name}: {}: fetched {fetched} of {}",
                path.display(),
                want.len()
            );
            let share = fetched as f64 / want.len() as f64;
            assert!(
                share < 0.10,
                "{name}: {}: fetched {fetched} of {} bytes ({:.1} %)",
                path.display(),
                want.len(),
                share * 100.0
            );
        }
        mounted.unmount().unwrap();
    }
    assert_consistent(&db);
}

/// Files as ffmpeg writes them (M4A with `moov` after `mdat` and with `moov` first, MP3,
/// FLAC, Ogg Vorbis), re-tagged as Picard and beets do, with mutagen: a new title and a
/// 150 KB cover (the MP3 also gets an APEv2 tag at its end, so both of its ends change).
/// The next play serves the new bytes exactly, fetching a small part of each file.
#[test]
fn files_retagged_by_mutagen_are_served_exactly_and_fetched_in_part() {
    let Some(python) = musicfs_tests::mutagen_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let album = root.join("Real Tools");
    std::fs::create_dir_all(&album).unwrap();
    let files = [
        ("moov-last.m4a", 190, vec!["-c:a", "aac", "-b:a", "128k"]),
        (
            "moov-first.m4a",
            190,
            vec!["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"],
        ),
        (
            "both-ends.mp3",
            190,
            vec!["-c:a", "libmp3lame", "-b:a", "128k"],
        ),
        ("frames.flac", 30, vec!["-c:a", "flac"]),
        ("pages.ogg", 190, vec!["-c:a", "libvorbis", "-b:a", "192k"]),
    ];
    let mut paths = Vec::new();
    for (name, seconds, args) in &files {
        let path = album.join(name);
        if musicfs_tests::ffmpeg_encode(&path, *seconds, args).is_none() {
            return;
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 2 << 20, "{name}");
        paths.push(path);
    }
    let Some((_sshd, proxy, scan)) = served(dir.path(), &root) else {
        return;
    };
    let (db, mnt) = (dir.path().join("lib.db"), dir.path().join("mnt"));
    let mount = || cached_mount(&db, &mnt, dir.path().join("chunks"), false);
    let vpath = |path: &Path| {
        track(
            &db,
            &mnt,
            path.strip_prefix(&root).unwrap().to_str().unwrap(),
        )
        .0
    };
    let mounted = mount();
    for path in &paths {
        assert!(std::fs::read(vpath(path)).unwrap() == std::fs::read(path).unwrap());
    }
    mounted.unmount().unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/mutagen_retag.py");
    let status = std::process::Command::new(&python)
        .arg(script)
        .args(&paths)
        .status()
        .unwrap();
    assert!(status.success(), "mutagen failed");
    let rescan = musicfs_scan::scan(&scan).unwrap();
    assert_eq!(rescan.changed, paths.len() as u64, "{rescan:?}");
    let mounted = mount();
    for path in &paths {
        let want = std::fs::read(path).unwrap();
        let before = proxy.bytes().0;
        let got = std::fs::read(vpath(path)).unwrap();
        let fetched = proxy.bytes().0 - before;
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(got.len(), want.len(), "{name}: size");
        if let Some(at) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!("{name}: wrong bytes from offset {at}");
        }
        let share = fetched as f64 / want.len() as f64;
        eprintln!(
            "{name}: fetched {fetched} of {} ({:.1} %)",
            want.len(),
            share * 100.0
        );
        assert!(share < 0.10, "{name}: fetched {fetched} of {}", want.len());
    }
    mounted.unmount().unwrap();
    assert_consistent(&db);
}

/// A file replaced on the server by a re-rip (no audio in common with the cached version,
/// another size) on a slow link (80 ms round trips): the first open after the rescan reads
/// it byte for byte, costing little more than the file on the wire (the delta's plan gives
/// up after reading its head and tail, and the file is fetched as usual).
#[test]
fn a_replaced_file_opens_at_once_and_costs_about_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let path = root.join("Re-rip").join("track.flac");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if musicfs_tests::ffmpeg_encode(&path, 90, &["-c:a", "flac"]).is_none() {
        return;
    }
    let Some((_sshd, proxy, scan)) = served(dir.path(), &root) else {
        return;
    };
    let (db, mnt) = (dir.path().join("lib.db"), dir.path().join("mnt"));
    let mounted = cached_mount(&db, &mnt, dir.path().join("chunks"), false);
    let rel = "Re-rip/track.flac";
    assert!(std::fs::read(track(&db, &mnt, rel).0).unwrap() == std::fs::read(&path).unwrap());
    mounted.unmount().unwrap();

    let rerip = dir.path().join("rerip.flac");
    musicfs_tests::ffmpeg_encode(&rerip, 91, &["-c:a", "flac"]).unwrap();
    std::fs::rename(&rerip, &path).unwrap();
    let rescan = musicfs_scan::scan(&scan).unwrap();
    assert_eq!(rescan.changed, 1, "{rescan:?}");
    proxy.set_delay(Duration::from_millis(40));
    let mounted = cached_mount(&db, &mnt, dir.path().join("chunks"), false);
    let want = std::fs::read(&path).unwrap();
    let before = proxy.bytes().0;
    let started = Instant::now();
    let got = std::fs::read(track(&db, &mnt, rel).0).unwrap();
    let fetched = proxy.bytes().0 - before;
    assert!(got == want, "other bytes");
    let ratio = fetched as f64 / want.len() as f64;
    eprintln!(
        "replaced {} bytes at 80 ms RTT: fetched {fetched} ({ratio:.3}x) in {:.1?}",
        want.len(),
        started.elapsed()
    );
    assert!(ratio <= 1.05, "fetched {fetched} for {} bytes", want.len());
    mounted.unmount().unwrap();
}

/// An album played in order: once a track has really started, the start of the next one is
/// fetched into the cache, so the track change reads (almost) nothing from the server. A
/// track played out of order prefetches nothing.
#[test]
fn the_next_track_of_an_album_played_in_order_is_prefetched() {
    use lofty::prelude::Accessor;
    use musicfs_tools::retag::{grow, retag};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let seed =
        musicfs_tests::keyable_library(&root.join("seed"), 6, 9, &[musicfs_tools::Format::Flac]);
    let source = dir.path().join("source.flac");
    std::fs::copy(&seed[0].path, &source).unwrap();
    std::fs::remove_dir_all(root.join("seed")).unwrap();
    for album in ["In Order", "Shuffled"] {
        for n in 1..=3u32 {
            let path = root.join(album).join(format!("{n}.flac"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::copy(&source, &path).unwrap();
            grow(&path, 3 << 20, u64::from(n) * 7 + album.len() as u64).unwrap();
            let title = format!("Track {n}");
            retag(&path, &|tag| {
                tag.set_artist("Prefetch Band".into());
                tag.set_album(album.into());
                tag.set_track(n);
                tag.set_title(title.clone());
            })
            .unwrap();
        }
    }
    let Some((_sshd, proxy, _)) = served(dir.path(), &root) else {
        return;
    };
    let (db, mnt) = (dir.path().join("lib.db"), dir.path().join("mnt"));
    let mounted = cached_mount(&db, &mnt, dir.path().join("chunks"), true);
    let track = |album: &str, n: u32| track(&db, &mnt, &format!("{album}/{n}.flac"));
    let cached = |id: i64| -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT coalesce(max(cached), 0) FROM cached_files WHERE file_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let (first, _) = track("In Order", 1);
    let (second, second_id) = track("In Order", 2);
    std::fs::read(&first).unwrap();
    let prefetched = musicfs_tests::eventually(Duration::from_secs(20), || {
        mounted.flush_cache();
        cached(second_id) >= 2 << 20
    });
    assert!(prefetched.is_some(), "the next track was not prefetched");
    // The prefetch's last piece may still be on its way: wait for the server to go quiet.
    let quiet = || {
        let mut last = proxy.bytes().0;
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = proxy.bytes().0;
            if now == last {
                break;
            }
            last = now;
        }
    };
    quiet();
    // The track change: its start comes from the cache. (Less than a started play reads,
    // so the next prefetch does not begin while this is counted.)
    let before = proxy.bytes().0;
    let mut start = vec![0u8; 200 << 10];
    use std::io::Read;
    std::fs::File::open(&second)
        .unwrap()
        .read_exact(&mut start)
        .unwrap();
    let fetched = proxy.bytes().0 - before;
    assert!(
        fetched < 32 << 10,
        "the track change fetched {fetched} bytes"
    );
    // The rest of the track: only what the cache does not hold comes from the server. A read
    // that straddles the end of the cached bytes fetches from their end, not from its own
    // offset. (The kernel's readahead of the start may have started this track's play, so
    // the next one's prefetch is let finish first.)
    quiet();
    let held = cached(second_id) as u64;
    let original = std::fs::read(root.join("In Order/2.flac")).unwrap();
    let before = proxy.bytes().0;
    let mut rest = Vec::new();
    let mut file = std::fs::File::open(&second).unwrap();
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(300 << 10)).unwrap();
    file.read_to_end(&mut rest).unwrap();
    drop(file);
    assert!(
        rest == original[300 << 10..],
        "the rest of the track differs"
    );
    let fetched = proxy.bytes().0 - before;
    let uncached = original.len() as u64 - held;
    assert!(
        fetched < uncached + (64 << 10),
        "{fetched} bytes fetched for the {uncached} bytes the cache did not hold"
    );

    // Out of order (the second track of another album): nothing is prefetched.
    let (shuffled, _) = track("Shuffled", 2);
    let (_, after_id) = track("Shuffled", 3);
    std::fs::read(&shuffled).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    mounted.flush_cache();
    assert_eq!(
        cached(after_id),
        0,
        "a track played out of order prefetched the next"
    );
    mounted.unmount().unwrap();
}
