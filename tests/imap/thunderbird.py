#!/usr/bin/env python3
"""Thunderbird against yubin's IMAP service, without the account wizard.

    thunderbird.py profile DIR PORT USER PASSWORD SMTP_PORT
        Writes a Thunderbird profile in DIR whose prefs.js holds one IMAP
        account (127.0.0.1:PORT, no TLS, normal password) and an outgoing
        server (127.0.0.1:SMTP_PORT, no authentication: the test's smtpd
        relays for 127.0.0.1), and whose password manager (key4.db +
        logins.json) holds USER's PASSWORD, so that Thunderbird logs in at
        start without a prompt.

    thunderbird.py run DIR STOPFILE SCREENSHOT DEADLINE_SECS
        Run under xvfb-run: starts Thunderbird on the profile, waits until
        STOPFILE exists (the test creates it once the server saw what it
        wanted) or the deadline passes, saves a screenshot of the screen to
        SCREENSHOT (ImageMagick's import) and stops Thunderbird.

    thunderbird.py send DIR STOPFILE SCREENSHOT DEADLINE_SECS TO SUBJECT BODY
        Run under xvfb-run: starts Thunderbird's compose window with TO,
        SUBJECT and BODY filled in, presses Ctrl+Return in it (xdotool) to
        send, then as `run`.

The password is encrypted the way Thunderbird's login manager does it
(NSS's SDR, PK11SDR_Encrypt, with the key in the profile's key4.db and an
empty primary password), using the NSS that Thunderbird ships, so the files
are what Thunderbird itself would have written.
"""

import base64
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid

TB_LIB = "/usr/lib/thunderbird"


class SECItem(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint), ("data", ctypes.c_void_p), ("len", ctypes.c_uint)]


def sdr_encrypt(profile, texts):
    # Thunderbird's libnss3 needs its own libnssutil3 (newer than Debian's).
    if TB_LIB not in os.environ.get("LD_LIBRARY_PATH", ""):
        env = dict(os.environ, LD_LIBRARY_PATH=TB_LIB)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    nss = ctypes.CDLL(os.path.join(TB_LIB, "libnss3.so"))
    if nss.NSS_InitReadWrite(("sql:" + profile).encode()) != 0:
        raise SystemExit("NSS_InitReadWrite failed")
    nss.PK11_GetInternalKeySlot.restype = ctypes.c_void_p
    nss.PK11_NeedUserInit.argtypes = [ctypes.c_void_p]
    nss.PK11_InitPin.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    slot = nss.PK11_GetInternalKeySlot()
    if nss.PK11_NeedUserInit(slot):
        # An empty primary password, as a fresh Thunderbird profile has.
        if nss.PK11_InitPin(slot, None, b"") != 0:
            raise SystemExit("PK11_InitPin failed")
    out = []
    for t in texts:
        b = t.encode()
        buf = ctypes.create_string_buffer(b, len(b))
        inp = SECItem(0, ctypes.cast(buf, ctypes.c_void_p), len(b))
        keyid = SECItem(0, None, 0)
        res = SECItem(0, None, 0)
        if nss.PK11SDR_Encrypt(ctypes.byref(keyid), ctypes.byref(inp), ctypes.byref(res), None) != 0:
            raise SystemExit("PK11SDR_Encrypt failed")
        out.append(base64.b64encode(ctypes.string_at(res.data, res.len)).decode())
    nss.NSS_Shutdown()
    return out


def prefs(port, user, smtp_port):
    p = {
        # The IMAP account (mailnews.js names; authMethod 3 is
        # nsMsgAuthMethod.passwordCleartext, socketType 0 is plain TCP).
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.server": "server1",
        "mail.account.account1.identities": "id1",
        "mail.account.account2.server": "server2",
        "mail.identity.id1.fullName": "Hoge",
        "mail.identity.id1.useremail": user,
        "mail.identity.id1.valid": True,
        "mail.identity.id1.smtpServer": "smtp1",
        # Plain text, so no HTML-or-text question at sending.
        "mail.identity.id1.compose_html": False,
        "mail.smtpservers": "smtp1",
        "mail.smtp.defaultserver": "smtp1",
        "mail.smtpserver.smtp1.hostname": "127.0.0.1",
        "mail.smtpserver.smtp1.port": smtp_port,
        "mail.smtpserver.smtp1.authMethod": 1,
        "mail.smtpserver.smtp1.try_ssl": 0,
        "mail.smtpserver.smtp1.username": "",
        # Ctrl+Return sends without "are you sure".
        "mail.warn_on_send_accel_key": False,
        "mail.server.server1.type": "imap",
        "mail.server.server1.hostname": "127.0.0.1",
        "mail.server.server1.port": port,
        "mail.server.server1.userName": user,
        "mail.server.server1.name": "yubin",
        "mail.server.server1.socketType": 0,
        "mail.server.server1.authMethod": 3,
        "mail.server.server1.directory-rel": "[ProfD]ImapMail/127.0.0.1",
        "mail.server.server1.login_at_startup": True,
        "mail.server.server1.check_new_mail": True,
        "mail.server.server1.offline_download": True,
        # Off by default in Thunderbird; on here so that it exercises
        # yubin's RFC 7162 CONDSTORE (ENABLE, SELECT (CONDSTORE), CHANGEDSINCE).
        "mail.server.server1.use_condstore": True,
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mail.server.server2.directory-rel": "[ProfD]Mail/Local Folders",
        # No first-run dialogs, tabs or network fetches.
        "mail.shell.checkDefaultClient": False,
        "mail.provider.enabled": False,
        "mail.rights.version": 1,
        "mailnews.start_page.enabled": False,
        "mail.inappnotifications.enabled": False,
        "mail.biff.play_sound": False,
        "mail.biff.show_alert": False,
        "app.update.auto": False,
        "app.update.disabledForTesting": True,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.healthreport.uploadEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "browser.shell.checkDefaultBrowser": False,
        "extensions.update.enabled": False,
        "network.dns.disableIPv6": True,
        "network.connectivity-service.enabled": False,
        "network.captive-portal-service.enabled": False,
        "messenger.startup.action": 0,
        "mail.startup.enabledMailCheckOnce": True,
        "mailnews.auto_config.guess.enabled": False,
    }
    lines = []
    for k, v in p.items():
        lines.append("user_pref(%s, %s);" % (json.dumps(k), json.dumps(v)))
    return "\n".join(lines) + "\n"


def make_profile(d, port, user, password, smtp_port):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prefs.js"), "w") as f:
        f.write(prefs(int(port), user, int(smtp_port)))
    enc_user, enc_pass = sdr_encrypt(d, [user, password])
    now = int(time.time() * 1000)
    origin = "imap://127.0.0.1"  # MsgIncomingServer._getServerURI(false)
    logins = {
        "nextId": 2,
        "logins": [
            {
                "id": 1,
                "hostname": origin,
                "httpRealm": origin,
                "formSubmitURL": None,
                "usernameField": "",
                "passwordField": "",
                "encryptedUsername": enc_user,
                "encryptedPassword": enc_pass,
                "guid": "{%s}" % uuid.uuid4(),
                "encType": 1,
                "timeCreated": now,
                "timeLastUsed": now,
                "timePasswordChanged": now,
                "timesUsed": 1,
            }
        ],
        "potentiallyVulnerablePasswords": [],
        "dismissedBreachAlertsByLoginGUID": {},
        "version": 3,
    }
    with open(os.path.join(d, "logins.json"), "w") as f:
        json.dump(logins, f)


def run(d, stopfile, shot, deadline, compose=None):
    log = open(os.path.join(d, "thunderbird.log"), "ab")
    env = dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1", MOZ_DISABLE_AUTO_SAFE_MODE="1")
    env.pop("LD_LIBRARY_PATH", None)
    args = ["thunderbird", "--profile", d, "--no-remote"]
    if compose:
        args += ["-compose", compose]
    tb = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    end = time.monotonic() + float(deadline)
    last_try = None
    while time.monotonic() < end and not os.path.exists(stopfile) and tb.poll() is None:
        if compose:
            # The compose window's title is "Write: SUBJECT - Thunderbird";
            # it closes once the message is sent. No window manager runs, so
            # it is focused directly and xdotool's keys go to it through
            # XTEST; pressed again every 10 s while the window stays (the
            # first press can come before its editor is ready).
            r = subprocess.run(["xdotool", "search", "--name", "^Write: "], capture_output=True, text=True)
            wins = r.stdout.split()
            if wins and (last_try is None or time.monotonic() - last_try > 10):
                if last_try is None:
                    time.sleep(3)
                last_try = time.monotonic()
                subprocess.run(["xdotool", "windowfocus", "--sync", wins[-1]], check=False)
                subprocess.run(["xdotool", "key", "--clearmodifiers", "ctrl+Return"], check=False)
                print("compose window", wins[-1], "ctrl+Return", flush=True)
        time.sleep(0.5)
    # Let the window paint what it fetched last.
    time.sleep(2)
    subprocess.run(["import", "-window", "root", shot], check=False)
    if tb.poll() is None:
        os.killpg(tb.pid, signal.SIGTERM)
        try:
            tb.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(tb.pid, signal.SIGKILL)
            tb.wait()
    print("thunderbird exit", tb.returncode)


if __name__ == "__main__":
    if sys.argv[1] == "profile":
        make_profile(*sys.argv[2:7])
    elif sys.argv[1] == "run":
        run(*sys.argv[2:6])
    elif sys.argv[1] == "send":
        to, subject, body = sys.argv[6:9]
        run(*sys.argv[2:6], compose="to='%s',subject='%s',body='%s'" % (to, subject, body))
    else:
        raise SystemExit("usage: thunderbird.py profile|run ...")
