#!/usr/bin/env python3
"""Replays an SMTP dialog and prints what the server answered.

Usage: smtp_dialog.py HOST PORT DIALOG [--source IP]

DIALOG holds one client line per line (sent with CRLF); a line "<DATA>" sends
a small message body terminated by CRLF.CRLF; "#" lines are comments. Output:
"S: reply line" for every server line, "C: line" for what was sent, so the
same dialog against Postfix and yubin can be diffed. Used to record the
expected replies in tests/dialogs/*.expected from a real Postfix 3.7 and to
check yubin against them.
"""
import socket
import sys


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            lines.append("(connection closed)")
            return lines
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def main():
    host, port, dialog = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    source = None
    if "--source" in sys.argv:
        source = sys.argv[sys.argv.index("--source") + 1]
    s = socket.create_connection((host, port), timeout=10, source_address=(source, 0) if source else None)
    f = s.makefile("rb")
    for l in read_reply(f):
        print("S: " + l)
    for cmd in open(dialog, encoding="utf-8"):
        cmd = cmd.rstrip("\n")
        if not cmd or cmd.startswith("#"):
            continue
        if cmd == "<DATA>":
            s.sendall(b"Subject: test\r\n\r\nhello\r\n.\r\n")
            print("C: <message>")
        else:
            s.sendall(cmd.encode() + b"\r\n")
            print("C: " + cmd)
        for l in read_reply(f):
            print("S: " + l)
        if cmd.upper() == "QUIT":
            break
    s.close()


if __name__ == "__main__":
    main()
