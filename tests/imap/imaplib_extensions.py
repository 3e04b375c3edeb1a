"""yubin's IMAP extensions with Python's imaplib as the client:
CONDSTORE and QRESYNC (RFC 7162), ESEARCH (RFC 4731), LIST-EXTENDED and
LIST-STATUS (RFC 5258, 5819), SPECIAL-USE (RFC 6154), QUOTA (RFC 9208) and
COMPRESS=DEFLATE (RFC 4978, over a plain socket with zlib).
Usage: imaplib_extensions.py IMAP_PORT USER PASSWORD
Prints OK on success; any failure raises."""
import imaplib, ssl, sys, re

imap_port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl._create_unverified_context()
MSG = b"From: a@example.org\r\nSubject: m%d\r\n\r\nbody %d\r\n"


def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


def untagged(c, name):
    """The untagged responses of type `name` the last command produced."""
    return [d.decode() if isinstance(d, bytes) else d for d in c.untagged_responses.pop(name, [])]


c = imaplib.IMAP4("127.0.0.1", imap_port)
c.starttls(ssl_context=ctx)
ok(c.login(user, password))
caps = ok(c.capability())[0].decode().split()
for cap in ("CONDSTORE", "QRESYNC", "ESEARCH", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "QUOTA",
            "COMPRESS=DEFLATE"):
    assert cap in caps, (cap, caps)

ok(c.create("Ext"))
for i in range(1, 6):
    ok(c.append("Ext", None, None, MSG % (i, i)))

# --- CONDSTORE ---------------------------------------------------------
data = ok(c.status("Ext", "(MESSAGES HIGHESTMODSEQ)"))
m = re.search(r"HIGHESTMODSEQ (\d+)", data[0].decode())
assert m and "MESSAGES 5" in data[0].decode(), data
ok(c._simple_command("ENABLE", "QRESYNC"))
assert untagged(c, "ENABLED") == ["QRESYNC"], c.untagged_responses
typ, data = c.select("Ext")
assert typ == "OK" and int(data[0]) == 5, data
hms = untagged(c, "HIGHESTMODSEQ")
assert hms and int(hms[0]) >= 1, hms
uidvalidity = int(untagged(c, "UIDVALIDITY")[0])
start = int(hms[0])

data = ok(c.uid("FETCH", "1:*", "(FLAGS MODSEQ)"))
modseqs = {int(re.search(rb"UID (\d+)", d).group(1)): int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data}
assert sorted(modseqs) == [1, 2, 3, 4, 5], data

# A conditional STORE that succeeds, then one that must fail (MODIFIED).
data = ok(c.uid("STORE", "2", "(UNCHANGEDSINCE %d)" % modseqs[2], "+FLAGS", "(\\Seen)"))
new2 = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
assert new2 > start, data
typ, data = c.uid("STORE", "2", "(UNCHANGEDSINCE %d)" % modseqs[2], "+FLAGS", "(\\Flagged)")
assert typ == "OK", (typ, data)
tagged = c.untagged_responses.pop("MODIFIED", None) or []
assert tagged == [b"2"], (tagged, c.untagged_responses)

data = ok(c.uid("FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % start))
assert len(data) == 1 and b"UID 2" in data[0] and b"\\Seen" in data[0], data
data = ok(c.uid("SEARCH", "MODSEQ", str(start + 1)))
assert data[0].startswith(b"2 (MODSEQ %d)" % new2), data

# --- ESEARCH ------------------------------------------------------------
ok(c.uid("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL"))
es = untagged(c, "ESEARCH")
assert es and es[0].endswith("UID MIN 1 MAX 5 ALL 1:5 COUNT 5"), es
ok(c.search(None, "RETURN", "(COUNT)", "SEEN"))
es = untagged(c, "ESEARCH")
assert es and es[0].endswith("COUNT 1"), es

# --- QRESYNC ------------------------------------------------------------
ok(c.store("3:4", "+FLAGS", "(\\Deleted)"))
ok(c.expunge())
vanished = untagged(c, "VANISHED")
assert vanished == ["3:4"], (vanished, c.untagged_responses)
assert not untagged(c, "EXPUNGE")
ok(c.select("INBOX"))
c.untagged_responses.clear()
# Resynchronise as a client that knew UIDs 1:5 at `start`.
ok(c._simple_command("SELECT", "Ext (QRESYNC (%d %d 1:5))" % (uidvalidity, start)))
vanished = untagged(c, "VANISHED")
assert vanished == ["(EARLIER) 3:4"], vanished
fetched = untagged(c, "FETCH")
assert len(fetched) == 1 and "UID 2 " in fetched[0] and "MODSEQ" in fetched[0], fetched
data = ok(c.uid("FETCH", "1:5", "(FLAGS)", "(CHANGEDSINCE %d VANISHED)" % start))
assert untagged(c, "VANISHED") == ["(EARLIER) 3:4"]

# --- LIST-EXTENDED, LIST-STATUS, SPECIAL-USE ---------------------------
ok(c.subscribe("Ext"))
data = ok(c._simple_command("LIST", '(SUBSCRIBED) "" "*"', "RETURN", "(STATUS (MESSAGES UIDNEXT))"))
lists = untagged(c, "LIST")
statuses = untagged(c, "STATUS")
assert any(l.endswith('"/" Ext') and "\\Subscribed" in l for l in lists), lists
assert any(l.endswith('"/" INBOX') and "\\Subscribed" in l for l in lists), lists
assert any(s.startswith("Ext (MESSAGES 3 UIDNEXT 6)") for s in statuses), statuses
ok(c._simple_command("LIST", '(SPECIAL-USE) "" "*"'))
lists = untagged(c, "LIST")
assert sorted(l.rsplit(" ", 1)[1] for l in lists) == ["Archive", "Drafts", "Junk", "Sent", "Trash"], lists
ok(c._simple_command("LIST", '"" ("INBOX" "Sent")', "RETURN", "(SPECIAL-USE CHILDREN)"))
lists = untagged(c, "LIST")
assert len(lists) == 2 and any("\\Sent" in l for l in lists), lists

# --- QUOTA --------------------------------------------------------------
data = ok(c.getquotaroot("INBOX"))
assert data[0][0].decode() == 'INBOX ""', data
quota = data[1][0].decode()
m = re.match(r'"" \(STORAGE (\d+) (\d+) MESSAGE (\d+) (\d+)\)', quota)
assert m, quota
assert int(m.group(2)) == 1024 and int(m.group(4)) == 100 and int(m.group(3)) >= 3, quota
data = ok(c._simple_command("GETQUOTA", '""'))
assert c.untagged_responses.pop("QUOTA")[0].decode() == quota
typ, data = c._simple_command("SETQUOTA", '"" (STORAGE 10)')
assert typ == "NO", data
# More than the 1 MiB the quota allows: refused with OVERQUOTA.
typ, data = c.append("Ext", None, None, b"Subject: big\r\n\r\n" + b"x" * 1100000 + b"\r\n")
assert typ == "NO" and b"OVERQUOTA" in data[0], (typ, data)

c.logout()

# --- COMPRESS=DEFLATE (RFC 4978) ------------------------------------------
# imaplib has no COMPRESS, so a plain socket with zlib's raw deflate.
import socket, zlib

raw = socket.create_connection(("127.0.0.1", imap_port))
rf = raw.makefile("rb")
assert rf.readline().startswith(b"* OK")
raw.sendall(b"a STARTTLS\r\n")
assert rf.readline().startswith(b"a OK")
tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
tf = tls.makefile("rb")
tls.sendall(b"b LOGIN %s %s\r\n" % (user.encode(), password.encode()))
assert tf.readline().startswith(b"b OK")
tls.sendall(b"c COMPRESS DEFLATE\r\n")
assert tf.readline().startswith(b"c OK"), "COMPRESS refused"
z_out, z_in = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
pending = b""


def zsend(line):
    tls.sendall(z_out.compress(line) + z_out.flush(zlib.Z_SYNC_FLUSH))


def zread_until(tag):
    global pending
    lines = []
    while True:
        while b"\r\n" in pending:
            line, pending = pending.split(b"\r\n", 1)
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines
        data = tls.recv(65536)
        assert data, "connection closed"
        pending += z_in.decompress(data)


zsend(b"d SELECT Ext\r\n")
lines = zread_until(b"d")
assert lines[-1].startswith(b"d OK") and b"* 3 EXISTS" in lines, lines
zsend(b"e UID FETCH 5 (BODY.PEEK[])\r\n")
lines = zread_until(b"e")
assert lines[-1].startswith(b"e OK") and any(b"body 5" in l for l in lines), lines
zsend(b"f COMPRESS DEFLATE\r\n")
lines = zread_until(b"f")
assert lines[-1].startswith(b"f NO [COMPRESSIONACTIVE]"), lines
zsend(b"g LOGOUT\r\n")
assert zread_until(b"g")[-1].startswith(b"g OK")
tls.close()
print("OK")
