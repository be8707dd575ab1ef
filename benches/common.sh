# Shared by benches/load.sh and benches/ab.sh (sourced, not run): the inputs, configs and
# process sampling both measure with, so that their figures are comparable.

BENCH_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
BENCH_ROUTE=/webhooks/bench

# write_body SIZE FILE: a JSON event of exactly SIZE bytes.
write_body() {
    python3 - "$1" >"$2" <<'EOF'
import sys
n = int(sys.argv[1])
head, tail = '{"type":"bench.event","data":"', '"}'
fill = n - len(head) - len(tail)
sys.stdout.write(head + ("abcdefghijklmnopqrstuvwxyz012345" * (fill // 32 + 1))[:fill] + tail)
EOF
}

# write_cert DIR: a self-signed P-256 certificate for localhost, DIR/cert.pem and DIR/key.pem.
write_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# route_config SCHEME PATH PORT ADMIN_PORT UPSTREAM_PORT [TLS_LINE]: hookseal with one route
# `bench` of SCHEME on PATH, secret $BENCH_SECRET, dedupe off.
route_config() {
    cat <<EOF
[listen]
address = "127.0.0.1:$3"
${6:-}
[admin]
address = "127.0.0.1:$4"
[limits]
max_body_bytes = "2MiB"
[upstream]
url = "http://127.0.0.1:$5"

[[route]]
name = "bench"
path = "$2"
scheme = "$1"
secrets = [{ value = "$BENCH_SECRET" }]
dedupe = false
EOF
}

# hs_config PORT ADMIN_PORT UPSTREAM_PORT [TLS_LINE]: one Standard Webhooks route.
hs_config() { route_config standard-webhooks "$BENCH_ROUTE" "$@"; }

# github_config PORT ADMIN_PORT UPSTREAM_PORT [TLS_LINE]: one `github` route on /hook, as the
# verifying peers of ../shared/peers check it (load.sh, instr.sh, idle_rss.sh,
# layout.sh).
github_config() { route_config github /hook "$@"; }

# queued_config PORT ADMIN_PORT UPSTREAM_PORT SPOOL_DIR: hs_config plus the same route queued
# (/webhooks/bench-queued) on a disk spool in SPOOL_DIR (benches/queue.sh, queue_count.sh).
queued_config() {
    hs_config "$1" "$2" "$3"
    cat <<EOF

[[route]]
name = "bench-queued"
path = "${BENCH_ROUTE}-queued"
scheme = "standard-webhooks"
secrets = [{ value = "$BENCH_SECRET" }]
dedupe = false
[route.delivery]
mode = "queued"

[queue]
path = "$4"
max_bytes = "8GiB"
EOF
}

# log MESSAGE...: a line on stderr with the time.
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# wait_port PORT [TRIES]: until something listens on 127.0.0.1:PORT, polling every 0.1 s at
# most TRIES times (default 100); fails (status 1) with a message otherwise.
wait_port() {
    local tries=${2:-100}
    for _ in $(seq "$tries"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# nginx_config DIR UPSTREAM_PORT PORT: proxy_pass with upstream keep-alive, the body buffered
# in memory, access log off, 2 workers; pid, logs and temp files under DIR.
nginx_config() {
    cat <<EOF
worker_processes 2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    upstream app {
        server 127.0.0.1:$2;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$3;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# cpu_ticks PID...: utime+stime of the given processes, in clock ticks (PID/task/TID: of one
# thread).
cpu_ticks() {
    local t=0 p s
    for p in "$@"; do
        s=$(cat "/proc/$p/stat") || return 1
        s=${s##*) }
        read -ra f <<<"$s"
        t=$((t + f[11] + f[12]))
    done
    echo $t
}

# tree_pids PID: the process and its descendants, one per line (the peers run under `sh`, and
# nginx has workers).
tree_pids() {
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p"); do tree_pids "$c"; done
}

# cpu_ns PID...: CPU time the given processes' live threads have run, in nanoseconds (the
# scheduler's own count, /proc/PID/task/*/schedstat), so that a few hundred requests at a
# webhook-like rate are resolved far below the 10 ms of a clock tick. Threads that exit during
# a run take their time with them: every measured process keeps its threads.
cpu_ns() {
    local t=0 p f v
    for p in "$@"; do
        for f in /proc/"$p"/task/*/schedstat; do
            read -r v _ <"$f" 2>/dev/null || continue
            t=$((t + v))
        done
    done
    echo $t
}

# Processes a script started: append each pid (`pids+=($!)`); `trap stop_started EXIT` kills
# them on exit, waits for them, and removes CLEANUP_DIR when it is set.
pids=()
CLEANUP_DIR=""
stop_started() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$CLEANUP_DIR" ]; then rm -rf "$CLEANUP_DIR"; fi
}
