#!/usr/bin/env python3
"""Markdown tables of the last `cargo bench` results (target/criterion/*/new/estimates.json).

    python3 benches/criterion_table.py [verify|pipeline]

Verify: one row per scheme, one column per body size, mean time and the overhead over the bare
HMAC-SHA256 of the same bytes. Pipeline: one row per route, mean time per request.
"""

import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "criterion")
SIZES = ["1KiB", "64KiB", "1MiB"]


def mean_ns(*parts):
    path = os.path.join(ROOT, *parts, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, ValueError, KeyError):
        return None


def us(ns):
    if ns is None:
        return "–"
    v = ns / 1000
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def names(group, kind):
    d = os.path.join(ROOT, group, kind)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def verify():
    print("| verify (µs, mean) | " + " | ".join(SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    for b in names("verify_1KiB", "bare"):
        print(f"| bare {b} | " + " | ".join(us(mean_ns(f"verify_{s}", "bare", b)) for s in SIZES) + " |")
    for sc in names("verify_1KiB", "scheme"):
        cells = []
        for s in SIZES:
            t, base = mean_ns(f"verify_{s}", "scheme", sc), mean_ns(f"verify_{s}", "bare", "hmac-sha256")
            cells.append("–" if t is None else us(t) + ("" if base is None else f" ({(t - base) / 1000:+.2f})"))
        print(f"| {sc} | " + " | ".join(cells) + " |")
    print()
    print("In brackets: minus the bare HMAC-SHA256 of the same bytes.")


def pipeline():
    print("| pipeline (µs per request, mean) | " + " | ".join(SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    rows = sorted({r for s in SIZES for r in (os.listdir(os.path.join(ROOT, f"pipeline_{s}"))
                                               if os.path.isdir(os.path.join(ROOT, f"pipeline_{s}")) else [])
                   if r != "report"})
    for r in rows:
        print(f"| {r} | " + " | ".join(us(mean_ns(f"pipeline_{s}", r, s)) for s in SIZES) + " |")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "verify"
    {"verify": verify, "pipeline": pipeline}[which]()
