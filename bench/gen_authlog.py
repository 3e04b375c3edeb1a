#!/usr/bin/env python3
"""yubin's own auth.log generator for bench/guard.sh (and anyone who wants a
large, realistic-looking sshd log to test a brute-force blocker on).

Writes Debian-style syslog lines from OpenSSH's sshd as it logs them
(auth.c and auth2.c of OpenSSH 8.x/9.x): per connection one pid and the lines
that connection really produces, so that per-pid logic (guard's connection
tracker) sees real sequences. Kinds of connection:

  invalid   "Invalid user U from A port P", PAM "check pass; user unknown",
            "Failed password for invalid user U from A port P ssh2",
            "Connection closed by invalid user U A port P [preauth]"
  root      "Failed password for root from A port P ssh2" (x1-3), then
            "Connection closed by authenticating user root A port P [preauth]"
  valid     the same for an existing user (alice, bob, ...) with a wrong password
  success   "Accepted publickey for alice from A port P ssh2: ED25519 SHA256:..."
            and pam_unix session opened/closed
  noise     cron and sudo PAM sessions, systemd-logind, "Received disconnect",
            "Connection closed by A port P [preauth]" (scanners, no user)

Attackers come from --attackers addresses in 203.0.113.0/24-like public
looking ranges (text only, never contacted); legitimate users from
198.51.100.1-40. With the default pool most attackers try root at least
once, so they cross DenyHosts' DENY_THRESHOLD_ROOT (1) and guard has many
hosts to decide on, write and report: the case issue 16 item 5 measures.

  python3 bench/gen_authlog.py -n 200000 -o /tmp/auth.log [--seed 1] [--attackers 20000]

Deterministic for a given seed. The summary goes to stderr.
"""

import argparse
import random
import sys

INVALID = ["admin", "test", "user", "oracle", "postgres", "ubuntu", "guest", "git",
           "pi", "support", "deploy", "hadoop", "jenkins", "nagios", "ftpuser", "www"]
VALID = ["alice", "bob", "carol", "backup"]
HOST = "mail"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200000, help="lines to write (at least)")
    ap.add_argument("-o", default="-", help="output file (default stdout)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attackers", type=int, default=20000, help="attacking addresses")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    out = sys.stdout if a.o == "-" else open(a.o, "w")

    def addr(i):
        # Spread over several /16s so that /24 grouping does not merge them.
        return f"{45 + i % 150}.{(i // 150) % 250 + 1}.{(i * 7) % 250 + 1}.{i % 200 + 20}"

    attackers = [addr(i) for i in range(a.attackers)]
    friends = [f"198.51.100.{i}" for i in range(1, 41)]
    t = 1_700_000_000 - 86400 * 200  # some day in the spring of 2023
    pid = 1000
    written = 0
    counts = {"invalid": 0, "root": 0, "valid": 0, "success": 0, "noise": 0}
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    import time as _time

    def stamp():
        tm = _time.gmtime(t)
        return f"{months[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"

    def emit(prog, p, msg):
        nonlocal written
        out.write(f"{stamp()} {HOST} {prog}[{p}]: {msg}\n")
        written += 1

    while written < a.n:
        t += rnd.randint(0, 3)
        pid = pid + rnd.randint(1, 9) if pid < 4_000_000 else 1000
        port = rnd.randint(1024, 65535)
        r = rnd.random()
        if r < 0.40:
            ip, u = rnd.choice(attackers), rnd.choice(INVALID)
            emit("sshd", pid, f"Invalid user {u} from {ip} port {port}")
            emit("sshd", pid, f"pam_unix(sshd:auth): check pass; user unknown")
            emit("sshd", pid, f"Failed password for invalid user {u} from {ip} port {port} ssh2")
            emit("sshd", pid, f"Connection closed by invalid user {u} {ip} port {port} [preauth]")
            counts["invalid"] += 1
        elif r < 0.62:
            ip = rnd.choice(attackers)
            for _ in range(rnd.randint(1, 3)):
                emit("sshd", pid, f"Failed password for root from {ip} port {port} ssh2")
            emit("sshd", pid, f"Connection closed by authenticating user root {ip} port {port} [preauth]")
            counts["root"] += 1
        elif r < 0.70:
            ip, u = rnd.choice(attackers + friends), rnd.choice(VALID)
            emit("sshd", pid, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={u}")
            emit("sshd", pid, f"Failed password for {u} from {ip} port {port} ssh2")
            emit("sshd", pid, f"Connection closed by authenticating user {u} {ip} port {port} [preauth]")
            counts["valid"] += 1
        elif r < 0.80:
            ip, u = rnd.choice(friends), rnd.choice(VALID)
            fp = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43))
            emit("sshd", pid, f"Accepted publickey for {u} from {ip} port {port} ssh2: ED25519 SHA256:{fp}")
            emit("sshd", pid, f"pam_unix(sshd:session): session opened for user {u}(uid={1000 + VALID.index(u)}) by (uid=0)")
            emit("systemd-logind", 411, f"New session {pid} of user {u}.")
            emit("sshd", pid, f"Received disconnect from {ip} port {port}:11: disconnected by user")
            emit("sshd", pid, f"pam_unix(sshd:session): session closed for user {u}")
            counts["success"] += 1
        else:
            k = rnd.random()
            if k < 0.4:
                emit("CRON", pid, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
                emit("CRON", pid, "pam_unix(cron:session): session closed for user root")
            elif k < 0.6:
                emit("sudo", pid, "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update")
                emit("sudo", pid, "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)")
                emit("sudo", pid, "pam_unix(sudo:session): session closed for user root")
            else:
                ip = rnd.choice(attackers)
                emit("sshd", pid, f"Connection closed by {ip} port {port} [preauth]")
            counts["noise"] += 1
    if out is not sys.stdout:
        out.close()
    print(f"{written} lines; connections: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; {a.attackers} attacking addresses", file=sys.stderr)


if __name__ == "__main__":
    main()
