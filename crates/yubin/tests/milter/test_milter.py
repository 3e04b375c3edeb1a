#!/usr/bin/env python3
"""A small milter (Sendmail milter protocol 6) for yubin's tests.

usage: test_milter.py PORTFILE EVENTLOG MODE

Listens on 127.0.0.1 (a free port, written to PORTFILE), records every
command it gets in EVENTLOG ("C <hex of data>" per line), and answers by
MODE:
  edit        continue everywhere; at end of message add, insert and change
              headers, add and delete recipients, replace the body
  reject-rcpt REPLYCODE "550 5.7.1 No such user here" for recipients with
              "bad" in them
  quarantine  QUARANTINE at end of message
  garbage     answer the negotiation with bytes that are no milter frame
  hang        negotiate, then never answer
  huge        answer the negotiation with a 4 GB length
  reject-connect  REJECT the connection (Postfix then refuses MAIL FROM)
  shutdown    SHUTDOWN at connect (421, connection closed)
"""
import socket
import struct
import sys
import threading

portfile, eventlog, mode = sys.argv[1], sys.argv[2], sys.argv[3]
lock = threading.Lock()


def log(cmd, data):
    with lock, open(eventlog, "a") as f:
        f.write("%s %s\n" % (chr(cmd), data.hex()))


def frame(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(s):
    try:
        while True:
            head = read_exact(s, 4)
            if head is None:
                return
            (n,) = struct.unpack(">I", head)
            body = read_exact(s, n)
            if body is None:
                return
            cmd, data = body[0], body[1:]
            log(cmd, data)
            c = chr(cmd)
            if c == "O":
                if mode == "garbage":
                    s.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                    continue
                if mode == "huge":
                    s.sendall(b"\xff\xff\xff\xffO")
                    continue
                # version 6, all actions offered, no protocol steps left out
                s.sendall(frame(b"O", struct.pack(">III", 6, 0x1FF, 0)))
            elif mode == "hang":
                continue
            elif c in "DA":
                continue  # macros and abort get no reply
            elif c == "Q":
                return
            elif c == "C" and mode == "reject-connect":
                s.sendall(frame(b"r"))
            elif c == "C" and mode == "shutdown":
                s.sendall(frame(b"4"))
            elif c == "R" and mode == "reject-rcpt" and b"bad" in data:
                s.sendall(frame(b"y", b"550 5.7.1 No such user here\0"))
            elif c == "E":
                out = b""
                if mode == "edit":
                    out += frame(b"h", b"X-Test-Milter\0edited\0")
                    out += frame(b"i", struct.pack(">I", 0) + b"X-Inserted\0first\0")
                    out += frame(b"m", struct.pack(">I", 1) + b"Subject\0[milter] changed\0")
                    out += frame(b"+", b"<hoge+added@mydomain.com>\0")
                    out += frame(b"-", b"<hoge+gone@mydomain.com>\0")
                    out += frame(b"b", b"replaced body\r\n")
                if mode == "quarantine":
                    out += frame(b"q", b"test quarantine\0")
                s.sendall(out + frame(b"c"))
            else:
                s.sendall(frame(b"c"))
    except OSError:
        return
    finally:
        s.close()


def main():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


main()
