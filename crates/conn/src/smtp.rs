//! The SMTP server session as a [`Core`]: its actions become driver steps;
//! requests and finished messages become asks for the handler.

use yubin_smtp::{Action, Answer, Envelope, Request, Session};

use crate::driver::{Core, Step};

/// What smtpd's handler is asked.
#[derive(Debug)]
pub enum SmtpAsk {
    /// Answer with [`SmtpCore::answer`].
    Request(Request),
    /// Queue this message durably, then [`SmtpCore::queued`].
    Deliver {
        envelope: Box<Envelope>,
        data: Vec<u8>,
    },
}

pub struct SmtpCore(pub Session);

fn steps(actions: Vec<Action>) -> Vec<Step<SmtpAsk>> {
    actions
        .into_iter()
        .map(|a| match a {
            Action::Reply(r) => Step::Write(r.to_wire()),
            Action::Delay(d) => Step::Delay(d),
            Action::Log(l) => Step::Log(l),
            Action::Close => Step::Close,
            Action::StartTls => Step::StartTls,
            Action::Request(r) => Step::Ask(SmtpAsk::Request(r)),
            Action::Deliver { envelope, data } => Step::Ask(SmtpAsk::Deliver { envelope, data }),
        })
        .collect()
}

impl SmtpCore {
    /// The greeting.
    pub fn start(&mut self) -> Vec<Step<SmtpAsk>> {
        steps(self.0.start())
    }

    pub fn answer(&mut self, answer: Answer) -> Vec<Step<SmtpAsk>> {
        steps(self.0.answer(answer))
    }

    pub fn queued(&mut self, result: Result<String, String>) -> Vec<Step<SmtpAsk>> {
        steps(self.0.queued(result))
    }

    /// The end-of-data checks (yubin-msgauth) or a milter refused the
    /// message at its end.
    pub fn refused(&mut self, reply: yubin_smtp::Reply) -> Vec<Step<SmtpAsk>> {
        steps(self.0.refused(reply))
    }
}

impl Core for SmtpCore {
    type Ask = SmtpAsk;

    fn feed(&mut self, input: &[u8]) -> Vec<Step<SmtpAsk>> {
        steps(self.0.feed(input))
    }

    fn timeout(&mut self) -> Vec<Step<SmtpAsk>> {
        steps(self.0.timeout())
    }

    fn tls_started(&mut self, summary: String) -> Vec<Step<SmtpAsk>> {
        steps(self.0.tls_started(summary))
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn last_command(&self) -> &'static str {
        self.0.last_verb()
    }
}
