#!/usr/bin/env python3
"""Mount benchmark: musicfs against the trivial-FUSE floor and musefs 1.3, on this machine.

    cargo build --release --workspace
    python3 tools/bench_mount.py --sizes 10000,1000000,10000000 --rounds 3

Measures (medians of alternating rounds; ratios are what to compare on a noisy machine):
  - mount-ready time (spawn -> first root listing) and RSS after mount / after walking 100K
    entries, on synthetic DBs of each size (musicfs-gen-db);
  - stat p50/p99 with kernel TTL 0 (cold and warm caches) and listing a 10K-entry directory,
    musicfs vs the trivial filesystem (musicfs-trivial-fs) with the same tree;
  - sequential read GiB/s of a 1 GiB file: musicfs with passthrough, musicfs daemon reads,
    the trivial filesystem serving memory, and the backing file read directly;
  - musefs 1.3 on the same real 100K-file library (from tools/bench_scan.py): mount time, RSS,
    full walk, stat.
Writes a markdown report to stdout and JSON to --json.
"""

import argparse, json, os, shutil, signal, sqlite3, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = Path(os.environ.get("MUSICFS_BIN_DIR", ROOT / "target" / "release"))
DEEP = "Artist 0000000/Album 000 (1960)/01 - Track 1 of Album 000.flac"


def mounted(mnt):
    mnt = str(Path(mnt).resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == mnt for line in f)


def mount(cmd, mnt, timeout=600, probe="list"):
    """Starts a FUSE daemon; returns (proc, seconds until the root lists, or with
    probe="stat", until the root answers a stat)."""
    parent_dev = os.stat(Path(mnt).parent).st_dev
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            sys.exit(f"{cmd[0]} exited with {proc.returncode}")
        if mounted(mnt):
            try:
                if probe == "list":
                    os.listdir(mnt)
                elif os.stat(mnt).st_dev == parent_dev:
                    continue
                return proc, time.perf_counter() - start
            except OSError:
                pass
        time.sleep(0.0005)
    sys.exit(f"{cmd} did not mount in {timeout}s")


def unmount(proc, mnt):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        subprocess.run(["fusermount3", "-uz", str(mnt)])


def rss_mib(pid, field="VmRSS"):
    """VmRSS (all resident), RssAnon (private memory) or RssFile (mapped file pages)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def walk(mnt, limit, errors=None):
    """Visits up to `limit` entries depth-first, stat'ing each (what `find -ls` does).
    Entries that list but cannot be stat'ed are counted in errors[0]."""
    seen, stack = 0, [str(mnt)]
    while stack and seen < limit:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                try:
                    e.stat(follow_symlinks=False)
                except OSError:
                    if errors is not None:
                        errors[0] += 1
                    continue
                seen += 1
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                if seen >= limit:
                    break
    return seen


def percentiles(samples_ns):
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000


def stat_cold(mnt, artists, n):
    out = []
    for i in range(n):
        a = (i * 7919) % artists
        p = f"{mnt}/Artist {a:07}/Album 000 ({1960 + a % 65})/{(i % 10) + 1:02} - Track {(i % 10) + 1} of Album 000.flac"
        t = time.perf_counter_ns(); os.stat(p); out.append(time.perf_counter_ns() - t)
    return percentiles(out)


def stat_warm(mnt, n):
    p = f"{mnt}/{DEEP}"
    os.stat(p)
    out = []
    for _ in range(n):
        t = time.perf_counter_ns(); os.stat(p); out.append(time.perf_counter_ns() - t)
    return percentiles(out)


def list_ms(d, n):
    out = []
    for _ in range(n):
        t = time.perf_counter_ns(); count = len(os.listdir(d)); out.append(time.perf_counter_ns() - t)
    return statistics.median(out) / 1e6, count


def read_gib_s(path):
    t = time.perf_counter(); total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
    return total / (time.perf_counter() - t) / (1 << 30)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def schema_of(db):
    """user_version of a DB file, or None if unreadable."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error:
        return None


def synthetic_db(work, n):
    db = work / f"synthetic-{n}.db"
    # A DB left by an older musicfs (older schema) is regenerated: mounts refuse old schemas.
    current = len(list((ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql")))
    if db.exists() and schema_of(db) != current:
        print(f"{db.name}: schema {schema_of(db)}, now {current}: regenerating", file=sys.stderr)
        for p in work.glob(f"synthetic-{n}.db*"):
            if p.is_file():
                p.unlink()
    if not db.exists():
        print(f"generating synthetic DB of {n} tracks...", file=sys.stderr)
        subprocess.run([str(REL / "musicfs-gen-db"), "--out", str(db), "--n", str(n)], check=True)
    return db


def musicfs_cmd(db, mnt, *extra):
    return [str(REL / "musicfs"), "mount", "--quiet", "--db", str(db), str(mnt), *extra]


def bench_sizes(work, sizes, rounds, mnt):
    rows = {}
    for n in sizes:
        db = synthetic_db(work, n)
        r = rows.setdefault(n, {"ready_ms": [], "root_list_ms": [], "rss_mount": [], "rss_walk": [], "anon_walk": []})
        for _ in range(rounds):
            subprocess.run(["sh", "-c", f"cat {db} > /dev/null"])  # same page-cache state each run
            proc, ready = mount(musicfs_cmd(db, mnt, "--ttl", "0"), mnt, probe="stat")
            r["ready_ms"].append(ready * 1000)
            r["rss_mount"].append(rss_mib(proc.pid))
            t = time.perf_counter(); os.listdir(mnt); r["root_list_ms"].append((time.perf_counter() - t) * 1000)
            walk(mnt, 100_000)
            r["rss_walk"].append(rss_mib(proc.pid))
            r["anon_walk"].append(rss_mib(proc.pid, "RssAnon"))
            unmount(proc, mnt)
    return {n: {k: med(v) for k, v in r.items()} for n, r in rows.items()}


def bench_floor(work, rounds, mnt, tracks=1_000_000, stats=3000):
    """Same tree on both: tracks/100 artists at the root (10K for 1M tracks)."""
    db = synthetic_db(work, tracks)
    artists = max(1, tracks // 100)
    systems = {
        "musicfs": musicfs_cmd(db, mnt, "--ttl", "0"),
        "trivial": [str(REL / "musicfs-trivial-fs"), str(mnt), "--artists", str(artists), "--ttl", "0"],
    }
    res = {s: {"cold_p50": [], "cold_p99": [], "warm_p50": [], "warm_p99": [], "list_first_ms": [], "list_ms": []} for s in systems}
    for i in range(rounds):
        for name in (list(systems) if i % 2 == 0 else list(systems)[::-1]):
            proc, _ = mount(systems[name], mnt, probe="stat")
            t = time.perf_counter_ns(); first = len(os.listdir(mnt)); lf = (time.perf_counter_ns() - t) / 1e6
            assert first == artists, first
            c50, c99 = stat_cold(mnt, artists, stats)
            w50, w99 = stat_warm(mnt, stats)
            lm, count = list_ms(mnt, 20)
            assert count == artists, count
            for k, v in (("cold_p50", c50), ("cold_p99", c99), ("warm_p50", w50), ("warm_p99", w99), ("list_first_ms", lf), ("list_ms", lm)):
                res[name][k].append(v)
            unmount(proc, mnt)
    return {s: {k: med(v) for k, v in r.items()} for s, r in res.items()}


def big_library(work, size=1 << 30):
    lib = work / f"bigread-{size >> 20}M"
    wav = lib / "big.wav"
    if not wav.exists():
        lib.mkdir(parents=True, exist_ok=True)
        with open(wav, "wb") as f:  # a valid WAV header, then 1 GiB of non-zero PCM
            f.write(b"RIFF" + (size + 36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                    + (1).to_bytes(2, "little") + (2).to_bytes(2, "little") + (44100).to_bytes(4, "little")
                    + (176400).to_bytes(4, "little") + (4).to_bytes(2, "little") + (16).to_bytes(2, "little")
                    + b"data" + size.to_bytes(4, "little"))
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
    db = work / f"bigread-{size >> 20}M.db"
    subprocess.run([str(REL / "musicfs-scan"), "--quiet", "--db", str(db), str(lib)], check=True)
    return wav, db


def bench_read(work, rounds, mnt, size=1 << 30):
    """First read after a fresh mount (backing file warm in the page cache, the FUSE file's own
    cache empty: what a player gets) and a re-read (the FUSE page cache, kept across opens)."""
    wav, db = big_library(work, size)
    read_gib_s(wav)  # warm the backing file
    vpath = "Unknown Artist/Unknown Album/big.wav"
    systems = {
        "musicfs, passthrough": (musicfs_cmd(db, mnt), f"{mnt}/{vpath}"),
        "musicfs, daemon reads": (musicfs_cmd(db, mnt, "--no-passthrough"), f"{mnt}/{vpath}"),
        "trivial FUSE (serves memory)": ([str(REL / "musicfs-trivial-fs"), str(mnt), "--artists", "1", "--file-size", str(size)],
                                         f"{mnt}/Artist 0000000/Album 000 (1960)/01 - Track 1 of Album 000.flac"),
    }
    res = {s: {"first": [], "again": []} for s in list(systems) + ["direct (no FUSE)"]}
    for i in range(rounds):
        order = list(systems) if i % 2 == 0 else list(systems)[::-1]
        for name in order:
            cmd, path = systems[name]
            proc, _ = mount(cmd, mnt)
            res[name]["first"].append(read_gib_s(path))
            res[name]["again"].append(read_gib_s(path))
            unmount(proc, mnt)
        res["direct (no FUSE)"]["first"].append(read_gib_s(wav))
        res["direct (no FUSE)"]["again"].append(read_gib_s(wav))
    return {s: {k: med(v) for k, v in r.items()} for s, r in res.items()}


def bench_musefs(work, rounds, mnt):
    musefs = shutil.which("musefs")
    lib = work / "lib-100000-1"
    mdb, pdb = work / "musicfs-100000.db", work / "musefs-100000.db"
    if not musefs or not lib.exists() or not pdb.exists():
        print("NOTE: musefs or the 100K library (tools/bench_scan.py --n 100000) missing: skipped", file=sys.stderr)
        return None
    subprocess.run([str(REL / "musicfs-scan"), "--quiet", "--db", str(mdb), str(lib)])  # migrate / no-op
    systems = {
        "musicfs": musicfs_cmd(mdb, mnt, "--ttl", "1"),
        "musefs": [musefs, "mount", "--db", str(pdb), str(mnt)],
    }
    res = {s: {"ready_ms": [], "rss_mount": [], "walk_s": [], "rss_walk": [], "stat_p50": [], "errors": 0} for s in systems}
    for i in range(rounds):
        for name in (list(systems) if i % 2 == 0 else list(systems)[::-1]):
            proc, ready = mount(systems[name], mnt)
            res[name]["ready_ms"].append(ready * 1000)
            res[name]["rss_mount"].append(rss_mib(proc.pid))
            errors = [0]
            t = time.perf_counter(); n = walk(mnt, 10**9, errors); res[name]["walk_s"].append(time.perf_counter() - t)
            res[name]["errors"] = errors[0]
            res[name]["rss_walk"].append(rss_mib(proc.pid))
            deep = next(Path(mnt).glob("*/*/*"))
            samples = []
            for _ in range(2000):
                t = time.perf_counter_ns(); os.stat(deep); samples.append(time.perf_counter_ns() - t)
            res[name]["stat_p50"].append(percentiles(samples)[0])
            res[name]["entries"] = n
            unmount(proc, mnt)
    return {s: {k: (med(v) if isinstance(v, list) else v) for k, v in r.items()} for s, r in res.items()}


def md_sizes(sizes):
    out = ["| tracks | mount ready ms | first root listing ms (entries) | RSS after mount MiB | RSS after 100K-entry walk MiB | of which private (RssAnon) |",
           "|---:|---:|---:|---:|---:|---:|"]
    for n, r in sizes.items():
        out.append(f"| {n:,} | {r['ready_ms']:.1f} | {r['root_list_ms']:.1f} ({max(1, n // 100):,}) | "
                   f"{r['rss_mount']:.1f} | {r['rss_walk']:.1f} | {r['anon_walk']:.1f} |")
    return "\n".join(out)


def md_floor(f):
    m, t = f["musicfs"], f["trivial"]
    out = ["| kernel TTL 0 | musicfs | trivial FUSE | ratio |", "|---|---:|---:|---:|"]
    for k, label in (("cold_p50", "stat p50 µs, cold caches"), ("cold_p99", "stat p99 µs, cold caches"),
                     ("warm_p50", "stat p50 µs, warm"), ("warm_p99", "stat p99 µs, warm"),
                     ("list_first_ms", "list the root (tracks/100 entries), first time, ms"),
                     ("list_ms", "list it again, ms")):
        out.append(f"| {label} | {m[k]:.1f} | {t[k]:.1f} | {m[k] / t[k]:.2f}× |")
    return "\n".join(out)


def md_read(r):
    out = ["| sequential read (backing file in page cache) | first read GiB/s | vs direct | re-read GiB/s |",
           "|---|---:|---:|---:|"]
    direct = r["direct (no FUSE)"]["first"]
    for k, v in r.items():
        out.append(f"| {k} | {v['first']:.2f} | {v['first'] / direct:.2f}× | {v['again']:.2f} |")
    return "\n".join(out)


def md_musefs(p):
    m, q = p["musicfs"], p["musefs"]
    out = ["| real 100K-file library | musicfs | musefs 1.3 | ratio |", "|---|---:|---:|---:|"]
    for k, label in (("ready_ms", "mount ready, ms"), ("rss_mount", "RSS after mount, MiB"),
                     ("walk_s", "full walk + stat, s"), ("rss_walk", "RSS after full walk, MiB"),
                     ("stat_p50", "stat p50 µs (warm)")):
        out.append(f"| {label} | {m[k]:.1f} | {q[k]:.1f} | {m[k] / q[k]:.2f}× |")
    out.append(f"| entries walked | {m['entries']} | {q['entries']} | |")
    out.append(f"| listed but not stat-able | {m['errors']} | {q['errors']} | |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / "bench-out"))
    ap.add_argument("--skip", default="", help="comma list of: sizes,floor,read,musefs")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    mnt = work / "mnt"; mnt.mkdir(exist_ok=True)
    if mounted(mnt):
        subprocess.run(["fusermount3", "-uz", str(mnt)])
    skip = set(filter(None, a.skip.split(",")))
    out = {"machine": os.uname().release, "cpus": os.cpu_count()}
    if "sizes" not in skip:
        out["sizes"] = bench_sizes(work, [int(x) for x in a.sizes.split(",")], a.rounds, mnt)
        print(md_sizes(out["sizes"]) + "\n")
    if "floor" not in skip:
        out["floor"] = bench_floor(work, a.rounds, mnt)
        print(md_floor(out["floor"]) + "\n")
    if "read" not in skip:
        out["read"] = bench_read(work, a.rounds, mnt)
        print(md_read(out["read"]) + "\n")
    if "musefs" not in skip:
        out["musefs"] = bench_musefs(work, a.rounds, mnt)
        if out["musefs"]:
            print(md_musefs(out["musefs"]))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
