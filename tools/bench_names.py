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


def bench(n, runs, work_parent=None):
    """Medians of `runs` alternating runs: {"scan"|"relayout": {"distinct", "colliding", "ratio"}}."""
    work = Path(tempfile.mkdtemp(prefix="bench-names-", dir=work_parent))
    try:
        libs = {"distinct": work / "distinct", "colliding": work / "colliding"}
        for kind, lib in libs.items():
            make(lib, n, kind == "colliding")
        results = {k: {"scan": [], "relayout": []} for k in libs}
        for run in range(runs):
            for kind, lib in libs.items():  # alternating: A B A B ...
                db = work / f"{kind}-{run}.db"
                secs, summary = scan(lib, db, "--no-search")
                assert summary["added"] == n, summary
                results[kind]["scan"].append(n / secs)
                secs, summary = scan(lib, db, "--no-search", "--template",
                                     '${artist|"Unknown"}/${album|"Untitled"}/${title|filename}')
                results[kind]["relayout"].append(n / secs)
                db.unlink()
        report = {"n": n, "runs": runs}
        for phase in ("scan", "relayout"):
            d = statistics.median(results["distinct"][phase])
            c = statistics.median(results["colliding"][phase])
            report[phase] = {"distinct": d, "colliding": c, "ratio": c / d}
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(report):
    lines = [f"| {report['n']:,} files | distinct names (files/s) | colliding names (files/s) | ratio |",
             "|---|---:|---:|---:|"]
    for phase in ("scan", "relayout"):
        r = report[phase]
        lines.append(f"| first {phase} | {r['distinct']:,.0f} | {r['colliding']:,.0f} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    report = bench(args.n, args.runs)
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
