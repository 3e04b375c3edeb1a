#!/usr/bin/env python3
"""A small SMTP server for yubin send's black-box tests.

It answers with the exact replies of the Postfix server in the seed document
(shared/seeds/), so that transcripts can be compared line by line with the
seed's, and it can optionally reject RCPT with the seed's 550, speak
STARTTLS or TLS-on-connect (Python's ssl module), and check AUTH PLAIN,
LOGIN and CRAM-MD5 credentials. It listens on 127.0.0.1 (port printed on
stdout), on a UNIX socket (--unix PATH), or speaks on stdin/stdout (--stdio).
"""
import argparse, base64, hmac, os, socket, ssl, sys, threading

EHLO = ["mail.mydomain.com", "PIPELINING", "SIZE 10485760", "VRFY", "ETRN",
        "STARTTLS", "AUTH CRAM-MD5 PLAIN LOGIN", "ENHANCEDSTATUSCODES",
        "8BITMIME", "DSN", "SMTPUTF8"]
REJECT = ("550 5.1.1 <{rcpt}>: Recipient address rejected: "
          "User unknown in virtual mailbox table")
CHALLENGE = b"<1896.697170952@mail.mydomain.com>"


class Session:
    def __init__(self, args, rfile, wfile, sock=None):
        self.a, self.r, self.w, self.sock = args, rfile, wfile, sock
        self.tls = False

    def send(self, line):
        self.w.write((line + "\r\n").encode())
        self.w.flush()

    def readline(self):
        line = self.r.readline(8192)
        if not line:
            raise EOFError
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def starttls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.a.cert, self.a.key)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.r = self.sock.makefile("rb")
        self.w = self.sock.makefile("wb")
        self.tls = True

    def auth(self, words):
        mech = words[1].upper() if len(words) > 1 else ""
        user, pw = (self.a.auth or ":").split(":", 1)
        if mech == "PLAIN":
            blob = words[2] if len(words) > 2 else (self.send("334 ") or self.readline())
            parts = base64.b64decode(blob).split(b"\0")
            ok = parts[1:] == [user.encode(), pw.encode()]
        elif mech == "LOGIN":
            self.send("334 VXNlcm5hbWU6")
            u = base64.b64decode(self.readline())
            self.send("334 UGFzc3dvcmQ6")
            p = base64.b64decode(self.readline())
            ok = (u, p) == (user.encode(), pw.encode())
        elif mech == "CRAM-MD5":
            self.send("334 " + base64.b64encode(CHALLENGE).decode())
            resp = base64.b64decode(self.readline()).decode()
            digest = hmac.new(pw.encode(), CHALLENGE, "md5").hexdigest()
            ok = resp == user + " " + digest
        else:
            self.send("504 5.5.4 Unsupported authentication mechanism")
            return
        self.send("235 2.7.0 Authentication successful" if ok
                  else "535 5.7.8 Error: authentication failed: authentication failure")

    def run(self):
        if self.a.tls_on_connect:
            self.starttls()
        self.send("220 mail.mydomain.com ESMTP")
        while True:
            line = self.readline()
            words = line.split()
            verb = words[0].upper() if words else ""
            if verb in ("EHLO", "LHLO"):
                caps = [c for c in EHLO if not (c == "STARTTLS" and (self.tls or not self.a.cert))]
                if not self.a.auth:
                    caps = [c for c in caps if not c.startswith("AUTH")]
                for c in caps[:-1]:
                    self.send("250-" + c)
                self.send("250 " + caps[-1])
            elif verb == "HELO":
                self.send("250 mail.mydomain.com")
            elif verb == "STARTTLS" and self.a.cert and not self.tls:
                self.send("220 2.0.0 Ready to start TLS")
                self.starttls()
            elif verb == "AUTH":
                self.auth(words)
            elif verb == "MAIL":
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpt = line.split("<", 1)[-1].rstrip(">")
                if self.a.reject_rcpt:
                    self.send(REJECT.format(rcpt=rcpt))
                else:
                    self.send("250 2.1.5 Ok")
            elif verb == "DATA":
                self.send("354 End data with <CR><LF>.<CR><LF>")
                while self.readline() != ".":
                    pass
                self.send("250 2.0.0 Ok: queued as " + self.a.queue_id)
            elif verb == "RSET":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")


def serve(args, conn):
    try:
        Session(args, conn.makefile("rb"), conn.makefile("wb"), conn).run()
    except (EOFError, OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reject-rcpt", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls-on-connect", action="store_true")
    p.add_argument("--auth", help="USER:PASSWORD to accept")
    p.add_argument("--queue-id", default="A438C186C09")
    p.add_argument("--unix")
    p.add_argument("--stdio", action="store_true")
    a = p.parse_args()
    if a.stdio:
        try:
            Session(a, sys.stdin.buffer, sys.stdout.buffer).run()
        except EOFError:
            pass
        return
    if a.unix:
        s = socket.socket(socket.AF_UNIX)
        s.bind(a.unix)
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(a.unix or s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(a, conn), daemon=True).start()


if __name__ == "__main__":
    main()
