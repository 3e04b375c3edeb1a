#!/bin/bash
# Dovecot and yubin on one Maildir: yubin writes (folders, flags, keywords,
# expunges), Dovecot 2.3 reads the same UIDVALIDITY/UIDs/flags/folders and
# writes, yubin reads Dovecot's changes. Needs root and dovecot-imapd.
# Usage: dovecot-interop.sh YUBIN_BINARY      (exit 0 = identical views)
set -eu
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/yd-interop.XXXXXX); chmod 755 "$WORK"
YPORT=24143; DPORT=26143
mkdir -p "$WORK/home/testuser" "$WORK/run" "$WORK/state" "$WORK/log" "$WORK/yubin"
chown -R nobody: "$WORK/home"
MAILDIR=$WORK/home/testuser/Maildir
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_yubin() {
  "$HERE/yubin-for-imaptest.sh" "$BIN" "$WORK/yubin" $YPORT >"$WORK/yubin.pid"
  # The same Maildir as Dovecot's ~/Maildir.
  sed -i "s|^testuser:.*|testuser:{PLAIN}pass::::::userdb_mail=maildir:$MAILDIR|" "$WORK/yubin/users"
  pids+=("$(cat "$WORK/yubin.pid")")
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$YPORT) 2>/dev/null && return; sleep 0.1; done
  echo "yubin did not start" >&2; cat "$WORK/yubin/serve.out" >&2; exit 2
}
stop_yubin() { kill "$(cat "$WORK/yubin.pid")"; sleep 1; }

cat >"$WORK/dovecot.conf" <<EOC
instance_name = yd-interop-$$
base_dir = $WORK/run
state_dir = $WORK/state
log_path = $WORK/log/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $WORK/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $WORK/passwd
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DPORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOC
printf 'testuser:{PLAIN}pass:%s:%s::%s::\n' "$(id -u nobody)" "$(id -g nobody)" "$WORK/home/testuser" >"$WORK/passwd"
start_dovecot() {
  dovecot -c "$WORK/dovecot.conf"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$DPORT) 2>/dev/null && return; sleep 0.1; done
  echo "dovecot did not start" >&2; cat "$WORK/log/dovecot.log" >&2; exit 2
}
stop_dovecot() { doveadm -c "$WORK/dovecot.conf" stop; sleep 1; }

start_yubin
python3 "$HERE/state.py" $YPORT mutate-yubin
python3 "$HERE/state.py" $YPORT dump >"$WORK/a-yubin.json"
stop_yubin
start_dovecot
python3 "$HERE/state.py" $DPORT dump >"$WORK/b-dovecot.json"
python3 "$HERE/state.py" $DPORT mutate-dovecot
python3 "$HERE/state.py" $DPORT dump >"$WORK/c-dovecot.json"
stop_dovecot
start_yubin
python3 "$HERE/state.py" $YPORT dump >"$WORK/d-yubin.json"
stop_yubin
rc=0
diff -u "$WORK/a-yubin.json" "$WORK/b-dovecot.json" && echo "yubin -> Dovecot: same folders, UIDVALIDITY, UIDs, flags, subscriptions" || rc=1
diff -u "$WORK/c-dovecot.json" "$WORK/d-yubin.json" && echo "Dovecot -> yubin: same folders, UIDVALIDITY, UIDs, flags, subscriptions" || rc=1
echo "states: $WORK/*.json"
exit $rc
