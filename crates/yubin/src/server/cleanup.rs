//! cleanup(8)'s part: the `Received:` header, missing `Message-ID:`/`Date:`
//! for local clients, the queue file, and the log lines; then the group
//! commit. Only after the commit is acknowledged does smtpd say
//! `250 2.0.0 Ok: queued as ID`.

use std::sync::Arc;

use yubin_maillog::clock;
use yubin_queue::maildrop::header::{header_value, split_message};
use yubin_queue::{QueueFile, QueuedRecipient};
use yubin_smtp::{ClientInfo, Envelope};

use super::runtime::{QmgrMsg, Runtime, Shared};

/// Postfix's Received: header (smtpd_check.c / cleanup), e.g.
/// `Received: from helo (name [addr])\n\tby host (yubin) with ESMTP id ID\n\tfor <rcpt>; date`.
pub fn received_header(env: &Envelope, client: &ClientInfo, rt: &Runtime, now: i64) -> String {
    let helo = if env.helo.is_empty() {
        client.name.as_str()
    } else {
        env.helo.as_str()
    };
    let addr = match client.addr {
        std::net::IpAddr::V6(a) => format!("IPv6:{a}"),
        a => a.to_string(),
    };
    let mut h = format!("Received: from {helo} ({} [{addr}])\n", client.name);
    if let (Some(user), true) = (&env.auth_user, rt.sasl_authenticated_header) {
        h.push_str(&format!("\t(Authenticated sender: {user})\n"));
    }
    if let (Some(tls), true) = (&env.tls, rt.tls_received_header) {
        h.push_str(&format!(
            "\t(using {tls})\n\t(No client certificate requested)\n"
        ));
    }
    h.push_str(&format!(
        "\tby {} ({}) with {} id {}",
        rt.hostname, rt.mail_name, env.protocol, env.queue_id
    ));
    if env.recipients.len() == 1 {
        h.push_str(&format!(
            "\n\tfor <{}>",
            env.recipients[0].address.internal()
        ));
    }
    h.push_str(&format!("; {}\n", clock::rfc5322(now)));
    h
}

/// Postfix's form of a generated Message-Id: `<YYYYMMDDhhmmss.QUEUEID@myhostname>`.
pub fn message_id(now: i64, id: &str, hostname: &str) -> String {
    let l = clock::local(now);
    format!(
        "<{:04}{:02}{:02}{:02}{:02}{:02}.{id}@{hostname}>",
        l.year,
        l.month + 1,
        l.day,
        l.hour,
        l.min,
        l.sec
    )
}

/// The envelope recipients as the queue file keeps them.
pub fn queued_recipients(env: &Envelope) -> Vec<QueuedRecipient> {
    env.recipients
        .iter()
        .map(|r| QueuedRecipient {
            address: r.address.internal(),
            notify: r.notify.clone(),
            orcpt: r.orcpt.clone(),
        })
        .collect()
}

pub async fn enqueue(
    shared: &Arc<Shared>,
    rt: &Runtime,
    client: &ClientInfo,
    env: Envelope,
    data: Vec<u8>,
) -> Result<String, String> {
    // access(5) DISCARD: acknowledged as queued, then dropped (smtpd logged
    // the `discard:` line when the restriction matched).
    if env.discard {
        return Ok(env.queue_id);
    }
    let hold = env.hold;
    let q = prepare(shared, rt, client, env, data);
    if hold {
        // access(5) HOLD: straight into the hold queue (`postsuper -H`
        // releases it), never seen by the queue manager before.
        return super::milter::commit_hold(shared, q).await;
    }
    commit(shared, q).await
}

/// The queue file as cleanup(8) writes it (Received:, the headers a local
/// client forgot), with its `message-id=` log line; not yet committed.
pub fn prepare(
    shared: &Arc<Shared>,
    rt: &Runtime,
    client: &ClientInfo,
    env: Envelope,
    data: Vec<u8>,
) -> QueueFile {
    let now = clock::now_secs();
    let id = env.queue_id.clone();
    // access(5) PREPEND headers go above smtpd's own Received: (Postfix
    // smtpd.c writes them first).
    let mut message = Vec::new();
    for h in &env.prepend {
        message.extend_from_slice(h.as_bytes());
        message.push(b'\n');
    }
    message.extend_from_slice(received_header(&env, client, rt, now).as_bytes());
    let local_client = client.addr.is_loopback();
    let (head, _) = split_message(&data);
    let mut message_id = header_value(head, "Message-ID");
    if local_client {
        // local_header_rewrite_clients = permit_inet_interfaces: add what a
        // local program forgot, as cleanup(8) does.
        if message_id.is_none() {
            let mid = self::message_id(now, &id, &rt.hostname);
            message.extend_from_slice(format!("Message-Id: {mid}\n").as_bytes());
            message_id = Some(mid);
        }
        if header_value(head, "Date").is_none() {
            message.extend_from_slice(format!("Date: {}\n", clock::rfc5322(now)).as_bytes());
        }
    }
    message.extend_from_slice(&data);
    let q = QueueFile {
        id: id.clone(),
        arrival: now,
        sender: env
            .sender
            .as_ref()
            .map(|a| a.internal())
            .unwrap_or_default(),
        client: client.label(),
        helo: env.helo.clone(),
        protocol: env.protocol.clone(),
        ret: env.ret.clone(),
        envid: env.envid.clone(),
        smtputf8: env.smtputf8,
        recipients: queued_recipients(&env),
        message,
    };
    if let Some(mid) = &message_id {
        shared
            .log
            .log("cleanup", &format!("{id}: message-id={mid}"));
    }
    q
}

/// Hands a prepared queue file to the group commit; the queue manager
/// hears of it once it is on disk.
pub async fn commit(shared: &Arc<Shared>, q: QueueFile) -> Result<String, String> {
    let id = q.id.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.committer.commit(id.clone(), q.encode(), move |r| {
        let _ = tx.send(r);
    });
    match rx.await {
        Ok(Ok(())) => {
            let _ = shared.qmgr.send(QmgrMsg::New(id.clone()));
            Ok(id)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("queue committer stopped".into()),
    }
}
