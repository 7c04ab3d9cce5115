#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (built by libfuzzer-sys with the
# system C++ compiler) plus rustc's stable sanitizer-coverage passes. No nightly, no ASan (the
# code under test is safe Rust: we look for panics that escape, hangs and memory blowups).
#
#   tools/fuzz/run.sh tags|template [SECONDS] [extra libFuzzer flags...]
#
# Seeds: tools/fuzz/seeds/<target> (generated on first run from the test fixtures and, when
# present, ../shared/corpus and the registry corpus). Findings land in
# tools/fuzz/crashers/<target>/; commit them: tests/replay.rs replays every one in CI.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh tags|template [SECONDS]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))

fuzz_flags="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
 -C llvm-args=-sanitizer-coverage-trace-compares -C debug-assertions -C overflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (host artifacts).
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="$fuzz_flags" cargo build --release -p musicfs-fuzz --features libfuzzer --bin "fuzz-$target" \
  --target "$triple" --target-dir ../../target/fuzz

seeds="seeds/$target"
if [ ! -d "$seeds" ]; then
  mkdir -p "$seeds"
  if [ "$target" = tags ]; then
    cargo run -q -p musicfs-tools --bin musicfs-gen-library -- --n 40 --seed 1 --out "$seeds.lib" >/dev/null
    find "$seeds.lib" -type f -size -512k -exec cp {} "$seeds/" \; 2>/dev/null || true
    rm -rf "$seeds.lib"
    for extra in ../../../shared/corpus "${XDG_CACHE_HOME:-$HOME/.cache}/musicfs/corpus"; do
      [ -d "$extra" ] && find "$extra" -type f -size -256k \
        \( -iname '*.flac' -o -iname '*.mp3' -o -iname '*.ogg' -o -iname '*.opus' -o -iname '*.wav' \
           -o -iname '*.aif*' -o -iname '*.m4a' -o -iname '*.ape' -o -iname '*.wv' -o -iname '*.mpc' \
           -o -iname '*.spx' -o -iname '*.aac' \) -exec sh -c 'cp "$1" "$2/$(sha1sum "$1" | cut -c1-16)"' _ {} "$seeds" \;
    done
  else
    printf '%s' '${albumartist|artist|"Unknown Artist"}/${album|"Unknown Album"}[ ($year)]/[$track - ]${title|filename}' > "$seeds/default"
    printf '%s' '%the{$artist}/%left{$album,3}[/%pad{$track,3}] - %upper{$title}' > "$seeds/functions"
    printf '%s\0%s\0%s' '$artist/$title' '../..' 'a/b' > "$seeds/values"
  fi
fi
mkdir -p "crashers/$target"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/corpus"
MUSICFS_FUZZ_SCRATCH=$scratch ../../target/fuzz/"$triple"/release/"fuzz-$target" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
  -artifact_prefix="crashers/$target/" -print_final_stats=1 "$@" \
  "$scratch/corpus" "$seeds" 2>&1 | tail -n 25
