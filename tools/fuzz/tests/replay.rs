//! Every input the fuzzers ever flagged (tools/fuzz/crashers/<target>/), replayed through the
//! same checks as the fuzz targets: once fixed, a finding stays fixed. Also a short
//! proptest-driven fuzz of both targets, so CI explores a little on every run.

use std::path::Path;

use proptest::prelude::*;

fn crashers(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crashers")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".gitkeep"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn saved_template_crashers_render_safe_names() {
    let saved = crashers("template");
    assert!(!saved.is_empty(), "the regression set is empty");
    for (name, data) in saved {
        eprintln!("replaying {name}");
        musicfs_fuzz::template(&data);
    }
}

#[test]
fn saved_tag_crashers_are_read_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let saved = crashers("tags");
    // At least the Opus header with 0 channels that makes lofty 0.25 panic: replaying it
    // proves the containment holds, not just that an empty folder was walked.
    assert!(
        saved.iter().any(|(name, _)| name == "opus-zero-channels"),
        "the regression set lost its known crasher: {:?}",
        saved.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, data) in saved {
        eprintln!("replaying {name}");
        let read = musicfs_fuzz::tags(&data, &scratch);
        if name == "opus-zero-channels" {
            assert!(!read, "a 0-channel Opus header cannot be read as audio");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_template_and_values_render_safe_names(
        template in "([$%{}\\[\\]|,\"/\\\\a-z0-9 .]|\\$[a-z]+|%[a-z]+\\{){0,40}",
        values in proptest::collection::vec(".{0,40}", 0..9),
    ) {
        let mut data = template.into_bytes();
        for v in values {
            data.push(0);
            data.extend_from_slice(v.as_bytes());
        }
        musicfs_fuzz::template(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_bytes_after_a_real_header_are_read_or_rejected(
        header in prop::sample::select(vec![
            &b"fLaC"[..], b"ID3\x04\x00\x00", b"OggS\x00\x02", b"RIFF\xff\xff\xff\x7fWAVEfmt ",
            b"FORM\x00\x00\x10\x00AIFFCOMM", b"\x00\x00\x00\x20ftypM4A ", b"MAC ", b"wvpk", b"MPCK",
            b"\xff\xfb\x90\x64",
        ]),
        tail in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut data = header.to_vec();
        data.extend_from_slice(&tail);
        musicfs_fuzz::tags(&data, &dir.path().join("scratch"));
    }
}
