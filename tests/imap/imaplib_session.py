"""A full IMAP session with Python's imaplib against yubin: STARTTLS,
LOGIN, LIST (special-use), SELECT, FETCH, STORE, SEARCH, COPY/MOVE,
EXPUNGE, APPEND and IDLE (new mail delivered by SMTP during IDLE).
Usage: imaplib_session.py IMAP_PORT SMTP_PORT USER PASSWORD
Prints OK on success; any failure raises."""
import imaplib, smtplib, ssl, sys, time, re

imap_port, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl._create_unverified_context()

c = imaplib.IMAP4("127.0.0.1", imap_port)
assert "LOGINDISABLED" in c.capabilities, c.capabilities
c.starttls(ssl_context=ctx)
typ, data = c.login(user, password)
assert typ == "OK", data

typ, boxes = c.list()
boxes = [b.decode() for b in boxes]
for want in ['(\\HasNoChildren \\Sent) "/" Sent', '(\\HasNoChildren \\Trash) "/" Trash',
             '(\\HasNoChildren \\Drafts) "/" Drafts', '(\\HasNoChildren \\Junk) "/" Junk',
             '(\\HasNoChildren \\Archive) "/" Archive', '(\\HasNoChildren) "/" INBOX']:
    assert want in boxes, (want, boxes)

typ, data = c.select("INBOX")
assert typ == "OK" and int(data[0]) == 2, data

typ, data = c.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK", data
subjects = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
assert subjects == ["Subject: first", "Subject: second"], subjects

typ, data = c.fetch("1", "(BODY[])")
body = data[0][1]
assert b"Subject: first" in body and b"\r\n\r\nhello one" in body, body
typ, data = c.fetch("1", "(FLAGS)")
assert b"\\Seen" in data[0], data

typ, data = c.uid("STORE", "2", "+FLAGS", "(\\Flagged $Work)")
assert typ == "OK" and b"\\Flagged" in data[0] and b"$Work" in data[0], data
typ, data = c.search(None, "FLAGGED")
assert data == [b"2"], data
typ, data = c.search(None, "SUBJECT", "first")
assert data == [b"1"], data

typ, data = c.copy("1", "Archive")
assert typ == "OK", data
typ, data = c._simple_command("MOVE", "2", "Trash")
assert typ == "OK", data
assert c.select("INBOX")[1] == [b"1"]
typ, data = c.status("Trash", "(MESSAGES UNSEEN)")
assert data == [b"Trash (MESSAGES 1 UNSEEN 1)"], data

c.store("1", "+FLAGS", "(\\Deleted)")
typ, data = c.expunge()
assert typ == "OK" and data == [b"1"], data

typ, data = c.append("Drafts", "(\\Draft)", None, b"Subject: draft\r\n\r\nunsent\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data

# IDLE: new mail delivered by SMTP while idling is reported.
tag = c._new_tag()
c.send(tag + b" IDLE\r\n")
assert c.readline().startswith(b"+"), "no continuation"
s = smtplib.SMTP("127.0.0.1", smtp_port)
s.sendmail("someone@example.org", [user], "Subject: during idle\r\n\r\nping\r\n")
s.quit()
t0 = time.time()
# A generous bound, not a measurement: a loaded machine may take a while.
c.sock.settimeout(60)
# Other untagged data (FLAGS, FETCH) may come first; EXISTS must come.
while True:
    line = c.readline()
    assert line, "connection closed during IDLE"
    if re.match(rb"\* 1 EXISTS", line):
        break
    assert line.startswith(b"* "), line
waited = time.time() - t0
c.sock.settimeout(None)
c.send(b"DONE\r\n")
while True:
    line = c.readline()
    if line.startswith(tag):
        assert b"OK" in line, line
        break
typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"during idle" in data[0][1], data
c.logout()
print("OK idle-wait=%.2fs" % waited)
