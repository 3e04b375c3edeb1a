#!/bin/sh
# Starts a throw-away `yubin serve` with one IMAP service for Dovecot's
# imaptest: plaintext LOGIN allowed on loopback (imaptest does not STARTTLS),
# user testuser / pass (and testuser2) with Maildirs under DIR/mail.
# Usage: yubin-for-imaptest.sh YUBIN_BINARY DIR PORT   (prints the server's PID)
set -eu
BIN=$1; DIR=$2; PORT=$3
mkdir -p "$DIR/mail" "$DIR/log" "$DIR/queue"
me=$(id -un)
if [ "$(id -u)" = 0 ]; then me=nobody; chown nobody "$DIR/mail" "$DIR/log" "$DIR/queue"; fi
cat > "$DIR/main.cf" <<EOM
compatibility_level = 3.6
myhostname = imaptest.example.test
mydomain = example.test
inet_interfaces = loopback-only
mynetworks = 127.0.0.0/8
queue_directory = $DIR/queue
maillog_file = $DIR/log/mail.log
mail_owner = $me
alias_maps =
alias_database =
smtpd_sasl_type = passwd-file
smtpd_sasl_path = $DIR/users
imapd_disable_plaintext_auth = no
imapd_auth_failure_delay = 0s
# imaptest stress logs in one user many times from 127.0.0.1 (Dovecot's
# baseline sets mail_max_userip_connections = 1000 the same way).
imapd_max_userip_connections = 0
default_process_limit = 2000
EOM
cat > "$DIR/master.cf" <<EOM
127.0.0.1:$((PORT + 1000)) inet n - n - - smtpd
127.0.0.1:$PORT inet n - n - - imap
EOM
cat > "$DIR/users" <<EOM
testuser:{PLAIN}pass::::::userdb_mail=maildir:$DIR/mail/testuser
testuser2:{PLAIN}pass::::::userdb_mail=maildir:$DIR/mail/testuser2
EOM
"$BIN" -c "$DIR" serve >"$DIR/serve.out" 2>&1 &
echo $!
