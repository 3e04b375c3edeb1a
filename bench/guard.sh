#!/usr/bin/env bash
# guard throughput: yubin guard vs fail2ban-regex on the same generated auth.log,
# in the same run; prints lines/s of each and the ratio.
#
#   bench/guard.sh [LINES] [WHOLE_LINES]   (defaults 1000000 and 200000)
#
# Two cases: (1) parser throughput on LINES lines; (2) the whole run (issue
# 16 item 5) on WHOLE_LINES lines in which thousands of addresses cross
# DENY_THRESHOLD_ROOT: `yubin guard --once --file` that parses, counts,
# decides, writes hosts.deny and saves its state, timed against
# fail2ban-regex on the same file.
#
# Needs python3 and fail2ban's fail2ban-regex: taken from PATH when the Debian
# package is installed, otherwise the package is downloaded with
# `apt-get download fail2ban` and unpacked into a temp dir (never installed,
# no service started).
set -euo pipefail
LINES=${1:-1000000}
WHOLE=${2:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

gen=$ROOT/bench/gen_authlog.py

echo "== building yubin (release)" >&2
(cd "$ROOT" && cargo build --release -p yubin --quiet)
YUBIN=$ROOT/target/release/yubin

echo "== generating $LINES lines" >&2
python3 "$gen" -n "$LINES" -o "$TMP/auth.log" 2>"$TMP/gen.txt"
cat "$TMP/gen.txt" >&2
n=$(wc -l <"$TMP/auth.log")

if command -v fail2ban-regex >/dev/null 2>&1; then
    F2B=(fail2ban-regex)
else
    echo "== fail2ban-regex not installed: unpacking the Debian package" >&2
    (cd "$TMP" && apt-get download fail2ban >/dev/null 2>&1) || { echo "apt-get download fail2ban failed" >&2; exit 1; }
    dpkg-deb -x "$TMP"/fail2ban_*.deb "$TMP/f2b"
    export PYTHONPATH=$TMP/f2b/usr/lib/python3/dist-packages
    F2B=(/usr/bin/python3 "$TMP/f2b/usr/bin/fail2ban-regex" -c "$TMP/f2b/etc/fail2ban")
fi

# yubin guard: parse, track connections and count, change nothing (fresh WORK_DIR).
mkdir -p "$TMP/work"
cat >"$TMP/denyhosts.conf" <<CONF
SECURE_LOG = $TMP/auth.log
HOSTS_DENY = $TMP/hosts.deny
WORK_DIR = $TMP/work
LOCK_FILE = $TMP/work/pid
CONF

rates=()
for i in 1 2 3; do
    s=$(date +%s.%N)
    "$YUBIN" guard --config "$TMP/denyhosts.conf" --once --dry-run --file "$TMP/auth.log" >/dev/null 2>"$TMP/guard.txt"
    e=$(date +%s.%N)
    rate=$(python3 -c "print(int($n/($e-$s)))")
    echo "yubin guard run $i: $(tail -1 "$TMP/guard.txt" | sed 's/^yubin guard: //') | wall incl. start-up: $rate lines/s" >&2
    rates+=("$rate")
done
best_guard=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)   # median of 3

s=$(date +%s.%N)
"${F2B[@]}" --print-no-missed --print-no-ignored "$TMP/auth.log" sshd >"$TMP/f2b.txt" 2>&1
e=$(date +%s.%N)
f2b_rate=$(python3 -c "print(int($n/($e-$s)))")
grep -E "^(Lines|Failregex):" "$TMP/f2b.txt" >&2 || true

ratio=$(python3 -c "print(f'{$best_guard/$f2b_rate:.1f}')")
echo "lines: $n"
echo "yubin guard --once --dry-run --file: $best_guard lines/s (median of 3, wall clock incl. start-up)"
echo "fail2ban-regex FILE sshd:            $f2b_rate lines/s (wall clock incl. start-up)"
echo "ratio: ${ratio}x"

# (2) The whole run: parse, count, decide, write hosts.deny, save the state.
echo "== whole run: generating $WHOLE lines (20,000 attacking addresses)" >&2
python3 "$gen" -n "$WHOLE" --attackers 20000 -o "$TMP/whole.log" 2>"$TMP/gen2.txt"
cat "$TMP/gen2.txt" >&2
nw=$(wc -l <"$TMP/whole.log")
whole=()
for i in 1 2 3; do
    rm -rf "$TMP/work2" "$TMP/hosts.deny2"; mkdir -p "$TMP/work2"
    cat >"$TMP/whole.conf" <<CONF
SECURE_LOG = $TMP/whole.log
HOSTS_DENY = $TMP/hosts.deny2
WORK_DIR = $TMP/work2
LOCK_FILE = $TMP/work2/pid
PURGE_DENY = 4w
CONF
    s=$(date +%s.%N)
    "$YUBIN" guard --config "$TMP/whole.conf" --once --noemail --file "$TMP/whole.log" >/dev/null 2>"$TMP/whole.txt"
    e=$(date +%s.%N)
    whole+=("$(python3 -c "print(f'{$e-$s:.3f}')")")
    echo "yubin guard whole run $i: $(tail -1 "$TMP/whole.txt" | sed 's/^yubin guard: //') | wall ${whole[-1]} s, hosts.deny $(grep -c '^sshd:' "$TMP/hosts.deny2") entries" >&2
done
best_whole=$(printf '%s\n' "${whole[@]}" | sort -n | sed -n 2p)
s=$(date +%s.%N)
"${F2B[@]}" --print-no-missed --print-no-ignored "$TMP/whole.log" sshd >"$TMP/f2b2.txt" 2>&1
e=$(date +%s.%N)
f2b_whole=$(python3 -c "print(f'{$e-$s:.3f}')")
grep -E "^(Lines|Failregex):" "$TMP/f2b2.txt" >&2 || true
echo "whole run, $nw lines: yubin guard --once --file (parse, decide, hosts.deny, state): $best_whole s (median of 3)"
echo "whole run, $nw lines: fail2ban-regex FILE sshd: $f2b_whole s"
echo "whole-run ratio: $(python3 -c "print(f'{$f2b_whole/$best_whole:.1f}')")x"
