#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600 = ten minutes,
# issue 16 item 8) and appends one row per target to fuzz/RESULTS.md: runs,
# executions/s, coverage, corpus size, peak memory and the outcome. A target
# first replays its files in fuzz/regressions/ (TARGET-*.bin), so a fixed bug
# that comes back fails at once.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain
# (`rustup toolchain install nightly`); without nightly it uses
# RUSTC_BOOTSTRAP=1 on stable, which cargo-fuzz's sanitizer flags need.
# Crashes are kept in fuzz/artifacts/TARGET/ (cargo-fuzz's place) and the
# script exits 1 when any target failed.
set -uo pipefail
SECS=${1:-600}
shift || true
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    FUZZ=(cargo +nightly fuzz)
    toolchain=$(rustc +nightly --version)
else
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
    toolchain="$(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <("${FUZZ[@]}" list); fi

echo "== building ${#targets[@]} targets ($toolchain)" >&2
"${FUZZ[@]}" build -O >/dev/null || { echo "cargo fuzz build failed" >&2; exit 2; }

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
rows=()
failed=0
for t in "${targets[@]}"; do
    # Regressions first: each file run once (libFuzzer runs given files and exits).
    regs=(regressions/"$t"-*)
    if [ -e "${regs[0]}" ]; then
        if ! "${FUZZ[@]}" run -O "$t" "${regs[@]}" >"$log/$t.reg" 2>&1; then
            echo "== $t: a regression input fails again" >&2
            tail -20 "$log/$t.reg" >&2
            rows+=("| $t | regressions | - | - | - | - | - | **FAILED** (regression input) |")
            failed=1
            continue
        fi
    fi
    echo "== $t: $SECS s" >&2
    "${FUZZ[@]}" run -O "$t" -- -max_total_time="$SECS" -print_final_stats=1 >"$log/$t.out" 2>&1
    rc=$?
    stat() { grep -o "stat::$1: *[0-9]*" "$log/$t.out" | grep -o '[0-9]*$' | tail -1; }
    cov=$(grep -o 'cov: [0-9]*' "$log/$t.out" | tail -1 | grep -o '[0-9]*')
    corp=$(grep -o 'corp: [0-9]*' "$log/$t.out" | tail -1 | grep -o '[0-9]*')
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="**FAILED** (exit $rc; $(ls -t artifacts/"$t" 2>/dev/null | head -1))"
        failed=1
        grep -E "panicked|ERROR|SUMMARY" "$log/$t.out" | head -5 >&2
    fi
    rows+=("| $t | $SECS | $(stat number_of_executed_units) | $(stat average_exec_per_sec) | ${cov:--} | ${corp:--} | $(stat peak_rss_mb) | $result |")
    echo "   ${rows[-1]}" >&2
done

{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): fuzz/run-all.sh $SECS ($toolchain, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
    echo
    echo "| target | seconds | runs | exec/s | cov | corpus | peak RSS MB | result |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >>RESULTS.md
echo "recorded in fuzz/RESULTS.md" >&2
exit $failed
