//! aliases(5) `|command` and `/file` targets (local(8) "EXTERNAL FILE
//! DELIVERY" and "EXTERNAL COMMAND DELIVERY"). The command gets the message
//! on standard input and local(8)'s environment variables; exit status 75
//! (EX_TEMPFAIL) defers, other non-zero statuses bounce, as sysexits(3)
//! says and Postfix does.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::envelope_headers::{check_loops, prepend};
use crate::{Failure, Message};

/// Runs `command` (without the leading `|`) under /bin/sh.
pub fn command(command: &str, m: &Message<'_>, timeout: Duration) -> Result<(), Failure> {
    check_loops(m)?;
    let (user, domain) = m.recipient.rsplit_once('@').unwrap_or((m.recipient, ""));
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .env("SENDER", m.sender)
        .env("RECIPIENT", m.recipient)
        .env("ORIGINAL_RECIPIENT", m.original_recipient)
        .env("USER", user)
        .env("LOGNAME", user)
        .env("DOMAIN", domain)
        .env("LOCAL", user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::temp("4.3.0", format!("cannot run \"{command}\": {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(prepend(m).as_bytes());
        let _ = stdin.write_all(m.content);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match status.code() {
                    Some(0) => Ok(()),
                    Some(75) => Err(Failure::temp(
                        "4.3.0",
                        format!("Command died with status 75: \"{command}\""),
                    )),
                    Some(c) => Err(Failure::perm(
                        "5.3.0",
                        format!("Command died with status {c}: \"{command}\""),
                    )),
                    None => Err(Failure::temp(
                        "4.3.0",
                        format!("Command killed by signal: \"{command}\""),
                    )),
                };
            }
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::temp(
                    "4.3.0",
                    format!("Command time limit exceeded: \"{command}\""),
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(Failure::temp(
                    "4.3.0",
                    format!("wait for \"{command}\": {e}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let m = Message {
            queue_id: "Q",
            sender: "a@b",
            original_recipient: "r@x",
            recipient: "r@x",
            content: b"Subject: hi\n\nbody\n",
            hostname: "h",
        };
        command(
            &format!("cat > {}", out.display()),
            &m,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .ends_with("Subject: hi\n\nbody\n"));
        assert!(
            command("exit 75", &m, Duration::from_secs(5))
                .unwrap_err()
                .temporary
        );
        assert!(
            !command("exit 1", &m, Duration::from_secs(5))
                .unwrap_err()
                .temporary
        );
        assert!(command("sleep 5", &m, Duration::from_millis(200))
            .unwrap_err()
            .text
            .contains("time limit"));
    }
}
