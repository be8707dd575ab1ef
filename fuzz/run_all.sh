#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) on the stable toolchain.
#
#   bash fuzz/run_all.sh [SECONDS_PER_TARGET] [TARGET...]
#
# cargo-fuzz passes nightly-only -Z flags to rustc; RUSTC_BOOTSTRAP=1 lets the stable compiler
# accept them (there is no nightly toolchain here). Installs cargo-fuzz if missing. New inputs
# go to fuzz/corpus/<target>/ (not committed); the committed seeds are fuzz/seeds/<target>/.
# A crash leaves its input in fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(verify_request standard_signature stripe_signature hmac_signature config_parse route_match client_ip jwt_parse sns_message trace_context json_pointer)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/corpus/$t.log"
    echo "== $t (${secs}s)"
    if cargo fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        :
    else
        status=1
        echo "   CRASH or error: see $log and fuzz/artifacts/$t/"
    fi
    grep -E "^Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|cov: " "$log" | tail -4 | sed 's/^/   /'
done
exit $status
