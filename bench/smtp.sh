#!/usr/bin/env bash
# SMTP accept and end-to-end delivery throughput, yubin vs Postfix, in one run.
# Both get the seed's configuration (virtual mailbox domain, Maildir under a
# vmail user, fsync on), Postfix's smtp-source sends N messages of SIZE bytes
# with 1, 10 and 100 sessions. "accepted" = N / smtp-source's wall time;
# "delivered" = N / time until N files are in the Maildir.
# Also: resident memory with 1,000 idle SMTP sessions.
# Needs root (it reconfigures and restarts the system Postfix on loopback
# and restores main.cf afterwards). Usage: bench/smtp.sh [N] [SIZE]
# YUBIN_BEFORE=/path/to/older/yubin runs an older build in the same run
# (issue 11: "no slower than before the change").
# YUBIN_MSGAUTH=1 adds a yubin with msgauth_enable = yes (SPF for HELO and
# MAIL FROM, DKIM, DMARC, the A-R header; issue 14) on port 2528, its DNS a
# dnsmasq on 127.0.0.1:5354 serving example.org's SPF and DMARC records
# (smtp-source's messages carry no DKIM signature: DKIM runs and finds none).
set -euo pipefail
# One run at a time: the script reconfigures the system Postfix.
exec 9>/tmp/system-postfix.lock; flock 9
cd "$(dirname "$0")/.."
N=${1:-2000}; SIZE=${2:-2048}
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
command -v smtp-source >/dev/null || { echo "needs postfix (smtp-source)"; exit 1; }
cargo build --release -q -p yubin
Y=$PWD/target/release/yubin
id vmail >/dev/null 2>&1 || useradd -r -u 5000 -M -d /home/vmail -s /usr/sbin/nologin vmail
VUID=$(id -u vmail); VGID=$(id -g vmail)
work=$(mktemp -d); chmod 755 "$work"
cp /etc/postfix/main.cf "$work/main.cf.orig"
cleanup() { cp "$work/main.cf.orig" /etc/postfix/main.cf; postfix stop >/dev/null 2>&1 || true; [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null; sleep 1; rm -rf "$work"; }
trap cleanup EXIT

# --- Postfix -------------------------------------------------------------
mkdir -p "$work/pf/vmail"; chown vmail: "$work/pf/vmail"
printf 'mydomain.com\n' > "$work/pf/virtual_domains"
printf 'hoge@mydomain.com mydomain.com/hoge/\n' > "$work/pf/virtual_maps"
printf 'root hoge@mydomain.com\n' > "$work/pf/virtual"
postmap "$work/pf/virtual" "$work/pf/virtual_maps"
postconf -e "myhostname = mail.mydomain.com" "mydomain = mydomain.com" "myorigin = \$mydomain" \
  "mydestination = localhost, \$myhostname" "inet_interfaces = loopback-only" "mynetworks = 127.0.0.0/8" \
  "virtual_alias_maps = hash:$work/pf/virtual" "virtual_mailbox_base = $work/pf/vmail" \
  "virtual_mailbox_domains = $work/pf/virtual_domains" "virtual_mailbox_maps = hash:$work/pf/virtual_maps" \
  "virtual_uid_maps = static:$VUID" "virtual_gid_maps = static:$VGID" "smtpd_banner = \$myhostname ESMTP" \
  "default_process_limit = 1100" "smtpd_client_connection_count_limit = 0"
postfix stop >/dev/null 2>&1 || true
for _ in $(seq 50); do pgrep -x master >/dev/null || break; sleep 0.2; done
postfix start >/dev/null 2>&1; sleep 2

# --- yubin (and, with YUBIN_BEFORE=PATH, an older build beside it) --------
# start_yubin NAME BINARY PORT [EXTRA]: its own directory, queue, Maildir
# and log; EXTRA is appended to main.cf.
start_yubin() {
  local name=$1 bin=$2 port=$3 extra=${4:-} d="$work/$1"
  mkdir -p "$d/vmail"; chown vmail: "$d/vmail"
  cp "$work/pf/virtual_domains" "$work/pf/virtual_maps" "$work/pf/virtual" "$d/"
  cat > "$d/main.cf" <<CF
compatibility_level = 3.6
myhostname = mail.mydomain.com
mydomain = mydomain.com
myorigin = \$mydomain
mydestination = localhost, \$myhostname
inet_interfaces = loopback-only
mynetworks = 127.0.0.0/8
virtual_alias_maps = hash:$d/virtual
virtual_mailbox_base = $d/vmail
virtual_mailbox_domains = $d/virtual_domains
virtual_mailbox_maps = hash:$d/virtual_maps
virtual_uid_maps = static:$VUID
virtual_gid_maps = static:$VGID
smtpd_banner = \$myhostname ESMTP
alias_maps =
local_recipient_maps =
default_process_limit = 1100
mail_owner = vmail
queue_directory = $d/queue
maillog_file = $d/mail.log
$extra
CF
  printf '127.0.0.1:%s inet n - n - - smtpd\n' "$port" > "$d/master.cf"
  "$bin" -c "$d" postmap "$d/virtual" "$d/virtual_maps"
  "$bin" -c "$d" serve 2>"$d/serve.err" &
  PIDS="$PIDS $!"
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
}
PIDS=""
YP=2526
start_yubin y "$Y" $YP
YPID=${PIDS# }
if [ -n "${YUBIN_BEFORE:-}" ]; then start_yubin before "$YUBIN_BEFORE" 2527; fi
if [ -n "${YUBIN_MSGAUTH:-}" ]; then
  dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5354 --listen-address=127.0.0.1 \
    --bind-interfaces --txt-record=example.org,"v=spf1 ip4:127.0.0.0/8 -all" \
    --txt-record=_dmarc.example.org,"v=DMARC1; p=reject" --address=/example.org/127.0.0.1 &
  PIDS="$PIDS $!"; sleep 0.5
  start_yubin msgauth "$Y" 2528 "dns_servers = 127.0.0.1:5354
msgauth_enable = yes
smtpd_end_of_data_restrictions = reject_dmarc_policy"
fi

count() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
run() { # name port maildir sessions
  local name=$1 port=$2 dir=$3 s=$4 before t0 t1 t2
  before=$(count "$dir")
  t0=$(date +%s.%N)
  smtp-source -s "$s" -m "$N" -l "$SIZE" -f load@example.org -t hoge@mydomain.com "127.0.0.1:$port"
  t1=$(date +%s.%N)
  while [ "$(count "$dir")" -lt $((before + N)) ]; do sleep 0.02; done
  t2=$(date +%s.%N)
  printf '%s %s %.0f %.0f\n' "$name" "$s" "$(echo "$N / ($t1 - $t0)" | bc -l)" "$(echo "$N / ($t2 - $t0)" | bc -l)"
}
printf '%-8s %-9s %-14s %-14s\n' server sessions accepted/s delivered/s
for s in 1 10 100; do
  run postfix 25 "$work/pf/vmail/mydomain.com/hoge/new" "$s"
  run yubin "$YP" "$work/y/vmail/mydomain.com/hoge/new" "$s"
  if [ -n "${YUBIN_BEFORE:-}" ]; then run before 2527 "$work/before/vmail/mydomain.com/hoge/new" "$s"; fi
  if [ -n "${YUBIN_MSGAUTH:-}" ]; then run msgauth 2528 "$work/msgauth/vmail/mydomain.com/hoge/new" "$s"; fi
done | tee "$work/results"
awk '{a[$1" "$2]=$3; d[$1" "$2]=$4} END {for (s in a) {split(s,k," "); if (k[1]!="postfix") printf "ratio %s/postfix, %s sessions: accepted %.2fx, delivered %.2fx\n", k[1], k[2], a[s]/a["postfix "k[2]], d[s]/d["postfix "k[2]]}}' "$work/results" | sort

# --- memory with 1,000 idle sessions ------------------------------------
idle() { # port -> holds 1000 sessions open for 5 s
  python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); socks = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port)); s.recv(512); socks.append(s)
time.sleep(5)
PY
}
rss_of() { ps -o rss= -p "$1" | awk '{s+=$1} END {print s}'; }
idle $YP & IP=$!; sleep 4
y_rss=$(rss_of "$YPID")
wait $IP
idle 25 & IP=$!; sleep 4
p_rss=$(ps -C smtpd -o rss= | awk '{s+=$1} END {print s}')
p_n=$(pgrep -c -x smtpd || true)
wait $IP
printf 'RSS with 1000 idle sessions: yubin %s KiB (one process), postfix smtpd %s KiB (%s processes); ratio %.1fx\n' "$y_rss" "$p_rss" "$p_n" "$(echo "$p_rss / $y_rss" | bc -l)"
