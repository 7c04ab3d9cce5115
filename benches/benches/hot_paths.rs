//! In-process micro-benchmarks of the hot paths: what one FUSE request or one scanned file
//! costs without the kernel. `cargo bench -p musicfs-benches`.

use std::hint::black_box;
use std::path::Path;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use musicfs_db::{PoolOptions, ReadPool, queries};
use musicfs_layout::{FileName, Layout};
use musicfs_tags::Track;
use musicfs_tools::synthetic::{Shape, write_synthetic_db};

fn synthetic(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("backing");
    std::fs::create_dir_all(&root).unwrap();
    let template = root.join("t.flac");
    musicfs_tools::write_track(&template, musicfs_tools::Format::Flac, &Track::default(), 1)
        .unwrap();
    let db = dir.join("bench.db");
    write_synthetic_db(&db, Shape::for_tracks(100_000), &root, &[&template]).unwrap();
    db
}

fn db_queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = synthetic(dir.path());
    for (label, mmap) in [("mmap", 2u64 << 30), ("no mmap", 0)] {
        let pool = ReadPool::open(
            &db,
            &PoolOptions {
                mmap_size: mmap,
                ..Default::default()
            },
        )
        .unwrap();
        let conn = pool.get().unwrap();
        let album = queries::lookup(&conn, 2, "Album 000 (1960)")
            .unwrap()
            .unwrap()
            .id;
        c.bench_function(&format!("lookup(dir, name), {label}"), |b| {
            b.iter(|| {
                queries::lookup(
                    &conn,
                    black_box(album),
                    black_box("05 - Track 5 of Album 000.flac"),
                )
                .unwrap()
            })
        });
        c.bench_function(&format!("getattr(inode), {label}"), |b| {
            b.iter(|| queries::entry(&conn, black_box(album + 3)).unwrap())
        });
        c.bench_function(
            &format!("readdir page of 1000 names (root), {label}"),
            |b| b.iter(|| queries::readdir_names(&conn, 1, black_box(0), 1000).unwrap()),
        );
        drop(conn);
        c.bench_function(&format!("pool checkout + lookup, {label}"), |b| {
            b.iter(|| {
                let conn = pool.get().unwrap();
                queries::lookup(&conn, black_box(album), "05 - Track 5 of Album 000.flac").unwrap()
            })
        });
    }
}

fn render(c: &mut Criterion) {
    let layout = Layout::default_layout();
    let track = Track {
        title: Some("Paranoid Android".into()),
        artist: Some("Radiohead".into()),
        album: Some("OK Computer".into()),
        date: Some("1997".into()),
        track: Some(2),
        tracktotal: Some(12),
        ..Track::default()
    };
    let file = FileName {
        stem: "02 paranoid android",
        ext: "flac",
    };
    c.bench_function("template render (default layout)", |b| {
        b.iter(|| layout.render(black_box(&track), &file))
    });
}

fn tag_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for format in musicfs_tools::Format::ALL {
        let path = dir.path().join(format!("t.{}", format.ext()));
        let track = Track {
            title: Some("Title".into()),
            artist: Some("Artist".into()),
            track: Some(3),
            ..Track::default()
        };
        musicfs_tools::write_track(&path, format, &track, 1).unwrap();
        c.bench_function(&format!("tag read, {}", format.ext()), |b| {
            b.iter(|| musicfs_tags::read_track(black_box(&path)).unwrap())
        });
        // The scanner's path: 16 reads handed to a helper thread under a per-file time limit,
        // against the same 16 reads in place. The difference is the price of the hard limit.
        let batch: Vec<&std::path::Path> = vec![path.as_path(); 16];
        c.bench_function(&format!("16 tag reads in place, {}", format.ext()), |b| {
            b.iter(|| {
                for p in &batch {
                    musicfs_tags::read_track(black_box(p)).unwrap();
                }
            })
        });
        c.bench_function(
            &format!("16 tag reads with time limit, {}", format.ext()),
            |b| {
                b.iter(|| {
                    musicfs_tags::read_tracks_within(black_box(&batch), Duration::from_secs(30))
                })
            },
        );
    }
}

fn scan_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    musicfs_tools::generate_library(&music, 1_000, 3).unwrap();
    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.bench_function(
        "first scan of 1,000 files (read + render + batch write)",
        |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |out| {
                    musicfs_scan::scan(&musicfs_scan::ScanConfig::new(
                        out.path().join("s.db"),
                        vec![music.clone()],
                    ))
                    .unwrap()
                },
                criterion::BatchSize::PerIteration,
            )
        },
    );
    let db = dir.path().join("warm.db");
    musicfs_scan::scan(&musicfs_scan::ScanConfig::new(&db, vec![music.clone()])).unwrap();
    group.bench_function("no-change rescan of 1,000 files", |b| {
        b.iter(|| {
            musicfs_scan::scan(&musicfs_scan::ScanConfig::new(&db, vec![music.clone()])).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, db_queries, render, tag_read, scan_batch);
criterion_main!(benches);
