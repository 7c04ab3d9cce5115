#!/usr/bin/env python3
"""The content cache, measured on real mounts of a library served by sshd through the fault
proxy (which adds latency and counts the bytes the server sends), all in one run:

- reads: a file read directly from local disk, through the mount uncached (fetched from the
  server at 20 ms RTT), and through the mount from the cache: first byte, throughput, and the
  latency of each read() on the cached file;
- delta: bytes fetched to play FLAC, MP3 and M4A files again after a re-tag (a longer title,
  then a new 100 KB cover), against their size;
- prefetch: replayed traces (an album in order, skipping through one, shuffle) on a slow
  origin, with and without prefetch: track changes that waited on the origin (the open and
  first 256 KiB took over half a round trip), start latency, bytes fetched;
- index: the mount's memory and `musicfs cache stats` time with 1M files known and 100K
  cached (chunk rows written with SQL: what the index costs, not the chunk files).

  ~/.cache/musicfs/venv/bin/python tools/bench_cache.py [--smoke] [--bin-dir target/release]

Writes bench-out/cache.json and bench-out/cache.md.
"""
import argparse, json, os, random, resource, shutil, sqlite3, statistics, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mount import unmount  # noqa: E402
from bench_remote import SECRET, Servers, drop_caches, scan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def mount(bins, db, mnt, cache_dir, *extra):
    mnt.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(bins / "musicfs"), "mount", "--db", str(db),
                             "--cache-dir", str(cache_dir), *extra, str(mnt)],
                            env=dict(os.environ, **SECRET), stdout=subprocess.DEVNULL,
                            stderr=open(mnt.parent / f"{mnt.name}.log", "a"))
    for _ in range(1000):
        if os.path.ismount(mnt):
            return proc
        time.sleep(0.01)
    sys.exit("mount did not come up")


def mount_cmd(cmd, mnt):
    """Starts a FUSE filesystem's command (the trivial one) and waits for its mount."""
    mnt.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1000):
        if os.path.ismount(mnt):
            return proc
        time.sleep(0.01)
    sys.exit(f"{cmd[0]} did not mount")


def vpaths(db, root):
    """{path in the library: virtual path} of every file."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT p.path, t.vpath FROM tracks t JOIN file_paths p "
                       "ON p.file_id = t.id").fetchall()
    con.close()
    return {Path(root) / p: v for p, v in rows}


def read_all(path, piece=MiB):
    t = time.perf_counter()
    first = None
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(piece if first is not None else 1)
            if first is None:
                first = time.perf_counter() - t
            if not b:
                break
            n += len(b)
    return first, n / (time.perf_counter() - t) / 1e6


def gen_files(bins, out, n, formats, seed):
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([str(bins / "musicfs-gen-library"), "--out", str(out), "--n", str(n),
                    "--seed", str(seed), "--formats", formats, "--keyable"],
                   check=True, stderr=subprocess.DEVNULL)
    return sorted(p for p in out.rglob("*") if p.is_file())


def rescan(bins, db, url):
    """A delta scan into the existing DB (bench_remote's `scan` starts from an empty one)."""
    subprocess.run([str(bins / "musicfs-scan"), "--quiet", "--no-search", "--db", str(db), url],
                   env=dict(os.environ, **SECRET), check=False, stdout=subprocess.DEVNULL)


def retag(bins, files, *args):
    subprocess.run([str(bins / "musicfs-retag"), *args, *map(str, files)], check=True)


def bench_reads(srv, bins, work, size):
    """Direct vs uncached vs cached reads of one file of `size` bytes, at 20 ms RTT."""
    lib = work / "reads"
    files = gen_files(bins, lib / "src", 4, "flac", 3)
    root = lib / "music"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    target = root / ("big" + files[0].suffix)
    shutil.copy(files[0], target)
    retag(bins, [target], "--grow", str(size))
    proxy, port = srv.proxy(srv.ssh_port, 20)
    db, cache, mnt = lib / "lib.db", lib / "chunks", lib / "mnt"
    for p in (db, cache):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    scan(bins, db, srv.sftp_url(port, root))
    vpath = mnt / vpaths(db, root)[target]
    out = {"file_mb": size / 1e6, "rtt_ms": 20}
    read_all(target)  # into the page cache
    out["direct_warm"] = read_all(target)
    drop_caches()
    out["direct_cold"] = read_all(target)
    proc = mount(bins, db, mnt, cache)
    drop_caches()
    before = srv.wire_down(port)
    out["uncached"] = read_all(vpath)
    out["uncached_wire_mb"] = (srv.wire_down(port) - before) / 1e6
    unmount(proc, mnt)
    drop_caches()
    proc = mount(bins, db, mnt, cache)
    out["cached_cold"] = read_all(vpath)
    unmount(proc, mnt)
    # Warm: every first read is the first of a fresh mount (the FUSE file's own page cache
    # empty: what a player gets), its source in the page cache; "again" re-reads within the
    # same mount (the kernel keeps a file's pages across opens). Against the same file read
    # directly, the same file on a local library read by the daemon (no passthrough: the
    # ceiling of any FUSE daemon read here) and the trivial filesystem serving memory.
    # Three interleaved rounds, medians.
    local_db, other_mnt = lib / "local.db", lib / "mnt-local"
    local_db.unlink(missing_ok=True)
    subprocess.run([str(bins / "musicfs-scan"), "--quiet", "--no-search", "--db", str(local_db),
                    str(root)], check=False, stdout=subprocess.DEVNULL)
    local_vpath = other_mnt / vpaths(local_db, root)[target]
    trivial_path = other_mnt / "Artist 0000000/Album 000 (1960)/01 - Track 1 of Album 000.flac"
    runs = {
        "cached": lambda: (mount(bins, db, mnt, cache), mnt, vpath),
        "local_daemon": lambda: (mount(bins, local_db, other_mnt, cache, "--no-passthrough",
                                       "--no-cache"), other_mnt, local_vpath),
        "trivial": lambda: (mount_cmd([str(bins / "musicfs-trivial-fs"), str(other_mnt),
                                       "--artists", "1", "--file-size", str(size)], other_mnt),
                            other_mnt, trivial_path),
    }
    samples = {f"{k}_{w}": [] for k in [*runs, "direct"] for w in ("warm", "again")}
    before = srv.wire_down(port)
    for i in range(3):
        for name in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            proc, where, path = runs[name]()
            samples[f"{name}_warm"].append(read_all(path))
            samples[f"{name}_again"].append(read_all(path))
            unmount(proc, where)
        samples["direct_warm"].append(read_all(target))
        samples["direct_again"].append(read_all(target))
    out["cached_wire_mb"] = (srv.wire_down(port) - before) / 1e6
    for key, got in samples.items():
        out[key] = (statistics.median(f for f, _ in got), statistics.median(m for _, m in got))
    # read() latency on the cached file: 128 KiB in order, and 4 KiB at random offsets.
    proc = mount(bins, db, mnt, cache)
    seq, rnd = [], []
    fd = os.open(vpath, os.O_RDONLY)
    try:
        for off in range(0, size, 128 << 10):
            t = time.perf_counter()
            os.pread(fd, 128 << 10, off)
            seq.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    unmount(proc, mnt)
    proc = mount(bins, db, mnt, cache)
    fd = os.open(vpath, os.O_RDONLY)
    try:
        rng = random.Random(5)
        for _ in range(300):
            off = rng.randrange(0, size - 4096) & ~4095
            t = time.perf_counter()
            os.pread(fd, 4096, off)
            rnd.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    unmount(proc, mnt)
    q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))] * 1e3  # noqa: E731
    out["cached_read_128k_ms"] = {"p50": q(seq, 0.5), "p99": q(seq, 0.99)}
    out["cached_read_4k_random_ms"] = {"p50": q(rnd, 0.5), "p99": q(rnd, 0.99)}
    proxy.kill()
    print(f"reads: {out}", file=sys.stderr)
    return out


def bench_delta(srv, bins, work, sizes, corpus):
    """Bytes fetched on the wire to play re-tagged files again, per format and size."""
    lib = work / "delta"
    src = gen_files(bins, lib / "src", 24, "flac,mp3", 5)
    root = lib / "music"
    shutil.rmtree(root, ignore_errors=True)
    sources = {"flac": next(p for p in src if p.suffix == ".flac"),
               "mp3": next(p for p in src if p.suffix == ".mp3")}
    lena = corpus / "npm-audio-lena/package/lena.m4a"
    if lena.exists():
        sources["m4a"] = lena
    files = []
    for size in sizes:
        for fmt, source in sources.items():
            path = root / f"{fmt}-{size // MiB}MiB" / f"track.{fmt}"
            path.parent.mkdir(parents=True)
            shutil.copy(source, path)
            retag(bins, [path], "--grow", str(size))
            files.append((fmt, size, path))
    # A real Ogg Vorbis file as it is (an Ogg stream cannot be grown by bytes after it).
    nebula = corpus / "deb-singularity-music/usr/share/games/singularity/music/Nebula.ogg"
    if nebula.exists():
        path = root / "ogg" / "track.ogg"
        path.parent.mkdir(parents=True)
        shutil.copy(nebula, path)
        files.append(("ogg", path.stat().st_size, path))
    proxy, port = srv.proxy(srv.ssh_port, 20)
    db, cache, mnt = lib / "lib.db", lib / "chunks", lib / "mnt"
    db.unlink(missing_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    url = srv.sftp_url(port, root)
    scan(bins, db, url)
    proc = mount(bins, db, mnt, cache, "--no-prefetch")
    for _, _, path in files:
        read_all(mnt / vpaths(db, root)[path])
    unmount(proc, mnt)
    rows = []
    for edit in ("--title", "--cover"):
        retag(bins, [p for _, _, p in files], edit)
        rescan(bins, db, url)
        proc = mount(bins, db, mnt, cache, "--no-prefetch")
        where = vpaths(db, root)
        for fmt, size, path in files:
            before = srv.wire_down(port)
            read_all(mnt / where[path])
            fetched = srv.wire_down(port) - before
            real = path.stat().st_size
            rows.append({"format": fmt, "size_mb": real / 1e6, "edit": edit.strip("-"),
                         "fetched_kb": fetched / 1e3, "share": fetched / real})
            print(f"delta: {rows[-1]}", file=sys.stderr)
        unmount(proc, mnt)
    proxy.kill()
    return rows



def bench_delta_real(srv, bins, work):
    """Bytes fetched on the wire to play again files as ffmpeg writes them, re-tagged by
    mutagen (Picard's and beets' library) with a new title and a 150 KB cover; the MP3 also
    gets an APEv2 tag, so both of its ends change. Needs ffmpeg and mutagen."""
    lib = work / "delta-real"
    root = lib / "music"
    shutil.rmtree(lib, ignore_errors=True)
    noise = "anoisesrc=d={}:c=pink:a=0.3"
    specs = [("m4a moov-last (ffmpeg default)", "moov-last.m4a", 190, ["-c:a", "aac", "-b:a", "128k"]),
             ("m4a moov-first (faststart)", "moov-first.m4a", 190,
              ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]),
             ("mp3 ID3v2 + APEv2 (both ends)", "both-ends.mp3", 190, ["-c:a", "libmp3lame", "-b:a", "128k"]),
             ("flac", "frames.flac", 30, ["-c:a", "flac"]),
             ("ogg vorbis", "pages.ogg", 190, ["-c:a", "libvorbis", "-b:a", "192k"])]
    files = []
    for fmt, name, seconds, args in specs:
        path = root / "Real Tools" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        noise.format(seconds), "-ac", "2", *args, str(path)], check=True)
        files.append((fmt, path))
    proxy, port = srv.proxy(srv.ssh_port, 20)
    db, cache, mnt = lib / "lib.db", lib / "chunks", lib / "mnt"
    url = srv.sftp_url(port, root)
    scan(bins, db, url)
    proc = mount(bins, db, mnt, cache, "--no-prefetch")
    for _, path in files:
        read_all(mnt / vpaths(db, root)[path])
    unmount(proc, mnt)
    subprocess.run([sys.executable, str(ROOT / "tools" / "mutagen_retag.py"), *[str(p) for _, p in files]],
                   check=True)
    rescan(bins, db, url)
    proc = mount(bins, db, mnt, cache, "--no-prefetch")
    where = vpaths(db, root)
    rows = []
    for fmt, path in files:
        before = srv.wire_down(port)
        got = (mnt / where[path]).read_bytes()
        fetched = srv.wire_down(port) - before
        real = path.stat().st_size
        if got != path.read_bytes():
            raise SystemExit(f"{fmt}: the mount served other bytes than the file's")
        rows.append({"format": fmt, "size_mb": real / 1e6, "edit": "mutagen title + cover",
                     "fetched_kb": fetched / 1e3, "share": fetched / real})
        print(f"delta: {rows[-1]}", file=sys.stderr)
    unmount(proc, mnt)
    proxy.kill()
    return rows


def bench_prefetch(srv, bins, work, tracks, track_bytes, rtt, rate):
    """Replayed plays on a slow origin, with and without prefetch."""
    lib = work / "prefetch"
    src = gen_files(bins, lib / "src", 12, "flac", 7)
    root = lib / "music"
    shutil.rmtree(root, ignore_errors=True)
    albums = []
    for a in range(3):
        paths = []
        for t in range(tracks):
            path = root / f"album-{a}" / f"{t + 1:02}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src[0] if src[0].suffix == ".flac" else src[1], path)
            paths.append(path)
        retag(bins, paths, "--grow", str(track_bytes), "--artist", "Prefetch", "--album",
              f"Album {a}", "--track", "1")
        albums.append(paths)
    p = subprocess.Popen([str(bins / "musicfs-fault-proxy"), "--to", str(srv.ssh_port),
                          "--delay-ms", str(rtt / 2), "--rate", str(rate),
                          "--stats", str(work / "prefetch.stats")],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    srv.stats[port] = work / "prefetch.stats"
    with open(srv.known, "a") as f:
        f.write(f"[127.0.0.1]:{port} {srv.host_key}\n")
    db = lib / "lib.db"
    db.unlink(missing_ok=True)
    scan(bins, db, srv.sftp_url(port, root))
    where = vpaths(db, root)
    rng = random.Random(11)
    everything = [t for a in albums for t in a]
    traces = {
        "album in order": [(t, None) for t in albums[0]],
        "skipping (512 KiB of each)": [(t, 512 << 10) for t in albums[1]],
        "shuffle": [(t, None) for t in rng.sample(everything, len(albums[0]))],
    }
    pace = MiB  # a player's reads: ahead of playback (8x real time for CD-quality FLAC)
    out = []
    for name, trace in traces.items():
        for prefetch in (False, True):
            # Each run from scratch: a copy of the scanned DB and an empty cache.
            mnt, cache = lib / "mnt", lib / f"chunks-{prefetch}-{len(out)}"
            shutil.rmtree(cache, ignore_errors=True)
            run_db = lib / f"run-{len(out)}.db"
            shutil.copy(db, run_db)
            proc = mount(bins, run_db, mnt, cache, *(() if prefetch else ("--no-prefetch",)))
            start_wait = []
            wire0 = srv.wire_down(port)
            for path, upto in trace:
                vp = mnt / where[path]
                t = time.perf_counter()
                with open(vp, "rb", buffering=0) as f:
                    f.read(256 << 10)
                    start_wait.append(time.perf_counter() - t)
                    left = (upto or track_bytes) - (256 << 10)
                    while left > 0:
                        t = time.perf_counter()
                        b = f.read(min(512 << 10, left))
                        if not b:
                            break
                        left -= len(b)
                        time.sleep(max(0.0, len(b) / pace - (time.perf_counter() - t)))
            wire = srv.wire_down(port) - wire0
            unmount(proc, mnt)
            # A start served from the cache takes well under one round trip; one that went
            # to the origin takes at least one (the open's check) and the transfer.
            misses = sum(w > rtt / 2e3 for w in start_wait[1:])
            row = {"trace": name, "prefetch": prefetch, "track_changes": len(trace) - 1,
                   "changes_waiting_on_origin": misses,
                   "start_ms_p50": statistics.median(start_wait[1:]) * 1e3,
                   "start_ms_max": max(start_wait[1:]) * 1e3, "wire_mb": wire / 1e6}
            print(f"prefetch: {row}", file=sys.stderr)
            out.append(row)
    p.kill()
    return out


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_index(bins, work, known, cached, chunks_per_file):
    """Mount memory and `cache stats` time with `known` files and `cached` of them cached."""
    db = work / f"synthetic-{known}.db"
    if not db.exists():
        subprocess.run([str(bins / "musicfs-gen-db"), "--n", str(known), "--out", str(db)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    idx = work / f"index-{known}-{cached}.db"
    shutil.copy(db, idx)
    for ext in ("-wal", "-shm"):
        Path(str(idx) + ext).unlink(missing_ok=True)
    mnt, cache = work / "mnt-index", work / "chunks-index"
    shutil.rmtree(cache, ignore_errors=True)
    proc = mount(bins, idx, mnt, cache)  # migrates the copy to the cache schema
    base = rss_kib(proc.pid)
    unmount(proc, mnt)
    size_before = idx.stat().st_size
    con = sqlite3.connect(idx)
    ids = [r[0] for r in con.execute("SELECT id FROM files ORDER BY id LIMIT ?", (cached,))]
    rng = random.Random(3)
    t = time.perf_counter()
    with con:
        con.executemany("INSERT INTO cached_files (file_id, size, mtime_ns, etag, cached, "
                        "last_access) SELECT id, size, mtime_ns, etag, size, ? FROM files "
                        "WHERE id = ?", [(i, i) for i in ids])
        rows = ((i, s, s * 65536, 65536, rng.getrandbits(63))
                for i in ids for s in range(chunks_per_file))
        con.executemany("INSERT INTO chunks (file_id, seq, offset, len, hash) "
                        "VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    insert_s = time.perf_counter() - t
    proc = mount(bins, idx, mnt, cache)
    time.sleep(0.5)
    walked = 0
    for d, _, fs in os.walk(mnt):
        walked += len(fs)
        if walked > 20000:
            break
    with_rows = rss_kib(proc.pid)
    t = time.perf_counter()
    subprocess.run([str(bins / "musicfs"), "cache", "stats", "--db", str(idx)], check=True,
                   stdout=subprocess.DEVNULL)
    stats_s = time.perf_counter() - t
    unmount(proc, mnt)
    out = {"files_known": known, "files_cached": cached, "chunk_rows": cached * chunks_per_file,
           "mount_rss_mib_no_rows": base / 1024, "mount_rss_mib_with_rows": with_rows / 1024,
           "db_growth_mb": (idx.stat().st_size - size_before) / 1e6,
           "cache_stats_s": stats_s, "rows_insert_s": insert_s}
    idx.unlink()
    print(f"index: {out}", file=sys.stderr)
    return out


def markdown(r):
    lines = ["## Content cache", ""]
    rd = r["reads"]
    lines += [f"One {rd['file_mb']:.0f} MB file over SFTP at {rd['rtt_ms']} ms RTT:", "",
              "| read | first byte | throughput | vs direct |", "|---|---:|---:|---:|"]
    for key, name in (("direct_warm", "direct, local disk (page cache)"),
                      ("local_daemon_warm", "mount of the local file, daemon reads"),
                      ("trivial_warm", "trivial FUSE filesystem (serves memory)"),
                      ("cached_warm", "mount, from the cache"),
                      ("direct_again", "direct, read again"),
                      ("local_daemon_again", "mount of the local file, read again"),
                      ("trivial_again", "trivial FUSE, read again"),
                      ("cached_again", "mount, from the cache, read again"),
                      ("direct_cold", "direct, local disk (cold)"),
                      ("cached_cold", "mount, from the cache (cold)"),
                      ("uncached", "mount, uncached (from the server)")):
        if key not in rd:
            continue
        first, mbs = rd[key]
        vs = mbs / rd["direct_warm"][1]
        lines.append(f"| {name} | {first * 1e3:.2f} ms | {mbs:.0f} MB/s | {vs:.2f}× |")
    lines += ["", f"Cached read() latency: 128 KiB in order p50 "
              f"{rd['cached_read_128k_ms']['p50']:.3f} ms (p99 {rd['cached_read_128k_ms']['p99']:.2f}),"
              f" 4 KiB at random offsets p50 {rd['cached_read_4k_random_ms']['p50']:.3f} ms "
              f"(p99 {rd['cached_read_4k_random_ms']['p99']:.2f}). Bytes from the server: "
              f"{rd['uncached_wire_mb']:.1f} MB uncached, {rd['cached_wire_mb']:.3f} MB cached.", ""]
    lines += ["| format | size | re-tag | fetched | of the file |", "|---|---:|---|---:|---:|"]
    for d in r["delta"]:
        lines.append(f"| {d['format']} | {d['size_mb']:.1f} MB | {d['edit']} | "
                     f"{d['fetched_kb']:.0f} KB | {d['share'] * 100:.1f} % |")
    lines += ["", "| trace | prefetch | track changes | waited on the origin | start p50 | "
              "start max | from the server |", "|---|---|---:|---:|---:|---:|---:|"]
    for p in r["prefetch"]:
        lines.append(f"| {p['trace']} | {'on' if p['prefetch'] else 'off'} | "
                     f"{p['track_changes']} | {p['changes_waiting_on_origin']} | "
                     f"{p['start_ms_p50']:.0f} ms | {p['start_ms_max']:.0f} ms | "
                     f"{p['wire_mb']:.1f} MB |")
    i = r["index"]
    lines += ["", f"Index: {i['files_known']:,} files known, {i['files_cached']:,} cached "
              f"({i['chunk_rows']:,} chunk rows, +{i['db_growth_mb']:.0f} MB of DB): mount RSS "
              f"{i['mount_rss_mib_with_rows']:.1f} MiB after a 20K-entry walk (no rows, right "
              f"after mount: {i['mount_rss_mib_no_rows']:.1f} MiB); `musicfs cache stats` "
              f"{i['cache_stats_s']:.2f} s.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    ap.add_argument("--work", default=str(ROOT / "bench-out"))
    ap.add_argument("--corpus", default=str(Path.home() / ".cache/musicfs/corpus"))
    ap.add_argument("--only", default="reads,delta,prefetch,index",
                    help="comma-separated parts to run (the others are taken from the last "
                         "cache.json)")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    bins, work = Path(args.bin_dir).resolve(), Path(args.work).resolve() / "cache"
    work.mkdir(parents=True, exist_ok=True)
    srv = Servers(work, bins)
    name = "cache-smoke" if args.smoke else "cache"
    out = Path(args.work).resolve()
    last = out / f"{name}.json"
    r = json.loads(last.read_text()) if last.exists() and parts != {"reads", "delta",
                                                                     "prefetch", "index"} else {}
    try:
        if "reads" in parts:
            r["reads"] = bench_reads(srv, bins, work, 8 * MiB if args.smoke else 200 * MiB)
        if "delta" in parts:
            r["delta"] = bench_delta(srv, bins, work,
                                     [3 * MiB] if args.smoke else [3 * MiB, 30 * MiB],
                                     Path(args.corpus))
            r["delta"] += bench_delta_real(srv, bins, work)
        if "prefetch" in parts:
            r["prefetch"] = bench_prefetch(srv, bins, work, 3 if args.smoke else 8,
                                           (1 if args.smoke else 3) * MiB, 40, 8 * MiB)
        if "index" in parts:
            r["index"] = bench_index(bins, work, 10_000 if args.smoke else 1_000_000,
                                     1_000 if args.smoke else 100_000, 48)
    finally:
        srv.close()
    (out / f"{name}.json").write_text(json.dumps(r, indent=1))
    (out / f"{name}.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
