//! `musicfs origins` and remote origins from the command line: health of libraries and
//! mirrors named in the config, and no credential in any log, command line or DB.

mod support;

use std::process::Command;

use support::musicfs;

#[test]
fn origins_lists_libraries_and_mirrors_with_their_health() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 12, 4).unwrap();
    let db = dir.path().join("lib.db");
    let config = dir.path().join("musicfs.toml");
    std::fs::write(
        &config,
        format!(
            "db = {db:?}\n\n[[origins]]\nurl = {music:?}\n\n[[origins]]\nurl = {gone:?}\n\
             mirror_of = {music:?}\npriority = 2\n",
            db = db.to_str().unwrap(),
            music = music.to_str().unwrap(),
            gone = dir.path().join("unplugged-disk").to_str().unwrap(),
        ),
    )
    .unwrap();
    // The libraries of the config are scanned; mirrors are not.
    let scan = musicfs()
        .args(["scan", "--quiet", "--config"])
        .arg(&config)
        .status()
        .unwrap();
    assert!(scan.success());
    let out = musicfs()
        .args(["origins", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let files = musicfs_tests_count(&db);
    let library = stdout
        .lines()
        .find(|l| l.contains("(library)"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(library.starts_with("healthy"), "{stdout}");
    assert!(library.contains(&format!(" {files} ")), "{stdout}");
    let mirror = stdout
        .lines()
        .find(|l| l.contains("mirror of"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(mirror.starts_with("unhealthy"), "{stdout}");
    assert!(mirror.contains("priority 2"), "{stdout}");
    assert!(stderr.contains("unplugged-disk"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "an unhealthy origin exits 1");
}

fn musicfs_tests_count(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn s3_credentials_never_reach_a_log_a_command_line_or_the_db() {
    let server = match musicfs_tools::servers::S3Server::start() {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 10, 6).unwrap();
    server.upload("secretive", "lib", &music).unwrap();
    let secret = "Zq9-musicfs-secret-4KQ";
    let token = "tok-musicfs-session-77";
    let db = dir.path().join("lib.db");
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
            .args(["-vv", "--db"])
            .arg(&db)
            .arg(url)
            .env("AWS_ACCESS_KEY_ID", "AKIDMUSICFS")
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    // A good scan, at the most verbose logging.
    let ok = run(&server.url("secretive", "lib"));
    assert!(ok.status.success() || ok.status.code() == Some(5), "{ok:?}");
    // A failing one: the server gone (errors print their whole cause chain).
    let port = server.port;
    drop(server);
    let failed = run(&format!(
        "s3://secretive/lib?endpoint=http://127.0.0.1:{port}"
    ));
    assert!(!failed.status.success());
    for out in [&ok, &failed] {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(secret), "secret in output:\n{text}");
            assert!(!text.contains(token), "session token in output:\n{text}");
        }
    }
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "secret stored in {}", path.display());
        }
    }
}

/// A password written into an origin URL (the user part, an S3 `endpoint=` with
/// `user:pass@`, a mirror in the config) is refused before anything is stored or logged: the
/// command fails, no file under the test's folder (the DB) holds the password, and neither
/// does anything the command printed, at the most verbose logging.
#[test]
fn a_password_in_an_origin_url_is_refused_and_never_stored_or_printed() {
    let server = match musicfs_tools::servers::S3Server::start() {
        Ok(server) => server,
        Err(reason) => return musicfs_tools::missing_prerequisite(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 6, 9).unwrap();
    server.upload("guarded", "lib", &music).unwrap();
    let password = "Pw7-musicfs-hunter-Q2";
    let db = dir.path().join("lib.db");
    // The DB exists (a local library), so a refused remote must add no row to it.
    let local = Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
        .args(["--quiet", "--db"])
        .arg(&db)
        .arg(&music)
        .status()
        .unwrap();
    assert!(local.success());
    // A real S3 server behind the endpoint: accepted, the scan would succeed and store it.
    let endpoint_with_password = server.url("guarded", "lib").replace(
        "http://127.0.0.1",
        &format!("http://musicfs:{password}@127.0.0.1"),
    );
    let encoded = format!(
        "s3://guarded/lib?endpoint=http%3A%2F%2Fmusicfs%3A{password}%40127.0.0.1%3A{}",
        server.port
    );
    let scan = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_musicfs-scan"))
            .args(["-vv", "--db"])
            .arg(&db)
            .arg(url)
            .env("AWS_ACCESS_KEY_ID", "AKIDMUSICFS")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-password")
            .env("MUSICFS_LOG", "trace")
            .output()
            .unwrap()
    };
    let mut outputs = vec![
        scan(&endpoint_with_password),
        scan(&encoded),
        scan(&format!("sftp://alice:{password}@127.0.0.1:1/music")),
        scan(&format!("sftp://alice:pa?{password}@127.0.0.1:1/music")),
    ];
    // A mirror with a password in the config: refused by every command that reads it.
    let config = dir.path().join("musicfs.toml");
    std::fs::write(
        &config,
        format!(
            "db = {db:?}\n\n[[origins]]\nurl = {music:?}\n\n[[origins]]\nurl = {mirror:?}\n\
             mirror_of = {music:?}\n",
            db = db.to_str().unwrap(),
            music = music.to_str().unwrap(),
            mirror = endpoint_with_password,
        ),
    )
    .unwrap();
    for args in [&["scan", "-vv", "--config"][..], &["origins", "--config"]] {
        outputs.push(
            musicfs()
                .args(args)
                .arg(&config)
                .env("MUSICFS_LOG", "trace")
                .output()
                .unwrap(),
        );
    }
    // `musicfs mount URL MOUNTPOINT` refuses it before creating a DB or mounting.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    outputs.push(
        musicfs()
            .args(["mount", "-vv", "--db"])
            .arg(dir.path().join("mount.db"))
            .arg(&endpoint_with_password)
            .arg(&mnt)
            .env("MUSICFS_LOG", "trace")
            .output()
            .unwrap(),
    );
    for out in &outputs {
        assert!(!out.status.success(), "{out:?}");
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(password), "password in output:\n{text}");
        }
    }
    let stderr = String::from_utf8_lossy(&outputs[0].stderr);
    assert!(stderr.contains("holds a password"), "{stderr}");
    assert!(
        stderr.contains("s3://guarded/lib"),
        "names the origin: {stderr}"
    );
    assert!(!dir.path().join("mount.db").exists());
    let roots: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT CAST(root AS TEXT) FROM origins")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(roots.len(), 1, "only the local library: {roots:?}");
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if path.is_file() && path != config {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes());
            assert!(!found, "password stored in {}", path.display());
        }
    }
}
