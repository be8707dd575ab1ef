#!/usr/bin/env bash
# hookseal's profile-guided (PGO) release build: what the Dockerfile's build stage runs, and
# what BENCHMARKS.md measures (§24, §25).
#
#   bash benches/pgo.sh [--secs N] [--out DIR]
#
# 1. builds hookseal with `-Cprofile-generate` (DIR/gen; DIR defaults to target/pgo);
# 2. trains it with examples/pgo_train.rs (built in the dev profile): the hot `github` route
#    at 1 KiB and 64 KiB over HTTP/1.1, HTTP/2 and TLS, queued delivery on disk and (when
#    redis-server is on PATH) on Redis, every scheme signed, unsigned and tampered, the
#    handshakes, the JWT engine, the usual refusals and the admin endpoints; N seconds per
#    load phase (default 2). Every answer is checked, and the script fails if one is wrong;
# 3. merges the profiles with llvm-profdata (`rustup component add llvm-tools`);
# 4. builds hookseal with `-Cprofile-use` into DIR/use/release/hookseal, with layout.ld as a
#    release build has it.
# LLVM lays out and inlines code no training ran as cold (§24 measured TLS, untrained, 1–4 %
# slower), so the training runs every path users run, not only the benchmarks'.
# Compare it with a plain release build: benches/ab.sh, benches/load.sh --bin.
# shellcheck source=benches/common.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
. "$ROOT/benches/common.sh"
SECS=2
OUT=$ROOT/target/pgo
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
PROFDATA=$(find "$(rustc --print sysroot)" -name llvm-profdata -type f | head -1)
[ -n "$PROFDATA" ] || { echo "llvm-profdata is required: rustup component add llvm-tools" >&2; exit 1; }
rm -rf "$OUT/raw"
mkdir -p "$OUT/raw"

log "building the instrumented binary"
RUSTFLAGS="-Cprofile-generate=$OUT/raw" cargo build --release --locked --quiet --bin hookseal \
    --target-dir "$OUT/gen"
log "building the training driver"
cargo build --locked --quiet --example pgo_train
DRIVER=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/pgo_train
# The build scripts of the instrumented build wrote profiles too: only the training's count.
rm -f "$OUT"/raw/*.profraw
log "training"
"$DRIVER" --bin "$OUT/gen/release/hookseal" --secs "$SECS"

log "merging $(find "$OUT/raw" -name '*.profraw' | wc -l) profiles"
"$PROFDATA" merge -o "$OUT/hookseal.profdata" "$OUT"/raw/*.profraw
log "building with the profile"
RUSTFLAGS="-Cprofile-use=$OUT/hookseal.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
    cargo build --release --locked --quiet --bin hookseal --target-dir "$OUT/use"
log "done: $OUT/use/release/hookseal"
