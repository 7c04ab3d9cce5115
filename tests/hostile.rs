//! Hostile input (toward issue #5): mutated audio files and hostile names and trees. Nothing
//! may crash, hang, escape its directory or be served wrong.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use musicfs_scan::ScanConfig;
use musicfs_tags::Track;
use musicfs_tests::{
    audio_files_below, registry_corpus, scan_with_watchdog, shared_corpus, walk_relative,
};
use musicfs_tools::{Format, Rng, write_track};

/// Deterministic mutants of `bytes`: each is (label, bytes, extension).
fn mutants(bytes: &[u8], ext: &str, rng: &mut Rng) -> Vec<(String, Vec<u8>, String)> {
    let n = bytes.len().max(1);
    let mut out = vec![
        ("empty".into(), Vec::new(), ext.to_owned()),
        (
            "one-byte".into(),
            bytes[..1.min(bytes.len())].to_vec(),
            ext.to_owned(),
        ),
        (
            "half".into(),
            bytes[..bytes.len() / 2].to_vec(),
            ext.to_owned(),
        ),
        (
            "minus-one".into(),
            bytes[..bytes.len().saturating_sub(1)].to_vec(),
            ext.to_owned(),
        ),
    ];
    let mut flipped = bytes.to_vec();
    for _ in 0..16 {
        let i = rng.below(n as u64) as usize % flipped.len().max(1);
        if let Some(b) = flipped.get_mut(i) {
            *b ^= 1 << rng.below(8);
        }
    }
    out.push(("bitflip".into(), flipped, ext.to_owned()));
    let mut zeroed = bytes.to_vec();
    let start = rng.below(n as u64) as usize;
    for b in zeroed.iter_mut().skip(start).take(4096) {
        *b = 0;
    }
    out.push(("zeroed".into(), zeroed, ext.to_owned()));
    // Huge size fields: 0xFF over the first header words (chunk sizes, block lengths, ID3 sizes).
    for at in [4usize, 6, 8, 16, 40] {
        let mut huge = bytes.to_vec();
        for b in huge.iter_mut().skip(at).take(4) {
            *b = 0xFF;
        }
        out.push((format!("huge-at-{at}"), huge, ext.to_owned()));
    }
    let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
    let (a, b) = (a.min(b).min(bytes.len()), a.max(b).min(bytes.len()));
    let mut dup = bytes[..b].to_vec();
    dup.extend_from_slice(&bytes[a..b]);
    dup.extend_from_slice(&bytes[b..]);
    out.push(("duplicated".into(), dup, ext.to_owned()));
    let wrong = if ext == "mp3" { "flac" } else { "mp3" };
    out.push(("wrong-ext".into(), bytes.to_vec(), wrong.to_owned()));
    out
}

#[test]
fn mutated_files_are_indexed_or_reported_and_read_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources");
    std::fs::create_dir(&sources).unwrap();
    let mut inputs: Vec<PathBuf> = Vec::new();
    for (i, format) in Format::ALL.into_iter().enumerate() {
        let p = sources.join(format!("src-{i}.{}", format.ext()));
        let t = Track {
            title: Some("Source".into()),
            artist: Some("Mutant".into()),
            track: Some(1),
            ..Track::default()
        };
        write_track(&p, format, &t, i as u32).unwrap();
        inputs.push(p);
    }
    // The long run (MUSICFS_MUTANTS=10000, see docs/reliability.md) mutates every corpus file
    // under 2 MiB, in as many seeded rounds as it takes; the default is a small fixed sample.
    let target: usize = std::env::var("MUSICFS_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (shared_step, registry_step) = if target > 0 { (1, 1) } else { (12, 25) };
    for (corpus, step) in [
        (shared_corpus(), shared_step),
        (registry_corpus(), registry_step),
    ] {
        let Some(corpus) = corpus else { continue };
        let mut real: Vec<PathBuf> = audio_files_below(&corpus)
            .into_iter()
            .filter(|p| {
                std::fs::metadata(p)
                    .map(|m| m.len() < 2 << 20)
                    .unwrap_or(false)
            })
            .collect();
        real.sort();
        inputs.extend(real.into_iter().step_by(step)); // deterministic
    }
    let per_round = inputs.len() * 13;
    let rounds = target.div_ceil(per_round).max(1);
    let root = dir.path().join("music");
    std::fs::create_dir(&root).unwrap();
    let mut written = 0;
    for round in 0..rounds {
        let folder = root.join(format!("round-{round:03}"));
        std::fs::create_dir(&folder).unwrap();
        let mut rng = Rng::new(2026 + round as u64);
        for (i, input) in inputs.iter().enumerate() {
            let bytes = std::fs::read(input).unwrap();
            let ext = musicfs_tags::audio_extension(input.file_name().unwrap().as_bytes()).unwrap();
            for (label, data, ext) in mutants(&bytes, &ext, &mut rng) {
                std::fs::write(folder.join(format!("{i:04}-{label}.{ext}")), data).unwrap();
                written += 1;
            }
        }
    }
    let db = dir.path().join("m.db");
    let summary = scan_with_watchdog(
        ScanConfig::new(&db, vec![root.clone()]),
        Duration::from_secs(120 + written as u64 / 20),
    );
    assert_eq!(summary.added, written as u64, "{summary:?}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert!(musicfs_db::check_consistency(&conn).unwrap().is_empty());
    let bad: i64 = conn
        .query_row("SELECT count(*) FROM files WHERE (scan_error IS NULL AND format IS NULL) OR scan_error = ''", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bad, 0, "every mutant is either read or has a cause");
    eprintln!("{written} mutants: {} reported unreadable", summary.errors);

    // Every mutant, readable or not, reads back byte-identical through a real mount.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt)).unwrap();
    let mut stmt = conn.prepare("SELECT vpath, abs_path FROM tracks").unwrap();
    let rows: Vec<(String, musicfs_db::PathBytes)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), written);
    for (vpath, real) in rows {
        let through = std::fs::read(mnt.join(&vpath)).unwrap();
        assert!(
            through == std::fs::read(OsStr::from_bytes(&real.0)).unwrap(),
            "{vpath}"
        );
    }
    mounted.unmount().unwrap();
}

#[test]
fn hostile_names_and_trees_never_escape_or_break_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    std::fs::create_dir(&root).unwrap();
    let outside = dir.path().join("outside-secret.flac");
    write_track(&outside, Format::Flac, &Track::default(), 1).unwrap();

    let hostile_tags: Vec<(&str, Track)> = vec![
        (
            "slashes",
            Track {
                artist: Some("AC/DC".into()),
                album: Some("/".into()),
                title: Some("../../etc/passwd".into()),
                ..Track::default()
            },
        ),
        (
            "dots",
            Track {
                artist: Some("..".into()),
                album: Some(".".into()),
                title: Some("...".into()),
                ..Track::default()
            },
        ),
        (
            "controls",
            Track {
                artist: Some("a\u{1}b\u{7f}c\u{9b}".into()),
                title: Some("tab\there\nnewline".into()),
                ..Track::default()
            },
        ),
        (
            "rtl",
            Track {
                artist: Some("\u{202e}evil\u{202c}".into()),
                title: Some("\u{200f}rtl".into()),
                ..Track::default()
            },
        ),
        (
            "huge",
            Track {
                artist: Some("Big".into()),
                title: Some("x".repeat(1 << 20)),
                ..Track::default()
            },
        ),
        (
            "nul",
            Track {
                artist: Some("nul\0inside".into()),
                title: Some("\0".into()),
                ..Track::default()
            },
        ),
    ];
    for (i, (name, track)) in hostile_tags.iter().enumerate() {
        write_track(
            &root.join(format!("{name}.flac")),
            Format::Flac,
            track,
            i as u32,
        )
        .unwrap();
    }
    // Names: 255 bytes, names that sanitize to dots, a 60-deep folder, links.
    let long = format!("{}.mp3", "n".repeat(251));
    write_track(&root.join(&long), Format::Mp3, &Track::default(), 7).unwrap();
    write_track(&root.join(".. .mp3"), Format::Mp3, &Track::default(), 8).unwrap();
    let mut deep = root.clone();
    for d in 0..60 {
        deep = deep.join(format!("d{d}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    write_track(
        &deep.join("deep.flac"),
        Format::Flac,
        &Track {
            title: Some("Deep".into()),
            ..Track::default()
        },
        9,
    )
    .unwrap();
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap(); // a folder loop
    std::os::unix::fs::symlink(root.join("missing.flac"), root.join("dangling.flac")).unwrap();
    // A file link out of the music folder: skipped and reported, never served.
    std::os::unix::fs::symlink(&outside, root.join("linked.flac")).unwrap();
    // A file link within it: followed.
    std::os::unix::fs::symlink(".. .mp3", root.join("inside.mp3")).unwrap();

    let db = dir.path().join("h.db");
    let summary = scan_with_watchdog(
        ScanConfig::new(&db, vec![root.clone()]),
        Duration::from_secs(60),
    );
    // 6 hostile tags + long + dots + deep + the link inside; not the loop, the dangling link
    // or the link leading out (reported).
    assert_eq!(summary.added, 10, "{summary:?}");
    assert_eq!(summary.errors, 1, "{summary:?}");

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = musicfs_fs::mount(musicfs_fs::MountConfig::new(&db, &mnt)).unwrap();
    let walked = walk_relative(&mnt);
    let files: BTreeSet<&String> = walked.iter().filter(|(_, d)| !d).map(|(p, _)| p).collect();
    assert_eq!(files.len(), 10, "{files:#?}");
    for (path, _) in &walked {
        for component in path.split('/') {
            assert!(
                !component.is_empty() && component != "." && component != "..",
                "{path:?}"
            );
            assert!(
                component.len() <= 255,
                "{} bytes in {path:?}",
                component.len()
            );
            assert!(!component.chars().any(|c| c.is_control()), "{path:?}");
        }
        // Every path resolves inside the mount: nothing climbs out.
        let canonical = std::fs::canonicalize(mnt.join(path)).unwrap();
        assert!(
            canonical.starts_with(&mnt),
            "{path:?} escapes to {canonical:?}"
        );
    }
    assert!(
        files.iter().any(|p| p.ends_with(".._.._etc_passwd.flac")),
        "{files:#?}"
    );
    assert!(files.iter().any(|p| p.starts_with("AC_DC/")), "{files:#?}");
    let deep_file = files.iter().find(|p| p.ends_with("Deep.flac")).unwrap();
    assert_eq!(
        std::fs::read(mnt.join(deep_file)).unwrap(),
        std::fs::read(deep.join("deep.flac")).unwrap()
    );
    mounted.unmount().unwrap();
    assert!(Path::new(&outside).exists());
}
