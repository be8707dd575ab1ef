#!/usr/bin/env bash
# Queued delivery benchmark (issue 19): acknowledged deliveries per second and the ack latency
# (the 202) of a queued route, next to the same route forwarding directly, in one run.
#
#   bash benches/queue.sh                  # 1 KiB and 64 KiB, c=16, 10 s per run, 3 rounds
#   bash benches/queue.sh --quick          # dry run: 1 round, 1 s runs
#   options: --rounds N  --duration SECONDS  --out DIR  --bin PATH (a hookseal binary to use
#            instead of building the release one; the upstream is then built in debug too)
#   bash benches/queue.sh --bin OLD --bin NEW   # A/B: each round runs every cell on each
#            binary in turn (a fresh hookseal and spool per binary and round); the report has
#            a row per binary, and the machine's load average at the start and the end
#
# One hookseal (disk spool, durability on: every 202 follows an fsync, group commit) in front of
# examples/bench_upstream.rs, two routes with the same scheme (Standard Webhooks, dedupe off so
# oha can repeat one validly signed request: each repeat is a new entry):
#   direct   /webhooks/bench          forwarded, answered with the app's 200
#   queued   /webhooks/bench-queued   stored, answered 202, delivered by the worker
# Per run (oha, HTTP/1.1 keep-alive, closed loop c=16): answers/s, p50, p99, hookseal's CPU time
# per request; for queued also the time until the worker delivered everything it acknowledged
# (hookseal_queue_depth back to 0), i.e. end-to-end deliveries/s. A run with any answer other
# than 200 (direct) or 202 (queued) fails the benchmark.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SIZES=(1024 65536)
ROUNDS=3
DURATION=10
OUT=""
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) ROUNDS=1; DURATION=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --out) OUT=$2; shift ;;
        --bin) BINS+=("$2"); shift ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

P_UP=18180 P_HS=18181 P_ADMIN=18190
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
export PATH="$PATH:$HOME/.cargo/bin"
command -v oha >/dev/null || { echo "oha is required (cargo install oha --locked)" >&2; exit 1; }

if [ ${#BINS[@]} -gt 0 ]; then
    cargo build --locked --quiet --example bench_upstream
    UP=$ROOT/target/debug/examples/bench_upstream
else
    log "building release binaries"
    cargo build --release --locked --quiet --bin hookseal --example bench_upstream
    BINS=("$ROOT/target/release/hookseal")
    UP=$ROOT/target/release/examples/bench_upstream
fi
HS=${BINS[0]}
for port in $P_UP $P_HS $P_ADMIN; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use on 127.0.0.1; stop what listens there and run again" >&2
        exit 1
    fi
done

[ -n "$OUT" ] || OUT=$ROOT/target/bench-queue/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/runs"
W=$OUT
log "results in $W"
for size in "${SIZES[@]}"; do write_body "$size" "$W/body-$size.json"; done
# config SPOOL_DIR: hookseal's config, the spool in SPOOL_DIR
config() { queued_config $P_HS $P_ADMIN $P_UP "$1"; }

trap stop_started EXIT
"$UP" 127.0.0.1:$P_UP >/dev/null 2>&1 & pids+=($!)
wait_port $P_UP
HS_PID=""
# start_hs BIN TAG: a fresh hookseal (and spool) from BIN
start_hs() {
    rm -rf "$W/spool-$2"
    config "$W/spool-$2" >"$W/hookseal-$2.toml"
    "$1" run --config "$W/hookseal-$2.toml" 2>>"$W/hookseal-$2.log" & pids+=($!)
    HS_PID=$!
    wait_port $P_HS
    wait_port $P_ADMIN
}
stop_hs() {
    kill "$HS_PID"
    wait "$HS_PID" 2>/dev/null || true
}

depth() {
    curl -s "http://127.0.0.1:$P_ADMIN/metrics" \
        | awk '/^hookseal_queue_depth\{route="bench-queued"\}/ {print $2}'
}

# spool_ticks PID: utime+stime of the spool's committer thread (`hookseal-spool`) in PID, in
# clock ticks; 0 if it has none
spool_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = hookseal-spool ] || continue
        cpu_ticks "$1/task/${t##*/}" && return
        break
    done
    echo 0
}

# run NAME PATH SIZE ROUND: one oha run; writes runs/NAME-SIZE-ROUND.{json,txt}
# (NAME is prefixed with the binary's name and `_` when there are several)
run() {
    local name=$1 path=$2 size=$3 round=$4 headers=() line base
    base=$W/runs/$name-$size-$round
    while IFS= read -r line; do
        [ -n "$line" ] && headers+=(-H "$line")
    done < <("$HS" sign --scheme standard-webhooks --secret "$BENCH_SECRET" --body-file "$W/body-$size.json")
    local t0 t1 c0 c1 s0 s1 drained_ms=0
    c0=$(cpu_ticks "$HS_PID")
    s0=$(spool_ticks "$HS_PID")
    t0=$(date +%s%N)
    oha -c 16 -z "${DURATION}s" -w --no-tui --output-format json -m POST "${headers[@]}" \
        -H 'content-type: application/json' -D "$W/body-$size.json" \
        "http://127.0.0.1:$P_HS$path" >"$base.json"
    if [ "${name##*_}" = queued ]; then
        for _ in $(seq 6000); do
            [ "$(depth)" = 0 ] && break
            sleep 0.05
        done
        [ "$(depth)" = 0 ] || { echo "the queue did not drain" >&2; exit 1; }
    fi
    t1=$(date +%s%N)
    c1=$(cpu_ticks "$HS_PID")
    s1=$(spool_ticks "$HS_PID")
    drained_ms=$(( (t1 - t0) / 1000000 ))
    echo "$name $size $round $((c1 - c0)) $drained_ms $((s1 - s0))" >"$base.txt"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
    for i in "${!BINS[@]}"; do
        tag=""
        [ ${#BINS[@]} -gt 1 ] && tag="$(basename "${BINS[$i]}" | tr -- '-_' '..')_"
        HS=${BINS[$i]}
        start_hs "$HS" "${tag:-hs}"
        for size in "${SIZES[@]}"; do
            log "round $round, $size bytes: ${tag}direct"
            run "${tag}direct" "$BENCH_ROUTE" "$size" "$round"
            log "round $round, $size bytes: ${tag}queued"
            run "${tag}queued" "${BENCH_ROUTE}-queued" "$size" "$round"
        done
        stop_hs
    done
done
echo "load average: $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" | tee "$W/load.txt"

python3 - "$W" "$(getconf CLK_TCK)" <<'EOF' | tee "$W/report.md"
import json, sys, glob, os, statistics
w, tck = sys.argv[1], int(sys.argv[2])
rows = {}
for f in sorted(glob.glob(os.path.join(w, "runs", "*.json"))):
    name, size, rnd = os.path.basename(f)[:-5].rsplit("-", 2)
    j = json.load(open(f))
    codes = j.get("statusCodeDistribution", {})
    want = "202" if name.endswith("queued") else "200"
    n = sum(codes.values())
    bad = {k: v for k, v in codes.items() if k != want}
    if bad or j.get("errorDistribution"):
        sys.exit(f"{f}: unexpected answers {bad} {j.get('errorDistribution')}")
    cpu, elapsed_ms, spool = map(int, open(f[:-5] + ".txt").read().split()[3:6])
    s = j["summary"]
    lat = j["latencyPercentiles"]
    rows.setdefault((size, name), []).append({
        "rps": s["requestsPerSec"], "p50": lat["p50"] * 1000, "p99": lat["p99"] * 1000,
        "cpu_us": cpu / tck / max(n, 1) * 1e6,
        "spool_us": spool / tck / max(n, 1) * 1e6,
        "round": rnd,
        "delivered_per_s": n / (elapsed_ms / 1000) if name.endswith("queued") else None,
    })
med = lambda xs: statistics.median(xs)
print("| body | target | answers/s | p50 ms | p99 ms | hookseal CPU µs/req | of it the spool thread | ÷ direct (per round) | delivered/s (end to end) |")
print("|---|---|---|---|---|---|---|---|---|")
for (size, name), rs in sorted(rows.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
    d = [r["delivered_per_s"] for r in rs if r["delivered_per_s"] is not None]
    ratio = "—"
    if name.endswith("queued"):
        # Each round's queued CPU over the same round's direct CPU (same binary, same minute).
        direct = {r["round"]: r["cpu_us"] for r in rows.get((size, name[:-6] + "direct"), [])}
        rr = [r["cpu_us"] / direct[r["round"]] for r in rs if direct.get(r["round"])]
        ratio = f"{med(rr):.2f} ({min(rr):.2f}–{max(rr):.2f})" if rr else "—"
    spool = f"{med([r['spool_us'] for r in rs]):.0f}" if name.endswith("queued") else "—"
    print(f"| {int(size)//1024} KiB | {name} | {med([r['rps'] for r in rs]):.0f} | "
          f"{med([r['p50'] for r in rs]):.2f} | {med([r['p99'] for r in rs]):.2f} | "
          f"{med([r['cpu_us'] for r in rs]):.0f} | {spool} | {ratio} | "
          f"{med(d):.0f} |" if d else
          f"| {int(size)//1024} KiB | {name} | {med([r['rps'] for r in rs]):.0f} | "
          f"{med([r['p50'] for r in rs]):.2f} | {med([r['p99'] for r in rs]):.2f} | "
          f"{med([r['cpu_us'] for r in rs]):.0f} | {spool} | {ratio} | — |")
EOF
