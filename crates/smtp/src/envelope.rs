//! What a finished SMTP transaction hands to the queue.

use yubin_address::Address;

/// One accepted recipient with its DSN parameters (RFC 3461).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: Address,
    /// NOTIFY=SUCCESS,FAILURE,DELAY or NEVER, as given (upper case).
    pub notify: Option<String>,
    /// ORCPT=addr-type;xtext, as given.
    pub orcpt: Option<String>,
}

/// The envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `None` is the null sender `<>`.
    pub sender: Option<Address>,
    pub recipients: Vec<Recipient>,
    /// BODY=7BIT|8BITMIME|BINARYMIME.
    pub body: Option<String>,
    pub smtputf8: bool,
    /// RET=FULL|HDRS.
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// The HELO/EHLO name.
    pub helo: String,
    /// `SMTP` or `ESMTP` (as Postfix logs `proto=`).
    pub protocol: String,
    pub queue_id: String,
    /// `TLSv1.3 with cipher ...` when the message came over TLS.
    pub tls: Option<String>,
    /// The SASL login that sent it.
    pub auth_user: Option<String>,
    /// access(5) HOLD: into the hold queue, not delivered.
    pub hold: bool,
    /// access(5) DISCARD: acknowledged, then dropped.
    pub discard: bool,
    /// access(5) PREPEND (and policy services'): headers before the message's own.
    pub prepend: Vec<String>,
}
