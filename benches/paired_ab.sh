#!/usr/bin/env bash
# Paired A/B: CPU per request of several targets loaded at the same time, each by its own oha,
# so that the machine's drift between rounds (a quarter at low rates, BENCHMARKS.md §23) moves
# them all alike. What `load.sh --paired` does for one hookseal against the peers, for any
# number of hookseal builds (the release against the PGO build, §24–§25).
#
#   bash benches/paired_ab.sh [--rounds N] [--secs S] [--size BYTES] [--load q2000|c16] TARGET...
#
# TARGET: a hookseal binary (one `github` route on /hook, dedupe off, as load.sh), `floor`
# (examples/hyper_floor on 2 threads) or `nginx-lua` (../shared/peers, or $PEERS). Every target
# gets the same signed 1 KiB (--size) POST in front of examples/bench_upstream. --load: qR =
# open loop at R req/s over 16 connections (default q2000), cN = closed loop on N
# connections. Prints one line per round: the CPU µs per request of each target, in the
# order given (the scheduler's count of its threads, as load.sh).
# shellcheck source=benches/common.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
. "$ROOT/benches/common.sh"
ROUNDS=6 SECS=5 SIZE=1024 LOAD=q2000
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --load) LOAD=$2; shift ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) TARGETS+=("$1") ;;
    esac
    shift
done
[ ${#TARGETS[@]} -gt 0 ] || { echo "usage: bash benches/paired_ab.sh [options] TARGET..." >&2; exit 2; }
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
PEERS=${PEERS:-$ROOT/../shared/peers}
case $LOAD in
    c*) LOAD_ARGS=(-c "${LOAD#c}") ;;
    q*) LOAD_ARGS=(-c 16 -q "${LOAD#q}") ;;
    *) echo "--load: qR or cN" >&2; exit 2 ;;
esac

cargo build --release --locked --quiet --bin hookseal --example bench_upstream --example hyper_floor
W=$(mktemp -d /tmp/hookseal-paired.XXXXXX)
CLEANUP_DIR=$W
trap stop_started EXIT
P_UP=17600
write_body "$SIZE" "$W/body.json"
"$ROOT/target/release/examples/bench_upstream" "127.0.0.1:$P_UP" >/dev/null 2>&1 & pids+=($!)
wait_port $P_UP
HEADERS=()
while IFS= read -r line; do
    [ -n "$line" ] && HEADERS+=(-H "$line")
done < <("$ROOT/target/release/hookseal" sign --scheme github --secret "$BENCH_SECRET" --id bench \
    --body-file "$W/body.json")

# CPU ns of a target's whole process tree.
tree_ns() { # shellcheck disable=SC2046
    cpu_ns $(tree_pids "$1"); }

ROOTS=() PORTS=()
for i in "${!TARGETS[@]}"; do
    t=${TARGETS[$i]} port=$((17610 + i * 10))
    case $t in
        floor) "$ROOT/target/release/examples/hyper_floor" "127.0.0.1:$port" "127.0.0.1:$P_UP" 2 \
                   >/dev/null 2>&1 & ;;
        nginx-lua) sh "$PEERS/start_nginx_lua.sh" "$port" "$P_UP" "$BENCH_SECRET" "$W/lua$i" \
                       >"$W/lua$i.log" 2>&1 & ;;
        *) github_config "$port" $((port + 1)) "$P_UP" >"$W/hs$i.toml"
           HOOKSEAL_LOG=warn "$t" run --config "$W/hs$i.toml" 2>>"$W/hookseal.log" & ;;
    esac
    pids+=($!) ROOTS+=($!) PORTS+=("$port")
    wait_port "$port"
    # A warm-up that also checks the target verifies and forwards: every answer 200.
    oha -n 300 -c 4 "${HEADERS[@]}" -m POST -T application/json -D "$W/body.json" --no-tui \
        --output-format json "http://127.0.0.1:$port/hook" >"$W/warm$i.json"
    python3 - "$W/warm$i.json" "$t" <<'EOF'
import json, sys
codes = json.load(open(sys.argv[1]))["statusCodeDistribution"]
if set(codes) != {"200"}:
    sys.exit(f"{sys.argv[2]}: answers {codes} to the warm-up, not only 200")
EOF
done

echo "# round, then CPU µs per request of: ${TARGETS[*]} (load $LOAD, $SIZE B, ${SECS} s; load average $(cut -d' ' -f1 /proc/loadavg))"
for r in $(seq "$ROUNDS"); do
    before=() ohas=()
    for i in "${!TARGETS[@]}"; do before+=("$(tree_ns "${ROOTS[$i]}")"); done
    for i in "${!TARGETS[@]}"; do
        oha -z "${SECS}s" "${LOAD_ARGS[@]}" "${HEADERS[@]}" -m POST -T application/json \
            -D "$W/body.json" --no-tui --output-format json "http://127.0.0.1:${PORTS[$i]}/hook" \
            >"$W/r$i.json" & ohas+=($!)
    done
    wait "${ohas[@]}"
    line="$r"
    for i in "${!TARGETS[@]}"; do
        spent=$(( $(tree_ns "${ROOTS[$i]}") - before[i] ))
        line+=" $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); n = d["statusCodeDistribution"].get("200", 0)
print(f"{int(sys.argv[2]) / 1000 / max(n, 1):.1f}")' "$W/r$i.json" "$spent")"
    done
    echo "$line"
done
echo "# load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
