//! `musicfs mount` for real: a FUSE mount of a scanned library of real audio files.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use musicfs_layout::{FileName, Layout};
use musicfs_tests::{MountedLibrary, eventually, walk_relative};
use musicfs_tools::{Format, write_track};

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("must fail").raw_os_error().unwrap()
}

#[test]
fn the_tree_matches_the_tags_and_every_file_reads_back_identical() {
    let lib = MountedLibrary::new(150, 61);
    let walked = walk_relative(&lib.mnt);
    let files: BTreeSet<String> = walked
        .iter()
        .filter(|(_, d)| !d)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(files.len(), lib.files.len(), "every file appears once");

    // Paths are what the layout renders from the written tags (modulo collision numbering).
    let layout = Layout::default_layout();
    for f in &lib.files {
        let name = f.path.file_name().unwrap().as_bytes();
        let ext = f.format.ext();
        let stem = String::from_utf8_lossy(&name[..name.len() - ext.len() - 1]);
        let mut t = f.track.clone();
        t.format = Some(f.format.lofty_name().into());
        // Album folders are named by the values of the file's album group (resolved by the
        // scanner over its real folder), as stored.
        t.album_group = lib
            .conn()
            .query_row(
                "SELECT f.group_album, f.group_artist, f.group_year FROM files f \
                 JOIN folders d ON d.id = f.folder_id WHERE d.path = ?1 AND f.name = ?2",
                {
                    let rel = f.path.strip_prefix(&lib.root).unwrap();
                    let dir = rel.parent().unwrap().as_os_str().as_bytes();
                    [
                        musicfs_db::PathBytes::borrowed(dir),
                        musicfs_db::PathBytes::borrowed(name),
                    ]
                },
                |r| {
                    Ok(musicfs_tags::AlbumValues {
                        album: r.get(0)?,
                        artist: r.get(1)?,
                        year: r.get(2)?,
                    })
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
        let want = layout.render(&t, &FileName { stem: &stem, ext })[0]
            .components
            .join("/");
        let want_stem = want.strip_suffix(&format!(".{ext}")).unwrap();
        assert!(
            files.contains(&want)
                || files
                    .iter()
                    .any(|p| p.starts_with(&format!("{want_stem} ("))),
            "{want} missing"
        );
    }

    // Bytes and sizes through the mount equal the backing files.
    for (vpath, real) in lib.placements() {
        let through = std::fs::read(lib.mnt.join(&vpath)).unwrap();
        let direct = std::fs::read(OsStr::from_bytes(&real)).unwrap();
        assert!(through == direct, "{vpath}: bytes differ");
        assert_eq!(
            std::fs::metadata(lib.mnt.join(&vpath)).unwrap().len(),
            direct.len() as u64
        );
    }
    // Directories are read-only 0555, files 0444.
    use std::os::unix::fs::PermissionsExt;
    let (dir, _) = walked.iter().find(|(_, d)| *d).unwrap();
    assert_eq!(
        std::fs::metadata(lib.mnt.join(dir))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );
    let file = files.iter().next().unwrap();
    assert_eq!(
        std::fs::metadata(lib.mnt.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o444
    );
}

#[test]
fn every_mutation_is_refused_with_erofs() {
    let lib = MountedLibrary::new(20, 67);
    let (vpath, _) = lib.placements().remove(0);
    let file = lib.mnt.join(&vpath);
    let dir = file.parent().unwrap().to_owned();
    let erofs = libc::EROFS;
    assert_eq!(
        errno(std::fs::OpenOptions::new().write(true).open(&file)),
        erofs
    );
    assert_eq!(
        errno(std::fs::OpenOptions::new().append(true).open(&file)),
        erofs
    );
    assert_eq!(errno(std::fs::File::create(dir.join("new.flac"))), erofs);
    assert_eq!(errno(std::fs::create_dir(dir.join("newdir"))), erofs);
    assert_eq!(errno(std::fs::remove_file(&file)), erofs);
    assert_eq!(errno(std::fs::remove_dir(&dir)), erofs);
    assert_eq!(
        errno(std::fs::rename(&file, dir.join("renamed.flac"))),
        erofs
    );
    assert_eq!(
        errno(std::os::unix::fs::symlink("x", dir.join("link"))),
        erofs
    );
    assert_eq!(errno(std::fs::hard_link(&file, dir.join("hard"))), erofs);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        errno(std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(0o777)
        )),
        erofs
    );
    // Truncating by path is a write: EROFS. Through a read-only fd the kernel refuses first.
    let c = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 0) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(erofs));
    let f = std::fs::File::open(&file).unwrap();
    assert_eq!(errno(f.set_len(0)), libc::EINVAL);
    let rc = unsafe { libc::setxattr(c.as_ptr(), c"user.x".as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    assert_eq!(rc, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(erofs));
    // and the mount is ro,nosuid,nodev
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(lib.mnt.to_str().unwrap()))
        .unwrap();
    let opts = line.split(' ').nth(5).unwrap();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing from {opts}");
    }
}

#[test]
fn scanner_changes_show_up_live_and_open_files_keep_reading() {
    let lib = MountedLibrary::new(60, 71);
    let placements = lib.placements();
    // A name probed before it exists: the kernel caches the negative entry for the TTL (60 s).
    let new_vpath = "Live Artist/Live Album (2026)/01 - Live Song.flac";
    assert!(!lib.mnt.join(new_vpath).exists());
    assert!(!lib.mnt.join("Live Artist").exists());

    // Keep a file open across its removal.
    let (removed_vpath, removed_real) = placements[0].clone();
    let mut open = std::fs::File::open(lib.mnt.join(&removed_vpath)).unwrap();
    std::fs::remove_file(OsStr::from_bytes(&removed_real)).unwrap();
    // Change one file's tags: its path changes.
    let changed = lib
        .files
        .iter()
        .find(|f| {
            f.track.title.is_some() && !placements[0].1.ends_with(f.path.as_os_str().as_bytes())
        })
        .unwrap();
    let mut retitled = changed.track.clone();
    retitled.title = Some("Completely Retitled".into());
    write_track(&changed.path, changed.format, &retitled, 77).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(&changed.path)
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    // Add one.
    let track = musicfs_tags::Track {
        title: Some("Live Song".into()),
        artist: Some("Live Artist".into()),
        album: Some("Live Album".into()),
        date: Some("2026".into()),
        track: Some(1),
        ..Default::default()
    };
    write_track(&lib.root.join("live.flac"), Format::Flac, &track, 5).unwrap();

    let s = lib.scan();
    assert_eq!((s.added, s.changed, s.removed), (1, 1, 1), "{s:?}");
    let took = eventually(Duration::from_secs(3), || lib.mnt.join(new_vpath).exists())
        .expect("an added file must appear (negative dentry invalidated)");
    eprintln!("added file visible after {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        eventually(Duration::from_secs(3), || !lib
            .mnt
            .join(&removed_vpath)
            .exists())
        .is_some()
    );
    assert_eq!(
        std::fs::metadata(lib.mnt.join(&removed_vpath))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    let new_changed = lib
        .placements()
        .into_iter()
        .find(|(v, _)| v.contains("Completely Retitled"))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || lib
            .mnt
            .join(&new_changed.0)
            .exists())
        .is_some()
    );
    // The open handle on the removed entry still reads (the backing file is gone, its fd is not).
    let mut bytes = Vec::new();
    open.read_to_end(&mut bytes).unwrap();
    assert!(!bytes.is_empty());
    // Reading the added file gives its bytes.
    assert_eq!(
        std::fs::read(lib.mnt.join(new_vpath)).unwrap(),
        std::fs::read(lib.root.join("live.flac")).unwrap()
    );
}

#[test]
fn a_backing_file_changed_since_the_scan_is_never_served_under_a_stale_size() {
    let lib = MountedLibrary::new(10, 73);
    let (vpath, real) = lib.placements().remove(0);
    let real = Path::new(OsStr::from_bytes(&real)).to_owned();
    let mut bytes = std::fs::read(&real).unwrap();
    bytes.extend_from_slice(b"grown");
    std::fs::write(&real, &bytes).unwrap();
    let err = std::fs::read(lib.mnt.join(&vpath)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    lib.scan(); // the rescan logs the change; the mount serves the new bytes
    assert!(
        eventually(Duration::from_secs(3), || std::fs::read(
            lib.mnt.join(&vpath)
        )
        .ok()
            == Some(bytes.clone()))
        .is_some()
    );
}

#[test]
fn concurrent_walkers_and_readers_see_no_errors_while_the_scanner_writes() {
    let lib = MountedLibrary::new(200, 79);
    let stable = lib.placements();
    let stop = AtomicBool::new(false);
    let errors = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (stable, stop, errors, reads, lib) = (&stable, &stop, &errors, &reads, &lib);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (vpath, real) = &stable[i % stable.len()];
                    i += 7;
                    let ok = if t % 2 == 0 {
                        std::fs::read(lib.mnt.join(vpath)).ok().as_deref()
                            == std::fs::read(OsStr::from_bytes(real)).ok().as_deref()
                    } else {
                        std::fs::read_dir(lib.mnt.join(vpath).parent().unwrap())
                            .map(|d| {
                                d.filter_map(Result::ok)
                                    .any(|e| Path::new(vpath).file_name() == Some(&e.file_name()))
                            })
                            .unwrap_or(false)
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("error on {vpath}");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Meanwhile the scanner adds and removes whole albums, 6 rounds.
        for round in 0..6 {
            let dir = lib.root.join(format!("churn-{round}"));
            musicfs_tools::generate_library(&dir, 30, 1000 + round).unwrap();
            if round > 0 {
                std::fs::remove_dir_all(lib.root.join(format!("churn-{}", round - 1))).unwrap();
            }
            lib.scan();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "only {} operations",
        reads.load(Ordering::Relaxed)
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    musicfs_tests::assert_handles_released(lib.mounted.as_ref().unwrap());
}

#[test]
fn a_busy_mountpoint_and_a_missing_database_are_clear_errors() {
    let lib = MountedLibrary::new(5, 83);
    let err = musicfs_fs::mount(lib.mount_config()).err().unwrap();
    assert!(err.to_string().contains("already a mount point"), "{err}");
    let mut cfg = lib.mount_config();
    cfg.db = lib.dir.path().join("nope.db");
    let err = musicfs_fs::mount(cfg).err().unwrap();
    assert!(err.to_string().contains("no database"), "{err}");
    let mut cfg = lib.mount_config();
    cfg.mountpoint = lib.dir.path().join("no-such-dir");
    let err = musicfs_fs::mount(cfg).err().unwrap();
    assert!(
        err.to_string()
            .contains("mountpoint must be an existing directory"),
        "{err}"
    );
}

#[test]
fn statfs_reports_the_library_size() {
    let lib = MountedLibrary::new(30, 89);
    let c = std::ffi::CString::new(lib.mnt.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    let bytes: i64 = lib
        .conn()
        .query_row("SELECT sum(size) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(st.f_blocks, (bytes as u64).div_ceil(4096));
    assert_eq!(st.f_files, 30);
    assert_eq!(st.f_namemax, 255);
    assert!(st.f_flag & libc::ST_RDONLY != 0);
}

#[test]
fn readdirplus_mode_lists_the_same_tree_with_attributes() {
    let mut lib = MountedLibrary::new(80, 97);
    let plain = walk_relative(&lib.mnt);
    lib.mounted.take().unwrap().unmount().unwrap();
    let mut cfg = lib.mount_config();
    cfg.readdirplus = true;
    lib.mounted = Some(musicfs_fs::mount(cfg).unwrap());
    let plus = walk_relative(&lib.mnt);
    let (mut a, mut b) = (plain.clone(), plus);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for (vpath, real) in lib.placements() {
        let size = std::fs::metadata(OsStr::from_bytes(&real)).unwrap().len();
        assert_eq!(
            std::fs::metadata(lib.mnt.join(&vpath)).unwrap().len(),
            size,
            "{vpath}"
        );
    }
}

#[test]
fn backing_files_vanishing_or_changing_under_a_mount_give_clean_errors_or_their_bytes() {
    let lib = MountedLibrary::new(12, 83);
    // A second mount of the same DB with reads served by the daemon (no kernel passthrough).
    let daemon_mnt = lib.dir.path().join("mnt-daemon");
    std::fs::create_dir(&daemon_mnt).unwrap();
    let mut cfg = lib.mount_config();
    cfg.mountpoint = daemon_mnt.clone();
    cfg.passthrough = false;
    let daemon = musicfs_fs::mount(cfg).unwrap();
    let files = lib.placements();
    for (i, mnt) in [&lib.mnt, &daemon_mnt].into_iter().enumerate() {
        let pick = |k: usize| {
            let (vpath, real) = &files[i * 4 + k];
            (
                mnt.join(vpath),
                Path::new(OsStr::from_bytes(real)).to_owned(),
            )
        };

        // Deleted since the scan: open fails cleanly (ENOENT), the mount lives on.
        let (through, real) = pick(0);
        std::fs::remove_file(&real).unwrap();
        assert_eq!(errno(std::fs::File::open(&through)), libc::ENOENT);

        // Truncated while open: reads end early, nothing hangs or crashes.
        let (through, real) = pick(1);
        let original = std::fs::read(&real).unwrap();
        let mut f = std::fs::File::open(&through).unwrap();
        let mut head = vec![0; 100];
        f.read_exact(&mut head).unwrap();
        assert_eq!(head, original[..100]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&real)
            .unwrap()
            .set_len(200)
            .unwrap();
        let mut rest = Vec::new();
        let got = f.read_to_end(&mut rest).map(|_| rest.len());
        assert!(
            matches!(got, Ok(n) if n <= original.len() - 100) || got.is_err(),
            "{got:?}"
        );
        drop(f);

        // Replaced by a new file (rename over it) while open: the open file keeps its bytes.
        let (through, real) = pick(2);
        let original = std::fs::read(&real).unwrap();
        let mut f = std::fs::File::open(&through).unwrap();
        let tmp = real.with_extension("new");
        std::fs::write(&tmp, b"not the same file").unwrap();
        std::fs::rename(&tmp, &real).unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert!(all == original, "an open file changed under its reader");
        // Opened anew, the size no longer matches the DB's: EIO until a rescan, never bytes
        // under a stale size.
        assert_eq!(errno(std::fs::read(&through)), libc::EIO);

        // Everything else still reads.
        let (through, real) = pick(3);
        assert!(std::fs::read(&through).unwrap() == std::fs::read(&real).unwrap());
    }
    daemon.unmount().unwrap();
}
