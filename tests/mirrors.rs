//! Mirrors: a library on SFTP (through the fault proxy) with a copy on S3. When the primary
//! stops answering in the middle of a read, the read fails over and the bytes are identical;
//! a file whose mirror copy has another size is never served from that mirror.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musicfs_fs::{MirrorConfig, MountConfig};
use musicfs_origin::OriginUrl;
use musicfs_scan::ScanConfig;
use musicfs_tests::{aws_credentials, keyable_library, s3_server, ssh_server, walk_relative};
use musicfs_tools::proxy::FaultProxy;

/// Files of the mount, by path, with the original each comes from.
fn mounted_files(mnt: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk_relative(mnt)
        .into_iter()
        .filter(|(p, is_dir)| !is_dir && !p.starts_with(".search"))
        .map(|(p, _)| mnt.join(p))
        .collect();
    files.sort();
    files
}

#[test]
fn a_read_fails_over_to_the_mirror_mid_file_with_identical_bytes() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MUSICFS_LOG"))
        .with_test_writer()
        .try_init();
    aws_credentials();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let generated = keyable_library(&root, 6, 9, &[musicfs_tools::Format::Flac]);
    for f in &generated {
        musicfs_tools::pad_audio(&f.path, f.format, 3 << 20).unwrap();
    }
    let Some(sshd) = ssh_server(&dir.path().join("sshd")) else {
        return;
    };
    let Some(s3) = s3_server() else {
        return;
    };
    let uploaded = s3.upload("backup", "music", &root).unwrap();
    let proxy = FaultProxy::start(sshd.port).unwrap();
    let primary = OriginUrl::parse(&sshd.url_via(&root, proxy.port)).unwrap();
    let db = dir.path().join("lib.db");
    let mut cfg = ScanConfig::new(&db, Vec::new());
    cfg.remotes = vec![primary.clone()];
    let summary = musicfs_scan::scan(&cfg).unwrap();
    assert_eq!(summary.added as usize, generated.len());

    // One file's mirror copy is another version (a different size): never served from there.
    let odd = uploaded
        .iter()
        .find(|u| u.ends_with(".flac"))
        .unwrap()
        .clone();
    let odd_local = root.join(&odd);
    let mut other_version = std::fs::read(&odd_local).unwrap();
    other_version.truncate(other_version.len() - 1000);
    let scratch = dir.path().join("odd");
    std::fs::create_dir_all(scratch.join(Path::new(&odd).parent().unwrap())).unwrap();
    std::fs::write(scratch.join(&odd), &other_version).unwrap();
    s3.upload("backup", "music", &scratch).unwrap();

    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut mount_cfg = MountConfig::new(&db, &mnt);
    mount_cfg.mirrors = vec![MirrorConfig {
        of: primary.to_string(),
        url: OriginUrl::parse(&s3.url("backup", "music")).unwrap(),
        priority: 2,
    }];
    mount_cfg.mirror_attempt_timeout = Duration::from_secs(1);
    mount_cfg.io_timeout = Duration::from_secs(20);
    let mounted = musicfs_fs::mount(mount_cfg).unwrap();
    let files = mounted_files(&mnt);
    assert_eq!(files.len(), generated.len());

    // Which original is behind each mounted file: match by size and content.
    let originals: Vec<Vec<u8>> = generated
        .iter()
        .map(|f| std::fs::read(&f.path).unwrap())
        .collect();
    let odd_bytes = std::fs::read(&odd_local).unwrap();

    // Start reading one file (not the odd one) through the primary, then cut the primary.
    let victim = files
        .iter()
        .find(|f| std::fs::metadata(f).unwrap().len() != odd_bytes.len() as u64)
        .unwrap()
        .clone();
    let mut reader = std::fs::File::open(&victim).unwrap();
    let mut got = vec![0u8; 300 << 10];
    reader.read_exact(&mut got).unwrap();
    proxy.set_blackhole(true);
    let started = Instant::now();
    reader.read_to_end(&mut got).unwrap();
    let took = started.elapsed();
    assert!(
        originals.contains(&got),
        "bytes read across the failover differ from the original"
    );
    assert!(took < Duration::from_secs(15), "the failover took {took:?}");
    drop(reader);

    // Every other file still reads whole from the mirror, except the odd one, whose mirror
    // copy has another size: it fails rather than serve other bytes.
    for file in &files {
        let outcome = std::fs::read(file);
        let len = std::fs::metadata(file).unwrap().len();
        if len == odd_bytes.len() as u64 {
            let err = outcome.expect_err("the odd file was served from a disagreeing mirror");
            assert_eq!(err.raw_os_error(), Some(libc::EIO));
        } else {
            let bytes = outcome.unwrap();
            assert!(
                originals.contains(&bytes),
                "{}: bytes differ",
                file.display()
            );
        }
    }

    // The primary is back: the odd file reads again (from the primary).
    proxy.set_blackhole(false);
    proxy.reset_all();
    std::thread::sleep(Duration::from_millis(200));
    let odd_mounted = files
        .iter()
        .find(|f| std::fs::metadata(f).unwrap().len() == odd_bytes.len() as u64)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read(odd_mounted) {
            Ok(bytes) => {
                let first_difference = bytes.iter().zip(&odd_bytes).position(|(a, b)| a != b);
                assert!(
                    bytes == odd_bytes,
                    "the odd file: {} bytes read, {} expected, first difference at {:?}",
                    bytes.len(),
                    odd_bytes.len(),
                    first_difference
                );
                break;
            }
            Err(err) if Instant::now() < deadline => {
                eprintln!("odd file not yet readable: {err}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(err) => panic!("the odd file never read back from the primary: {err}"),
        }
    }
    mounted.unmount().unwrap();
}
