#!/usr/bin/env python3
"""Remote origins, measured: scanning and serving a library on S3 (moto) and SFTP (OpenSSH's
sshd), through the in-repo fault proxy adding round-trip latency, side by side with a plain
client of the same server (boto3 `get_object`, the `sftp` command) in the same run.

    cargo build --release --workspace --bins
    ~/.cache/musicfs/venv/bin/python tools/bench_remote.py            # full run, ~10 min
    ~/.cache/musicfs/venv/bin/python tools/bench_remote.py --smoke --bin-dir target/debug

(The venv is the one `.ci/run` makes: moto and boto3.) Measures:
  * remote scan: files/s and bytes fetched per file vs file size, at 0 / 20 / 100 ms RTT;
  * first byte of an uncached file and sequential read through the mount at 20 ms RTT, vs
    boto3 and `sftp get` on the same proxied server;
  * failover: a read when the primary (SFTP) stops answering, with an S3 mirror;
  * a file added on disk: time until it shows in the mount (inotify, `musicfs mount DIR MNT`).
Writes bench-out/remote.md and bench-out/remote.json.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mount import mount, unmount  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECRET = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
          "AWS_REGION": "us-east-1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(1000):
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{what} did not listen")


def moto_program():
    env = os.environ.get("MUSICFS_MOTO_SERVER")
    if env:
        return env
    local = Path(sys.executable).parent / "moto_server"
    return str(local) if local.exists() else "moto_server"


class Servers:
    def __init__(self, work, bins):
        self.work, self.bins, self.procs, self.stats = work, bins, [], {}
        self.s3_port = free_port()
        p = subprocess.Popen([moto_program(), "-H", "127.0.0.1", "-p", str(self.s3_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(self.s3_port, p, "moto_server")
        ssh = work / "sshd"
        ssh.mkdir(exist_ok=True)
        for key in ("host", "client"):
            if not (ssh / key).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key)],
                               check=True)
        shutil.copy(ssh / "client.pub", ssh / "authorized_keys")
        self.ssh_port = free_port()
        (ssh / "config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.ssh_port}\nHostKey {ssh}/host\nPidFile {ssh}/pid\n"
            f"AuthorizedKeysFile {ssh}/authorized_keys\nPasswordAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\nMaxStartups 200\nMaxSessions 200\n"
            "Subsystem sftp internal-sftp -R\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(ssh / "config")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(self.ssh_port, p, "sshd")
        self.key, self.known = ssh / "client", ssh / "known_hosts"
        self.host_key = " ".join((ssh / "host.pub").read_text().split()[:2])
        self.known.write_text("")
        import boto3
        self.s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", **{
            "aws_access_key_id": SECRET["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": SECRET["AWS_SECRET_ACCESS_KEY"], "region_name": "us-east-1"})

    def proxy(self, port, rtt_ms):
        """A fault proxy before `port` adding `rtt_ms` of round trip; returns (proc, port)."""
        stats = self.work / f"proxy-{len(self.procs)}.stats"
        p = subprocess.Popen([str(self.bins / "musicfs-fault-proxy"), "--to", str(port),
                              "--delay-ms", str(rtt_ms / 2), "--stats", str(stats)],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        listen = int(p.stdout.readline())
        self.stats[listen] = stats
        with open(self.known, "a") as f:
            f.write(f"[127.0.0.1]:{listen} {self.host_key}\n")
        return p, listen

    def wire_down(self, port):
        """Bytes the proxy on `port` has forwarded from the server so far."""
        time.sleep(0.25)  # the proxy rewrites its stats file every 100 ms
        try:
            return int(self.stats[port].read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return 0

    def upload(self, bucket, lib):
        self.s3.create_bucket(Bucket=bucket)
        for path in sorted(lib.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                self.s3.upload_file(str(path), bucket, str(path.relative_to(lib)))

    def sftp_url(self, port, path):
        return f"sftp://127.0.0.1:{port}{path}?identity_file={self.key}&known_hosts={self.known}" + os.environ.get("SFTP_EXTRA", "")

    def s3_url(self, port, bucket):
        return f"s3://{bucket}?endpoint=http://127.0.0.1:{port}"

    def close(self):
        for p in self.procs:
            p.kill()


def gen(bins, out, n, pad, formats="flac,mp3,wav,aiff"):
    if (out / ".complete").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([str(bins / "musicfs-gen-library"), "--out", str(out), "--n", str(n),
                    "--formats", formats, "--keyable", "--pad-bytes", str(pad)],
                   check=True, stderr=subprocess.DEVNULL)
    (out / ".complete").touch()


def lib_bytes(lib):
    return sum(p.stat().st_size for p in lib.rglob("*") if p.is_file() and not p.name.startswith("."))


def scan(bins, db, url, parallel=64):
    for f in db.parent.glob(db.name + "*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    env = dict(os.environ, **SECRET)
    out = subprocess.run([str(bins / "musicfs-scan"), "--json", "--quiet", "--no-search", "--db",
                          str(db), "--remote-parallel", str(parallel), url],
                         env=env, capture_output=True, text=True)
    if out.returncode not in (0, 5):
        sys.exit(f"scan of {url} failed: {out.stderr}")
    return json.loads(out.stdout)


def plain_s3_heads(port, bucket, parallel=32):
    """The plain client's floor for a first scan: boto3 lists the bucket and GETs the first
    64 KiB of every object, `parallel` at once. Files/s."""
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    from botocore.config import Config
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="bench",
                     aws_secret_access_key="bench-secret", region_name="us-east-1",
                     config=Config(max_pool_connections=parallel))
    t = time.perf_counter()
    keys = [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(lambda k: c.get_object(Bucket=bucket, Key=k, Range="bytes=0-65535")["Body"].read(),
                    keys))
    return len(keys) / (time.perf_counter() - t)


def bench_scan(srv, bins, work, sets, rtts):
    rows = []
    for rtt in rtts:
        s3p, s3_port = srv.proxy(srv.s3_port, rtt)
        sshp, ssh_port = srv.proxy(srv.ssh_port, rtt)
        for name, (lib, bucket) in sets.items():
            files = sum(1 for p in lib.rglob("*") if p.is_file() and not p.name.startswith("."))
            size = lib_bytes(lib)
            for kind, url, port in (("s3", srv.s3_url(s3_port, bucket), s3_port),
                                    ("sftp", srv.sftp_url(ssh_port, lib), ssh_port)):
                wire_before = srv.wire_down(port)
                s = scan(bins, work / "scan.db", url)
                wire = srv.wire_down(port) - wire_before
                plain = plain_s3_heads(s3_port, bucket) if kind == "s3" else None
                rows.append({"rtt_ms": rtt, "set": name, "origin": kind, "files": s["added"],
                             "errors": s["errors"], "plain_files_per_s": plain,
                             "listed": files, "seconds": s["seconds"],
                             "files_per_s": s["added"] / s["seconds"],
                             "bytes_per_file": s["bytes_fetched"] / max(1, s["added"]),
                             "avg_size": size / files,
                             "share": s["bytes_fetched"] / size,
                             "wire_share": wire / size})
                print(f"scan {kind} {name} rtt {rtt} ms: {rows[-1]['files_per_s']:.0f} files/s, "
                      f"{rows[-1]['share']*100:.2f} % fetched, {wire / size * 100:.2f} % on the wire",
                      file=sys.stderr)
        for p in (s3p, sshp):
            p.kill()
    return rows


def bench_sftp_steady(srv, bins, work, lib, rtt):
    """SFTP files/s on a library big enough that the session pool's ramp-up (logins, a few at
    a time) is a small part of the scan, at `rtt`."""
    p, port = srv.proxy(srv.ssh_port, rtt)
    files = sum(1 for f in lib.rglob("*") if f.is_file() and not f.name.startswith("."))
    s = scan(bins, work / "scan.db", srv.sftp_url(port, lib))
    p.kill()
    out = {"rtt_ms": rtt, "files": s["added"], "listed": files, "seconds": s["seconds"],
           "files_per_s": s["added"] / s["seconds"]}
    print(f"scan sftp steady rtt {rtt} ms: {out['files_per_s']:.0f} files/s", file=sys.stderr)
    return out


def drop_caches():
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError:
        pass


def timed_first_byte(path):
    t = time.perf_counter()
    with open(path, "rb") as f:
        f.read(1)
    return time.perf_counter() - t


def mounted_reads(bins, db, mnt, files):
    """Mounts `db` at `mnt` and reads through it: the first byte of the first `files` files
    (page cache dropped before each), then the biggest file whole. Returns (first-byte
    seconds, sequential MB/s)."""
    mnt.mkdir(exist_ok=True)
    proc = subprocess.Popen([str(bins / "musicfs"), "mount", "--quiet", "--db", str(db), str(mnt)],
                            env=dict(os.environ, **SECRET), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(1000):
            if os.path.ismount(mnt):
                break
            time.sleep(0.01)
        paths = sorted(str(Path(d) / f) for d, _, fs in os.walk(mnt) for f in fs
                       if ".search" not in d)
        first = []
        for p in paths[:files]:
            drop_caches()
            first.append(timed_first_byte(p))
        target = max(paths, key=lambda p: os.stat(p).st_size)
        size = os.stat(target).st_size
        drop_caches()
        t = time.perf_counter()
        with open(target, "rb") as f:
            while f.read(1 << 20):
                pass
        return first, size / (time.perf_counter() - t) / 1e6
    finally:
        unmount(proc, mnt)


def bench_read(srv, bins, work, big, bucket, rtt, files):
    """First byte and sequential read through the mount vs plain clients, at `rtt`."""
    out = {}
    s3p, s3_port = srv.proxy(srv.s3_port, rtt)
    sshp, ssh_port = srv.proxy(srv.ssh_port, rtt)
    names = sorted(p.relative_to(big) for p in big.rglob("*") if p.is_file() and not p.name.startswith("."))
    biggest = max(names, key=lambda n: (big / n).stat().st_size)
    size = (big / biggest).stat().st_size
    import boto3
    proxied = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}",
                           aws_access_key_id="bench", aws_secret_access_key="bench-secret",
                           region_name="us-east-1")
    proxied.list_buckets()  # connection set up, as musicfs's is after the scan
    for kind, url in (("s3", srv.s3_url(s3_port, bucket)), ("sftp", srv.sftp_url(ssh_port, big))):
        db = work / f"read-{kind}.db"
        scan(bins, db, url)
        first, seq = mounted_reads(bins, db, work / f"mnt-{kind}", files)
        plain_first, plain_seq = [], None
        if kind == "s3":
            for n in names[:files]:
                t = time.perf_counter()
                proxied.get_object(Bucket=bucket, Key=str(n), Range="bytes=0-0")["Body"].read()
                plain_first.append(time.perf_counter() - t)
            t = time.perf_counter()
            proxied.get_object(Bucket=bucket, Key=str(biggest))["Body"].read()
            plain_seq = size / (time.perf_counter() - t) / 1e6
            plain = "boto3 get_object"
        else:
            batch = work / "sftp.batch"
            batch.write_text(f'get "{big / biggest}" /dev/null\n')
            cmd = ["sftp", "-q", "-b", str(batch), "-i", str(srv.key), "-P", str(ssh_port),
                   "-o", f"UserKnownHostsFile={srv.known}", "-o", "StrictHostKeyChecking=yes",
                   "root@127.0.0.1"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the server side
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            plain_seq = size / (time.perf_counter() - t) / 1e6
            plain = "sftp get (incl. its login)"
        out[kind] = {"first_byte_ms_p50": statistics.median(first) * 1e3,
                     "first_byte_ms_max": max(first) * 1e3,
                     "plain_first_byte_ms_p50": statistics.median(plain_first) * 1e3 if plain_first else None,
                     "seq_mb_s": seq, "plain_seq_mb_s": plain_seq, "plain": plain,
                     "file_mb": size / 1e6}
        print(f"read {kind}: {out[kind]}", file=sys.stderr)
    for p in (s3p, sshp):
        p.kill()
    return out


def bench_read_s3s(bins, work, big, rtt, s3s_bin, files):
    """Serving from `s3s-fs` (a Rust S3 server over a folder, checking SigV4, whose ranged
    reads cost what they should), vs boto3 `get_object` on it, at `rtt`."""
    import boto3
    data = work / "s3s-data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(big, data / "lib-big", ignore=shutil.ignore_patterns(".complete"))
    port = free_port()
    server = subprocess.Popen([s3s_bin, "--host", "127.0.0.1", "--port", str(port), "--access-key",
                               SECRET["AWS_ACCESS_KEY_ID"], "--secret-key",
                               SECRET["AWS_SECRET_ACCESS_KEY"], str(data)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, server, "s3s-fs")
    proxy = subprocess.Popen([str(bins / "musicfs-fault-proxy"), "--to", str(port), "--delay-ms",
                              str(rtt / 2)], stdout=subprocess.PIPE, text=True)
    pport = int(proxy.stdout.readline())
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{pport}",
                              aws_access_key_id=SECRET["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=SECRET["AWS_SECRET_ACCESS_KEY"],
                              region_name="us-east-1")
        names = sorted(str(p.relative_to(big)) for p in big.rglob("*") if p.is_file() and not p.name.startswith("."))
        biggest = max(names, key=lambda n: (big / n).stat().st_size)
        size = (big / biggest).stat().st_size
        client.list_buckets()
        plain_first = []
        for n in names[:files]:
            t = time.perf_counter()
            client.get_object(Bucket="lib-big", Key=n, Range="bytes=0-0")["Body"].read()
            plain_first.append(time.perf_counter() - t)
        drop_caches()
        t = time.perf_counter()
        client.get_object(Bucket="lib-big", Key=biggest)["Body"].read()
        plain_seq = size / (time.perf_counter() - t) / 1e6
        db = work / "read-s3s.db"
        scan(bins, db, f"s3://lib-big?endpoint=http://127.0.0.1:{pport}")
        first, seq = mounted_reads(bins, db, work / "mnt-s3s", files)
        out = {"first_byte_ms_p50": statistics.median(first) * 1e3,
               "first_byte_ms_max": max(first) * 1e3,
               "plain_first_byte_ms_p50": statistics.median(plain_first) * 1e3,
               "seq_mb_s": seq, "plain_seq_mb_s": plain_seq, "plain": "boto3 get_object",
               "file_mb": size / 1e6}
        print(f"read s3s-fs: {out}", file=sys.stderr)
        return out
    finally:
        proxy.kill()
        server.kill()


def bench_failover(srv, bins, work, lib, bucket, after_s):
    """Primary SFTP through a proxy, S3 mirror; the proxy is stopped (SIGSTOP: a black hole)
    and a read of an uncached file is timed."""
    proxy, port = srv.proxy(srv.ssh_port, 0)
    url = srv.sftp_url(port, lib)
    db = work / "failover.db"
    scan(bins, db, url)
    config = work / "failover.toml"
    s3 = srv.s3_url(srv.s3_port, bucket)
    config.write_text(f'[[origins]]\nurl = "{url}"\n[[origins]]\nurl = "{s3}"\n'
                      f'mirror_of = "{url}"\npriority = 2\n')
    mnt = work / "mnt-failover"
    mnt.mkdir(exist_ok=True)
    env = dict(os.environ, **SECRET)
    proc = subprocess.Popen([str(bins / "musicfs"), "mount", "--quiet", "--db", str(db), "--config",
                             str(config), "--failover-after", str(after_s), str(mnt)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1000):
        if os.path.ismount(mnt):
            break
        time.sleep(0.01)
    paths = sorted(str(Path(d) / f) for d, _, fs in os.walk(mnt) for f in fs if ".search" not in d)
    healthy = timed_first_byte(paths[0])
    proxy.send_signal(signal.SIGSTOP)
    times = []
    for p in paths[1:4]:
        drop_caches()
        times.append(timed_first_byte(p))
    proxy.send_signal(signal.SIGCONT)
    unmount(proc, mnt)
    proxy.kill()
    return {"failover_after_s": after_s, "healthy_first_byte_ms": healthy * 1e3,
            "reads_after_primary_died_ms": [t * 1e3 for t in times]}


def bench_notify(bins, work, rounds):
    lib = work / "notify-lib"
    shutil.rmtree(lib, ignore_errors=True)
    subprocess.run([str(bins / "musicfs-gen-library"), "--out", str(lib), "--n", "50", "--formats",
                    "flac"], check=True, stderr=subprocess.DEVNULL)
    template = next(p for p in lib.rglob("*.flac"))
    db = work / "notify.db"
    for f in work.glob("notify.db*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    mnt = work / "mnt-notify"
    mnt.mkdir(exist_ok=True)
    proc, _ = mount([str(bins / "musicfs"), "mount", "--quiet", "--db", str(db), str(lib), str(mnt)], mnt)

    def count():
        return sum(len(fs) for d, _, fs in os.walk(mnt) if ".search" not in d)
    for _ in range(500):
        if count() >= 50:
            break
        time.sleep(0.02)
    samples = []
    for i in range(rounds):
        before = count()
        folder = lib / f"Added {i}"
        folder.mkdir()
        t = time.perf_counter()
        shutil.copy(template, folder / f"added {i}.flac")
        while count() == before and time.perf_counter() - t < 10:
            time.sleep(0.005)
        samples.append(time.perf_counter() - t)
        time.sleep(0.3)
    unmount(proc, mnt)
    samples.sort()
    return {"rounds": rounds, "p50_ms": statistics.median(samples) * 1e3,
            "max_ms": samples[-1] * 1e3}


def markdown(r):
    out = ["### Remote scan (first scan, 64 files in flight)", "",
           "| RTT | origin | files | avg file | files/s | plain client files/s | fetched per file | fetched / library | on the wire / library |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["scan"]:
        plain = f"{row['plain_files_per_s']:,.0f}" if row["plain_files_per_s"] else "-"
        out.append(f"| {row['rtt_ms']} ms | {row['origin']} | {row['files']} | "
                   f"{row['avg_size']/1e6:.2f} MB | {row['files_per_s']:,.0f} | {plain} | "
                   f"{row['bytes_per_file']/1e3:,.1f} KB | {row['share']*100:.2f} % | "
                   f"{row['wire_share']*100:.2f} % |")
    st = r["sftp_steady"]
    out += ["", f"SFTP on a bigger library ({st['files']} small files, {st['rtt_ms']} ms RTT, the "
            f"session pool's ramp-up a small part of the scan): {st['files_per_s']:,.0f} files/s."]
    out += ["", f"### Serving at {r['read_rtt_ms']} ms RTT (page cache dropped before each read)", "",
            "| origin | first byte p50 (max) | plain client first byte | sequential MB/s | plain client MB/s | ratio |",
            "|---|---:|---:|---:|---:|---:|"]
    for kind, x in r["read"].items():
        pf = f"{x['plain_first_byte_ms_p50']:.0f} ms" if x["plain_first_byte_ms_p50"] else "-"
        out.append(f"| {kind} ({x['file_mb']:.0f} MB file) | {x['first_byte_ms_p50']:.0f} ms "
                   f"({x['first_byte_ms_max']:.0f}) | {pf} | {x['seq_mb_s']:.0f} | "
                   f"{x['plain_seq_mb_s']:.0f} ({x['plain']}) | {x['seq_mb_s']/x['plain_seq_mb_s']:.2f}× |")
    f = r["failover"]
    out += ["", "### Failover (SFTP primary stopped, S3 mirror)", "",
            f"`--failover-after {f['failover_after_s']}`: a read on the healthy primary "
            f"{f['healthy_first_byte_ms']:.0f} ms; reads after the primary stopped answering: "
            + ", ".join(f"{t:.0f} ms" for t in f["reads_after_primary_died_ms"]) + ".",
            "", "### A file added on disk, until it shows in the mount", "",
            f"{r['notify']['rounds']} rounds: p50 {r['notify']['p50_ms']:.0f} ms, "
            f"max {r['notify']['max_ms']:.0f} ms."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    ap.add_argument("--work", default=str(ROOT / "bench-out"))
    ap.add_argument("--s3s-fs", help="an s3s-fs binary: also serve from it (cargo install "
                    "s3s-fs --version 0.14.1 --features binary)")
    ap.add_argument("--only-s3s", action="store_true", help="run only the s3s-fs serving part")
    ap.add_argument("--only-scan", action="store_true", help="run only the scan part")
    ap.add_argument("--only-read", action="store_true", help="run only the serving part")
    ap.add_argument("--rtts", help="comma-separated RTTs in ms for the scan part")
    a = ap.parse_args()
    bins = Path(a.bin_dir).resolve()
    work = Path(a.work).resolve() / ("remote-smoke" if a.smoke else "remote")
    work.mkdir(parents=True, exist_ok=True)
    if a.smoke:
        plan = {"small": (60, 0), "3mb": (6, 3 << 20)}
        rtts, read_rtt, big_pad, notify_rounds, first_files = [0, 20], 20, 8 << 20, 3, 3
        steady_n = 300
    else:
        plan = {"small": (2000, 0), "3mb": (200, 3 << 20), "10mb": (60, 10 << 20)}
        rtts, read_rtt, big_pad, notify_rounds, first_files = [0, 20, 100], 20, 200 << 20, 20, 10
        steady_n = 6000
    if a.rtts:
        rtts = [int(x) for x in a.rtts.split(",")]
    if a.only_s3s:
        big = work / "lib-big"
        gen(bins, big, 4, big_pad, formats="flac")
        r = bench_read_s3s(bins, work, big, read_rtt, a.s3s_fs, first_files)
        print(json.dumps(r, indent=2))
        (Path(a.work) / "remote-s3s.json").write_text(json.dumps(r, indent=2))
        return
    srv = Servers(work, bins)
    try:
        if a.only_read:
            big = work / "lib-big"
            gen(bins, big, 4, big_pad, formats="flac")
            srv.upload("lib-big", big)
            result = {"read": bench_read(srv, bins, work, big, "lib-big", read_rtt, first_files)}
            if a.s3s_fs:
                result["read"]["s3 (s3s-fs)"] = bench_read_s3s(bins, work, big, read_rtt,
                                                               a.s3s_fs, first_files)
            print(json.dumps(result, indent=2))
            return
        sets = {}
        for name, (n, pad) in plan.items():
            lib = work / f"lib-{name}"
            gen(bins, lib, n, pad)
            bucket = f"lib-{name}"
            srv.upload(bucket, lib)
            sets[name] = (lib, bucket)
        result = {"scan": bench_scan(srv, bins, work, sets, rtts), "read_rtt_ms": read_rtt}
        steady = work / "lib-steady"
        gen(bins, steady, steady_n, 0)
        result["sftp_steady"] = bench_sftp_steady(srv, bins, work, steady, 20)
        if a.only_scan:
            print(json.dumps(result, indent=2))
            return
        big = work / "lib-big"
        gen(bins, big, 4, big_pad, formats="flac")
        srv.upload("lib-big", big)
        result["read"] = bench_read(srv, bins, work, big, "lib-big", read_rtt, first_files)
        if a.s3s_fs:
            result["read"]["s3 (s3s-fs)"] = bench_read_s3s(bins, work, big, read_rtt, a.s3s_fs,
                                                           first_files)
        result["failover"] = bench_failover(srv, bins, work, *sets["3mb"], 1.0)
        result["notify"] = bench_notify(bins, work, notify_rounds)
    finally:
        srv.close()
    md = markdown(result)
    print(md)
    (Path(a.work) / ("remote-smoke.md" if a.smoke else "remote.md")).write_text(md + "\n")
    (Path(a.work) / ("remote-smoke.json" if a.smoke else "remote.json")).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
