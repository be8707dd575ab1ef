#!/usr/bin/env bash
# Queued delivery, counted instead of timed (issue 19's CPU goal, BENCHMARKS.md §13): what one
# acknowledged request costs hookseal, all of it (accept, spool, deliver to the app, ack), in
# numbers a loaded machine does not move much: instructions (valgrind callgrind, every thread),
# syscalls and fsyncs (strace -f -c), context switches (perf stat, every thread).
#
#   bash benches/queue_count.sh --bin BINARY [--bin BINARY2 ...] [options]
#   options: --tool callgrind|strace|perf (default: all three)  --sizes "1024 65536"
#            --targets "direct queued"  -n REQUESTS (default 2000)  -c CONNECTIONS (16)
#            --out DIR
#
# Each cell runs hookseal twice under the tool, with n and 2n requests (oha -n, closed loop,
# -c connections), waits until the queued route's spool is empty again (every acknowledged
# request delivered and acknowledged), stops hookseal with SIGTERM, and reports
# (count(2n) - count(n)) / n: start-up and shutdown cancel out. The same config as
# benches/queue.sh (routes `direct` and `queued`, Standard Webhooks, dedupe off).
# Under valgrind or strace hookseal runs 10-50x slower, so group commits hold other batches
# than at full speed: compare binaries with the same tool, not a tool with a timed run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BINS=()
TOOLS=(callgrind strace perf)
SIZES=(1024 65536)
TARGETS=(direct queued)
N=2000
C=16
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BINS+=("$2"); shift ;;
        --tool) read -ra TOOLS <<<"$2"; shift ;;
        --sizes) read -ra SIZES <<<"$2"; shift ;;
        --targets) read -ra TARGETS <<<"$2"; shift ;;
        -n) N=$2; shift ;;
        -c) C=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "give at least one --bin" >&2; exit 2; }

P_UP=18280 P_HS=18281 P_ADMIN=18290
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
export PATH="$PATH:$HOME/.cargo/bin"
for t in oha valgrind strace perf; do
    command -v $t >/dev/null || { echo "$t is required" >&2; exit 1; }
done
cargo build --locked --quiet --example bench_upstream
UP=$ROOT/target/debug/examples/bench_upstream

[ -n "$OUT" ] || OUT=$ROOT/target/bench-queue-count/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
W=$OUT
log "results in $W"
for size in "${SIZES[@]}"; do write_body "$size" "$W/body-$size.json"; done

trap stop_started EXIT
"$UP" 127.0.0.1:$P_UP >/dev/null 2>&1 & pids+=($!)
wait_port $P_UP 600

depth() {
    curl -s "http://127.0.0.1:$P_ADMIN/metrics" \
        | awk '/^hookseal_queue_depth\{route="bench-queued"\}/ {print $2}'
}

# one BIN TOOL SIZE TARGET REQUESTS: writes "<count> <fsyncs> <syscalls>" of one run to RES
one() {
    local bin=$1 tool=$2 size=$3 target=$4 n=$5 base path headers=() line
    base=$W/run-$(basename "$bin")-$tool-$size-$target-$n
    rm -rf "$base.spool"
    queued_config $P_HS $P_ADMIN $P_UP "$base.spool" >"$base.toml"
    case $tool in
        callgrind) valgrind --tool=callgrind --callgrind-out-file="$base.cg" \
            "$bin" run --config "$base.toml" 2>"$base.log" & ;;
        strace) strace -f -c -o "$base.strace" "$bin" run --config "$base.toml" 2>"$base.log" & ;;
        perf) perf stat -x, -e context-switches,task-clock -o "$base.perf" \
            "$bin" run --config "$base.toml" 2>"$base.log" & ;;
    esac
    local pid=$!
    pids+=("$pid")
    wait_port $P_HS 600
    wait_port $P_ADMIN 600
    path=$BENCH_ROUTE
    [ "$target" = queued ] && path=${BENCH_ROUTE}-queued
    while IFS= read -r line; do
        [ -n "$line" ] && headers+=(-H "$line")
    done < <("$bin" sign --scheme standard-webhooks --secret "$BENCH_SECRET" --body-file "$W/body-$size.json")
    oha -c "$C" -n "$n" --no-tui --output-format json -m POST "${headers[@]}" \
        -H 'content-type: application/json' -D "$W/body-$size.json" \
        "http://127.0.0.1:$P_HS$path" >"$base.json"
    python3 - "$base.json" "$target" "$n" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
want = "202" if sys.argv[2] == "queued" else "200"
codes = j.get("statusCodeDistribution", {})
if codes.get(want) != int(sys.argv[3]):
    sys.exit(f"{sys.argv[1]}: answers {codes} {j.get('errorDistribution')}")
EOF
    if [ "$target" = queued ]; then
        for _ in $(seq 6000); do
            [ "$(depth)" = 0 ] && break
            sleep 0.1
        done
        [ "$(depth)" = 0 ] || { echo "the queue did not drain" >&2; exit 1; }
    fi
    # valgrind runs hookseal in its own process; strace and perf as their child
    local hs=$pid
    [ "$tool" = callgrind ] || hs=$(pgrep -P "$pid" | head -1)
    kill -TERM "$hs"
    wait "$pid" || true
    case $tool in
        callgrind) awk '/^(summary|totals):/ {print $2, 0, 0; exit}' "$base.cg" ;;
        strace) awk '$NF == "fdatasync" || $NF == "fsync" {f += $4}
                     $NF == "total" {t = $4}
                     END {print 0, f + 0, t}' "$base.strace" ;;
        # task-clock in ms -> µs
        perf) awk -F, '$3 == "context-switches" {cs = $1} $3 == "task-clock" {tc = $1}
                       END {printf "%d %d 0\n", cs, tc * 1000}' "$base.perf" ;;
    esac >"$RES"
}
RES=$W/last.res

{
    echo "| binary | tool | body | target | per request |"
    echo "|---|---|---|---|---|"
} >"$W/report.md"
for tool in "${TOOLS[@]}"; do
    for size in "${SIZES[@]}"; do
        for target in "${TARGETS[@]}"; do
            for bin in "${BINS[@]}"; do
                log "$tool $size $target $(basename "$bin"): n=$N"
                one "$bin" "$tool" "$size" "$target" "$N"
                read -r a1 f1 s1 <"$RES"
                log "$tool $size $target $(basename "$bin"): n=$((2 * N))"
                one "$bin" "$tool" "$size" "$target" $((2 * N))
                read -r a2 f2 s2 <"$RES"
                case $tool in
                    callgrind) what=$(python3 -c "print(f'{($a2 - $a1) / $N:,.0f} instructions')") ;;
                    strace) what=$(python3 -c "print(f'{($s2 - $s1) / $N:.1f} syscalls, {($f2 - $f1) / $N:.3f} fsyncs')") ;;
                    perf) what=$(python3 -c "print(f'{($a2 - $a1) / $N:.2f} context switches, {($f2 - $f1) / $N:.1f} µs CPU (timed: noisy)')") ;;
                esac
                echo "| $(basename "$bin") | $tool | $size | $target | $what |" | tee -a "$W/report.md"
            done
        done
    done
done
