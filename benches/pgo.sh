#!/usr/bin/env bash
# A profile-guided (PGO) release build of hookseal, to measure what PGO would give
# (BENCHMARKS.md §24). Not what `cargo build --release` or the Dockerfile make.
#
#   bash benches/pgo.sh [--secs N] [--out DIR]
#
# 1. builds hookseal with `-Cprofile-generate` (target/pgo/gen);
# 2. trains it, in front of examples/bench_upstream, with oha: a `github` route on /hook at
#    1 KiB and 64 KiB, closed loop c=1 and c=16 and open loop at 200 and 2000 req/s, N seconds
#    each (default 2); the same route over TLS (c=16, 2000 req/s); a queued Standard Webhooks
#    route on a disk spool (c=16); and eleven more schemes' routes (the cases of
#    tests/integration/sign.rs), c=4 each. Paths no phase runs (other schemes, HTTP/2,
#    Redis, the admin endpoints, rejections) have no counts, and LLVM lays them out and
#    inlines them as cold code; §24 measured one such path (TLS, before it was trained)
#    1–4 % slower;
# 3. merges the profiles with llvm-profdata (`rustup component add llvm-tools`);
# 4. builds hookseal with `-Cprofile-use` into target/pgo/use/release/hookseal, with layout.ld
#    as a release build has it.
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
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
export PATH="$PATH:$HOME/.cargo/bin"
command -v oha >/dev/null || { echo "oha is required (cargo install oha --locked)" >&2; exit 1; }
PROFDATA=$(find "$(rustc --print sysroot)" -name llvm-profdata -type f | head -1)
[ -n "$PROFDATA" ] || { echo "llvm-profdata is required: rustup component add llvm-tools" >&2; exit 1; }

P_UP=18280 P_HS=18281 P_ADMIN=18282 P_TLS=18283 P_ADMIN_TLS=18284
W=$OUT/work
rm -rf "$W" "$OUT/raw"
mkdir -p "$W" "$OUT/raw"

log "building the instrumented binary"
RUSTFLAGS="-Cprofile-generate=$OUT/raw" cargo build --release --locked --quiet --bin hookseal \
    --target-dir "$OUT/gen"
cargo build --release --locked --quiet --bin hookseal --example bench_upstream
GEN=$OUT/gen/release/hookseal
# The build scripts of the instrumented build wrote profiles too: only the training's count.
rm -f "$OUT"/raw/*.profraw

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
"$ROOT/target/release/examples/bench_upstream" "127.0.0.1:$P_UP" >/dev/null 2>&1 & pids+=($!)
wait_port $P_UP
write_cert "$W"

# The plain listener: the `github` route, the queued route and one route per scheme.
SCHEMES=(standard-webhooks github hotglue stripe slack shopify twilio square paddle linear discord hmac)
# Ed25519 (discord): the RFC 8032 test 1 pair; the route holds the public key.
ED_SEED=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
ED_PUBLIC=d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
{
    github_config $P_HS $P_ADMIN $P_UP
    queued_config $P_HS $P_ADMIN $P_UP "$W/spool" | sed -n '/^\[\[route\]\]/,$p' \
        | sed '0,/^name = "bench"/s//name = "bench-sw"/'
    for s in "${SCHEMES[@]}"; do
        secret=$BENCH_SECRET
        [ "$s" = discord ] && secret=$ED_PUBLIC
        printf '\n[[route]]\nname = "r-%s"\npath = "/s/%s"\nscheme = "%s"\nsecrets = [{ value = "%s" }]\ndedupe = false\n' \
            "$s" "$s" "$s" "$secret"
        case $s in
            twilio|square) printf 'public_url = "http://127.0.0.1:%s/s/%s"\n' $P_HS "$s" ;;
            hmac) printf '[route.hmac]\nheader = "X-Sig"\nencoding = "base64"\ntimestamp_header = "X-Ts"\nid_header = "X-Id"\n' ;;
        esac
    done
} >"$W/plain.toml"
github_config $P_TLS $P_ADMIN_TLS $P_UP "tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }" >"$W/tls.toml"
"$GEN" check --config "$W/plain.toml" >/dev/null
HOOKSEAL_LOG=warn "$GEN" run --config "$W/plain.toml" 2>"$W/plain.log" & PLAIN=$!; pids+=($PLAIN)
HOOKSEAL_LOG=warn "$GEN" run --config "$W/tls.toml" 2>"$W/tls.log" & TLS=$!; pids+=($TLS)
wait_port $P_HS; wait_port $P_TLS

# drive URL SCHEME BODY_FILE ROUTE OHA_ARGS...: oha with SCHEME's headers for BODY_FILE; every
# answer must be 200 or 202.
drive() {
    local url=$1 scheme=$2 body=$3 route=$4 headers=() line secret=$BENCH_SECRET
    shift 4
    [ "$scheme" = discord ] && secret=$ED_SEED
    while IFS= read -r line; do
        [ -n "$line" ] && headers+=(-H "$line")
    done < <("$ROOT/target/release/hookseal" sign --scheme "$scheme" --secret "$secret" --id pgo \
        --body-file "$body" --config "$W/plain.toml" --route "$route")
    oha "$@" --no-tui --output-format json -m POST "${headers[@]}" -H 'content-type: application/json' \
        -D "$body" "$url" >"$W/oha.json"
    python3 - "$W/oha.json" "$url" <<'EOF'
import json, sys
codes = json.load(open(sys.argv[1])).get("statusCodeDistribution", {})
bad = {k: v for k, v in codes.items() if k not in ("200", "202")}
if bad or not codes:
    sys.exit(f"{sys.argv[2]}: unexpected answers {codes}")
EOF
}

for size in 1024 65536; do
    write_body $size "$W/body-$size.json"
    for load in "-c 1" "-c 16" "-c 16 -q 200" "-c 16 -q 2000"; do
        log "training: github, $size bytes, $load"
        # shellcheck disable=SC2086
        drive "http://127.0.0.1:$P_HS/hook" github "$W/body-$size.json" bench -z "${SECS}s" $load
    done
    for load in "-c 16" "-c 16 -q 2000"; do
        log "training: github over TLS, $size bytes, $load"
        # shellcheck disable=SC2086
        drive "https://127.0.0.1:$P_TLS/hook" github "$W/body-$size.json" bench -z "${SECS}s" --insecure $load
    done
    log "training: queued, $size bytes"
    drive "http://127.0.0.1:$P_HS$BENCH_ROUTE-queued" standard-webhooks "$W/body-$size.json" \
        bench-queued -z "${SECS}s" -c 16
done
# Linear's freshness is the body's webhookTimestamp (ms).
printf '{"type":"pgo","webhookTimestamp":%s000}' "$(date +%s)" >"$W/body-schemes.json"
for s in "${SCHEMES[@]}"; do
    log "training: $s"
    drive "http://127.0.0.1:$P_HS/s/$s" "$s" "$W/body-schemes.json" "r-$s" -z 1s -c 4
done
# A clean stop writes the profiles.
kill -TERM $PLAIN $TLS
wait $PLAIN $TLS || true

log "merging $(find "$OUT/raw" -name '*.profraw' | wc -l) profiles"
"$PROFDATA" merge -o "$OUT/hookseal.profdata" "$OUT"/raw/*.profraw
log "building with the profile"
RUSTFLAGS="-Cprofile-use=$OUT/hookseal.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
    cargo build --release --locked --quiet --bin hookseal --target-dir "$OUT/use"
log "done: $OUT/use/release/hookseal"
