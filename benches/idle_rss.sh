#!/usr/bin/env bash
# Idle memory of hookseal, split by where it lives (BENCHMARKS.md §18).
#
#   bash benches/idle_rss.sh [--starts N] [--after SECS] [--cold] [--tls] BIN [BIN ...]
#
# Starts each BIN N times (default 5) with load.sh's config (one `github` route, dedupe off;
# --tls: the same with a TLS listener), waits SECS (default 2) after the listen port answers
# without sending any request, and reads /proc/PID/status and /proc/PID/smaps: VmRSS, RssAnon,
# RssFile, and the Rss of the executable's own mappings (r-x text, r-- read-only data, rw- data
# after relocation), of the heap, of the other anonymous mappings (thread stacks, arenas) and of
# the shared libraries; the threads running. --cold drops the binary's pages from the page
# cache before each start (posix_fadvise DONTNEED on the file: only that file, no root needed),
# so its pages are read from disk at start, with the kernel's read-ahead, instead of mapped from
# a cache written by the linker or earlier runs. Prints one line per start and the min–max.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
STARTS=5 AFTER=2 COLD=0 TLS=0
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --starts) STARTS=$2; shift ;;
        --after) AFTER=$2; shift ;;
        --cold) COLD=1 ;;
        --tls) TLS=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) BINS+=("$1") ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "usage: bash benches/idle_rss.sh [options] BIN [BIN ...]" >&2; exit 2; }
W=$(mktemp -d /tmp/hookseal-rss.XXXXXX)
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
CLEANUP_DIR=$W
trap stop_started EXIT
P_T=17300 P_ADMIN=17400 P_UP=17280
TLS_LINE=""
if [ $TLS = 1 ]; then
    write_cert "$W"
    TLS_LINE="tls = { cert = \"$W/cert.pem\", key = \"$W/key.pem\" }"
fi
github_config "$P_T" "$P_ADMIN" "$P_UP" "$TLS_LINE" >"$W/hs.toml"

# smaps_split PID BIN: KiB of Rss per kind of mapping, as "text rodata data heap anon libs".
smaps_split() {
    python3 - "$1" "$(readlink -f "$2")" <<'EOF'
import sys
pid, exe = sys.argv[1], sys.argv[2]
kinds = dict(text=0, rodata=0, data=0, heap=0, anon=0, libs=0)
cur = None
for line in open(f"/proc/{pid}/smaps"):
    f = line.split()
    if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
        perms, path = f[1], (f[5] if len(f) > 5 else "")
        if path == exe or path.startswith(exe + " "):
            cur = "text" if "x" in perms else ("data" if "w" in perms else "rodata")
        elif path == "[heap]":
            cur = "heap"
        elif path == "" or path.startswith("[stack"):
            cur = "anon"
        elif path.startswith("["):
            cur = None  # vdso, vvar, vsyscall
        else:
            cur = "libs"
    elif f[0] == "Rss:" and cur:
        kinds[cur] += int(f[1])
print(" ".join(str(kinds[k]) for k in ("text", "rodata", "data", "heap", "anon", "libs")))
EOF
}

drop_file_cache() {
    python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"
}

printf '%-40s %5s %7s %7s %7s | %6s %6s %6s %6s %6s %6s | %s\n' \
    binary start VmRSS RssAnon RssFile text rodata data heap anon libs threads
for bin in "${BINS[@]}"; do
    rows=()
    for i in $(seq "$STARTS"); do
        [ $COLD = 1 ] && drop_file_cache "$bin"
        HOOKSEAL_LOG=warn "$bin" run --config "$W/hs.toml" 2>>"$W/hookseal.log" &
        pid=$!
        wait_port $P_T >/dev/null
        sleep "$AFTER"
        read -r rss anon file < <(awk '$1=="VmRSS:"{r=$2} $1=="RssAnon:"{a=$2} $1=="RssFile:"{f=$2} END{print r, a, f}' "/proc/$pid/status")
        split=$(smaps_split "$pid" "$bin")
        threads=$(ls "/proc/$pid/task" | wc -l)
        kill "$pid"; wait "$pid" 2>/dev/null || true
        # shellcheck disable=SC2086
        printf '%-40s %5s %7s %7s %7s | %6s %6s %6s %6s %6s %6s | %s\n' \
            "$(basename "$(dirname "$bin")")/$(basename "$bin")" "$i" "$rss" "$anon" "$file" $split "$threads"
        rows+=("$rss $anon $file $split")
    done
    printf '%s\n' "${rows[@]}" | awk -v b="$bin" '
        { for (i = 1; i <= NF; i++) { if (NR == 1 || $i < lo[i]) lo[i] = $i; if (NR == 1 || $i > hi[i]) hi[i] = $i } }
        END { printf "%-40s %5s", "  min-max KiB", ""; for (i = 1; i <= NF; i++) printf " %s-%s", lo[i], hi[i]; printf "\n" }'
done
