#!/usr/bin/env python3
"""Statistics for benches/load.sh.

    load_report.py run  OUT/runs/NAME     # one run: check it, print a one-line summary
    load_report.py report OUT             # every run: Markdown tables + the issue's targets

A run is `NAME.json` (oha --output-format json) and `NAME.meta.json` (written by load.sh: CPU
ticks, VmHWM, load average). A run fails (exit 1) when any answer was not 200, oha reported an
error, or oha did not exit cleanly.
"""

import glob
import json
import os
import statistics
import sys

SIZE_LABEL = {1024: "1 KiB", 65536: "64 KiB", 1048576: "1 MiB"}
CRITERION_LABEL = {1024: "1KiB", 65536: "64KiB", 1048576: "1MiB"}
LOAD_LABEL = {"c1": "c=1", "c16": "c=16", "c64": "c=64", "q200": "200 req/s", "q2000": "2000 req/s"}
ALL_TARGETS = ["direct", "hookseal", "hookseal-tls", "floor", "nginx", "nginx-tls", "haproxy",
               "nginx-lua", "hookgate", "hookgate-keepalive"]
# The proxies that verify the signature as hookseal does (../shared/peers).
VERIFYING = ["nginx-lua", "hookgate", "hookgate-keepalive"]
# The orientation figures, used when benches/verify.rs has not been run.
BARE_HMAC_US_FALLBACK = {1024: 0.8, 65536: 37.0, 1048576: 585.0}


def load_run(base):
    with open(base + ".meta.json") as f:
        meta = json.load(f)
    try:
        with open(base + ".json") as f:
            oha = json.load(f)
    except (OSError, ValueError):
        oha = None
    return meta, oha


def check(meta, oha, clk_tck):
    """(ok, problems, figures) for one run."""
    problems = []
    if oha is None:
        return False, ["no oha output"], None
    if meta.get("oha_rc", 0) != 0:
        problems.append(f"oha exited {meta['oha_rc']}")
    codes = {str(k): v for k, v in (oha.get("statusCodeDistribution") or {}).items()}
    errors = oha.get("errorDistribution") or {}
    ok_count = codes.get("200", 0)
    other = {k: v for k, v in codes.items() if k != "200" and v}
    if other:
        problems.append(f"non-200 answers {other}")
    if errors:
        problems.append(f"errors {errors}")
    if ok_count == 0:
        problems.append("no request completed")
    s = oha.get("summary") or {}
    lat = oha.get("latencyPercentiles") or {}
    n = max(ok_count, 1)
    fig = {
        "requests": ok_count,
        "rps": s.get("requestsPerSec") or 0.0,
        "p50_us": (lat.get("p50") or 0.0) * 1e6,
        "p99_us": (lat.get("p99") or 0.0) * 1e6,
        "cpu_us": (meta["cpu_ns"] / 1e3 if "cpu_ns" in meta
                   else meta["cpu_ticks"] * 1e6 / clk_tck) / n,
        "up_cpu_us": (meta["upstream_cpu_ns"] / 1e3 if "upstream_cpu_ns" in meta
                      else meta["upstream_cpu_ticks"] * 1e6 / clk_tck) / n,
        "hwm_mib": meta["hwm_kib"] / 1024,
        "load": (meta["loadavg_before"] + meta["loadavg_after"]) / 2,
    }
    return not problems, problems, fig


def clk_tck_of(out_dir):
    try:
        with open(os.path.join(out_dir, "meta.json")) as f:
            return json.load(f).get("clk_tck", 100)
    except (OSError, ValueError):
        return 100


def cmd_run(base):
    out_dir = os.path.dirname(os.path.dirname(base))
    meta, oha = load_run(base)
    ok, problems, fig = check(meta, oha, clk_tck_of(out_dir))
    name = os.path.basename(base)
    if fig is None:
        print(f"{name}: FAILED {'; '.join(problems)}")
        return 1
    line = (
        f"{name}: {fig['rps']:.0f} req/s p50 {fig['p50_us']:.0f} µs p99 {fig['p99_us']:.0f} µs "
        f"cpu {fig['cpu_us']:.1f} µs/req rss {fig['hwm_mib']:.1f} MiB load {fig['load']:.1f}"
    )
    if not ok:
        print(line + " FAILED: " + "; ".join(problems))
        return 1
    print(line)
    return 0


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def bare_hmac_us(root):
    out, source = {}, "benches/verify.rs (criterion, bare/hmac-sha256 mean)"
    for size, label in CRITERION_LABEL.items():
        path = os.path.join(
            root, "target", "criterion", f"verify_{label}", "bare", "hmac-sha256", "new",
            "estimates.json",
        )
        try:
            with open(path) as f:
                out[size] = json.load(f)["mean"]["point_estimate"] / 1000.0
        except (OSError, ValueError, KeyError):
            out[size] = BARE_HMAC_US_FALLBACK[size]
            source = "the issue's orientation figures (benches/verify.rs not run yet)"
    return out, source


def fmt(x, spec="{:.0f}", none="–"):
    return none if x is None else spec.format(x)


def cmd_report(out_dir):
    with open(os.path.join(out_dir, "meta.json")) as f:
        meta = json.load(f)
    end = {}
    if os.path.exists(os.path.join(out_dir, "end.json")):
        with open(os.path.join(out_dir, "end.json")) as f:
            end = json.load(f)
    idle = {}
    if os.path.exists(os.path.join(out_dir, "idle_rss_kib.json")):
        with open(os.path.join(out_dir, "idle_rss_kib.json")) as f:
            idle = json.load(f)
    clk = meta.get("clk_tck", 100)
    targets = meta["targets"].split()
    all_targets = ALL_TARGETS

    # runs[(size, load, target)][round] = figures
    runs, failed, loads_seen = {}, [], []
    for m in sorted(glob.glob(os.path.join(out_dir, "runs", "r*.meta.json"))):
        base = m[: -len(".meta.json")]
        rmeta, oha = load_run(base)
        ok, problems, fig = check(rmeta, oha, clk)
        if not ok:
            failed.append((os.path.basename(base), problems))
        if fig is None:
            continue
        runs.setdefault((rmeta["size"], rmeta["load"], rmeta["target"]), {})[rmeta["round"]] = fig
        loads_seen.append(fig["load"])
    sizes = sorted({k[0] for k in runs})
    loads = [l for l in LOAD_LABEL if any(k[1] == l for k in runs)]

    def fig(size, load, target, rnd):
        return runs.get((size, load, target), {}).get(rnd)

    def rounds(size, load):
        return sorted(runs.get((size, load, "direct"), {}))

    def rel(size, load, target, key):
        """Median over rounds of (target - direct) for key, or target/direct for rps."""
        out = []
        for r in rounds(size, load):
            d, t = fig(size, load, "direct", r), fig(size, load, target, r)
            if d and t:
                out.append(t["rps"] / d["rps"] if key == "rps" else t[key] - d[key])
        return med(out)

    def m(size, load, target, key):
        return med([f[key] for f in runs.get((size, load, target), {}).values()])

    p = print
    p("# hookseal load benchmark")
    p()
    args = meta.get("args", "--quick" if meta["quick"] else "")
    p(f"- command: `bash benches/load.sh{' ' + args if args else ''}` "
      f"({meta['rounds']} round(s), {meta['duration_s']} s per run, {meta['warmup_s']} s warm-up "
      f"per run, targets rotated per round and cell"
      + ("; open-loop cells paired: every target at once, each with its own oha, the "
         "upstream's CPU split evenly between them" if meta.get("paired") else "") + ")")
    p(f"- machine: {meta['nproc']} cores, {meta['cpu']}; load generator, proxies and upstream "
      f"share them")
    p(f"- load average: {meta['loadavg_start']} at start, {end.get('loadavg_end', '?')} at end; "
      f"1-min average during the measured runs: median {fmt(med(loads_seen), '{:.1f}')}, "
      f"max {fmt(max(loads_seen) if loads_seen else None, '{:.1f}')}")
    p(f"- {meta['oha']}, nginx {meta['nginx']}, HAProxy {meta['haproxy']}, hookseal "
      f"{meta['hookseal_commit']}; started {meta['started']}, finished {end.get('finished', '?')}")
    p("- every request: POST /hook with a valid `X-Hub-Signature-256` (GitHub's HMAC-SHA256 hex); "
      "hookseal: one `github` route, dedupe off (oha repeats one request; dedupe cost: "
      f"benches/pipeline.rs); threads: {meta.get('hookseal_threads', 'one per CPU')}")
    p("- verifying peers (../shared/peers): nginx-lua, hookgate, hookgate-keepalive — "
      + ("measured" if meta.get("peers") == "ok" else "**pending** (not built on this machine)"))
    tls_note = "measured" if meta["tls"] == "ok" else "**pending** (this build cannot serve TLS yet)"
    p(f"- hookseal-tls: {tls_note}")
    p(f"- hookseal counted {end.get('hookseal_rejected', '?')} rejected requests; "
      f"runs with a non-200 answer or an error: {len(failed)}")
    for name, problems in failed:
        p(f"  - {name}: {'; '.join(problems)}")
    p()
    p("Per cell, medians over rounds. ratio = req/s ÷ direct's req/s in the same round; "
      "+p50/+p99 = latency minus direct's in the same round; CPU = the process's own "
      "run time (scheduler ns of its threads) ÷ requests (nginx: master + workers); "
      "RSS = peak (VmHWM) during the run.")

    for size in sizes:
        p()
        p(f"## {SIZE_LABEL.get(size, size)} bodies")
        p()
        p("| load | target | req/s | ratio | p50 µs | p99 µs | +p50 µs | +p99 µs | CPU µs/req "
          "| upstream CPU µs/req | peak RSS MiB |")
        p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for load in loads:
            for t in all_targets:
                if t not in targets:
                    if t == "hookseal-tls" or t in VERIFYING:
                        p(f"| {LOAD_LABEL[load]} | {t} | pending | | | | | | | | |")
                    continue
                if (size, load, t) not in runs:
                    continue
                direct = t == "direct"
                p(
                    f"| {LOAD_LABEL[load]} | {t} | {fmt(m(size, load, t, 'rps'))} "
                    f"| {'1' if direct else fmt(rel(size, load, t, 'rps'), '{:.2f}')} "
                    f"| {fmt(m(size, load, t, 'p50_us'))} | {fmt(m(size, load, t, 'p99_us'))} "
                    f"| {'' if direct else fmt(rel(size, load, t, 'p50_us'), '{:+.0f}')} "
                    f"| {'' if direct else fmt(rel(size, load, t, 'p99_us'), '{:+.0f}')} "
                    f"| {'' if direct else fmt(m(size, load, t, 'cpu_us'), '{:.1f}')} "
                    f"| {fmt(m(size, load, t, 'up_cpu_us'), '{:.1f}')} "
                    f"| {fmt(m(size, load, t, 'hwm_mib'), '{:.1f}')} |"
                )

    # ------------------------------------------------------------------ the goals
    hmac, hmac_source = bare_hmac_us(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p()
    p("## Goals (performance issue: ahead of every verifying peer, the low-rate path first)")
    p()
    p("Bare HMAC-SHA256 of the body: "
      + ", ".join(f"{SIZE_LABEL[s]} {hmac[s]:.1f} µs" for s in sorted(hmac))
      + f" (from {hmac_source}). Best verifying peer = the lowest of "
      + ", ".join(VERIFYING) + " in that cell (medians).")
    p()
    p("| goal | cell | hookseal | bound | result |")
    p("|---|---|---:|---:|---|")

    def row(name, cell, value, bound, ok):
        res = "–" if ok is None else ("met" if ok else "**missed**")
        p(f"| {name} | {cell} | {value} | {bound} | {res} |")

    def best_peer(size, load, key, relative):
        vals = []
        for t in VERIFYING:
            v = rel(size, load, t, key) if relative else m(size, load, t, key)
            if v is not None:
                vals.append((v, t))
        return min(vals) if vals else None

    tally = {}
    for size in sizes:
        for load in loads:
            cell = f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}"
            h = m(size, load, "hookseal", "cpu_us")
            b = best_peer(size, load, "cpu_us", False)
            if h is not None and b is not None:
                ok = h <= b[0]
                tally.setdefault("cpu", []).append(ok)
                row("CPU/request ≤ best verifying peer", cell, f"{h:.1f} µs",
                    f"{b[0]:.1f} µs ({b[1]})", ok)
            for key in ("p50_us", "p99_us"):
                h = rel(size, load, "hookseal", key)
                b = best_peer(size, load, key, True)
                if h is not None and b is not None:
                    ok = h <= b[0]
                    tally.setdefault(key, []).append(ok)
                    row(f"added {key[:3]} ≤ best verifying peer", cell, f"{h:+.0f} µs",
                        f"{b[0]:+.0f} µs ({b[1]})", ok)
    for size in sizes:
        if size != 1024:
            continue
        for load, extra in (("c16", 3.0), ("c1", 6.0), ("q2000", 6.0)):
            h, fl = m(size, load, "hookseal", "cpu_us"), m(size, load, "floor", "cpu_us")
            if h is None or fl is None:
                continue
            bound = fl + hmac[size] + extra
            row("CPU/request ≤ floor + HMAC + slack", f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}",
                f"{h:.1f} µs", f"{bound:.1f} µs (floor {fl:.1f} + {hmac[size]:.1f} + {extra:.0f})",
                h <= bound)
    for size in sizes:
        if size not in (1024, 65536):
            continue
        for load in loads:
            cell = f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}"
            if "hookseal-tls" not in targets or "nginx-tls" not in targets:
                row("TLS extra CPU ≤ nginx's TLS extra", cell, "pending", "", None)
                continue
            a, b = m(size, load, "hookseal-tls", "cpu_us"), m(size, load, "hookseal", "cpu_us")
            na, nb = m(size, load, "nginx-tls", "cpu_us"), m(size, load, "nginx", "cpu_us")
            if None not in (a, b, na, nb):
                row("TLS extra CPU ≤ nginx's TLS extra", cell, f"{a - b:+.1f} µs",
                    f"{na - nb:+.1f} µs", a - b <= na - nb)
    v = m(1048576, "c64", "hookseal", "hwm_mib")
    if v is not None:
        row("peak RSS, 64 concurrent 1 MiB bodies", "1 MiB c=64", f"{v:.1f} MiB",
            f"{16 + 1.1 * 64:.1f} MiB", v <= 16 + 1.1 * 64)
    if "hookseal" in idle:
        v = idle["hookseal"] / 1024
        row("idle RSS", "before any load", f"{v:.1f} MiB", "8 MiB", v <= 8)
    if tally:
        p()
        p("Cells met: " + ", ".join(
            f"{ {'cpu': 'CPU', 'p50_us': '+p50', 'p99_us': '+p99'}[k]} {sum(v)}/{len(v)}"
            for k, v in tally.items()))
    if idle:
        p()
        p("Idle RSS before any load: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in idle.items()))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        return cmd_run(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        return cmd_report(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
