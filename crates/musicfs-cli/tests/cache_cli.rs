//! `musicfs cache` from the command line, while `musicfs mount` runs: `warm` makes an artist
//! playable with the server gone, `stats` says so, `clear` forgets it; and a mount killed
//! (SIGKILL) while it writes chunks leaves none that is served wrong, and no disk leaked.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{MountChild, is_mounted, musicfs, wait_for};

const KEY: &str = "musicfs-test";
const SECRET: &str = "musicfs-test-secret";

fn with_keys(mut cmd: Command) -> Command {
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mount(db: &Path, mnt: &Path, cache_dir: &Path) -> MountChild {
    std::fs::create_dir_all(mnt).unwrap();
    let child = with_keys(musicfs())
        .args([
            "mount",
            "--quiet",
            "--io-timeout",
            "5",
            "--failover-after",
            "1",
            "--db",
        ])
        .arg(db)
        .arg("--cache-dir")
        .arg(cache_dir)
        .arg(mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = MountChild::new(child, mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(mnt)),
        "not mounted"
    );
    child
}

/// (virtual path, path in the library) of the files whose artist is `artist`.
fn files_of(db: &Path, artist: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT t.vpath, p.path FROM tracks t JOIN file_paths p ON p.file_id = t.id \
             WHERE t.artist = ?1 ORDER BY t.vpath",
        )
        .unwrap();
    stmt.query_map([artist], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Chunk files in the store (not temporaries), each with whether its bytes hash to its name.
fn chunk_files(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if shard.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for chunk in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let bytes = std::fs::read(chunk.path()).unwrap();
            let name = chunk.file_name().to_string_lossy().into_owned();
            let good = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)) == name;
            out.push((chunk.path(), good));
        }
    }
    out
}

#[test]
fn warm_makes_an_artist_playable_offline_and_clear_forgets_it() {
    let server = match musicfs_tools::servers::S3Server::start() {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library_with(&music, 30, 8, &[musicfs_tools::Format::Flac]).unwrap();
    // Only names an S3 key can carry (UTF-8 without control characters).
    for f in support_files(&music) {
        let rel = f.strip_prefix(&music).unwrap();
        if rel
            .to_str()
            .is_none_or(|r| r.chars().any(|c| c.is_ascii_control()))
        {
            std::fs::remove_file(&f).unwrap();
        }
    }
    server.upload("warm", "", &music).unwrap();
    let db = dir.path().join("lib.db");
    let cache_dir = dir.path().join("chunks");
    run(with_keys(Command::new(env!("CARGO_BIN_EXE_musicfs-scan")))
        .args(["--quiet", "--db"])
        .arg(&db)
        .arg(server.url("warm", "")));
    let artist: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT artist FROM files WHERE artist GLOB '[A-Za-z]*' GROUP BY artist \
             ORDER BY count(*) DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let wanted = files_of(&db, &artist);
    assert!(!wanted.is_empty());

    // Warmed while a mount runs on the same DB and cache.
    let mnt = dir.path().join("mnt");
    let mounted = mount(&db, &mnt, &cache_dir);
    let query = format!("artist:\"{artist}\"");
    let out = run(with_keys(musicfs())
        .args(["cache", "warm", &query, "--db"])
        .arg(&db)
        .arg("--cache-dir")
        .arg(&cache_dir));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(" 0 failed"), "{said}");
    let stats = run(musicfs().args(["cache", "stats", "--db"]).arg(&db));
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    let complete = stats
        .lines()
        .find(|l| l.starts_with("files"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(
        complete.contains(&format!("{n} complete", n = wanted.len())) || {
            // Other artists' tracks may match the words too: at least these are complete.
            let n: usize = complete
                .split('(')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            n >= wanted.len()
        },
        "{stats}"
    );
    drop(mounted);

    // The server gone: every warmed file plays from the cache, byte for byte.
    drop(server);
    let mounted = mount(&db, &mnt, &cache_dir);
    for (vpath, rel) in &wanted {
        let got = std::fs::read(mnt.join(vpath)).unwrap_or_else(|e| panic!("{vpath}: {e}"));
        assert!(got == std::fs::read(music.join(rel)).unwrap(), "{vpath}");
    }
    assert!(chunk_files(&cache_dir).iter().all(|(_, good)| *good));

    // Cleared while mounted: no file is cached, no chunk is left.
    let out = run(musicfs()
        .args(["cache", "clear", "--db"])
        .arg(&db)
        .arg("--cache-dir")
        .arg(&cache_dir));
    assert!(String::from_utf8_lossy(&out.stdout).contains("forgot"));
    let stats = run(musicfs().args(["cache", "stats", "--db"]).arg(&db));
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(stats.contains("files           0 (0 complete)"), "{stats}");
    assert!(chunk_files(&cache_dir).is_empty());
    drop(mounted);
}

/// `cache warm` asked for more than the cache holds: it never evicts a file it warmed to make
/// room for the next; it stops when the cache is full of them, says how much was warmed and
/// how much did not fit, and fails. A bigger cache then warms the rest.
#[test]
fn warm_that_cannot_fit_keeps_what_it_warmed_stops_and_says_so() {
    let server = match musicfs_tools::servers::S3Server::start() {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    let files = musicfs_tools::generate_library_with(&music, 8, 23, &[musicfs_tools::Format::Flac])
        .unwrap();
    for (k, f) in files.iter().enumerate() {
        let rel = f.path.strip_prefix(&music).unwrap();
        if rel
            .to_str()
            .is_none_or(|r| r.chars().any(|c| c.is_ascii_control()))
        {
            std::fs::remove_file(&f.path).unwrap();
        } else {
            // Odd seeds: the noise of seeds 2k and 2k + 1 is the same.
            musicfs_tools::retag::grow(&f.path, 1 << 20, 101 + 2 * k as u64).unwrap();
        }
    }
    let n = support_files(&music).len();
    assert!(n >= 5, "{n} files");
    server.upload("full", "", &music).unwrap();
    let (db, cache_dir) = (dir.path().join("lib.db"), dir.path().join("chunks"));
    run(with_keys(Command::new(env!("CARGO_BIN_EXE_musicfs-scan")))
        .args(["--quiet", "--db"])
        .arg(&db)
        .arg(server.url("full", "")));
    let warm = |size: &str| {
        with_keys(musicfs())
            .args(["cache", "warm", "format:flac", "--cache-min-free", "0"])
            .args(["--cache-size", size, "--db"])
            .arg(&db)
            .arg("--cache-dir")
            .arg(&cache_dir)
            .output()
            .unwrap()
    };
    // Room for 3 of the files and a half.
    let out = warm("3.5M");
    let (said, told) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(1), "{said}\n{told}");
    assert!(
        said.contains(&format!(
            "3 file(s) in the cache (3.0 MiB), 0 failed, {} did not fit",
            n - 3
        )),
        "{said}"
    );
    assert!(
        told.contains("the cache is full of what was warmed"),
        "{told}"
    );
    assert!(
        told.contains("did not fit in --cache-size 3.5 MiB"),
        "{told}"
    );
    let stats = run(musicfs().args(["cache", "stats", "--db"]).arg(&db));
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(stats.contains("(3 complete)"), "{stats}");
    assert!(
        stats.contains("evicted         0"),
        "warm evicted what it warmed: {stats}"
    );
    let stored: u64 = chunk_files(&cache_dir)
        .iter()
        .map(|(p, _)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(stored <= 7 << 19, "{stored} bytes stored");
    // A cache big enough: the rest is warmed, what was is not fetched again.
    let out = warm("64M");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{n} file(s) in the cache")) && said.contains("0 did not fit"),
        "{said}"
    );
}

fn support_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_mount_killed_while_caching_leaves_no_chunk_served_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    let files =
        musicfs_tools::generate_library_with(&music, 6, 12, &[musicfs_tools::Format::Mp3]).unwrap();
    let big = &files[0].path;
    musicfs_tools::retag::grow(big, 12 << 20, 99).unwrap();
    let sshd = match musicfs_tools::servers::SshServer::start(&dir.path().join("sshd")) {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    // Slow enough that the kill lands while chunks are being written.
    let proxy = musicfs_tools::proxy::FaultProxy::start(sshd.port).unwrap();
    let db = dir.path().join("lib.db");
    let cache_dir = dir.path().join("chunks");
    run(Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
        .args(["--quiet", "--db"])
        .arg(&db)
        .arg(sshd.url_via(&music, proxy.port)));
    let rel = big
        .strip_prefix(&music)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let vpath: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT t.vpath FROM tracks t JOIN file_paths p ON p.file_id = t.id WHERE p.path = ?1",
            [&rel],
            |r| r.get(0),
        )
        .unwrap();
    let want = std::fs::read(big).unwrap();
    let mnt = dir.path().join("mnt");
    for round in 0..3 {
        proxy.set_rate(4 << 20);
        let mut mounted = mount(&db, &mnt, &cache_dir);
        let path = mnt.join(&vpath);
        let reader = std::thread::spawn(move || std::fs::read(path));
        std::thread::sleep(Duration::from_millis(800 + 500 * round));
        mounted.kill().unwrap(); // SIGKILL, mid-read
        let _ = mounted.wait();
        drop(mounted);
        let _ = reader.join();
        let chunks = chunk_files(&cache_dir);
        assert!(
            chunks.iter().all(|(_, good)| *good),
            "round {round}: a chunk file does not match its name: {chunks:?}"
        );
    }
    // Whatever was recorded is served right, and the rest fetched.
    proxy.set_rate(0);
    let mounted = mount(&db, &mnt, &cache_dir);
    let got = std::fs::read(mnt.join(&vpath)).unwrap();
    assert!(got == want, "the file read after the kills differs");
    interrupt(mounted);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let cached: i64 = conn
        .query_row("SELECT count(*) FROM cached_files", [], |r| r.get(0))
        .unwrap();
    assert!(cached >= 1);
    assert_no_leak(&db, &cache_dir);
}

/// Stops a mount as on Ctrl-C (its cache writer finishes its queue).
fn interrupt(mut mounted: MountChild) {
    let sent = Command::new("kill")
        .args(["-INT", &mounted.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(mounted.wait().unwrap().success());
}

/// No disk leaked by killed mounts: every chunk file is named by a row (a file without one
/// would never be evicted nor counted against the cap), and killed writers' temporary files
/// were swept when the store was opened again.
fn assert_no_leak(db: &Path, cache_dir: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let named: std::collections::HashSet<String> = conn
        .prepare("SELECT printf('%016x', hash) FROM chunk_refs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let unnamed: Vec<PathBuf> = chunk_files(cache_dir)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|p| !named.contains(&p.file_name().unwrap().to_string_lossy().into_owned()))
        .collect();
    assert!(unnamed.is_empty(), "chunk files no row names: {unnamed:?}");
    let tmp: Vec<_> = std::fs::read_dir(cache_dir.join(".tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

#[test]
fn a_mount_killed_between_storing_and_recording_chunks_leaks_no_disk() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    let files =
        musicfs_tools::generate_library_with(&music, 3, 13, &[musicfs_tools::Format::Mp3]).unwrap();
    let big = &files[0].path;
    musicfs_tools::retag::grow(big, 4 << 20, 5).unwrap();
    let sshd = match musicfs_tools::servers::SshServer::start(&dir.path().join("sshd")) {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    let (db, cache_dir, mnt) = (
        dir.path().join("lib.db"),
        dir.path().join("chunks"),
        dir.path().join("mnt"),
    );
    run(Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
        .args(["--quiet", "--db"])
        .arg(&db)
        .arg(sshd.url(&music)));
    let rel = big.strip_prefix(&music).unwrap().to_str().unwrap();
    let vpath: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT t.vpath FROM tracks t JOIN file_paths p ON p.file_id = t.id WHERE p.path = ?1",
            [rel],
            |r| r.get(0),
        )
        .unwrap();
    let mut mounted = mount(&db, &mnt, &cache_dir);
    // The DB is locked (as by a scanner's long write): the cache's writer stores the chunks
    // of the file read, then waits to record them; it is killed while it waits.
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let got = std::fs::read(mnt.join(&vpath)).unwrap();
    assert!(
        got == std::fs::read(big).unwrap(),
        "read through the mount differs"
    );
    let stored = wait_for(Duration::from_secs(10), || {
        !chunk_files(&cache_dir).is_empty()
            || std::fs::read_dir(cache_dir.join(".tmp")).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(stored, "the writer stored nothing");
    mounted.kill().unwrap();
    let _ = mounted.wait();
    drop(mounted);
    lock.execute_batch("ROLLBACK").unwrap();
    // Opened again, and stopped cleanly.
    interrupt(mount(&db, &mnt, &cache_dir));
    assert_no_leak(&db, &cache_dir);
}
