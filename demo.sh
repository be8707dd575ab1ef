#!/usr/bin/env bash
# hookseal in one command: build, start a stand-in app on 127.0.0.1:8080 and hookseal on
# config.example.toml (127.0.0.1:8443, admin 127.0.0.1:9090), send a signed Supaglue (Standard
# Webhooks) request -- accepted and forwarded -- then an unsigned one and a tampered one --
# rejected, never forwarded -- then a replay of the first (a duplicate), then a queued delivery
# while the app is down (202, delivered when it is back), then stop both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

echo "== building (first run takes a few minutes)"
cargo build --release --quiet --bin hookseal --example echo_upstream
BIN=target/release/hookseal
APP=target/release/examples/echo_upstream

for port in 8080 8443 9090; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use on 127.0.0.1; stop what listens there and run again" >&2
        exit 1
    fi
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"$APP" 127.0.0.1:8080 & pids+=($!)
"$BIN" run --config config.example.toml & pids+=($!)

for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/9090) 2>/dev/null && break
    sleep 0.1
done

SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # the "current" secret of route supaglue
BODY=$(mktemp)
printf '{"type":"connection.created","data":{"customer_id":"c_42"}}' >"$BODY"

echo
echo "== 1. a signed delivery (hookseal sign prints the headers it sends, then the answer)"
"$BIN" sign --scheme standard-webhooks --secret "$SECRET" --id "msg_demo_$$" \
    --body-file "$BODY" --url http://127.0.0.1:8443/webhooks/supaglue

echo
echo "== 2. the same body, unsigned: rejected, the app never sees it"
if command -v curl >/dev/null; then
    curl -sS -w '\nHTTP %{http_code}\n' -X POST -H 'content-type: application/json' \
        --data-binary @"$BODY" http://127.0.0.1:8443/webhooks/supaglue
else
    exec 3<>/dev/tcp/127.0.0.1/8443
    printf 'POST /webhooks/supaglue HTTP/1.1\r\nhost: demo\r\ncontent-length: %s\r\nconnection: close\r\n\r\n' \
        "$(wc -c <"$BODY")" >&3
    cat "$BODY" >&3
    cat <&3; echo
fi

echo
echo "== 3. signed headers, tampered body: 401 bad_signature, the app never sees it"
HEADERS=$(mktemp)
"$BIN" sign --scheme standard-webhooks --secret "$SECRET" --id "msg_tampered_$$" \
    --body-file "$BODY" >"$HEADERS"
FORGED='{"type":"connection.created","data":{"customer_id":"c_666"}}'
if command -v curl >/dev/null; then
    curl -sS -w '\nHTTP %{http_code}\n' -X POST -H @"$HEADERS" -H 'content-type: application/json' \
        --data-binary "$FORGED" http://127.0.0.1:8443/webhooks/supaglue
else
    exec 3<>/dev/tcp/127.0.0.1/8443
    { printf 'POST /webhooks/supaglue HTTP/1.1\r\nhost: demo\r\ncontent-length: %s\r\nconnection: close\r\n' "${#FORGED}"
      sed 's/$/\r/' "$HEADERS"; printf '\r\n%s' "$FORGED"; } >&3
    cat <&3; echo
fi
rm -f "$HEADERS"

echo
echo "== 4. the first signed delivery again: answered as a duplicate, not forwarded twice"
"$BIN" sign --scheme standard-webhooks --secret "$SECRET" --id "msg_demo_$$" \
    --body-file "$BODY" --url http://127.0.0.1:8443/webhooks/supaglue | tail -2

echo
echo "== 5. queued delivery: the app is stopped, a signed delivery is answered 202 from the spool,"
echo "      the app comes back and gets it (README \"Queued delivery\")"
kill "${pids[0]}" 2>/dev/null; wait "${pids[0]}" 2>/dev/null || true
"$BIN" sign --scheme standard-webhooks --secret "$SECRET" --id "msg_queued_$$" \
    --body-file "$BODY" --url http://127.0.0.1:8443/webhooks/supaglue-queued | tail -2
"$BIN" queue stats --config config.example.toml
echo "-- the app starts again; the worker's next attempt delivers it:"
"$APP" 127.0.0.1:8080 & pids[0]=$!
for _ in $(seq 100); do
    "$BIN" queue stats --config config.example.toml 2>/dev/null \
        | grep -A3 '"supaglue-queued"' | grep -q '"depth": 0,' && break
    sleep 0.2
done
"$BIN" queue stats --config config.example.toml

echo
echo "== metrics (http://127.0.0.1:9090/metrics)"
if command -v curl >/dev/null; then
    curl -sS http://127.0.0.1:9090/metrics | grep '^hookseal_requests_total' | grep -v ' 0$'
fi
rm -f "$BODY"
