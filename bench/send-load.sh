#!/usr/bin/env bash
# Load mode of `yubin send` against Postfix's smtp-source, both sending to one
# smtp-sink on 127.0.0.1, in the same run. Prints msgs/s for each and the ratio.
#   usage: bench/send-load.sh [COUNT] [CONCURRENCY] [SIZE]
# Needs postfix (smtp-sink, smtp-source). Uses target/release/yubin (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}; conc=${2:-8}; size=${3:-1024}
cargo build --release -p yubin --quiet
yubin=target/release/yubin

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [ "$(id -u)" = 0 ] && user=(-u nobody)
/usr/sbin/smtp-sink "${user[@]}" "127.0.0.1:$port" 256 & sink=$!
trap 'kill $sink 2>/dev/null' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/($3-$2):.1f}')"; }

echo "# $count messages of $size bytes, $conc connections at once, to smtp-sink on 127.0.0.1:$port"
t0=$(now)
/usr/sbin/smtp-source -m "$count" -s "$conc" -l "$size" -f a@example.com -t b@example.com "127.0.0.1:$port"
t1=$(now)
src=$(rate "$count" "$t0" "$t1")
echo "smtp-source: $src msgs/s"

out=$("$yubin" send -s "127.0.0.1:$port" -f a@example.com -t b@example.com \
  --count "$count" --concurrency "$conc" --size "$size")
echo "$out"
ours=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) msgs\/s$/\1/p')
echo "yubin send: $ours msgs/s"
python3 -c "print(f'ratio yubin send / smtp-source: {$ours/$src:.2f}')"
