#!/usr/bin/env python3
"""The musicfs benchmark suite, one command: scan and mount, musicfs vs musefs 1.3 vs a trivial
FUSE filesystem (the floor), on this machine. Systems alternate run by run and medians are
reported, because these machines are shared and noisy: compare the ratios.

    cargo build --release --workspace
    cargo install musefs --locked                 # optional; skipped with a note when absent
    python3 tools/bench.py                        # full run: ~30 min, ~12 GB in bench-out/
    python3 tools/bench.py --smoke --bin-dir target/debug    # seconds: CI, proves it runs

Writes bench-out/report.md (the tables for docs/benchmarks.md), bench-out/report.json and
bench-out/mount-vs-n.svg (mount-ready time and memory against library size, log axes).
"""
import argparse, json, math, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent


def svg_plot(sizes, path):
    """Mount-ready ms and RSS after a 100K walk against tracks, log-log, as a small SVG."""
    ns = sorted(int(n) for n in sizes)
    if len(ns) < 2:
        return
    series = [("mount ready (ms)", [sizes[n]["ready_ms"] for n in ns], "#1f77b4"),
              ("RSS after 100K-entry walk (MiB)", [sizes[n]["rss_walk"] for n in ns], "#d62728")]
    w, h, pad = 640, 360, 60
    lx = [math.log10(n) for n in ns]
    ys = [v for _, vals, _ in series for v in vals]
    ly_min, ly_max = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if ly_max == ly_min:
        ly_max += 1
    X = lambda v: pad + (v - lx[0]) / (lx[-1] - lx[0]) * (w - 2 * pad)
    Y = lambda v: h - pad - (math.log10(v) - ly_min) / (ly_max - ly_min) * (h - 2 * pad)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>',
           f'<text x="{w/2}" y="{h-15}" text-anchor="middle">tracks in the library (log)</text>',
           f'<text x="{w/2}" y="25" text-anchor="middle" font-size="14">musicfs: mount time and memory vs library size</text>']
    for n, x in zip(ns, lx):
        out.append(f'<text x="{X(x)}" y="{h-pad+18}" text-anchor="middle">{n:,}</text>')
    for e in range(ly_min, ly_max + 1):
        out.append(f'<text x="{pad-8}" y="{Y(10**e)+4}" text-anchor="end">{10**e:g}</text>')
        out.append(f'<line x1="{pad}" y1="{Y(10**e)}" x2="{w-pad}" y2="{Y(10**e)}" stroke="#ddd"/>')
    for i, (label, vals, color) in enumerate(series):
        pts = " ".join(f"{X(x):.1f},{Y(v):.1f}" for x, v in zip(lx, vals))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, v in zip(lx, vals):
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(v):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{pad+10}" y="{pad+15+16*i}" fill="{color}">{label}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out))


def numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def bench_search(work, n, queries):
    """Index build and query latency on a synthetic word library of n tracks (see
    tools/src/bin/bench_search.rs). Returns (markdown, {p50_ms, p99_ms})."""
    import bench_mount
    db = work / f"words-{n}.db"
    if not db.exists():
        subprocess.run([str(bench_mount.REL / "musicfs-gen-db"), "--words", "--n", str(n),
                        "--out", str(db)], check=True, capture_output=True)
    out = subprocess.run([str(bench_mount.REL / "musicfs-bench-search"), "--db", str(db),
                          "--queries", str(queries)], check=True, capture_output=True, text=True).stdout
    m = re.search(r"\| \*\*all\*\* \| \| \*\*([\d.]+) ms\*\* \| \*\*([\d.]+) ms\*\*", out)
    overall = {"p50_ms": float(m.group(1)), "p99_ms": float(m.group(2))} if m else {}
    return out.replace("## ", "### "), overall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round, no musefs: seconds")
    ap.add_argument("--bin-dir", help="where the musicfs binaries are (default target/release)")
    ap.add_argument("--work", help="scratch folder (default bench-out/, or a temp dir with --smoke)")
    ap.add_argument("--rounds", type=int)
    a = ap.parse_args()
    if a.bin_dir:
        os.environ["MUSICFS_BIN_DIR"] = str(Path(a.bin_dir).resolve())
    if a.smoke:
        os.environ["MUSICFS_BENCH_NO_MUSEFS"] = "1"
    import bench_mount, bench_names, bench_scan  # after the environment is set: they read it at import

    work = Path(a.work) if a.work else (Path(tempfile.mkdtemp(prefix="musicfs-bench-")) if a.smoke else ROOT / "bench-out")
    work.mkdir(parents=True, exist_ok=True)
    mnt = work / "mnt"
    mnt.mkdir(exist_ok=True)
    rounds = a.rounds or (1 if a.smoke else 3)
    p = dict(scan_n=[300] if a.smoke else [10_000, 100_000],
             sizes=[1_000, 10_000] if a.smoke else [10_000, 1_000_000, 10_000_000],
             floor_tracks=10_000 if a.smoke else 1_000_000, floor_stats=200 if a.smoke else 3000,
             read_size=(16 << 20) if a.smoke else (1 << 30))

    report, md = {"smoke": a.smoke, "kernel": os.uname().release, "cpus": os.cpu_count()}, []
    report["scan"] = {n: bench_scan.bench(n, rounds, work, 1) for n in p["scan_n"]}
    md += ["## Scan", "", bench_scan.markdown(report["scan"]), ""]
    report["names"] = bench_names.bench(300 if a.smoke else 100_000, rounds, work)
    md += ["## Colliding names", "", bench_names.markdown(report["names"]), ""]
    report["sizes"] = bench_mount.bench_sizes(work, p["sizes"], rounds, mnt)
    md += ["## Mount vs library size", "", bench_mount.md_sizes(report["sizes"]), ""]
    report["floor"] = bench_mount.bench_floor(work, rounds, mnt, p["floor_tracks"], p["floor_stats"])
    md += ["## Against the trivial-FUSE floor", "", bench_mount.md_floor(report["floor"]), ""]
    report["read"] = bench_mount.bench_read(work, rounds, mnt, p["read_size"])
    md += ["## Sequential read", "", bench_mount.md_read(report["read"]), ""]
    report["search"] = {}
    for n in ([10_000] if a.smoke else [1_000_000, 10_000_000]):
        text, overall = bench_search(work, n, 50 if a.smoke else 300)
        report["search"][n] = overall
        md += [f"## Search, {n:,} tracks", "", text, ""]
    if not a.smoke:
        report["musefs"] = bench_mount.bench_musefs(work, rounds, mnt)
        if report["musefs"]:
            md += ["## Mount side by side with musefs 1.3", "", bench_mount.md_musefs(report["musefs"]), ""]

    (work / "report.md").write_text("\n".join(md))
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))
    svg_plot(report["sizes"], work / "mount-vs-n.svg")
    print("\n".join(md))
    values = list(numbers(report))
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if len(values) < 30 or bad:
        sys.exit(f"benchmark produced {len(values)} numbers, {len(bad)} invalid")
    print(f"bench: {len(values)} numbers written to {work}/report.md, report.json, mount-vs-n.svg")
    if a.smoke:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
