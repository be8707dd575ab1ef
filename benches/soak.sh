#!/usr/bin/env bash
# Load and soak: hookseal (release build) in front of the echo upstream, on 127.0.0.1 only, for
# a bounded time, driven by benches/soak_driver.py (standard library Python 3):
#   valid webhooks at a steady rate (zero errors allowed), invalid ones (forged, stale,
#   missing/malformed headers, spoofed x-hookseal-*, oversized, replays, unknown paths: each must
#   get its status and reason and never be forwarded), slow clients (slowloris heads and
#   trickled bodies: each must be cut off by the header/body timeout), while the hookseal
#   process's RSS and open fds are sampled every second (must stay flat after the warm-up, and
#   come back to idle when the load stops). The log must never contain a secret.
#
#   bash benches/soak.sh                 # 10 minutes (SECURITY.md "Soak" has its figures)
#   bash benches/soak.sh --minutes 2     # shorter
#   options: --valid-rate N --invalid-rate N --slow N (defaults 40/s, 20/s, 16)
#
# Writes target/soak/samples.csv, target/soak/summary.txt and target/soak/hookseal.log.
# Exits non-zero on any failed check. Not a unit test: it is not run by `cargo test` or CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes=10
valid_rate=40
invalid_rate=20
slow=16
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --valid-rate) valid_rate="$2"; shift 2 ;;
        --invalid-rate) invalid_rate="$2"; shift 2 ;;
        --slow) slow="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
seconds=$(python3 -c "print(int(float('$minutes') * 60))")

echo "== building (release)"
cargo build --release --locked --quiet --bin hookseal --example echo_upstream
BIN=target/release/hookseal
APP=target/release/examples/echo_upstream

out=target/soak
mkdir -p "$out"
work=$(mktemp -d)
# shellcheck source=benches/common.sh
. benches/common.sh
CLEANUP_DIR=$work
trap stop_started EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); admin=$(free_port); up=$(free_port)

cat >"$work/hookseal.toml" <<TOML
[listen]
address = "127.0.0.1:$port"

[admin]
address = "127.0.0.1:$admin"

[limits]
max_body_bytes = "64KiB"
header_timeout = "5s"
body_timeout = "5s"
max_connections = 2048

[upstream]
url = "http://127.0.0.1:$up"
timeout = "15s"

[replay]
store = "memory"
capacity = 200000

[[route]]
name = "std"
path = "/hooks/std"
scheme = "standard-webhooks"
secrets = [{ id = "current", value = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }]
tolerance = "30s"

[[route]]
name = "stripe"
path = "/hooks/stripe"
scheme = "stripe"
secrets = [{ value = "whsec_soak_stripe" }]
tolerance = "30s"

[[route]]
name = "github"
path = "/hooks/github"
scheme = "github"
secrets = [{ value = "soak-github-secret" }]
TOML

ECHO_QUIET=1 "$APP" "127.0.0.1:$up" 2>"$work/echo.log" & pids+=($!)
HOOKSEAL_LOG=warn "$BIN" run --config "$work/hookseal.toml" 2>"$out/hookseal.log" & hs=$!; pids+=($hs)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$admin") 2>/dev/null && break
    sleep 0.1
done

echo "== soak: ${seconds}s, valid ${valid_rate}/s, invalid ${invalid_rate}/s, ${slow} slow clients; hookseal pid $hs on 127.0.0.1:$port"
echo "   machine: $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
timeout $((seconds + 300)) python3 benches/soak_driver.py \
    --port "$port" --admin-port "$admin" --pid "$hs" --seconds "$seconds" \
    --valid-rate "$valid_rate" --invalid-rate "$invalid_rate" --slow "$slow" \
    --header-timeout 5 --body-timeout 5 --csv "$out/samples.csv" | tee "$out/summary.txt" || status=$?

echo "== log: $(wc -l <"$out/hookseal.log") lines at warn and above"
for s in whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_soak_stripe soak-github-secret; do
    if grep -qF "$s" "$out/hookseal.log"; then
        echo "SOAK FAILED: a secret appears in the log" >&2
        status=1
    fi
done
if ! kill -0 "$hs" 2>/dev/null; then
    echo "SOAK FAILED: hookseal exited during the soak" >&2
    status=1
fi
exit $status
