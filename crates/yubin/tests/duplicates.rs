//! One message to two addresses that lead to the same mailbox (the seed:
//! `root` is a virtual alias of `hoge`). Postfix 3.7 with its default
//! `enable_original_recipient = yes` delivers two copies, each with its own
//! X-Original-To; with `no`, one (issue 16 item 3). The log shows both
//! deliveries with their orig_to.

mod common;

use common::{Client, Server, VIRTUAL_BEFORE};

fn send_to_both(extra: &str) -> (Server, Vec<String>) {
    let mut s = Server::seed(VIRTUAL_BEFORE, extra);
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO client.example");
    let r = c.mail(
        "a@example.org",
        &["hoge@mydomain.com", "root@mydomain.com"],
        "Subject: twice\n\nhello\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    c.cmd("QUIT");
    let id = r.rsplit(' ').next().unwrap().to_string();
    s.wait_log(&format!("{id}: removed"));
    let mut texts: Vec<String> = s
        .hoge_mail()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    (s, texts)
}

fn original_to(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("X-Original-To: "))
        .unwrap_or("")
        .to_string()
}

#[test]
fn each_original_recipient_gets_its_copy_by_default() {
    let (s, texts) = send_to_both("");
    assert_eq!(texts.len(), 2, "two copies, as Postfix");
    let mut orig: Vec<String> = texts.iter().map(|t| original_to(t)).collect();
    orig.sort();
    assert_eq!(orig, ["hoge@mydomain.com", "root@mydomain.com"]);
    let log = s.log();
    assert!(
        log.contains("to=<hoge@mydomain.com>, orig_to=<root@mydomain.com>"),
        "{log}"
    );
}

#[test]
fn one_copy_without_original_recipients() {
    let (_s, texts) = send_to_both("enable_original_recipient = no\n");
    assert_eq!(texts.len(), 1, "duplicates eliminated per final recipient");
}
