#!/usr/bin/env bash
# Records what a real Postfix 3.7 answers to every dialog in tests/dialogs/
# (the seed configuration) and tests/dialogs/embedded/ (the embedded default's
# configuration) into the matching .expected files. crates/yubin/tests/dialogs.rs
# replays the same dialogs against yubin on the same configurations and wants
# the same replies, word for word.
#
# Usage (as root, Debian package postfix installed; dovecot-core for the
# embedded default's AUTH):  tests/record_dialogs.sh [seed|level0|embedded|access|access-nodelay|dnsbl|policy|all] [NAME...]
#
# The Postfix runs as its own instance: its own config directory, queue
# directory and data directory in a temporary folder, listening on free
# loopback ports, no chroot (master.cf), started with `postfix -c DIR` and
# stopped at the end. /etc/postfix and the system's Postfix are never used or
# touched. The configuration written here must stay the one
# crates/yubin/tests/common/mod.rs (Server::seed) and
# crates/yubin/src/server/embedded.rs give yubin; only what Postfix needs to
# run (mail_owner = postfix, its queue layout) and what yubin spells
# differently (SASL through Dovecot instead of a passwd-file) differ.
set -euo pipefail
# Dialogs run in byte order, as crates/yubin/tests/dialogs.rs replays them
# (the policy log lines of a set are compared in order).
export LC_COLLATE=C

here=$(cd "$(dirname "$0")" && pwd)
which=${1:-all}
shift || true
only=("$@")

[ "$(id -u)" = 0 ] || { echo "record_dialogs.sh: run as root (Postfix's master needs it)" >&2; exit 2; }
command -v postfix >/dev/null || { echo "record_dialogs.sh: apt-get install postfix" >&2; exit 2; }
version=$(postconf -d -h mail_version)
case $version in 3.7.*) ;; *) echo "record_dialogs.sh: warning: Postfix $version, the recordings are from 3.7" >&2 ;; esac

work=$(mktemp -d /tmp/yubin-record.XXXXXX)
chmod 755 "$work"
started=()
dovecot_pid=
cleanup() {
    for etc in "${started[@]}"; do postfix -c "$etc" stop >/dev/null 2>&1 || true; done
    if [ -n "$dovecot_pid" ]; then kill "$dovecot_pid" 2>/dev/null || true; fi
    if [ ${#inlab[@]} -gt 0 ]; then "$netlab" down >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The daemons every Postfix instance needs, none chrooted (from
# ../shared/tools/netlab.sh), after the smtpd listener lines in $1.
master_cf() {
    cat <<EOF
$1
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

wait_port() {
    local i
    for i in $(seq 100); do
        "${inlab[@]}" python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "record_dialogs.sh: Postfix does not listen on port $1; see $2" >&2
    exit 1
}

# Commands that must see the dnsbl set's DNS run in a netlab host
# (../shared/tools/netlab.sh): its resolv.conf names the lab DNS.
inlab=()

start_postfix() { # ETC
    local etc=$1
    postfix -c "$etc" check
    "${inlab[@]}" postfix -c "$etc" start
    started+=("$etc")
}

# Replays DIR/*.txt (or the NAMEs given) into DIR/*.expected.
replay_all() { # DIR PORT [SUBMISSION]
    local dir=$1 port=$2 sub=${3:-0} t name n=0
    for t in "$dir"/*.txt; do
        name=$(basename "$t" .txt)
        if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$name"; then continue; fi
        "${inlab[@]}" python3 "$here/smtp_dialog.py" 127.0.0.1 "$port" "$t" --submission "$sub" >"$dir/$name.expected"
        n=$((n + 1))
    done
    echo "recorded $n dialogs in $dir"
}

netlab=$(cd "$here/../../shared/tools" 2>/dev/null && pwd)/netlab.sh
nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)

# ---------------------------------------------------------------- seed
# `record_seed level0`: the same main.cf without its compatibility_level line
# (level 0, Postfix's backwards-compatible defaults) and with relay control
# in smtpd_recipient_restrictions, which level 0 needs; tests/dialogs/level0/.
# `record_seed SET` (access, access-nodelay, dnsbl, policy): the seed plus
# tests/dialogs/SET/main.cf's lines and the tables of tests/dialogs/SET/tables/
# (else tests/dialogs/access/tables/) in the configuration directory.
record_seed() {
    local variant=${1:-seed} set=
    local d=$work/$variant port level="compatibility_level = 3.6" dialogs=$here/dialogs
    case $variant in
        seed | level0) ;;
        *) set=$variant; dialogs=$here/dialogs/$set ;;
    esac
    mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/vmail" "$d/log"
    chown postfix "$d/data"
    chown nobody:nogroup "$d/vmail"
    if [ "$variant" = level0 ]; then
        level="smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
        dialogs=$here/dialogs/level0
    fi
    port=$(free_port)
    # Server::seed's main.cf, line for line, with compatibility_level = 3.6
    # (the dialogs test passes the same line) and Postfix's own needs.
    cat >"$d/etc/main.cf" <<EOF
myhostname = mail.mydomain.com
mydomain = mydomain.com
myorigin = \$mydomain
mydestination = localhost, \$myhostname
smtpd_banner = \$myhostname ESMTP
inet_interfaces = loopback-only
mynetworks = 127.0.0.1/32
recipient_delimiter = +
queue_directory = $d/queue
maillog_file = $d/log/mail.log
alias_maps = hash:$d/etc/aliases
alias_database = hash:$d/etc/aliases
virtual_alias_maps = hash:$d/etc/virtual
virtual_mailbox_base = $d/vmail
virtual_mailbox_domains = $d/etc/virtual_domains
virtual_mailbox_maps = hash:$d/etc/virtual_maps
virtual_uid_maps = static:$nobody_uid
virtual_gid_maps = static:$nobody_gid
virtual_minimum_uid = 1
local_recipient_maps = \$virtual_mailbox_maps
$level
# Postfix's own: its user, a data directory of this instance
mail_owner = postfix
data_directory = $d/data
maillog_file_prefixes = $d
EOF
    master_cf "127.0.0.1:$port inet n - n - - smtpd" >"$d/etc/master.cf"
    printf 'root@mydomain.com       hoge@mydomain.com\npostadmin@mydomain.com   hoge@mydomain.com\n' >"$d/etc/virtual"
    printf 'mydomain.com\n' >"$d/etc/virtual_domains"
    printf 'hoge@mydomain.com mydomain.com/hoge/\n' >"$d/etc/virtual_maps"
    printf 'postmaster: root\n' >"$d/etc/aliases"
    postmap -c "$d/etc" "$d/etc/virtual"
    postmap -c "$d/etc" "$d/etc/virtual_maps"
    postalias -c "$d/etc" "$d/etc/aliases"
    if [ -n "$set" ]; then
        grep -v '^#' "$here/dialogs/$set/main.cf" >>"$d/etc/main.cf"
        local t tables=$here/dialogs/$set/tables
        [ -d "$tables" ] || tables=$here/dialogs/access/tables
        cp "$tables"/* "$d/etc/"
        for t in "$tables"/*; do
            if grep -q "hash:\$config_directory/$(basename "$t")" "$d/etc/main.cf"; then
                postmap -c "$d/etc" "$d/etc/$(basename "$t")"
            fi
        done
    fi
    if [ -f "$here/dialogs/$set/zone" ]; then
        # The set's DNS: a netlab host with the lab DNS serving the zone.
        export NETLAB_ID=yubinrec
        "$netlab" up rec 10.77.0.5 >/dev/null
        "$netlab" dns --ip 10.77.0.53 --no-host-records "$here/dialogs/$set/zone" >/dev/null
        inlab=("$netlab" exec rec)
    fi
    start_postfix "$d/etc"
    wait_port "$port" "$d/log/mail.log"
    replay_all "$dialogs" "$port"
    if [ -n "$set" ]; then
        # smtpd's policy log lines (reject, hold, discard, warn), without
        # time, pid and queue id: yubin's must be the same, in order.
        sleep 1
        sed -n 's/^.* postfix\/smtpd\[[0-9]*\]: //p' "$d/log/mail.log" |
            grep -E '^[0-9A-Z]+: (reject|hold|discard|warn|info): ' |
            sed -E 's/^[0-9A-F]{6,}: /QUEUEID: /' >"$here/dialogs/$set/smtpd.log.expected"
    fi
}

# ---------------------------------------------------------------- embedded
# The embedded default (crates/yubin/src/server/embedded.rs): port 2525 with
# STARTTLS offered, and submission (2587) with TLS required and AUTH after
# it. yubin's `smtpd_sasl_type = passwd-file` is Postfix's Dovecot SASL here,
# a Dovecot auth service reading the same passwd-file.
record_embedded() {
    local d=$work/embedded port sub
    mkdir -p "$d/etc/tls" "$d/etc/queue" "$d/data" "$d/etc/mail" "$d/etc/log" "$d/etc/spool" "$d/dovecot"
    chown postfix "$d/data"
    chown nobody:nogroup "$d/etc/mail"
    port=$(free_port)
    sub=$(free_port)
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.test \
        -keyout "$d/etc/tls/key.pem" -out "$d/etc/tls/cert.pem" 2>/dev/null
    cat >"$d/etc/main.cf" <<EOF
myhostname = mail.example.test
mydomain = example.test
myorigin = \$mydomain
mydestination = localhost, localhost.\$mydomain
inet_interfaces = loopback-only
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_banner = \$myhostname ESMTP \$mail_name
recipient_delimiter = +
queue_directory = \$config_directory/queue
maillog_file = \$config_directory/log/mail.log
mail_spool_directory = \$config_directory/spool
alias_maps = hash:\$config_directory/aliases
alias_database = hash:\$config_directory/aliases
local_recipient_maps = \$alias_maps
virtual_mailbox_domains = \$mydomain
virtual_mailbox_base = \$config_directory/mail
virtual_mailbox_maps = hash:\$config_directory/vmailbox
virtual_alias_maps = hash:\$config_directory/virtual
virtual_uid_maps = static:$nobody_uid
virtual_gid_maps = static:$nobody_gid
virtual_minimum_uid = 100
smtpd_tls_security_level = may
smtpd_tls_cert_file = \$config_directory/tls/cert.pem
smtpd_tls_key_file = \$config_directory/tls/key.pem
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = $d/dovecot/auth
smtpd_sasl_authenticated_header = yes
compatibility_level = 3.6
mail_owner = postfix
data_directory = $d/data
maillog_file_prefixes = $d
EOF
    master_cf "127.0.0.1:$port     inet  n       -       n       -       -       smtpd
127.0.0.1:$sub     inet  n       -       n       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject" >"$d/etc/master.cf"
    printf 'postmaster: root\nroot: admin@example.test\nMAILER-DAEMON: postmaster\n' >"$d/etc/aliases"
    printf 'postmaster@example.test    admin@example.test\nroot@example.test          admin@example.test\n' >"$d/etc/virtual"
    printf 'admin@example.test         example.test/admin/\n' >"$d/etc/vmailbox"
    # One user for the AUTH dialogs: admin@example.test, password "secret".
    printf 'admin@example.test:%s:%s:%s::%s::\n' "$(doveadm pw -s SHA512-CRYPT -p secret)" \
        "$nobody_uid" "$nobody_gid" "$d/etc/mail" >"$d/etc/users"
    postmap -c "$d/etc" "$d/etc/virtual"
    postmap -c "$d/etc" "$d/etc/vmailbox"
    postalias -c "$d/etc" "$d/etc/aliases"
    cat >"$d/dovecot/dovecot.conf" <<EOF
base_dir = $d/dovecot/run
state_dir = $d/dovecot/state
protocols = none
log_path = $d/dovecot/log
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%u $d/etc/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/etc/users
}
service auth {
  unix_listener $d/dovecot/auth {
    mode = 0666
  }
}
EOF
    mkdir -p "$d/dovecot/run" "$d/dovecot/state"
    dovecot -c "$d/dovecot/dovecot.conf" -F &
    dovecot_pid=$!
    for _ in $(seq 100); do [ -S "$d/dovecot/auth" ] && break; sleep 0.1; done
    [ -S "$d/dovecot/auth" ] || { echo "record_dialogs.sh: Dovecot did not start; see $d/dovecot/log" >&2; exit 1; }
    start_postfix "$d/etc"
    wait_port "$port" "$d/etc/log/mail.log"
    wait_port "$sub" "$d/etc/log/mail.log"
    replay_all "$here/dialogs/embedded" "$port" "$sub"
}

case $which in
    seed) record_seed ;;
    level0) record_seed level0 ;;
    embedded) record_embedded ;;
    access|access-nodelay|dnsbl|policy) record_seed "$which" ;;
    all) record_seed; record_seed level0; record_embedded; record_seed access; record_seed access-nodelay; record_seed dnsbl; record_seed policy ;;
    *) echo "usage: $0 [seed|level0|embedded|access|access-nodelay|dnsbl|policy|all] [NAME...]" >&2; exit 2 ;;
esac
