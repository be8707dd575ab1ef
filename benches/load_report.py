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
LOAD_LABEL = {"c1": "c=1", "c16": "c=16", "c64": "c=64", "q2000": "2000 req/s"}
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
        "cpu_us": meta["cpu_ticks"] * 1e6 / clk_tck / n,
        "up_cpu_us": meta["upstream_cpu_ticks"] * 1e6 / clk_tck / n,
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
    all_targets = ["direct", "hookseal", "hookseal-tls", "nginx", "haproxy"]

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
      f"per run, targets rotated per round and cell)")
    p(f"- machine: {meta['nproc']} cores, {meta['cpu']}; load generator, proxies and upstream "
      f"share them")
    p(f"- load average: {meta['loadavg_start']} at start, {end.get('loadavg_end', '?')} at end; "
      f"1-min average during the measured runs: median {fmt(med(loads_seen), '{:.1f}')}, "
      f"max {fmt(max(loads_seen) if loads_seen else None, '{:.1f}')}")
    p(f"- {meta['oha']}, nginx {meta['nginx']}, HAProxy {meta['haproxy']}, hookseal "
      f"{meta['hookseal_commit']}; started {meta['started']}, finished {end.get('finished', '?')}")
    p("- hookseal: one Standard Webhooks route, every request validly signed; dedupe off, one "
      "request pre-signed before each run and repeated by oha (dedupe cost: benches/pipeline.rs); "
      f"threads: {meta.get('hookseal_threads', 'one per CPU')}")
    tls_note = "measured" if meta["tls"] == "ok" else "**pending** (this build cannot serve TLS yet)"
    p(f"- hookseal-tls: {tls_note}")
    p(f"- hookseal counted {end.get('hookseal_rejected', '?')} rejected requests; "
      f"runs with a non-200 answer or an error: {len(failed)}")
    for name, problems in failed:
        p(f"  - {name}: {'; '.join(problems)}")
    p()
    p("Per cell, medians over rounds. ratio = req/s ÷ direct's req/s in the same round; "
      "+p50/+p99 = latency minus direct's in the same round; CPU = the process's own "
      "utime+stime ÷ requests (nginx: master + workers); RSS = peak (VmHWM) during the run.")

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
                    if t == "hookseal-tls":
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

    # ------------------------------------------------------------------ the targets
    hmac, hmac_source = bare_hmac_us(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p()
    p("## Targets (issue 9)")
    p()
    p(f"Bare HMAC-SHA256 of the body: "
      + ", ".join(f"{SIZE_LABEL[s]} {hmac[s]:.1f} µs" for s in sorted(hmac))
      + f" (from {hmac_source}).")
    p()
    p("| target | cell | hookseal | bound | result |")
    p("|---|---|---:|---:|---|")

    def row(name, cell, value, bound, ok):
        res = "–" if ok is None else ("met" if ok else "**missed**")
        p(f"| {name} | {cell} | {value} | {bound} | {res} |")

    factors = {1024: (1.0, False), 65536: (1.2, True), 1048576: (1.3, True)}
    for size in sizes:
        f, add = factors.get(size, (1.0, False))
        for load in loads:
            h, n = m(size, load, "hookseal", "cpu_us"), m(size, load, "nginx", "cpu_us")
            if h is None or n is None:
                continue
            bound = f * n + (hmac[size] if add else 0.0)
            row("CPU/request", f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}", f"{h:.1f} µs",
                f"{bound:.1f} µs" + (f" ({f}×nginx + HMAC)" if add else " (nginx)"), h <= bound)
    # throughput ratio >= the better of nginx and haproxy, every round and cell
    met = total = 0
    worst = None
    for (size, load, t), by_round in runs.items():
        if t != "hookseal":
            continue
        for r, hf in by_round.items():
            d = fig(size, load, "direct", r)
            others = [fig(size, load, o, r) for o in ("nginx", "haproxy")]
            others = [o for o in others if o]
            if not d or not others:
                continue
            total += 1
            best = max(o["rps"] for o in others) / d["rps"]
            mine = hf["rps"] / d["rps"]
            if mine >= best:
                met += 1
            gap = mine - best
            if worst is None or gap < worst[0]:
                worst = (gap, size, load, r, mine, best)
    if total:
        detail = ""
        if worst:
            detail = (f"; worst: {SIZE_LABEL[worst[1]]} {LOAD_LABEL[worst[2]]} round {worst[3]}: "
                      f"{worst[4]:.2f} vs {worst[5]:.2f}")
        row("throughput ratio ≥ best of nginx/haproxy", "every round × cell",
            f"{met}/{total} cells", "all", met == total)
        if detail:
            p(f"| | {detail.lstrip('; ')} | | | |")
    c1_bounds = {1024: 70, 65536: 150, 1048576: 900}
    for size in sizes:
        v = rel(size, "c1", "hookseal", "p50_us")
        if v is not None:
            row("added p50 at c=1", SIZE_LABEL[size], f"{v:+.0f} µs", f"{c1_bounds[size]} µs",
                v <= c1_bounds[size])
    for size in sizes:
        for key in ("p50_us", "p99_us"):
            h, n = rel(size, "q2000", "hookseal", key), rel(size, "q2000", "nginx", key)
            if h is not None and n is not None:
                row(f"added {key[:3]} at 2000 req/s ≤ nginx", SIZE_LABEL[size], f"{h:+.0f} µs",
                    f"{n:+.0f} µs", h <= n)
    tls_bounds = {1024: 10, 65536: 40}
    for size in sizes:
        if size not in tls_bounds:
            continue
        for load in loads:
            if "hookseal-tls" not in targets:
                row("TLS adds CPU/request", f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}", "pending",
                    f"{tls_bounds[size]} µs", None)
                continue
            a, b = m(size, load, "hookseal-tls", "cpu_us"), m(size, load, "hookseal", "cpu_us")
            if a is not None and b is not None:
                row("TLS adds CPU/request", f"{SIZE_LABEL[size]} {LOAD_LABEL[load]}",
                    f"{a - b:+.1f} µs", f"{tls_bounds[size]} µs", a - b <= tls_bounds[size])
    v = m(1048576, "c64", "hookseal", "hwm_mib")
    if v is not None:
        row("peak RSS, 64 concurrent 1 MiB bodies", "1 MiB c=64", f"{v:.1f} MiB",
            f"{16 + 1.1 * 64:.1f} MiB", v <= 16 + 1.1 * 64)
    if "hookseal" in idle:
        v = idle["hookseal"] / 1024
        row("idle RSS", "before any load", f"{v:.1f} MiB", "10 MiB", v <= 10)
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
