#!/usr/bin/env python3
"""Load-and-soak driver for hookseal (run by benches/soak.sh, which starts the processes).

Standard library only (asyncio raw sockets, hmac). Sends, on 127.0.0.1 only and for a bounded
time:
  * valid webhooks at a steady rate (Standard Webhooks and Stripe over keep-alive connections,
    GitHub on a fresh connection each), every one a new delivery;
  * invalid webhooks at a steady rate, cycling through forged signatures, stale timestamps,
    missing and malformed headers, spoofed x-hookseal-* headers, oversized bodies, replays of
    accepted deliveries and unknown paths, each with the status and reason it must get;
  * slow clients, a fixed number at all times: half trickle their request head (slowloris),
    half trickle their body; each must be cut off by hookseal's header/body timeout;
and samples the hookseal process's RSS and open file descriptors every second.

At the end it checks: zero errors on valid traffic, every invalid request answered as
expected (and never forwarded), every slow client cut off in time, RSS and fds flat after the
warm-up, and, once the load stops, the connections gauge back to 0 and the fds back to the
idle baseline. Prints a summary and exits 1 on any failed check.
"""
import argparse
import asyncio
import base64
import csv
import hashlib
import hmac
import json
import os
import statistics
import sys
import time

STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GH_SECRET = b"soak-github-secret"
STRIPE_SECRET = b"whsec_soak_stripe"


def now():
    return int(time.time())


def std_headers(msg_id, ts, body, secret=STD_SECRET):
    key = base64.b64decode(secret[len("whsec_"):])
    sig = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return [("webhook-id", msg_id), ("webhook-timestamp", str(ts)),
            ("webhook-signature", "v1," + base64.b64encode(sig).decode())]


def gh_headers(delivery, body):
    sig = hmac.new(GH_SECRET, body, hashlib.sha256).hexdigest()
    return [("X-Hub-Signature-256", "sha256=" + sig), ("X-GitHub-Delivery", delivery)]


def stripe_headers(ts, body):
    sig = hmac.new(STRIPE_SECRET, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return [("Stripe-Signature", f"t={ts},v1={sig}")]


def raw_request(path, headers, body, close=False):
    lines = [f"POST {path} HTTP/1.1", "host: soak.local", "content-type: application/json",
             f"content-length: {len(body)}"]
    if close:
        lines.append("connection: close")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = b""
    return Response(status, headers, body)


class Stats:
    def __init__(self):
        self.valid_sent = self.valid_ok = 0
        self.valid_errors = []          # (kind, detail), must stay empty
        self.invalid_sent = self.invalid_ok = 0
        self.invalid_mismatch = []      # (kind, detail), must stay empty
        self.slow_started = self.slow_cut = 0
        self.slow_not_cut = []          # (kind, seconds), must stay empty
        self.slow_cut_after = []
        self.inflight = 0
        self.max_inflight = 0
        self.skipped_ticks = 0
        self.accepted_std = []          # (id, ts, body) for replays


class Pool:
    """Keep-alive connections for valid traffic; a broken connection is an error, not retried."""

    def __init__(self, host, port, size):
        self.host, self.port, self.size = host, port, size
        self.free = asyncio.Queue()

    async def start(self):
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def send(self, data):
        reader, writer = await self.free.get()
        try:
            writer.write(data)
            await writer.drain()
            resp = await asyncio.wait_for(read_response(reader), 30)
        except BaseException:
            writer.close()
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        if resp.headers.get("connection", "").lower() == "close":
            writer.close()
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
        else:
            self.free.put_nowait((reader, writer))
        return resp


async def one_shot(host, port, data):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_response(reader), 30)
    finally:
        writer.close()


def forwarded(resp):
    j = resp.json()
    return isinstance(j, dict) and j.get("hookseal", {}).get("x-hookseal-verified") == "true"


class Driver:
    def __init__(self, args):
        self.a = args
        self.s = Stats()
        self.seq = 0
        self.pool = Pool(args.host, args.port, args.keepalive)
        # Invalid traffic has its own connections: a rejection may legitimately end one.
        self.bad_pool = Pool(args.host, args.port, max(2, args.keepalive // 2))
        self.tasks = set()

    def spawn(self, coro):
        if self.s.inflight >= self.a.max_inflight:
            self.s.skipped_ticks += 1
            coro.close()
            return
        t = asyncio.ensure_future(self.track(coro))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def track(self, coro):
        self.s.inflight += 1
        self.s.max_inflight = max(self.s.max_inflight, self.s.inflight)
        try:
            await coro
        finally:
            self.s.inflight -= 1

    # --- valid -------------------------------------------------------------------------

    async def valid(self):
        self.seq += 1
        n = self.seq
        kind = ("standard", "stripe", "github")[n % 3]
        body = json.dumps({"type": "soak.event", "n": n, "pad": "x" * (n % 512)}).encode()
        ts = now()
        self.s.valid_sent += 1
        try:
            if kind == "standard":
                msg_id = f"msg_soak_{os.getpid()}_{n}"
                resp = await self.pool.send(raw_request("/hooks/std", std_headers(msg_id, ts, body), body))
                if resp.status == 200 and forwarded(resp):
                    self.s.accepted_std.append((msg_id, ts, body))
                    del self.s.accepted_std[:-200]
            elif kind == "stripe":
                resp = await self.pool.send(raw_request("/hooks/stripe", stripe_headers(ts, body), body))
            else:
                data = raw_request("/hooks/github", gh_headers(f"gh-{n}", body), body, close=True)
                resp = await one_shot(self.a.host, self.a.port, data)
        except Exception as e:  # noqa: BLE001 - every failure on valid traffic is reported
            self.s.valid_errors.append((kind, repr(e)))
            return
        if resp.status == 200 and forwarded(resp):
            self.s.valid_ok += 1
        else:
            self.s.valid_errors.append((kind, f"{resp.status} {resp.body[:120]!r}"))

    # --- invalid -----------------------------------------------------------------------

    async def invalid(self):
        self.seq += 1
        n = self.seq
        ts = now()
        body = json.dumps({"type": "forged", "n": n}).encode()
        kinds = ["bad_signature", "stale", "missing", "malformed", "spoofed", "too_large",
                 "duplicate", "no_route", "wrong_secret"]
        kind = kinds[n % len(kinds)]
        want_status, want_reason = {
            "bad_signature": (401, "bad_signature"), "stale": (401, "stale_timestamp"),
            "missing": (400, "missing_signature"), "malformed": (400, "malformed_signature"),
            "spoofed": (400, "missing_signature"), "too_large": (413, "body_too_large"),
            "duplicate": (200, None), "no_route": (404, "no_route"),
            "wrong_secret": (401, "bad_signature"),
        }[kind]
        path = "/hooks/std"
        if kind == "bad_signature":
            h = std_headers(f"msg_forged_{n}", ts, body)
            h[2] = ("webhook-signature", "v1," + base64.b64encode(os.urandom(32)).decode())
        elif kind == "stale":
            h = std_headers(f"msg_stale_{n}", ts - 3600, body)
        elif kind == "missing":
            h = [("webhook-id", f"msg_missing_{n}")]
        elif kind == "malformed":
            h = std_headers(f"msg_malformed_{n}", ts, body)
            h[1] = ("webhook-timestamp", "soon")
        elif kind == "spoofed":
            h = [("x-hookseal-verified", "true"), ("x-hookseal-route", "std")]
        elif kind == "too_large":
            h = std_headers(f"msg_big_{n}", ts, body)
        elif kind == "duplicate":
            if not self.s.accepted_std:
                return
            msg_id, ots, obody = self.s.accepted_std[n % len(self.s.accepted_std)]
            h, body = std_headers(msg_id, ots, obody), obody
        elif kind == "no_route":
            h, path = [], "/nope"
        else:
            h = stripe_headers(ts, body)
            h[0] = ("Stripe-Signature", h[0][1][:-4] + "0000")
            path = "/hooks/stripe"
        self.s.invalid_sent += 1
        try:
            if kind == "too_large":
                # Declare 2 MiB and send only the head: hookseal answers from the header alone.
                data = raw_request(path, h, b"", close=True).replace(
                    b"content-length: 0", b"content-length: 2097152")
                resp = await one_shot(self.a.host, self.a.port, data)
            else:
                resp = await self.bad_pool.send(raw_request(path, h, body))
        except Exception as e:  # noqa: BLE001
            self.s.invalid_mismatch.append((kind, repr(e)))
            return
        j = resp.json() or {}
        ok = resp.status == want_status and not forwarded(resp)
        if want_reason is not None:
            ok = ok and j.get("error") == want_reason
        if kind == "duplicate":
            ok = ok and resp.headers.get("x-hookseal-duplicate") == "true"
        if ok:
            self.s.invalid_ok += 1
        else:
            self.s.invalid_mismatch.append((kind, f"{resp.status} {resp.body[:120]!r}"))

    # --- slow clients ------------------------------------------------------------------

    async def slow_client(self, idx, deadline):
        kind = "slow_head" if idx % 2 == 0 else "slow_body"
        limit = self.a.header_timeout if kind == "slow_head" else self.a.body_timeout
        while time.monotonic() < deadline:
            self.s.slow_started += 1
            ts = now()
            body = b'{"slow":true,"pad":"' + b"y" * 900 + b'"}'
            data = raw_request("/hooks/std", std_headers(f"msg_slow_{idx}_{self.s.slow_started}", ts, body), body)
            split = data.index(b"\r\n\r\n") + 4
            head, rest = (data[:-1], data[-1:]) if kind == "slow_head" else (data[:split], data[split:])
            reader, writer = await asyncio.open_connection(self.a.host, self.a.port)
            start = time.monotonic()
            cut = False
            try:
                if kind == "slow_head":
                    # The request line at once, then the head one byte a second.
                    first = head.index(b"\r\n") + 2
                    writer.write(head[:first])
                    trickle = head[first:]
                else:
                    writer.write(head)
                    trickle = rest
                await writer.drain()
                for b in trickle:
                    if time.monotonic() - start > limit + self.a.cut_grace:
                        break
                    try:
                        await asyncio.wait_for(reader.read(4096), 1.0)
                        cut = True   # answered (408) or closed (EOF): cut off
                        break
                    except asyncio.TimeoutError:
                        pass
                    writer.write(bytes([b]))
                    await writer.drain()
            except (ConnectionError, OSError):
                cut = True
            took = time.monotonic() - start
            if cut and took <= limit + self.a.cut_grace:
                self.s.slow_cut += 1
                self.s.slow_cut_after.append(took)
                del self.s.slow_cut_after[:-1000]
            else:
                self.s.slow_not_cut.append((kind, round(took, 1)))
            writer.close()

    # --- main loop ---------------------------------------------------------------------

    async def paced(self, rate, make, deadline):
        interval = 1.0 / rate
        loop = asyncio.get_running_loop()
        t = loop.time()
        while time.monotonic() < deadline:
            self.spawn(make())
            t += interval
            await asyncio.sleep(max(0.0, t - loop.time()))


def read_proc(pid):
    rss = 0
    threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


async def metric(host, port, name):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /metrics HTTP/1.1\r\nhost: soak\r\nconnection: close\r\n\r\n".encode())
    await writer.drain()
    resp = await read_response(reader)
    writer.close()
    total = 0.0
    for line in resp.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--valid-rate", type=float, default=40)
    p.add_argument("--invalid-rate", type=float, default=20)
    p.add_argument("--slow", type=int, default=16)
    p.add_argument("--keepalive", type=int, default=8)
    p.add_argument("--max-inflight", type=int, default=400)
    p.add_argument("--header-timeout", type=float, required=True)
    p.add_argument("--body-timeout", type=float, required=True)
    p.add_argument("--cut-grace", type=float, default=5)
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument("--csv", required=True)
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("soak traffic goes to loopback only")
    warmup = a.warmup if a.warmup is not None else min(120.0, a.seconds * 0.3)

    d = Driver(a)
    await asyncio.sleep(1)
    idle_rss, idle_fds, idle_threads = read_proc(a.pid)
    await d.pool.start()
    await d.bad_pool.start()
    start = time.monotonic()
    deadline = start + a.seconds
    samples = []

    async def sampler():
        while time.monotonic() < deadline:
            rss, fds, threads = read_proc(a.pid)
            samples.append((time.monotonic() - start, rss, fds, threads, d.s.valid_ok,
                            len(d.s.valid_errors), d.s.invalid_ok, len(d.s.invalid_mismatch),
                            d.s.slow_cut, len(d.s.slow_not_cut), d.s.inflight))
            await asyncio.sleep(1)

    async def reporter():
        while time.monotonic() < deadline:
            await asyncio.sleep(60)
            if samples:
                s = samples[-1]
                print(f"  t={s[0]:.0f}s rss={s[1] / 1024:.1f}MiB fds={s[2]} valid_ok={s[4]} "
                      f"valid_err={s[5]} invalid_ok={s[6]} mismatch={s[7]} slow_cut={s[8]} "
                      f"slow_not_cut={s[9]} load={os.getloadavg()[0]:.1f}", flush=True)

    loads = []

    async def load_sampler():
        while time.monotonic() < deadline:
            loads.append(os.getloadavg()[0])
            await asyncio.sleep(5)

    jobs = [sampler(), reporter(), load_sampler(),
            d.paced(a.valid_rate, d.valid, deadline),
            d.paced(a.invalid_rate, d.invalid, deadline)]
    jobs += [d.slow_client(i, deadline) for i in range(a.slow)]
    await asyncio.gather(*jobs)
    if d.tasks:
        await asyncio.wait(d.tasks, timeout=60)
    elapsed = time.monotonic() - start

    # Close the keep-alive pool, then wait for hookseal to come back to idle.
    for pool in (d.pool, d.bad_pool):
        while not pool.free.empty():
            _, w = pool.free.get_nowait()
            w.close()
    after = None
    for i in range(90):
        await asyncio.sleep(1)
        conns = await metric(a.host, a.admin_port, "hookseal_connections")
        rss, fds, threads = read_proc(a.pid)
        after = (i + 1, conns, rss, fds, threads)
        if conns == 0 and fds <= idle_fds + 1:
            break

    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "rss_kib", "fds", "threads", "valid_ok", "valid_errors", "invalid_ok",
                    "invalid_mismatch", "slow_cut", "slow_not_cut", "driver_inflight"])
        for s in samples:
            w.writerow([f"{s[0]:.1f}"] + list(s[1:]))

    post = [s for s in samples if s[0] >= warmup]
    failures = []
    if not post or len(post) < 20:
        failures.append(f"too few samples after the {warmup:.0f}s warm-up: {len(post)}")
        post = samples
    window = max(10, min(60, len(post) // 4))
    first, last = post[:window], post[-window:]
    rss_first = statistics.median(s[1] for s in first)
    rss_last = statistics.median(s[1] for s in last)
    rss_max = max(s[1] for s in post)
    fds_first = statistics.median(s[2] for s in first)
    fds_last = statistics.median(s[2] for s in last)
    fds_max = max(s[2] for s in post)
    conc = a.keepalive + max(2, a.keepalive // 2) + a.slow + a.max_inflight
    s = d.s
    if s.valid_errors:
        failures.append(f"{len(s.valid_errors)} errors on valid traffic, e.g. {s.valid_errors[:3]}")
    if s.invalid_mismatch:
        failures.append(f"{len(s.invalid_mismatch)} invalid requests answered wrongly, e.g. {s.invalid_mismatch[:3]}")
    if s.slow_not_cut:
        failures.append(f"{len(s.slow_not_cut)} slow clients not cut off in time, e.g. {s.slow_not_cut[:3]}")
    if rss_last > rss_first * 1.10 + 4096:
        failures.append(f"RSS grew after warm-up: median {rss_first / 1024:.1f} -> {rss_last / 1024:.1f} MiB")
    if fds_last > fds_first + 16:
        failures.append(f"fds grew after warm-up: median {fds_first} -> {fds_last}")
    if fds_max > idle_fds + conc + 16:
        failures.append(f"fds peaked at {fds_max} (idle {idle_fds}, most client connections {conc})")
    if after is None or after[1] != 0 or after[3] > idle_fds + 1:
        failures.append(f"not back to idle after the load: {after} (idle fds {idle_fds})")
    if s.valid_ok == 0:
        failures.append("no valid request was forwarded")

    valid_rate = s.valid_sent / elapsed if elapsed else 0
    summary = {
        "seconds": round(elapsed),
        "warmup_s": round(warmup),
        "valid_sent": s.valid_sent, "valid_ok": s.valid_ok, "valid_errors": len(s.valid_errors),
        "valid_rate_per_s": round(valid_rate, 1),
        "invalid_sent": s.invalid_sent, "invalid_as_expected": s.invalid_ok,
        "invalid_mismatch": len(s.invalid_mismatch),
        "slow_clients": a.slow, "slow_connections": s.slow_started, "slow_cut": s.slow_cut,
        "slow_not_cut": len(s.slow_not_cut),
        "slow_cut_after_s_median": round(statistics.median(s.slow_cut_after), 1) if s.slow_cut_after else None,
        "skipped_ticks": s.skipped_ticks, "driver_max_inflight": s.max_inflight,
        "idle_before": {"rss_mib": round(idle_rss / 1024, 1), "fds": idle_fds, "threads": idle_threads},
        "rss_mib_after_warmup": {"first_median": round(rss_first / 1024, 1), "last_median": round(rss_last / 1024, 1),
                                 "max": round(rss_max / 1024, 1)},
        "fds_after_warmup": {"first_median": fds_first, "last_median": fds_last, "max": fds_max},
        "idle_after": None if after is None else {"after_s": after[0], "connections_gauge": after[1],
                                                  "rss_mib": round(after[2] / 1024, 1), "fds": after[3],
                                                  "threads": after[4]},
        "load_avg_1m": {"min": round(min(loads), 1), "median": round(statistics.median(loads), 1),
                        "max": round(max(loads), 1)} if loads else None,
        "cpus": os.cpu_count(),
        "csv": a.csv,
    }
    print(json.dumps(summary, indent=1))
    if failures:
        print("SOAK FAILED:", file=sys.stderr)
        for f in failures:
            print("  - " + f, file=sys.stderr)
        sys.exit(1)
    print("SOAK PASSED: zero errors on valid traffic; RSS and fds flat after warm-up; back to idle")


if __name__ == "__main__":
    asyncio.run(main())
