#!/usr/bin/env python3
"""Resident memory of a real `hookseal run` with N request bodies of max_body_bytes in flight.

    cargo build --release --bin hookseal
    python3 benches/memory_inflight.py [--bin target/release/hookseal] [--bodies 64] [--size 1MiB]

Starts hookseal over TLS (a throwaway self-signed certificate) with one GitHub route whose
max_body_bytes is --size, opens --bodies connections at once and sends on each a request head
with Content-Length = size and all of the body but its last byte, so that every body is held
by hookseal at its full size while it waits for the rest. Prints VmRSS of the process idle,
with the bodies held, and its peak (VmHWM), then lets the connections go. The replay store is
measured separately (`cargo run --release --example replay_memory -- CAPACITY`); the two add up
to the sidecar's need (README "Sizing").
"""

import argparse
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def size_bytes(s):
    m = re.fullmatch(r"(\d+)(KiB|MiB)?", s)
    return int(m.group(1)) * {"KiB": 1024, "MiB": 1024 * 1024, None: 1}[m.group(2)]


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0]) / 1024  # MiB
    return fields


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "hookseal"))
    ap.add_argument("--bodies", type=int, default=64)
    ap.add_argument("--size", default="1MiB")
    args = ap.parse_args()
    size = size_bytes(args.size)

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", d / "key.pem", "-out", d / "cert.pem"], check=True, capture_output=True)
        (d / "hookseal.toml").write_text(f"""
[listen]
address = "127.0.0.1:0"
tls = {{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}
[admin]
address = "127.0.0.2:0"
[limits]
max_body_bytes = {size}
body_timeout = "120s"
[upstream]
url = "http://127.0.0.1:9"
[[route]]
name = "gh"
path = "/webhooks/github"
scheme = "github"
secrets = [{{ value = "memory-bench-secret" }}]
""")
        env = {**os.environ, "HOOKSEAL_LOG": "info", "HOOKSEAL_LOG_FORMAT": "json", "HOOKSEAL_WORKERS": "1"}
        proc = subprocess.Popen([args.bin, "run", "--config", d / "hookseal.toml"], stderr=subprocess.PIPE, text=True,
                                env=env)
        try:
            listen = None
            deadline = time.time() + 30
            while listen is None and time.time() < deadline:
                line = proc.stderr.readline()
                if not line:
                    raise SystemExit("hookseal exited before serving")
                if not line.startswith("{"):
                    print(line, end="")
                    continue
                event = json.loads(line)
                if event.get("message") == "hookseal serving":
                    listen = event["listen"]
            host, port = listen.rsplit(":", 1)
            time.sleep(0.5)
            idle = status(proc.pid)

            ctx = ssl.create_default_context(cafile=str(d / "cert.pem"))
            body = b"x" * (size - 1)
            conns = []
            started = time.time()
            for i in range(args.bodies):
                s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname="127.0.0.1")
                s.sendall(f"POST /webhooks/github HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
                          f"x-hub-signature-256: sha256={'0' * 64}\r\nx-github-delivery: mem-{i}\r\n"
                          f"content-length: {size}\r\n\r\n".encode())
                s.sendall(body)
                conns.append(s)
            time.sleep(1.0)  # let hookseal read what the sockets hold
            held = status(proc.pid)
            print(f"hookseal run, TLS, 1 worker thread, {args.bodies} bodies of {size} bytes held "
                  f"(sent in {time.time() - started:.1f} s)")
            print(f"  idle:        VmRSS {idle['VmRSS']:.1f} MiB")
            print(f"  bodies held: VmRSS {held['VmRSS']:.1f} MiB (peak VmHWM {held['VmHWM']:.1f} MiB), "
                  f"{(held['VmRSS'] - idle['VmRSS']) * 1048576 / args.bodies / size:.2f} x body size per request")
            for s in conns:
                s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
