#!/usr/bin/env bash
# pgsql: lookups per second against one private PostgreSQL 15 (Debian's
# postgresql, initdb/pg_ctl on a private socket directory and port, stopped
# after), by yubin's pgsql: table and by Postfix's (postfix-pgsql), both with
# `postmap -q -` reading every key on stdin: one process, connection kept
# warm, so this measures lookups, not start-up. Same database, same query.
# Usage: bench/pgsql.sh [ROWS] [KEYS]     (defaults 100000 rows, 50000 keys)
# Do not run while others build on the machine (2 shared cores).
set -euo pipefail
# One run at a time: the script reconfigures the system Postfix.
exec 9>/tmp/system-postfix.lock; flock 9
cd "$(dirname "$0")/.."
rows=${1:-100000}
keys=${2:-50000}
PGBIN=${YUBIN_PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/initdb" ] || { echo "needs Debian's postgresql (apt-get install postgresql)"; exit 1; }
command -v postmap >/dev/null || { echo "needs Postfix (apt-get install postfix postfix-pgsql)"; exit 1; }
postconf -m | grep -qx pgsql || { echo "needs Postfix's pgsql: tables (apt-get install postfix-pgsql)"; exit 1; }
cargo build --release -q -p yubin
Y=$PWD/target/release/yubin
work=$(mktemp -d /tmp/yubin-pgbench.XXXXXX); chmod 755 "$work"
as=(); [ "$(id -u)" = 0 ] && { chown postgres "$work"; as=(runuser -u postgres --); }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${as[@]}" "$PGBIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"${as[@]}" "$PGBIN/initdb" -D "$work/data" -U postgres --auth=trust --encoding=UTF8 --locale=C -N >/dev/null
"${as[@]}" "$PGBIN/pg_ctl" -D "$work/data" -l "$work/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$work -c fsync=off" >/dev/null
psql() { "${as[@]}" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE yubin"
psql -d yubin -c "CREATE TABLE virtual (key text PRIMARY KEY, value text NOT NULL);
  INSERT INTO virtual SELECT 'user' || i || '@domain' || (i % 997) || '.example', 'box' || i || '@mail.example'
  FROM generate_series(0, $rows - 1) i; ANALYZE virtual;"
python3 - "$rows" "$keys" > "$work/keys" <<'PY'
import sys, random
random.seed(1)
rows, keys = int(sys.argv[1]), int(sys.argv[2])
for _ in range(keys):
    i = random.randrange(rows)
    print(f"user{i}@domain{i % 997}.example")
PY
cat > "$work/virtual.cf" <<CF
hosts = inet:127.0.0.1:$port
user = postgres
dbname = yubin
query = SELECT value FROM virtual WHERE key = '%s'
CF
chmod 644 "$work/virtual.cf"
t() { local s e; s=$(date +%s.%N); "$@" < "$work/keys" > "$work/out.$2"; e=$(date +%s.%N); echo "$e - $s" | bc; }
# A first pass warms PostgreSQL's buffers for both.
"$Y" postmap -q - "pgsql:$work/virtual.cf" < "$work/keys" > /dev/null
yt=$(t "$Y" postmap -q - "pgsql:$work/virtual.cf")
pt=$(t postmap -q - "pgsql:$work/virtual.cf")
yn=$(wc -l < "$work/out.postmap"); pn=$(wc -l < "$work/out.-q")
[ "$yn" = "$keys" ] && [ "$pn" = "$keys" ] || { echo "not every key found: yubin $yn, postfix $pn of $keys"; exit 1; }
echo "rows=$rows keys=$keys"
echo "yubin   pgsql: $(echo "$keys / $yt" | bc) lookups/s ($yt s)"
echo "postfix pgsql: $(echo "$keys / $pt" | bc) lookups/s ($pt s)"
echo "ratio yubin/postfix: $(echo "scale=2; $pt / $yt" | bc)"
