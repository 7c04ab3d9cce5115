#!/usr/bin/env python3
"""Scan benchmark: musicfs-scan vs musefs 1.3 on the same generated library, same machine.

First scan (fresh DB) and no-change rescan: files/s and peak RSS. Systems alternate run by run
(A B A B ...) and medians are reported, because these machines are shared and noisy.

    python3 tools/bench_scan.py --n 10000 --n 100000 --runs 3

Needs release binaries (`cargo build --release --workspace`); musefs from
`cargo install musefs --locked` (skipped with a note when absent). Writes a markdown table to
stdout and JSON to --json.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = Path(os.environ.get("MUSICFS_BIN_DIR", ROOT / "target" / "release"))
# musefs 1.3 reads FLAC, MP3, M4A, Ogg, WAV: generate only formats both read.
FORMATS = "flac,mp3,wav,opus"


def run(cmd):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 5):  # 5: musicfs-scan finished with unreadable files
        sys.exit(f"{cmd[0]} failed with {code}")
    return seconds, usage.ru_maxrss / 1024, out


def count_rows(db, sql):
    import sqlite3
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchone()[0]


def systems(work):
    s = {
        "musicfs": lambda lib, db: [str(REL / "musicfs-scan"), "--db", db, "--quiet", "--json", lib],
    }
    musefs = shutil.which("musefs") if not os.environ.get("MUSICFS_BENCH_NO_MUSEFS") else None
    if musefs:
        s["musefs"] = lambda lib, db: [musefs, "scan", "--db", db, lib]
    else:
        print("NOTE: musefs not found (cargo install musefs --locked): measuring musicfs only",
              file=sys.stderr)
    return s


def bench(n, runs, work, seed):
    lib = work / f"lib-{n}-{seed}"
    if not (lib / ".complete").exists():
        shutil.rmtree(lib, ignore_errors=True)
        subprocess.run([str(REL / "musicfs-gen-library"), "--out", str(lib), "--n", str(n),
                        "--seed", str(seed), "--formats", FORMATS], check=True)
        (lib / ".complete").touch()
    results = {}
    syst = systems(work)
    order = list(syst)
    for i in range(runs):
        for name in (order if i % 2 == 0 else order[::-1]):
            db = work / f"{name}-{n}.db"
            for f in work.glob(f"{name}-{n}.db*"):  # the DB, its WAL, its search index
                shutil.rmtree(f) if f.is_dir() else f.unlink()
            first = run(syst[name](str(lib), str(db)))
            again = run(syst[name](str(lib), str(db)))
            r = results.setdefault(name, {"first_s": [], "first_rss": [], "re_s": [], "re_rss": []})
            r["first_s"].append(first[0]); r["first_rss"].append(first[1])
            r["re_s"].append(again[0]); r["re_rss"].append(again[1])
            if name == "musicfs":
                r["indexed"] = count_rows(db, "SELECT count(*) FROM files")
            else:
                r["indexed"] = count_rows(db, "SELECT count(*) FROM tracks")
    out = {}
    for name, r in results.items():
        med = {k: statistics.median(v) for k, v in r.items() if isinstance(v, list)}
        out[name] = {
            "files": n, "indexed": r["indexed"],
            "first_files_per_s": n / med["first_s"], "first_peak_rss_mib": med["first_rss"],
            "rescan_files_per_s": n / med["re_s"], "rescan_peak_rss_mib": med["re_rss"],
            "first_s": med["first_s"], "rescan_s": med["re_s"],
        }
    return out


def markdown(all_results):
    out = ["| files | system | indexed | first scan files/s | peak RSS MiB | rescan files/s | peak RSS MiB |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for n, res in all_results.items():
        for name, r in res.items():
            out.append(f"| {n} | {name} | {r['indexed']} | {r['first_files_per_s']:,.0f} | "
                       f"{r['first_peak_rss_mib']:.0f} | {r['rescan_files_per_s']:,.0f} | "
                       f"{r['rescan_peak_rss_mib']:.0f} |")
        if "musefs" in res:
            m, p = res["musicfs"], res["musefs"]
            out.append(f"| {n} | ratio musicfs/musefs | | {m['first_files_per_s']/p['first_files_per_s']:.2f}× | "
                       f"{m['first_peak_rss_mib']/p['first_peak_rss_mib']:.2f}× | "
                       f"{m['rescan_files_per_s']/p['rescan_files_per_s']:.2f}× | "
                       f"{m['rescan_peak_rss_mib']/p['rescan_peak_rss_mib']:.2f}× |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, action="append")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / "bench-out"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    all_results = {n: bench(n, a.runs, work, a.seed) for n in (a.n or [10_000])}
    print(markdown(all_results))
    if a.json:
        Path(a.json).write_text(json.dumps(all_results, indent=2))


if __name__ == "__main__":
    main()
