"""IMAP mailbox state for the Dovecot interop check: dump or mutate.
  state.py PORT dump          -> JSON: folders, UIDVALIDITY, UID -> flags, subscriptions
  state.py PORT mutate-yubin  -> changes made through yubin
  state.py PORT mutate-dovecot-> changes made through Dovecot
User testuser / pass, plaintext LOGIN (loopback test servers)."""
import imaplib, json, re, sys

port, what = int(sys.argv[1]), sys.argv[2]
c = imaplib.IMAP4("127.0.0.1", port)
c.login("testuser", "pass")

def folders():
    out = []
    for line in c.list()[1]:
        m = re.match(rb'\((.*?)\) "(.)" "?(.*?)"?$', line)
        if b"\\Noselect" not in m.group(1):
            out.append(m.group(3).decode())
    return sorted(out)

def msg(subject, body="hello"):
    return ("From: a@example.org\r\nTo: testuser@example.org\r\nSubject: %s\r\n\r\n%s\r\n" % (subject, body)).encode()

if what == "dump":
    state = {"folders": {}, "subscribed": sorted(
        re.match(rb'\(.*?\) "." "?(.*?)"?$', l).group(1).decode() for l in c.lsub()[1] if l)}
    for f in folders():
        typ, st = c.status('"%s"' % f, "(UIDVALIDITY UIDNEXT MESSAGES)")
        c.select('"%s"' % f, readonly=True)
        msgs = {}
        typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for d in data:
            if isinstance(d, tuple):
                uid = int(re.search(rb"UID (\d+)", d[0]).group(1))
                flags = sorted(x.decode() for x in re.search(rb"FLAGS \((.*?)\)", d[0]).group(1).split() if x != b"\\Recent")
                msgs[uid] = [flags, d[1].decode().strip()]
        items = st[0].decode().split("(", 1)[1].rstrip(")").split()
        status = dict(zip(items[::2], items[1::2]))
        state["folders"][f] = {"status": status, "messages": msgs}
    print(json.dumps(state, sort_keys=True, indent=1))
elif what == "mutate-yubin":
    c.create("Work/Reports")
    c.subscribe("Work/Reports")
    c.append("INBOX", "(\\Seen)", None, msg("one"))
    c.append("INBOX", "(\\Flagged $Work)", None, msg("two"))
    c.append("INBOX", None, None, msg("three"))
    c.append("Work/Reports", "(\\Answered \\Seen)", None, msg("report"))
    c.select("INBOX")
    c.store("3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.append("INBOX", "(\\Draft)", None, msg("four"))
elif what == "mutate-dovecot":
    c.create("FromDovecot")
    c.append("FromDovecot", "(\\Seen $Dove)", None, msg("dovecot wrote this"))
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Answered $Later)")
    c.uid("STORE", "2", "-FLAGS", "(\\Flagged)")
    c.append("INBOX", None, None, msg("five"))
    c.uid("MOVE", "4", "Work/Reports")
c.logout()
