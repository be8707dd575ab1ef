#!/usr/bin/env bash
# A/B: CPU per request of two (or more) hookseal binaries next to nginx, in one run, rotating.
#
#   bash benches/ab.sh [--rounds N] [--secs S] [-c C] [--sizes "1024 65536"] BIN [BIN ...]
# Each BIN may be prefixed with environment settings, e.g. "HOOKSEAL_WORKERS=1:target/release/hookseal";
# the pseudo-setting TLS=1 makes that target serve TLS instead (self-signed P-256, as
# benches/load.sh), e.g. "TLS=1:target/release/hookseal". nginx is always plain HTTP.
# FLOOR=N runs examples/hyper_floor (the cheapest proxy on hyper, no verification) on N
# threads instead: "FLOOR=1:target/release/examples/hyper_floor".
# OTLP=PORT turns traces on toward http://127.0.0.1:PORT (`[tracing] otlp_endpoint`): a port
# nothing listens on is a collector that is down, e.g. "OTLP=4399:target/release/hookseal".
# A baseline build of an older commit:
#   git worktree add /tmp/hookseal-old <commit> && (cd /tmp/hookseal-old && cargo build --release)
#   bash benches/ab.sh /tmp/hookseal-old/target/release/hookseal target/release/hookseal
#
# Every target gets the same Standard Webhooks route as benches/load.sh (dedupe off, one
# request pre-signed per cell), the same upstream (examples/bench_upstream.rs), oha closed loop
# at concurrency C for S seconds after a 0.5 s warm-up; the order is the same in every round
# and nginx (proxy_pass, upstream keep-alive) runs last. Printed per run: req/s, p50, and the
# target's CPU time (utime+stime from /proc/PID/stat, all processes for nginx) per request.
# Use benches/load.sh for the full comparison; this is the quick loop for one change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=3 SECS=4 CONC=16 SIZES="1024 65536"
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        -c) CONC=$2; shift ;;
        --sizes) SIZES=$2; shift ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) BINS+=("$1") ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "usage: bash benches/ab.sh [options] BIN [BIN ...]" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
for tool in oha nginx python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (benches/load.sh installs it)" >&2; exit 1; }
done

cargo build --release --locked --quiet --example bench_upstream --example hyper_floor
UP=$ROOT/target/release/examples/bench_upstream
W=$(mktemp -d /tmp/hookseal-ab.XXXXXX)
mkdir -p "$W/nginx"
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
SECRET=$BENCH_SECRET
P_UP=28080 P_NGX=28090 P_HS=28100 P_ADMIN=28200
for n in $SIZES; do write_body "$n" "$W/body-$n.json"; done

write_cert "$W"
TLS_CONF="tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }"

CLEANUP_DIR=$W
trap stop_started EXIT

"$UP" 127.0.0.1:$P_UP 2>/dev/null & pids+=($!)
HS_PIDS=() SCHEMES=()
for i in "${!BINS[@]}"; do
    spec=${BINS[$i]} envs=() TLS_LINE="" scheme=http floor="" otlp=""
    if [[ $spec == *:* ]]; then IFS=' ' read -ra envs <<<"${spec%%:*}"; spec=${spec#*:}; fi
    for j in "${!envs[@]}"; do
        if [ "${envs[$j]}" = TLS=1 ]; then TLS_LINE=$TLS_CONF scheme=https; unset "envs[$j]"; fi
        if [[ ${envs[$j]:-} == FLOOR=* ]]; then floor=${envs[$j]#FLOOR=}; unset "envs[$j]"; fi
        if [[ ${envs[$j]:-} == OTLP=* ]]; then otlp=${envs[$j]#OTLP=}; unset "envs[$j]"; fi
    done
    SCHEMES+=($scheme)
    if [ -n "$floor" ]; then
        env "${envs[@]}" "$spec" 127.0.0.1:$((P_HS + i)) 127.0.0.1:$P_UP "$floor" 2>"$W/hs$i.log" &
    else
        hs_config $((P_HS + i)) $((P_ADMIN + i)) $P_UP "$TLS_LINE" >"$W/hs$i.toml"
        [ -z "$otlp" ] || printf '\n[tracing]\notlp_endpoint = "http://127.0.0.1:%s"\n' "$otlp" >>"$W/hs$i.toml"
        env "${envs[@]}" HOOKSEAL_LOG=warn "$spec" run --config "$W/hs$i.toml" 2>"$W/hs$i.log" &
    fi
    HS_PIDS+=($!); pids+=($!)
done
nginx_config "$W/nginx" $P_UP $P_NGX >"$W/nginx.conf"
nginx -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx.conf" & NGX=$!; pids+=($NGX)
sleep 1

HZ=$(getconf CLK_TCK)
# The signer: the first target that is a hookseal.
FIRST=""
for b in "${BINS[@]}"; do [[ $b == *FLOOR=* ]] || { FIRST=${b##*:}; break; }; done
[ -n "$FIRST" ] || { echo "at least one target must be a hookseal binary (it signs)" >&2; exit 2; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for n in $SIZES; do
        "$FIRST" sign --scheme standard-webhooks --secret "$SECRET" --id "msg_ab_$RANDOM$RANDOM" \
            --timestamp "$(date +%s)" --body-file "$W/body-$n.json" >"$W/headers.txt"
        H=(); while IFS= read -r l; do H+=(-H "$l"); done <"$W/headers.txt"
        for t in $(seq 0 ${#BINS[@]}); do
            if [ "$t" = ${#BINS[@]} ]; then
                name=nginx port=$P_NGX procs="$NGX $(pgrep -P "$NGX" | tr '\n' ' ')" scheme=http
            else
                name="hs$t" port=$((P_HS + t)) procs=${HS_PIDS[$t]} scheme=${SCHEMES[$t]}
            fi
            args=(-c "$CONC" "${H[@]}" -m POST -T application/json -D "$W/body-$n.json" --no-tui -w
                --insecure --output-format json "$scheme://127.0.0.1:$port/webhooks/bench")
            timeout 30 oha -z 0.5s "${args[@]}" >/dev/null
            # shellcheck disable=SC2086
            c0=$(cpu_ticks $procs)
            timeout $((SECS + 30)) oha -z "${SECS}s" "${args[@]}" >"$W/run.json"
            # shellcheck disable=SC2086
            c1=$(cpu_ticks $procs)
            python3 - "$W/run.json" $((c1 - c0)) "$HZ" "$name" "$n" "$r" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
n = sum(codes.values())
cpu = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / max(n, 1)
p50 = d["latencyPercentiles"]["p50"] * 1e6
p99 = d["latencyPercentiles"]["p99"] * 1e6
bad = {k: v for k, v in codes.items() if k != "200"}
print(f"round {sys.argv[6]} {sys.argv[5]:>8} B {sys.argv[4]:>6}: {d['summary']['requestsPerSec']:8.0f} req/s"
      f"  p50 {p50:6.0f} µs  p99 {p99:6.0f} µs  CPU {cpu:6.1f} µs/req" + (f"  NON-200: {bad}" if bad else ""))
EOF
        done
    done
done
for i in "${!BINS[@]}"; do echo "hs$i = ${BINS[$i]}"; done
