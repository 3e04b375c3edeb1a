#!/usr/bin/env bash
# Outbound relay throughput, yubin vs Postfix, in one run, in one offline lab
# (issue 12 "Speed"). Lab hosts (../shared/tools/netlab.sh): `client` runs
# Postfix's smtp-source, `ymta` runs yubin, `pmta` runs an isolated Postfix
# 3.7, `sink` runs Postfix's smtp-sink on port 25; the lab DNS gives each of
# the D recipient domains d1.test .. dD.test an MX record pointing at sink.
# Both MTAs get the same settings that matter: relay for the lab subnet,
# MX lookups, smtp_tls_security_level = may (smtp-sink offers no STARTTLS),
# default concurrency limits.
#
# For D = 1 and D = 10 domains, each MTA in turn (fresh queue each time):
#   relay: smtp-source sends N messages of SIZE bytes over S sessions (split
#          over D parallel smtp-source runs, one recipient domain each);
#          "accepted" = N / smtp-source's wall time, "end-to-end" = N / time
#          from the first connection until the MTA has logged N status=sent.
#   drain: the same N are injected while defer_transports = smtp holds them
#          (logged status=deferred), then `postqueue -f`; "drain" = N / time
#          from the flush until N status=sent.
# The ratio is yubin / Postfix (> 1: yubin faster). Results: append the
# table to bench/RESULTS.md with the date and the machine's load.
#
# Needs root (network namespaces), postfix (smtp-source, smtp-sink) and
# unbound. Do not run it while other builds or tests load the machine.
# Usage: bench/outbound.sh [N] [SIZE] [SESSIONS]
#   YUBIN=/path/to/yubin   use this binary instead of building --release
set -euo pipefail
# One run at a time: the script reconfigures the system Postfix.
exec 9>/tmp/system-postfix.lock; flock 9
cd "$(dirname "$0")/.."
N=${1:-10000}; SIZE=${2:-2048}; S=${3:-10}
[ "$(id -u)" = 0 ] || { echo "run as root (netlab namespaces)"; exit 1; }
for t in smtp-source smtp-sink postfix unbound; do
    command -v $t >/dev/null || { echo "needs $t (apt-get install postfix unbound)"; exit 1; }
done
if [ -z "${YUBIN:-}" ]; then
    cargo build --release -q -p yubin
    YUBIN=$PWD/target/release/yubin
fi
NETLAB=$(cd ../shared/tools && pwd)/netlab.sh
export NETLAB_ID=ybench$$
NET=10.62.0
work=$(mktemp -d); chmod 755 "$work"
cleanup() {
    for d in "$work"/pf*; do
        [ -d "$d/etc" ] && ip netns exec "$NETLAB_ID-pmta" postfix -c "$d/etc" stop >/dev/null 2>&1 || true
    done
    bash "$NETLAB" down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

bash "$NETLAB" up client $NET.2 ymta $NET.3 pmta $NET.4 sink $NET.5 >/dev/null
rr=()
for i in $(seq 10); do rr+=(--rr "d$i.test. MX 10 sink.lab.test."); done
bash "$NETLAB" dns --ip $NET.53 "${rr[@]}" >/dev/null
bash "$NETLAB" spawn sink "$work/sink.log" smtp-sink -u nobody $NET.5:25 1000 >/dev/null
bash "$NETLAB" wait client $NET.5 25 10

now() { date +%s.%N; }
# count FILE PATTERN
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
# wait_for FILE PATTERN N: until FILE has N lines matching PATTERN.
wait_for() {
    local deadline=$(( $(date +%s) + 1800 ))
    while [ "$(count "$1" "$2")" -lt "$3" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout waiting for $3 x '$2' in $1" >&2; exit 1; }
        sleep 0.05
    done
}
# inject HOSTADDR D: N messages over S sessions, split over D domains.
inject() {
    local addr=$1 d=$2 pids=() i per sess
    per=$(( N / d )); sess=$(( S / d )); [ "$sess" -ge 1 ] || sess=1
    for i in $(seq "$d"); do
        bash "$NETLAB" exec client smtp-source -s "$sess" -m "$per" -l "$SIZE" \
            -f bench@client.lab.test -t "u$i@d$i.test" "$addr:25" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
}

# start_yubin DIR [extra main.cf lines]
start_yubin() {
    local d=$1
    mkdir -p "$d"
    cat >"$d/main.cf" <<CF
compatibility_level = 3.6
myhostname = ymta.lab.test
mydestination = localhost
inet_interfaces = all
mynetworks = 127.0.0.0/8 $NET.0/24
alias_maps =
local_recipient_maps =
queue_directory = $d/queue
maillog_file = $d/mail.log
mail_owner = postfix
smtp_tls_security_level = may
default_process_limit = 1100
$2
CF
    printf '%s:25 inet n - n - - smtpd\n' "$NET.3" >"$d/master.cf"
    YPID=$(bash "$NETLAB" spawn ymta "$d/serve.log" "$YUBIN" -c "$d" serve)
    bash "$NETLAB" wait client $NET.3 25 20
}
stop_yubin() { bash "$NETLAB" stop "$YPID" >/dev/null; }

# start_postfix DIR [param=value...]
start_postfix() {
    local d=$1; shift
    bash "$NETLAB" postfix pmta "$d" "default_process_limit = 1100" "$@" >/dev/null
    bash "$NETLAB" wait client $NET.4 25 20
}
stop_postfix() { ip netns exec "$NETLAB_ID-pmta" postfix -c "$1/etc" stop >/dev/null 2>&1 || true; }

declare -A R
# run MTA D: fills R[MTA,D,accepted|e2e|drain]
run() {
    local mta=$1 d=$2 dir log t0 t1 t2
    # relay
    dir=$work/${mta:0:2}relay$d
    if [ "$mta" = yubin ]; then start_yubin "$dir" ""; log=$dir/mail.log; addr=$NET.3
    else start_postfix "$dir"; log=$dir/maillog; addr=$NET.4; fi
    t0=$(now); inject "$addr" "$d"; t1=$(now)
    wait_for "$log" "status=sent" "$N"; t2=$(now)
    R[$mta,$d,accepted]=$(echo "$N / ($t1 - $t0)" | bc -l)
    R[$mta,$d,e2e]=$(echo "$N / ($t2 - $t0)" | bc -l)
    if [ "$mta" = yubin ]; then stop_yubin; else stop_postfix "$dir"; fi
    # drain
    dir=$work/${mta:0:2}drain$d
    if [ "$mta" = yubin ]; then start_yubin "$dir" "defer_transports = smtp"; log=$dir/mail.log
    else start_postfix "$dir" "defer_transports = smtp"; log=$dir/maillog; fi
    inject "$addr" "$d"
    wait_for "$log" "status=deferred" "$N"
    t0=$(now)
    if [ "$mta" = yubin ]; then "$YUBIN" -c "$dir" postqueue -f
    else ip netns exec "$NETLAB_ID-pmta" postqueue -c "$dir/etc" -f; fi
    wait_for "$log" "status=sent" "$N"; t1=$(now)
    R[$mta,$d,drain]=$(echo "$N / ($t1 - $t0)" | bc -l)
    if [ "$mta" = yubin ]; then stop_yubin; else stop_postfix "$dir"; fi
}

for d in 1 10; do
    run yubin $d
    run postfix $d
done

printf '\noutbound relay, N=%s SIZE=%s S=%s, load %s, %s\n\n' "$N" "$SIZE" "$S" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '| domains | measure | yubin msgs/s | Postfix msgs/s | ratio |\n|---|---|---|---|---|\n'
for d in 1 10; do
    for m in accepted e2e drain; do
        y=${R[yubin,$d,$m]}; p=${R[postfix,$d,$m]}
        printf '| %s | %s | %.0f | %.0f | %.2f× |\n' "$d" "$m" "$y" "$p" "$(echo "$y / $p" | bc -l)"
    done
done
