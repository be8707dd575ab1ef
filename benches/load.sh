#!/usr/bin/env bash
# Load benchmark: hookseal next to what a user would put in front of an app instead — the
# proxies that only forward and the ones that also verify — on the same machine, in one run.
#
#   bash benches/load.sh            # full run: 2 rounds × 3 bodies × 5 loads × 10 targets, ~35 min
#   bash benches/load.sh --quick    # smoke run: 1 round, c=1 and 2000 req/s, 1 s runs, < 5 min once built
#   options: --rounds N  --duration SECONDS  --warmup SECONDS  --out DIR  --no-install
#            --threads N (HOOKSEAL_WORKERS for both hookseal targets; default: one per CPU)
#            --sizes "1024 65536"  --loads "c1 q200"  --targets "direct hookseal nginx-lua"
#            --paired: the open-loop loads (q200, q2000) run every target at once (below)
#            --bin PATH: the hookseal binary for both hookseal targets (default: the release
#            build, made here), e.g. the PGO build of benches/pgo.sh
#
# Targets (all on 127.0.0.1, all in front of the same upstream, examples/bench_upstream.rs,
# which reads the body and answers 200; every request is POST /hook with a valid
# `X-Hub-Signature-256`, HMAC-SHA256 hex of the body, as GitHub signs):
#   direct              oha → upstream
#   hookseal            plain HTTP, one `github` route on /hook (dedupe off: oha repeats one
#                       request; the dedupe cost is in benches/pipeline.rs)
#   hookseal-tls        the same route behind TLS (self-signed P-256 cert)
#   floor               examples/hyper_floor.rs: the cheapest proxy hyper allows (no
#                       verification, body collected), one thread per CPU
#   nginx, nginx-tls    proxy_pass, upstream keep-alive, body buffered in memory, access log off
#   haproxy             mode http, http-reuse always (upstream keep-alive)
#   nginx-lua           VERIFYING: nginx + an access_by_lua HMAC check (../shared/peers)
#   hookgate            VERIFYING: the Go gateway as shipped (new upstream connection per request)
#   hookgate-keepalive  VERIFYING: the same with an upstream keep-alive pool
# The verifying peers come from ../shared/peers (PEERS=DIR to point elsewhere); `setup.sh`
# there builds them once (run here unless --no-install). Missing peers are reported "pending".
# Loads (oha, HTTP/1.1 keep-alive): closed loop c=1, 16, 64; open loop 200 and 2000 req/s
# (c=16 / c=64 to send with, latency corrected for coordinated omission) — webhooks live at
# c=1 and at the open-loop rates. Bodies 1 KiB, 64 KiB, 1 MiB.
# Order: targets rotate per round and per cell; every measured run is preceded by a warm-up
# run of the same cell and bounded in time (oha -z, plus `timeout`). With --paired, an
# open-loop cell runs every target at the same time instead, each with its own oha at the
# cell's rate: what moves the shared machine during a run (other tenants, the VM's steal)
# then moves every target alike, where one after the other the low-rate cells move by a
# quarter between rounds of the same binaries (BENCHMARKS.md §23). The machine carries the
# rate once per target, so pair few targets (--targets); the upstream's CPU per request is
# then its whole CPU split evenly between the targets.
# Per run: throughput, p50/p99, each process's CPU time per request (the scheduler's ns count
# of its threads, /proc/PID/task/*/schedstat) and peak RSS (VmHWM, reset before the run via
# clear_refs), and /proc/loadavg.
# A run with any non-200 answer or transport error fails the benchmark (exit 1).
# The report (medians over rounds, ratios to direct in the same round, and the goals of the
# performance issue) is written by benches/load_report.py to OUT/report.md and printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ARGS="$*"

SIZES=(1024 65536 1048576)
LOADS=(c1 c16 c64 q200 q2000)
ROUNDS=2
DURATION=3
WARMUP=1
QUICK=0
PAIRED=0
INSTALL=1
OUT=""
ONLY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1; DURATION=1; WARMUP=0.3; LOADS=(c1 q2000) ;;
        --sizes) read -ra SIZES <<<"$2"; shift ;;
        --loads) read -ra LOADS <<<"$2"; shift ;;
        --targets) read -ra ONLY <<<"$2"; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-install) INSTALL=0 ;;
        --paired) PAIRED=1 ;;
        --threads) export HOOKSEAL_WORKERS=$2; shift ;;
        --bin) HS_BIN=$(realpath "$2"); shift ;;
        -h|--help) sed -n '2,46p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

P_UP=18080 P_HS=18081 P_TLS=18082 P_NGX=18083 P_HAP=18084 P_ADMIN=18090 P_ADMIN_TLS=18091
P_NGXTLS=18085 P_LUA=18086 P_HG=18087 P_HGK=18088 P_FLOOR=18089
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
SECRET=$BENCH_SECRET
ROUTE=/hook
PEERS=${PEERS:-$ROOT/../shared/peers}
PEERS_BUILD=${PEERS_BUILD:-${XDG_CACHE_HOME:-$HOME/.cache}/hookseal-peers}
export PEERS_BUILD


# ---------------------------------------------------------------------------------- tools
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
    [ "$INSTALL" = 1 ] || { echo "missing: ${need_apt[*]}" >&2; exit 1; }
    log "installing ${need_apt[*]} (apt-get)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
if ! command -v oha >/dev/null; then
    [ "$INSTALL" = 1 ] || { echo "missing: oha" >&2; exit 1; }
    log "installing oha (cargo install oha --locked; takes a few minutes)"
    cargo install oha --locked
fi
command -v python3 >/dev/null || { echo "python3 is required for the report" >&2; exit 1; }

log "building release binaries"
cargo build --release --locked --quiet --bin hookseal --example bench_upstream --example hyper_floor
HS=${HS_BIN:-$ROOT/target/release/hookseal}
UP=$ROOT/target/release/examples/bench_upstream
FLOOR=$ROOT/target/release/examples/hyper_floor

PEERS_OK=0
if [ -d "$PEERS" ]; then
    if [ ! -x "$PEERS_BUILD/hookgate" ] && [ "$INSTALL" = 1 ]; then
        log "building the verifying peers (bash $PEERS/setup.sh)"
        bash "$PEERS/setup.sh" >"${TMPDIR:-/tmp}/hookseal-peers-setup.log" 2>&1 \
            || log "peers: setup.sh failed (see ${TMPDIR:-/tmp}/hookseal-peers-setup.log)"
    fi
    [ -x "$PEERS_BUILD/hookgate" ] && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] && PEERS_OK=1
fi
[ "$PEERS_OK" = 1 ] || log "verifying peers not available ($PEERS): their columns are marked pending"

for port in $P_UP $P_HS $P_TLS $P_NGX $P_HAP $P_ADMIN $P_ADMIN_TLS $P_NGXTLS $P_LUA $P_HG $P_HGK $P_FLOOR; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use on 127.0.0.1; stop what listens there and run again" >&2
        exit 1
    fi
done

[ -n "$OUT" ] || OUT=$ROOT/target/bench-load/$(date -u +%Y%m%dT%H%M%SZ)$([ "$QUICK" = 1 ] && echo -quick || true)
mkdir -p "$OUT/runs" "$OUT/nginx" "$OUT/nginx-tls" "$OUT/nginx-lua" "$OUT/hookgate" "$OUT/hookgate-keepalive"
W=$OUT
log "results in $W"

# ---------------------------------------------------------------------------------- inputs
for size in "${SIZES[@]}"; do write_body "$size" "$W/body-$size.json"; done

write_cert "$W"

# hookseal with one `github` route on /hook, as the verifying peers check it
hs_github_config() { github_config "$1" "$2" "$P_UP" "${3:-}"; } # PORT ADMIN_PORT [TLS_LINE]
hs_github_config $P_HS $P_ADMIN >"$W/hookseal.toml"
hs_github_config $P_TLS $P_ADMIN_TLS "tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }" >"$W/hookseal-tls.toml"

nginx_config "$W/nginx" $P_UP $P_NGX >"$W/nginx.conf"
# nginx with TLS: the same, the listener with the same certificate, TLS 1.3 as hookseal offers
nginx_config "$W/nginx-tls" $P_UP $P_NGXTLS \
    | sed "s|listen 127.0.0.1:$P_NGXTLS;|listen 127.0.0.1:$P_NGXTLS ssl; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; ssl_protocols TLSv1.3; ssl_session_cache shared:tls:1m;|" \
    >"$W/nginx-tls.conf"
grep -q "ssl_certificate" "$W/nginx-tls.conf" || { echo "nginx-tls: could not write its config" >&2; exit 1; }

cat >"$W/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:$P_HAP
    default_backend app
backend app
    server app1 127.0.0.1:$P_UP
EOF

# ---------------------------------------------------------------------------------- processes
trap stop_started EXIT


"$UP" 127.0.0.1:$P_UP 2>"$W/upstream.log" & UP_PID=$!; pids+=($UP_PID)
HOOKSEAL_LOG=warn "$HS" run --config "$W/hookseal.toml" 2>"$W/hookseal.log" & HS_PID=$!; pids+=($HS_PID)
HOOKSEAL_LOG=warn "$HS" run --config "$W/hookseal-tls.toml" 2>"$W/hookseal-tls.log" & TLS_PID=$!; pids+=($TLS_PID)
nginx -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx.conf" & NGX_PID=$!; pids+=($NGX_PID)
nginx -p "$W/nginx-tls" -e "$W/nginx-tls/error.log" -c "$W/nginx-tls.conf" & NGXT_PID=$!; pids+=($NGXT_PID)
haproxy -db -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 & HAP_PID=$!; pids+=($HAP_PID)
"$FLOOR" 127.0.0.1:$P_FLOOR 127.0.0.1:$P_UP "$(nproc)" 2>"$W/floor.log" & FLOOR_PID=$!; pids+=($FLOOR_PID)
wait_port $P_UP; wait_port $P_HS; wait_port $P_NGX; wait_port $P_NGXTLS; wait_port $P_HAP; wait_port $P_FLOOR

TARGETS=(direct hookseal floor nginx nginx-tls haproxy)
TLS_STATE=ok
if wait_port $P_TLS 2>/dev/null && sleep 0.2 \
    && curl -sk -o /dev/null "https://127.0.0.1:$P_TLS/" 2>/dev/null; then
    TARGETS+=(hookseal-tls)
else
    TLS_STATE=pending
    log "hookseal-tls: did not start; column marked pending"
    kill "$TLS_PID" 2>/dev/null || true
fi
LUA_PID="" HG_PID="" HGK_PID=""
if [ "$PEERS_OK" = 1 ]; then
    sh "$PEERS/start_nginx_lua.sh" $P_LUA $P_UP "$SECRET" "$W/nginx-lua" >"$W/nginx-lua.log" 2>&1 & LUA_PID=$!; pids+=($LUA_PID)
    HOOKGATE_LOG=/dev/null sh "$PEERS/start_hookgate.sh" $P_HG $P_UP "$SECRET" "$W/hookgate" & HG_PID=$!; pids+=($HG_PID)
    HOOKGATE_LOG=/dev/null sh "$PEERS/start_hookgate_keepalive.sh" $P_HGK $P_UP "$SECRET" "$W/hookgate-keepalive" & HGK_PID=$!; pids+=($HGK_PID)
    wait_port $P_LUA && TARGETS+=(nginx-lua)
    wait_port $P_HG && TARGETS+=(hookgate)
    wait_port $P_HGK && TARGETS+=(hookgate-keepalive)
fi
if [ ${#ONLY[@]} -gt 0 ]; then
    keep=(direct)
    for t in "${TARGETS[@]}"; do
        for o in "${ONLY[@]}"; do [ "$t" = "$o" ] && [ "$t" != direct ] && keep+=("$t"); done
    done
    TARGETS=("${keep[@]}")
fi
sleep 0.5

url_of() {
    case "$1" in
        direct) echo "http://127.0.0.1:$P_UP$ROUTE" ;;
        hookseal) echo "http://127.0.0.1:$P_HS$ROUTE" ;;
        hookseal-tls) echo "https://127.0.0.1:$P_TLS$ROUTE" ;;
        nginx) echo "http://127.0.0.1:$P_NGX$ROUTE" ;;
        nginx-tls) echo "https://127.0.0.1:$P_NGXTLS$ROUTE" ;;
        haproxy) echo "http://127.0.0.1:$P_HAP$ROUTE" ;;
        floor) echo "http://127.0.0.1:$P_FLOOR$ROUTE" ;;
        nginx-lua) echo "http://127.0.0.1:$P_LUA$ROUTE" ;;
        hookgate) echo "http://127.0.0.1:$P_HG$ROUTE" ;;
        hookgate-keepalive) echo "http://127.0.0.1:$P_HGK$ROUTE" ;;
    esac
}
pids_of() { # the processes whose CPU and memory are the target's own
    case "$1" in
        direct) echo "$UP_PID" ;;
        hookseal) echo "$HS_PID" ;;
        hookseal-tls) echo "$TLS_PID" ;;
        nginx) tree_pids "$NGX_PID" | tr '\n' ' ' ;;
        nginx-tls) tree_pids "$NGXT_PID" | tr '\n' ' ' ;;
        haproxy) echo "$HAP_PID" ;;
        floor) echo "$FLOOR_PID" ;;
        nginx-lua) tree_pids "$LUA_PID" | tr '\n' ' ' ;;
        hookgate) tree_pids "$HG_PID" | tr '\n' ' ' ;;
        hookgate-keepalive) tree_pids "$HGK_PID" | tr '\n' ' ' ;;
    esac
}
status_kib() { # $1 field (VmHWM, VmRSS), then pids: the sum, in KiB
    local field=$1 t=0 p v; shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status")
        t=$((t + ${v:-0}))
    done
    echo $t
}
reset_hwm() { local p; for p in "$@"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done; }

# sign SIZE: a header file for oha (X-Hub-Signature-256 and a delivery id; no timestamp)
sign_headers() {
    "$HS" sign --scheme github --secret "$SECRET" --id "bench-$1" \
        --body-file "$W/body-$1.json" >"$W/headers-$1.txt"
}

# sanity: each target answers 200 to a signed request; hookseal rejects an unsigned one
for size in "${SIZES[@]}"; do sign_headers "$size"; done
for t in "${TARGETS[@]}"; do
    hdr=(); while IFS= read -r line; do hdr+=(-H "$line"); done <"$W/headers-1024.txt"
    code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST "${hdr[@]}" \
        -H 'content-type: application/json' --data-binary @"$W/body-1024.json" "$(url_of "$t")")
    [ "$code" = 200 ] || { echo "sanity: $t answered $code to a signed request" >&2; exit 1; }
done
for t in hookseal hookseal-tls nginx-lua hookgate hookgate-keepalive; do
    [[ " ${TARGETS[*]} " == *" $t "* ]] || continue
    code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST -H 'X-Hub-Signature-256: sha256=00' \
        -H 'content-type: application/json' --data-binary @"$W/body-1024.json" "$(url_of "$t")")
    [ "$code" = 401 ] || [ "$code" = 400 ] || [ "$code" = 403 ] \
        || { echo "sanity: $t let a wrongly signed request through ($code)" >&2; exit 1; }
done
log "sanity ok: every target answers 200 to a signed request; every verifying one refuses a wrong signature"

# idle memory, before any load
{
    echo "{"
    first=1
    for t in "${TARGETS[@]}"; do
        [ $first = 1 ] || echo ","
        first=0
        # shellcheck disable=SC2046
        printf '"%s": %s' "$t" "$(status_kib VmRSS $(pids_of "$t"))"
    done
    echo "}"
} >"$W/idle_rss_kib.json"

metric_rejected() { # rejected requests counted by the hookseal admin ports
    local port t=0 n
    for port in "$@"; do
        n=$(curl -s "http://127.0.0.1:$port/metrics" \
            | awk '/^hookseal_requests_total/ && /result="rejected"/ { s += $2 } END { print s + 0 }')
        t=$((t + n))
    done
    echo $t
}
ADMINS=($P_ADMIN)
[ "$TLS_STATE" = ok ] && ADMINS+=($P_ADMIN_TLS)

oha_args() { # $1 load, $2 size, $3 target
    local load=$1 size=$2 target=$3 a=()
    case "$load" in
        c1) a+=(-c 1) ;;
        c16) a+=(-c 16) ;;
        c64) a+=(-c 64) ;;
        q200) a+=(-c 16 -q 200 --latency-correction) ;;
        q2000) a+=(-c 64 -q 2000 --latency-correction) ;;
    esac
    while IFS= read -r line; do a+=(-H "$line"); done <"$W/headers-$size.txt"
    a+=(-m POST -T application/json -D "$W/body-$size.json" --no-tui -w --insecure)
    a+=("$(url_of "$target")")
    printf '%s\n' "${a[@]}"
}

run_oha() { # $1 seconds, $2 json out, then oha args
    local secs=$1 out=$2; shift 2
    timeout --kill-after=5 "$(( ${secs%.*} + 20 ))" \
        oha -z "${secs}s" --output-format json "$@" >"$out" 2>"$out.err"
}

cat >"$W/meta.json" <<EOF
{"quick": $QUICK, "args": "$ARGS", "rounds": $ROUNDS, "duration_s": $DURATION, "warmup_s": $WARMUP,
 "tls": "$TLS_STATE", "targets": "$(echo "${TARGETS[*]}")",
 "nproc": $(nproc), "cpu": "$(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }')",
 "clk_tck": $(getconf CLK_TCK), "oha": "$(oha --version | head -1)",
 "nginx": "$(nginx -v 2>&1 | sed 's/.*\///')", "haproxy": "$(haproxy -v | head -1 | awk '{print $3}')",
 "peers": "$([ "$PEERS_OK" = 1 ] && echo ok || echo pending)",
 "hookseal_threads": "${HOOKSEAL_WORKERS:-one per CPU ($(nproc))}", "paired": $PAIRED,
 "hookseal_commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "started": "$(date -u +%FT%TZ)", "loadavg_start": "$(cut -d' ' -f1-3 /proc/loadavg)"}
EOF

# paired_cell ROUND SIZE LOAD: every target at once, each with its own oha (--paired)
paired_cell() {
    local round=$1 size=$2 load=$3 t i la0 la1 u0 u1 name
    local -a names=() c0=() ohas=() rcs=() args=()
    for t in "${TARGETS[@]}"; do
        mapfile -t args < <(oha_args "$load" "$size" "$t")
        run_oha "$WARMUP" "$W/runs/warmup-$t.json" "${args[@]}" &
        ohas+=($!)
    done
    wait "${ohas[@]}" || true
    ohas=()
    # shellcheck disable=SC2046
    reset_hwm $(for t in "${TARGETS[@]}"; do pids_of "$t"; done) "$UP_PID"
    la0=$(cut -d' ' -f1 /proc/loadavg)
    u0=$(cpu_ns "$UP_PID")
    for t in "${TARGETS[@]}"; do
        # shellcheck disable=SC2046
        c0+=("$(cpu_ns $(pids_of "$t"))")
    done
    for t in "${TARGETS[@]}"; do
        name="r$round-$size-$load-$t"
        names+=("$name")
        mapfile -t args < <(oha_args "$load" "$size" "$t")
        run_oha "$DURATION" "$W/runs/$name.json" "${args[@]}" &
        ohas+=($!)
    done
    for i in "${!ohas[@]}"; do
        rcs[i]=0
        wait "${ohas[$i]}" || rcs[i]=$?
    done
    u1=$(cpu_ns "$UP_PID")
    la1=$(cut -d' ' -f1 /proc/loadavg)
    for i in "${!TARGETS[@]}"; do
        t=${TARGETS[$i]}
        name=${names[$i]}
        # shellcheck disable=SC2046
        set -- $(pids_of "$t")
        cat >"$W/runs/$name.meta.json" <<EOF
{"round": $round, "size": $size, "load": "$load", "target": "$t", "oha_rc": ${rcs[$i]},
 "cpu_ns": $(( $(cpu_ns "$@") - ${c0[$i]} )), "upstream_cpu_ns": $(( (u1 - u0) / ${#TARGETS[@]} )),
 "hwm_kib": $(status_kib VmHWM "$@"), "upstream_hwm_kib": $(status_kib VmHWM "$UP_PID"),
 "loadavg_before": $la0, "loadavg_after": $la1, "paired": true}
EOF
        done_runs=$((done_runs + 1))
        line=$(python3 "$ROOT/benches/load_report.py" run "$W/runs/$name") || failures=$((failures + 1))
        log "[$done_runs/$total] $line"
    done
}

# ---------------------------------------------------------------------------------- rounds
failures=0
rej0=$(metric_rejected "${ADMINS[@]}")
n_targets=${#TARGETS[@]}
cell=0
total=$((ROUNDS * ${#SIZES[@]} * ${#LOADS[@]} * n_targets))
done_runs=0
for round in $(seq 1 "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for load in "${LOADS[@]}"; do
            cell=$((cell + 1))
            if [ "$PAIRED" = 1 ] && [[ $load == q* ]]; then
                paired_cell "$round" "$size" "$load"
                continue
            fi
            for i in $(seq 0 $((n_targets - 1))); do
                t=${TARGETS[$(( (i + round + cell) % n_targets ))]}
                mapfile -t args < <(oha_args "$load" "$size" "$t")
                # shellcheck disable=SC2046
                set -- $(pids_of "$t")
                run_oha "$WARMUP" "$W/runs/warmup.json" "${args[@]}" || true
                name="r$round-$size-$load-$t"
                reset_hwm "$@" "$UP_PID"
                la0=$(cut -d' ' -f1 /proc/loadavg)
                c0=$(cpu_ns "$@"); u0=$(cpu_ns "$UP_PID")
                rc=0
                run_oha "$DURATION" "$W/runs/$name.json" "${args[@]}" || rc=$?
                c1=$(cpu_ns "$@"); u1=$(cpu_ns "$UP_PID")
                la1=$(cut -d' ' -f1 /proc/loadavg)
                hwm=$(status_kib VmHWM "$@")
                up_hwm=$(status_kib VmHWM "$UP_PID")
                cat >"$W/runs/$name.meta.json" <<EOF
{"round": $round, "size": $size, "load": "$load", "target": "$t", "oha_rc": $rc,
 "cpu_ns": $((c1 - c0)), "upstream_cpu_ns": $((u1 - u0)), "hwm_kib": $hwm,
 "upstream_hwm_kib": $up_hwm, "loadavg_before": $la0, "loadavg_after": $la1}
EOF
                done_runs=$((done_runs + 1))
                line=$(python3 "$ROOT/benches/load_report.py" run "$W/runs/$name") || failures=$((failures + 1))
                log "[$done_runs/$total] $line"
            done
        done
    done
done

rej1=$(metric_rejected "${ADMINS[@]}")
echo "{\"hookseal_rejected\": $((rej1 - rej0)), \"finished\": \"$(date -u +%FT%TZ)\", \"loadavg_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >"$W/end.json"
if [ "$((rej1 - rej0))" != 0 ]; then
    echo "hookseal counted $((rej1 - rej0)) rejected requests during the run" >&2
    failures=$((failures + 1))
fi

python3 "$ROOT/benches/load_report.py" report "$W" >"$W/report.md"
cat "$W/report.md"
if [ "$failures" != 0 ]; then
    echo "FAILED: $failures run(s) had rejected requests or errors (see above)" >&2
    exit 1
fi
