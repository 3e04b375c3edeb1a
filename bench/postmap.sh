#!/usr/bin/env bash
# postmap: build a generated 1,000,000-line table with yubin and with
# Postfix's postmap (hash: Berkeley DB; cdb: from Debian's postfix-cdb) in one
# run, then look every key up (postmap -q - reading keys on stdin).
# Prints times and the ratios. Usage: bench/postmap.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
command -v postmap >/dev/null || { echo "needs Postfix (apt-get install postfix postfix-cdb)"; exit 1; }
cargo build --release -q -p yubin
Y=$PWD/target/release/yubin
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 - "$lines" > "$work/virtual" <<'PY'
import sys, random
random.seed(1)
n = int(sys.argv[1])
for i in range(n):
    print(f"user{i}@domain{i % 997}.example\tbox{random.randrange(10**9)}@mail.example")
PY
cut -f1 "$work/virtual" | shuf --random-source=<(yes) > "$work/keys"
mkdir -p "$work/y" "$work/ph" "$work/pc"
cp "$work/virtual" "$work/y/virtual"; cp "$work/virtual" "$work/ph/virtual"; cp "$work/virtual" "$work/pc/virtual"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
yb=$(t "$Y" postmap "$work/y/virtual")
ph=$(t postmap "hash:$work/ph/virtual")
pc=$(t postmap "cdb:$work/pc/virtual")
yq=$(t "$Y" postmap -q - "hash:$work/y/virtual" < "$work/keys")
phq=$(t postmap -q - "hash:$work/ph/virtual" < "$work/keys")
pcq=$(t postmap -q - "cdb:$work/pc/virtual" < "$work/keys")
# Every key must be found by each.
for spec in "$Y postmap -q - hash:$work/y/virtual" "postmap -q - cdb:$work/pc/virtual"; do
  n=$($spec < "$work/keys" | wc -l); [ "$n" = "$lines" ] || { echo "lookup count $n != $lines for $spec"; exit 1; }
done
printf 'lines: %s\n' "$lines"
printf 'build   yubin %.2fs   postfix hash %.2fs (%.1fx)   postfix cdb %.2fs (%.1fx)\n' "$yb" "$ph" "$(echo "$ph / $yb" | bc -l)" "$pc" "$(echo "$pc / $yb" | bc -l)"
printf 'lookups yubin %.0f/s   postfix hash %.0f/s (%.1fx)   postfix cdb %.0f/s (%.1fx)\n' \
  "$(echo "$lines / $yq" | bc -l)" "$(echo "$lines / $phq" | bc -l)" "$(echo "$phq / $yq" | bc -l)" \
  "$(echo "$lines / $pcq" | bc -l)" "$(echo "$pcq / $yq" | bc -l)"
