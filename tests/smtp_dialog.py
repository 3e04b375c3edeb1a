#!/usr/bin/env python3
"""Replays an SMTP dialog and prints what the server answered.

Usage: smtp_dialog.py HOST PORT DIALOG [--source IP] [--submission PORT]

DIALOG holds one client line per line (sent with CRLF), each followed by
reading one reply. Special lines:

  # text            a comment
  #: source IP      connect from this local address (e.g. 127.0.0.2, a
                    client outside mynetworks)
  #: submission     connect to the --submission port instead of PORT
  <DATA>            a small message body terminated by CRLF.CRLF
  <SEND N:EXPR>     send the Python bytes expression EXPR as it is (no CRLF
                    added) and read N replies (N may be 0), for BDAT chunks,
                    pipelining, long lines, bare LF: <SEND 1:b"BDAT 5\\r\\nhello">
  <TLS>             start TLS on the socket (after a 220 to STARTTLS)

Output: "S: reply line" for every server line, "C: line" for what was sent,
so the same dialog against Postfix and yubin can be diffed. A closed
connection prints "S: (connection closed)" and a server that does not
answer within 10 seconds "S: (timeout)"; both end the dialog. Used by
tests/record_dialogs.sh to record tests/dialogs/**/*.expected from a real
Postfix 3.7 and by crates/yubin/tests/dialogs.rs to check yubin against them.
"""
import socket
import ssl
import sys


class Ended(Exception):
    pass


def read_reply(f):
    lines = []
    while True:
        try:
            line = f.readline()
        except (socket.timeout, TimeoutError):
            lines.append("(timeout)")
            raise Ended(lines)
        except (ConnectionError, ssl.SSLError):
            line = b""
        if not line:
            lines.append("(connection closed)")
            raise Ended(lines)
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def show(lines):
    for l in lines:
        print("S: " + l)


def send(s, data):
    # The server may have closed already (after 421): what it said before
    # is still to be read, so a failed write is not the end.
    try:
        s.sendall(data)
    except (ConnectionError, ssl.SSLError):
        pass


def evaluate(expr):
    # Only literals and +, * on them: b"x" * 1000 + b"\r\n".
    value = eval(compile(expr, "<dialog>", "eval"), {"__builtins__": {}}, {})
    if not isinstance(value, bytes):
        raise SystemExit("<SEND> needs a bytes expression: " + expr)
    return value


def main():
    host, port, dialog = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    source = None
    if "--source" in sys.argv:
        source = sys.argv[sys.argv.index("--source") + 1]
    lines = open(dialog, encoding="utf-8").read().split("\n")
    for line in lines:
        if line.startswith("#: source "):
            source = line.split()[2]
        elif line.strip() == "#: submission":
            port = int(sys.argv[sys.argv.index("--submission") + 1])
    s = socket.create_connection((host, port), timeout=10, source_address=(source, 0) if source else None)
    f = s.makefile("rb")
    try:
        show(read_reply(f))
        for cmd in lines:
            if not cmd or cmd.startswith("#"):
                continue
            replies = 1
            if cmd == "<DATA>":
                print("C: <message>")
                send(s, b"Subject: test\r\n\r\nhello\r\n.\r\n")
            elif cmd == "<TLS>":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s, server_hostname=host)
                f = s.makefile("rb")
                print("C: <tls>")
                continue
            elif cmd.startswith("<SEND ") and cmd.endswith(">"):
                n, expr = cmd[6:-1].split(":", 1)
                replies = int(n)
                print("C: " + cmd)
                send(s, evaluate(expr))
            else:
                print("C: " + cmd)
                send(s, cmd.encode() + b"\r\n")
            for _ in range(replies):
                show(read_reply(f))
            if cmd.upper() == "QUIT":
                break
    except Ended as e:
        show(e.args[0])
    s.close()


if __name__ == "__main__":
    main()
