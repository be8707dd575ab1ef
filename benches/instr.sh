#!/usr/bin/env bash
# Deterministic per-request cost: instructions (valgrind callgrind), context switches, syscalls
# and tokio timer registrations per request of the proxy process — figures that do not move
# with the machine's load, unlike CPU time (BENCHMARKS.md §14).
#
#   bash benches/instr.sh [--requests N] [--loads "c1 q200"] [--size BYTES] BIN [BIN ...]
# Each BIN may be prefixed with environment settings as in benches/ab.sh:
# "HOOKSEAL_WORKERS=1:target/profiling/hookseal"; FLOOR=N runs examples/hyper_floor on N
# threads: "FLOOR=2:target/profiling/examples/hyper_floor". Build with symbols for the
# per-function tables: `cargo build --profile profiling --bin hookseal --example hyper_floor`.
#
# Every target gets what benches/load.sh sends: POST /hook with GitHub's X-Hub-Signature-256
# (hookseal: one `github` route, dedupe off) in front of examples/bench_upstream. Loads: c1 =
# closed loop, one connection (cN: N connections, e.g. c64); qR = open loop at R req/s over 16
# connections (load.sh's q200).
# Per target and load, two runs of N requests after a warm-up of N/10:
#   1. under callgrind (all threads; counters zeroed after the warm-up, dumped after the run):
#      instructions per request, and calls per request of tokio's timer registration;
#   2. natively: context switches per request (voluntary + involuntary, summed over
#      /proc/PID/task/*/status) and syscalls per request (`perf stat -e raw_syscalls:sys_enter`).
# Callgrind profiles are kept in OUT (default target/bench-instr/<time>/) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
N=2000 LOADS="c1 q200" SIZE=1024 OUT=""
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) N=$2; shift ;;
        --loads) LOADS=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) BINS+=("$1") ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "usage: bash benches/instr.sh [options] BIN [BIN ...]" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
for tool in oha valgrind callgrind_control perf python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
OUT=${OUT:-$ROOT/target/bench-instr/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
UP=${UPSTREAM_BIN:-$ROOT/target/release/examples/bench_upstream}
[ -x "$UP" ] || cargo build --release --locked --quiet --example bench_upstream
W=$(mktemp -d /tmp/hookseal-instr.XXXXXX)
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
CLEANUP_DIR=$W
trap stop_started EXIT
# Ports: override (P_UP, P_T, P_ADMIN) when another run may hold these.
P_UP=${P_UP:-17080} P_T=${P_T:-17100} P_ADMIN=${P_ADMIN:-17200}
write_body "$SIZE" "$W/body.json"
"$UP" 127.0.0.1:$P_UP 2>/dev/null & pids+=($!)


# The signer: the first hookseal target.
SIGNER=""
for b in "${BINS[@]}"; do [[ $b == *FLOOR=* ]] || { SIGNER=${b##*:}; break; }; done
[ -n "$SIGNER" ] || { echo "one target must be a hookseal binary (it signs)" >&2; exit 2; }
"$SIGNER" sign --scheme github --secret "$BENCH_SECRET" --id bench --body-file "$W/body.json" >"$W/headers.txt"
H=(); while IFS= read -r l; do H+=(-H "$l"); done <"$W/headers.txt"

github_config "$P_T" "$P_ADMIN" "$P_UP" >"$W/hs.toml"

load_args() { # LOAD -> oha arguments
    case "$1" in
        c[0-9]*) echo "-c ${1#c}" ;;
        q*) echo "-c 16 -q ${1#q}" ;;
        *) echo "unknown load $1" >&2; exit 2 ;;
    esac
}

# start SPEC [valgrind...]: starts a target, sets PID.
start() {
    local spec=$1 envs=() floor=""
    shift
    if [[ $spec == *:* ]]; then IFS=' ' read -ra envs <<<"${spec%%:*}"; spec=${spec#*:}; fi
    for j in "${!envs[@]}"; do
        if [[ ${envs[$j]} == FLOOR=* ]]; then floor=${envs[$j]#FLOOR=}; unset "envs[$j]"; fi
    done
    if [ -n "$floor" ]; then
        env "${envs[@]}" "$@" "$spec" 127.0.0.1:$P_T 127.0.0.1:$P_UP "$floor" 2>>"$W/target.log" &
    else
        env "${envs[@]}" HOOKSEAL_LOG=warn "$@" "$spec" run --config "$W/hs.toml" 2>>"$W/target.log" &
    fi
    PID=$!
    wait_port $P_T 600
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

shoot() { # LOAD COUNT
    # shellcheck disable=SC2046
    timeout 600 oha -n "$2" $(load_args "$1") "${H[@]}" -m POST -T application/json -D "$W/body.json" \
        --no-tui --output-format json "http://127.0.0.1:$P_T/hook" >"$W/run.json"
    python3 - "$W/run.json" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
if codes.get("200", 0) != int(sys.argv[2]) or len(codes) != 1:
    sys.exit(f"not every answer was 200: {codes} {d.get('errorDistribution')}")
EOF
}

ctx_sum() { # PID: voluntary + involuntary context switches of all its threads
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s }'
}

echo "requests per run: $N, body $SIZE B; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %-6s %10s %8s %10s %10s %10s  %s\n' target load "instr/req" "HMAC" "timers/req" "ctxsw/req" "sysc/req" spec
for i in "${!BINS[@]}"; do
    spec=${BINS[$i]}
    for load in $LOADS; do
        # 1. callgrind
        cg="$OUT/callgrind.t$i.$load"
        start "$spec" valgrind --tool=callgrind --callgrind-out-file="$cg.%p" --dump-instr=no
        shoot "$load" $((N / 10))
        callgrind_control -z "$PID" >/dev/null 2>&1
        rm -f "$cg".*
        shoot "$load" "$N"
        callgrind_control -d "$PID" >/dev/null 2>&1
        stop
        instr=$(python3 "$ROOT/benches/instr_report.py" "$N" "$cg".*)
        # 2. native
        start "$spec"
        shoot "$load" $((N / 10))
        c0=$(ctx_sum "$PID")
        perf stat -x, -e raw_syscalls:sys_enter -p "$PID" -o "$W/perf.txt" &
        PERF=$!
        sleep 0.3
        shoot "$load" "$N"
        kill -INT $PERF; wait $PERF 2>/dev/null || true
        c1=$(ctx_sum "$PID")
        stop
        sys=$(awk -F, '/raw_syscalls/ { print $1 }' "$W/perf.txt")
        printf '%-4s %-6s %s %10.2f %10.2f  %s\n' "t$i" "$load" "$instr" \
            "$(echo "($c1 - $c0) / $N" | bc -l)" "$(echo "$sys / $N" | bc -l)" "$spec"
    done
done
echo "callgrind profiles: $OUT"
