//! Per-session command counters for the `disconnect from` log line:
//! `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=2/3` (Postfix 3.0+): `name=ok`
//! when every such command succeeded, else `name=ok/total`.

use std::collections::BTreeMap;

use crate::command::Verb;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    counts: BTreeMap<Verb, (u32, u32)>,
}

impl Stats {
    pub fn record(&mut self, verb: Verb, ok: bool) {
        let e = self.counts.entry(verb).or_default();
        e.1 += 1;
        if ok {
            e.0 += 1;
        }
    }

    /// The counters as Postfix prints them.
    pub fn summary(&self) -> String {
        let mut out = Vec::new();
        let (mut ok_all, mut total_all) = (0, 0);
        for (verb, (ok, total)) in &self.counts {
            ok_all += ok;
            total_all += total;
            if ok == total {
                out.push(format!("{}={ok}", verb.name()));
            } else {
                out.push(format!("{}={ok}/{total}", verb.name()));
            }
        }
        if ok_all == total_all {
            out.push(format!("commands={ok_all}"));
        } else {
            out.push(format!("commands={ok_all}/{total_all}"));
        }
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format() {
        let mut s = Stats::default();
        s.record(Verb::Ehlo, true);
        s.record(Verb::Noop, true);
        s.record(Verb::Unknown, false);
        assert_eq!(s.summary(), "ehlo=1 noop=1 unknown=0/1 commands=2/3");
    }
}
