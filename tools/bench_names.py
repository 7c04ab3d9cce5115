#!/usr/bin/env python3
"""Colliding-names benchmark: a library where every file renders to the same virtual name
(untagged rips: N folders each holding `01.wav`, all shown in `Unknown Artist/Unknown Album/`)
against a library of as many distinct names, scanned by musicfs-scan in alternating runs.
Then both are re-laid out (a template change: every file re-placed from stored tags).

    python3 tools/bench_names.py --n 100000 --runs 3

Needs release binaries (`cargo build --release --workspace`). Target: the colliding library
scans (and re-lays out) at >= 0.7x the files/s of the distinct one.
"""
import argparse, json, os, shutil, statistics, struct, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = Path(os.environ.get("MUSICFS_BIN_DIR", ROOT / "target" / "release"))


def wav(seed):
    """A tiny valid WAV (8 kHz mono 16-bit), distinct per seed so no two files are equal."""
    samples = struct.pack("<4h", seed & 0x7FFF, (seed >> 15) & 0x7FFF, 0, 0)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    data = struct.pack("<4sI", b"data", len(samples)) + samples
    body = b"WAVE" + fmt + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def make(root, n, colliding):
    """n folders of one file each: only the file names differ between the two libraries."""
    root.mkdir(parents=True)
    for i in range(n):
        d = root / f"rip{i:06d}"
        d.mkdir()
        name = "01.wav" if colliding else f"{i:06d}.wav"
        (d / name).write_bytes(wav(i))


def scan(lib, db, *extra):
    start = time.perf_counter()
    out = subprocess.run(
        [str(REL / "musicfs-scan"), "--db", str(db), "--quiet", "--json", *extra, str(lib)],
        check=True, stdout=subprocess.PIPE).stdout
    return time.perf_counter() - start, json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-names-"))
    try:
        libs = {"distinct": work / "distinct", "colliding": work / "colliding"}
        for kind, lib in libs.items():
            make(lib, args.n, kind == "colliding")
        results = {k: {"scan": [], "relayout": []} for k in libs}
        for run in range(args.runs):
            for kind, lib in libs.items():  # alternating: A B A B ...
                db = work / f"{kind}-{run}.db"
                secs, summary = scan(lib, db, "--no-search")
                assert summary["added"] == args.n, summary
                results[kind]["scan"].append(args.n / secs)
                secs, summary = scan(lib, db, "--no-search", "--template",
                                     '${artist|"Unknown"}/${album|"Untitled"}/${title|filename}')
                results[kind]["relayout"].append(args.n / secs)
                db.unlink()
        report = {"n": args.n, "runs": args.runs}
        print(f"| {args.n:,} files | distinct names (files/s) | colliding names (files/s) | ratio |")
        print("|---|---:|---:|---:|")
        for phase in ("scan", "relayout"):
            d = statistics.median(results["distinct"][phase])
            c = statistics.median(results["colliding"][phase])
            report[phase] = {"distinct": d, "colliding": c, "ratio": c / d}
            print(f"| first {phase} | {d:,.0f} | {c:,.0f} | {c / d:.2f}x |")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
