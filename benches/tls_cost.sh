#!/usr/bin/env bash
# What TLS adds per request, counted instead of timed (BENCHMARKS.md §15): instructions per
# request of the hookseal process under callgrind, and syscalls per request under strace, for
# plain HTTP and TLS, 1 KiB and 64 KiB bodies, c=1 and c=64.
#
#   bash benches/tls_cost.sh [--mode callgrind|strace] [--out DIR] BIN
# BIN: a hookseal build, e.g. one of `cargo build --profile profiling` (symbols for
# callgrind_annotate). Counts do not move with the machine's load, unlike CPU time.
#
# Per cell, two oha runs (HTTP/1.1 keep-alive) after a warm-up: A with NA requests, B with NB,
# each on c fresh connections. Steady state per request = (B − A) ÷ (NB − NA), so connection
# setup cancels out; setup per connection = (A − NA × steady) ÷ c (the TLS handshake). The
# callgrind counters are zeroed before and dumped after each run (`callgrind_control`); the
# dumps stay in DIR for callgrind_annotate. One worker thread (HOOKSEAL_WORKERS=1), the
# Standard Webhooks route of benches/ab.sh, a self-signed P-256 certificate, nginx `return 200`
# as the upstream (only hookseal is counted). Valgrind hides SHA-NI, so the HMAC's share is
# larger than on the CPU; it runs AES-NI and PCLMULQDQ, so ring's AES-GCM takes its hardware
# path as on the CPU.
# Requests: NA1/NB1 (1 KiB, default 200/600), NA64/NB64 (64 KiB, default 60/180); under strace
# 1000/3000 and 300/900. VALGRIND_ARGS: more callgrind options (e.g. --cache-sim=yes).
# PORT_BASE (default 27080, below the ephemeral range): the 13 ports from there on are used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MODE=callgrind OUT=""
while [ $# -gt 1 ]; do
    case "$1" in
        --mode) MODE=$2; shift ;;
        --out) OUT=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ $# -eq 1 ] || { echo "usage: bash benches/tls_cost.sh [--mode callgrind|strace] [--out DIR] BIN" >&2; exit 2; }
BIN=$(realpath "$1")
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
tools="oha nginx python3 openssl"
[ "$MODE" = callgrind ] && tools="$tools valgrind callgrind_control"
[ "$MODE" = strace ] && tools="$tools strace"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
if [ "$MODE" = strace ]; then
    NA1=${NA1:-1000} NB1=${NB1:-3000} NA64=${NA64:-300} NB64=${NB64:-900}
else
    NA1=${NA1:-200} NB1=${NB1:-600} NA64=${NA64:-60} NB64=${NB64:-180}
fi
W=${OUT:-$(mktemp -d /tmp/hookseal-tlscost.XXXXXX)}
mkdir -p "$W/nginx"
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
write_cert "$W"
for n in 1024 65536; do write_body "$n" "$W/body-$n.json"; done
B=${PORT_BASE:-27080}
P_UP=$B P_PLAIN=$((B + 1)) P_TLS=$((B + 2))
cat >"$W/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    server { listen 127.0.0.1:$P_UP; location / { return 200 "ok"; } }
}
EOF
trap stop_started EXIT
nginx -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx.conf" & pids+=($!)
hs_config $P_PLAIN $((B + 11)) $P_UP "" >"$W/plain.toml"
hs_config $P_TLS $((B + 12)) $P_UP "tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }" >"$W/tls.toml"
: >"$W/results.txt"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); mode $MODE; $BIN"
for proto in plain tls; do
    port=$P_PLAIN scheme=http
    [ $proto = tls ] && port=$P_TLS scheme=https
    if [ "$MODE" = callgrind ]; then
        # shellcheck disable=SC2086
        HOOKSEAL_WORKERS=1 HOOKSEAL_LOG=warn valgrind --tool=callgrind ${VALGRIND_ARGS:-} \
            --callgrind-out-file="$W/cg.$proto.%p.out" "$BIN" run --config "$W/$proto.toml" 2>"$W/hs-$proto.log" &
    else
        HOOKSEAL_WORKERS=1 HOOKSEAL_LOG=warn "$BIN" run --config "$W/$proto.toml" 2>"$W/hs-$proto.log" &
    fi
    HS=$!; pids+=($HS)
    for _ in $(seq 600); do curl -sk -o /dev/null "$scheme://127.0.0.1:$port/" && break; sleep 0.2; done
    kill -0 $HS 2>/dev/null || { echo "hookseal ($proto) did not start: $W/hs-$proto.log" >&2; exit 1; }
    for n in 1024 65536; do
        "$BIN" sign --scheme standard-webhooks --secret "$BENCH_SECRET" --id "msg_tlscost_$n" \
            --timestamp "$(date +%s)" --body-file "$W/body-$n.json" >"$W/headers.txt"
        H=(); while IFS= read -r l; do H+=(-H "$l"); done <"$W/headers.txt"
        for c in 1 64; do
            if [ "$n" = 1024 ]; then na=$NA1 nb=$NB1; else na=$NA64 nb=$NB64; fi
            args=(-c "$c" "${H[@]}" -m POST -T application/json -D "$W/body-$n.json" --no-tui --insecure
                -t 600s --output-format json "$scheme://127.0.0.1:$port$BENCH_ROUTE")
            oha -n 64 "${args[@]}" >/dev/null
            for win in A B; do
                N=$na; [ $win = B ] && N=$nb
                if [ "$MODE" = callgrind ]; then
                    callgrind_control -z $HS >/dev/null 2>&1
                    oha -n "$N" "${args[@]}" >"$W/oha.json"
                    callgrind_control -d $HS >/dev/null 2>&1
                    # shellcheck disable=SC2012
                    dump=$(ls -t "$W"/cg.$proto.$HS.out.* | head -1)
                    cp "$dump" "$W/cg-$proto-$n-c$c-$win.out"
                    count=$(grep -m1 '^summary:\|^totals:' "$dump" | awk '{print $2}')
                else
                    strace -f -c -o "$W/st-$proto-$n-c$c-$win.txt" -p $HS 2>/dev/null & ST=$!
                    sleep 0.5
                    oha -n "$N" "${args[@]}" >"$W/oha.json"
                    kill -INT $ST; wait $ST || true
                    count=$(python3 - "$W/st-$proto-$n-c$c-$win.txt" <<'EOF'
import re, sys
calls = 0
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 5 and re.match(r'^[\d.]+$', p[0]) and p[-1] != 'total':
        calls += int(p[3])
print(calls)
EOF
)
                fi
                codes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['statusCodeDistribution'])" "$W/oha.json")
                echo "$proto $n $c $win $N $count $codes" >>"$W/results.txt"
            done
        done
    done
    kill $HS; wait $HS 2>/dev/null || true
done
python3 - "$W/results.txt" "$MODE" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    proto, n, c, win, N, count = line.split()[:6]
    rows[(proto, int(n), int(c), win)] = (int(N), int(count))
unit = "instructions" if sys.argv[2] == "callgrind" else "syscalls"
print(f"{unit} per request (steady) and per connection (setup); every answer 200 unless noted")
print(f"| cell | plain /req | TLS /req | TLS extra /req | plain setup /conn | TLS setup /conn |")
print("|---|---:|---:|---:|---:|---:|")
for n in (1024, 65536):
    for c in (1, 64):
        out = []
        for proto in ("plain", "tls"):
            (na, a), (nb, b) = rows[(proto, n, c, "A")], rows[(proto, n, c, "B")]
            steady = (b - a) / (nb - na)
            out.append((steady, (a - na * steady) / c))
        size = "1 KiB" if n == 1024 else "64 KiB"
        print(f"| {size} c={c} | {out[0][0]:,.1f} | {out[1][0]:,.1f} | {out[1][0] - out[0][0]:+,.1f} | {out[0][1]:,.0f} | {out[1][1]:,.0f} |")
EOF
grep -v "{'200': [0-9]*}$" "$W/results.txt" && echo "(runs above had answers other than 200)" || true
echo "dumps and raw counts: $W"
