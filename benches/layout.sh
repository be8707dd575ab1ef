#!/usr/bin/env bash
# Regenerates layout.ld, the linker script that orders hookseal's functions at the start of
# .text: first those that run at start-up and while idle, then those that run per request
# (BENCHMARKS.md §18, §23; build.rs adds it to release links of the binary on Linux).
#
#   bash benches/layout.sh [--secs N] [--requests N] [BIN]
#
# BIN (with symbols; default: a `--profile profiling` build, made if missing) runs under
# valgrind's callgrind:
#   1. start-up and idle: N seconds (default 12) per config — load.sh's plain and TLS configs,
#      logging at `info` and at `warn` — and `check`;
#   2. requests: a plain `github` route, the same over TLS, and a queued Standard Webhooks
#      route on a disk spool, in front of examples/bench_upstream; per config the counters are
#      zeroed after a warm-up and then REQUESTS requests (default 400) are sent at c=1 and again
#      at c=16, and only what ran for them counts.
# Every function of the binary that ran is written with its hash removed (`17h<16 hex>E` becomes
# `17h*`, so the script keeps matching after rebuilds and covers every instance of a generic
# function) as an input-section pattern of an output `.text` inserted after `.init`: the
# start-up group, then the request group without what the first already has. So the pages
# touched at start stay few (idle RSS), and the pages one request touches are few and adjacent
# (fewer TLB misses when a request arrives to caches other processes have used). Functions the
# lists miss are laid out as before; names that no longer exist match nothing. Regenerate when
# start-up or request code changes much (`bash benches/idle_rss.sh` shows the text RSS growing
# back). `bash benches/layout.sh --pages BIN` writes nothing: it runs step 2 only, with
# instruction addresses, and prints how many 4 KiB pages and 64-byte lines of BIN's code the
# requests touched, per config (any release build, stripped or not).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECS=12 REQUESTS=400 BIN="" PAGES=""
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift ;;
        --requests) REQUESTS=$2; shift ;;
        --pages) PAGES=1 ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) BIN=$1 ;;
    esac
    shift
done
if [ -z "$BIN" ]; then
    cargo build --profile profiling --locked --bin hookseal
    BIN=$ROOT/target/profiling/hookseal
fi
BIN=$(readlink -f "$BIN")
export PATH="$PATH:$HOME/.cargo/bin"
for tool in valgrind callgrind_control oha; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
UP=$ROOT/target/release/examples/bench_upstream
[ -x "$UP" ] || cargo build --release --locked --quiet --example bench_upstream
W=$(mktemp -d /tmp/hookseal-layout.XXXXXX)
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
CLEANUP_DIR=$W
trap stop_started EXIT
write_cert "$W"
P_T=17500 P_ADMIN=17501 P_UP=17502
TLS="tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }"
github_config "$P_T" "$P_ADMIN" "$P_UP" >"$W/plain.toml"
github_config "$P_T" "$P_ADMIN" "$P_UP" "$TLS" >"$W/tls.toml"
queued_config "$P_T" "$P_ADMIN" "$P_UP" "$W/spool" >"$W/queued.toml"

# 2. requests: PHASE-2 profiles are the dumps taken after the counters were zeroed.
"$UP" 127.0.0.1:$P_UP 2>/dev/null & pids+=($!)
wait_port $P_UP
write_body 1024 "$W/body.json"
signed() { # SCHEME: oha's -H arguments for a valid signature of body.json
    local l
    while IFS= read -r l; do [ -n "$l" ] && printf '%s\n' -H "$l"; done \
        < <("$BIN" sign --scheme "$1" --secret "$BENCH_SECRET" --id layout --body-file "$W/body.json")
}
shoot() { # URL N C SCHEME: N requests at concurrency C, every answer 2xx
    local h=()
    mapfile -t h < <(signed "$4")
    oha -n "$2" -c "$3" --insecure --no-tui --output-format json -m POST "${h[@]}" \
        -T application/json -D "$W/body.json" "$1" >"$W/oha.json"
    python3 - "$W/oha.json" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
if sum(v for k, v in codes.items() if k.startswith("2")) != int(sys.argv[2]):
    sys.exit(f"layout: not every answer was 2xx: {codes} {d.get('errorDistribution')}")
EOF
}
DUMP_INSTR=no
[ -z "$PAGES" ] || DUMP_INSTR=yes
for run in "plain http github /hook" "tls https github /hook" \
    "queued http standard-webhooks ${BENCH_ROUTE}-queued"; do
    read -r cfg proto scheme path <<<"$run"
    rm -rf "$W/spool"
    HOOKSEAL_LOG=warn valgrind --tool=callgrind --demangle=no --dump-instr="$DUMP_INSTR" \
        --callgrind-out-file="$W/req-$cfg.%p" "$BIN" run --config "$W/$cfg.toml" 2>"$W/log.req-$cfg" &
    pid=$!
    pids+=($pid)
    wait_port $P_T 600
    url="$proto://127.0.0.1:$P_T$path"
    shoot "$url" 100 4 "$scheme"
    callgrind_control -z $pid >/dev/null
    rm -f "$W/req-$cfg".*
    shoot "$url" "$REQUESTS" 1 "$scheme"
    shoot "$url" "$REQUESTS" 16 "$scheme"
    callgrind_control -d $pid >/dev/null
    kill $pid
    wait $pid 2>/dev/null || true
    for f in "$W/req-$cfg".*; do
        # Keep the dump (".1"), not the profile of the stop after it.
        [[ $f == *.1 ]] || rm -f "$f"
    done
done
if [ -n "$PAGES" ]; then
    python3 - "$BIN" "$W"/req-*.1 <<'EOF'
import re, sys
binary, files = sys.argv[1], sys.argv[2:]
for path in files:
    obs, ob, last, pages, lines, skip = {}, None, 0, set(), set(), False
    for l in open(path):
        m = re.match(r"(c?ob)=\((\d+)\)(?: (.*))?$", l.rstrip("\n"))
        if m:
            kind, i, name = m.groups()
            if name:
                obs[i] = name
            if kind == "ob":
                ob = obs[i]
            continue
        if l.startswith("calls="):
            skip = True
            continue
        t = l.split()
        if not t or t[0][0] not in "0123456789+-*":
            continue
        a = t[0]
        if a.startswith("0x"):
            last = int(a, 16)
        elif a[0] in "+-":
            d = int(a[1:], 16) if a[1:].startswith("0x") else int(a[1:])
            last = last + d if a[0] == "+" else last - d
        if skip:
            skip = False
            continue
        if ob == binary and len(t) > 2 and t[2] != "0":
            pages.add(last >> 12)
            lines.add(last >> 6)
    runs = sum(1 for p in pages if p - 1 not in pages)
    name = path.split("/")[-1].split(".")[0]
    print(f"{name}: {len(pages)} pages of 4 KiB in {runs} runs, {len(lines)} cache lines")
EOF
    exit 0
fi

# 1. start-up and idle
n=0
for cfg in plain tls; do
    for level in info warn; do
        n=$((n + 1))
        HOOKSEAL_LOG=$level timeout -s INT "$SECS" valgrind --tool=callgrind --demangle=no \
            --callgrind-out-file="$W/start.$n" "$BIN" run --config "$W/$cfg.toml" 2>"$W/log.$n" || true
    done
done
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$W/start.check" \
    "$BIN" check --config "$W/plain.toml" >/dev/null 2>&1 || true
python3 - "$BIN" "$ROOT/layout.ld" "$W"/start.* -- "$W"/req-*.1 <<'EOF'
import fnmatch, re, subprocess, sys
binary, out = sys.argv[1], sys.argv[2]
cut = sys.argv.index("--")
groups = (sys.argv[3:cut], sys.argv[cut + 1:])

def ran(files):
    """The hash-free patterns of the binary's functions with a cost in FILES."""
    pats = set()
    for path in files:
        obs, fns, ob, fn = {}, {}, None, None
        for line in open(path):
            m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, i, name = m.groups()
                table = obs if kind.endswith("ob") else fns
                if name:
                    table[i] = name
                if kind == "ob":
                    ob = obs[i]
                if kind == "fn":
                    fn = fns[i] if ob == binary else None
                continue
            if fn is None:
                continue
            t = line.split()
            # A cost line of the function itself (not the inclusive cost after `calls=`, which
            # callgrind writes after its own line; a zero cost means it did not run).
            if t and t[0][0] in "0123456789+-*" and len(t) > 1 and t[-1] != "0":
                p = re.sub(r"'\d+$", "", fn)                 # callgrind's recursion mark
                p = re.sub(r"17h[0-9a-f]{16}E$", "17h*", p)  # legacy mangling: the hash
                p = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", p)    # v0 mangling (std): crate hashes
                p = re.sub(r"(\.llvm)?\.\d+$", "*", p)       # LLVM's suffix on local copies
                if re.fullmatch(r"_[RZ][A-Za-z0-9_$.*]+", p):
                    pats.add(p)
    return pats

start = ran(groups[0])
requests = ran(groups[1])
# Within each group: patterns that match one instance or a few first, packed; then the generic
# functions whose pattern matches many instances (`<&T as Debug>::fmt`, tokio's task `poll`),
# of which only a few ran: they follow in one block instead of being spread between the others.
names = [l.split()[-1] for l in subprocess.run(["nm", binary], capture_output=True, text=True).stdout.splitlines()]
def breadth(p):
    rx = re.compile(fnmatch.translate(p))
    pre = p.split("*")[0]
    return sum(1 for n in names if n.startswith(pre) and rx.match(n))
def tiers(pats):
    t = ([], [])
    for p in sorted(pats):
        t[breadth(p) > 4].append(p)
    return t[0] + t[1]
with open(out, "w") as f:
    f.write("/* Generated by benches/layout.sh: the functions hookseal runs at start-up and while\n"
            "   idle, then those it runs per request, first in .text, so that the pages each group\n"
            "   touches are few and adjacent (BENCHMARKS.md 18, 23). build.rs passes it to release\n"
            "   links on Linux. */\n")
    f.write("SECTIONS\n{\n  .text : {\n")
    # Start-up only, then what both run, then requests only: each group is one run of pages.
    for p in tiers(start - requests) + tiers(start & requests) + tiers(requests - start):
        # A profile-guided build (benches/pgo.sh) puts the functions its profile calls hot
        # or cold in sections named `.text.hot.*` and `.text.unlikely.*`.
        f.write(f"    *(.text.{p} .text.unlikely.{p} .text.hot.{p})\n")
    f.write("  }\n}\nINSERT AFTER .init;\n")
print(f"{out}: {len(start - requests)} patterns of start-up only, {len(start & requests)} of both, "
      f"{len(requests - start)} of requests only", file=sys.stderr)
EOF
