//! Command and reply codes, negotiation flags, and the typed milter reply
//! (libmilter's mfdef.h; Postfix milter8.c).

use std::fmt;

use crate::frame::Frame;

// MTA -> milter commands (SMFIC_*).
pub const SMFIC_ABORT: u8 = b'A';
pub const SMFIC_BODY: u8 = b'B';
pub const SMFIC_CONNECT: u8 = b'C';
pub const SMFIC_MACRO: u8 = b'D';
pub const SMFIC_BODYEOB: u8 = b'E';
pub const SMFIC_HELO: u8 = b'H';
pub const SMFIC_HEADER: u8 = b'L';
pub const SMFIC_MAIL: u8 = b'M';
pub const SMFIC_EOH: u8 = b'N';
pub const SMFIC_OPTNEG: u8 = b'O';
pub const SMFIC_QUIT: u8 = b'Q';
pub const SMFIC_RCPT: u8 = b'R';
pub const SMFIC_DATA: u8 = b'T';

// milter -> MTA replies (SMFIR_*).
pub const SMFIR_ADDRCPT: u8 = b'+';
pub const SMFIR_DELRCPT: u8 = b'-';
pub const SMFIR_ADDRCPT_PAR: u8 = b'2';
pub const SMFIR_SHUTDOWN: u8 = b'4';
pub const SMFIR_ACCEPT: u8 = b'a';
pub const SMFIR_REPLBODY: u8 = b'b';
pub const SMFIR_CONTINUE: u8 = b'c';
pub const SMFIR_DISCARD: u8 = b'd';
pub const SMFIR_CHGFROM: u8 = b'e';
pub const SMFIR_ADDHEADER: u8 = b'h';
pub const SMFIR_INSHEADER: u8 = b'i';
pub const SMFIR_CHGHEADER: u8 = b'm';
pub const SMFIR_PROGRESS: u8 = b'p';
pub const SMFIR_QUARANTINE: u8 = b'q';
pub const SMFIR_REJECT: u8 = b'r';
pub const SMFIR_SKIP: u8 = b's';
pub const SMFIR_TEMPFAIL: u8 = b't';
pub const SMFIR_REPLYCODE: u8 = b'y';

/// The actions a milter may ask for (SMFIF_*), negotiated in OPTNEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(pub u32);

impl Actions {
    pub const ADDHDRS: u32 = 0x01;
    pub const CHGBODY: u32 = 0x02;
    pub const ADDRCPT: u32 = 0x04;
    pub const DELRCPT: u32 = 0x08;
    pub const CHGHDRS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHGFROM: u32 = 0x40;
    pub const ADDRCPT_PAR: u32 = 0x80;
    pub const SETSYMLIST: u32 = 0x100;
    /// What yubin can carry out (Postfix 3.7 offers the same set).
    pub const OFFERED: Actions = Actions(0x1ff);

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Protocol steps (SMFIP_*): events the milter does not want, replies it
/// will not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProtoFlags(pub u32);

impl ProtoFlags {
    pub const NOCONNECT: u32 = 0x1;
    pub const NOHELO: u32 = 0x2;
    pub const NOMAIL: u32 = 0x4;
    pub const NORCPT: u32 = 0x8;
    pub const NOBODY: u32 = 0x10;
    pub const NOHDRS: u32 = 0x20;
    pub const NOEOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NOUNKNOWN: u32 = 0x100;
    pub const NODATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HDR_LEADSPC: u32 = 0x100000;

    /// What an MTA speaking `version` may announce (Postfix milter8.c's
    /// milter8_event_masks: version 2 knows the NO* steps of connect to
    /// EOH, 3 adds NOUNKNOWN, 4 NODATA, 6 the no-reply steps, SKIP,
    /// RCPT_REJ and HDR_LEADSPC).
    pub fn offered(version: u32) -> ProtoFlags {
        let v2 = Self::NOCONNECT
            | Self::NOHELO
            | Self::NOMAIL
            | Self::NORCPT
            | Self::NOBODY
            | Self::NOHDRS
            | Self::NOEOH;
        let v3 = v2 | Self::NOUNKNOWN;
        let v4 = v3 | Self::NODATA;
        let v6 = v4
            | Self::NR_HDR
            | Self::SKIP
            | Self::RCPT_REJ
            | Self::NR_CONN
            | Self::NR_HELO
            | Self::NR_MAIL
            | Self::NR_RCPT
            | Self::NR_DATA
            | Self::NR_UNKN
            | Self::NR_EOH
            | Self::NR_BODY
            | Self::HDR_LEADSPC;
        ProtoFlags(match version {
            0..=2 => v2,
            3 => v3,
            4 | 5 => v4,
            _ => v6,
        })
    }

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// The SMTP stage a macro list belongs to (SMFIM_*, the index in a
/// SETSYMLIST reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    Eom,
    Eoh,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Connect,
        Stage::Helo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::Eom,
        Stage::Eoh,
    ];

    pub fn from_index(i: u32) -> Option<Stage> {
        Stage::ALL.get(i as usize).copied()
    }

    /// The command code whose MACRO frame carries this stage's macros.
    pub fn command(self) -> u8 {
        match self {
            Stage::Connect => SMFIC_CONNECT,
            Stage::Helo => SMFIC_HELO,
            Stage::Mail => SMFIC_MAIL,
            Stage::Rcpt => SMFIC_RCPT,
            Stage::Data => SMFIC_DATA,
            Stage::Eom => SMFIC_BODYEOB,
            Stage::Eoh => SMFIC_EOH,
        }
    }
}

/// A reply frame, parsed. Strings are taken up to their NUL and decoded
/// lossily: header values a milter sends are ASCII in practice (RFC 5322).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Negotiate {
        version: u32,
        actions: Actions,
        flags: ProtoFlags,
        /// SETSYMLIST: the macros the milter wants per stage.
        macros: Vec<(Stage, Vec<String>)>,
    },
    Continue,
    Accept,
    Discard,
    Reject,
    Tempfail,
    /// A full SMTP reply, e.g. `554 5.7.1 Spam message rejected`.
    ReplyCode(String),
    Shutdown,
    Progress,
    Skip,
    Quarantine(String),
    AddHeader {
        name: String,
        value: String,
    },
    /// Insert at `index` (0: before the first header).
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// Change the `index`th (1-based) header called `name`; an empty value
    /// deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    AddRcpt(String),
    AddRcptPar(String, String),
    DelRcpt(String),
    ReplaceBody(Vec<u8>),
    ChangeFrom(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub cmd: u8,
    pub why: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = if self.cmd.is_ascii_graphic() {
            (self.cmd as char).to_string()
        } else {
            format!("0x{:02x}", self.cmd)
        };
        write!(f, "reply {c}: {}", self.why)
    }
}

impl std::error::Error for ParseError {}

/// Reads NUL-terminated strings and big-endian words from a frame's data.
struct Reader<'a> {
    data: &'a [u8],
    cmd: u8,
}

impl<'a> Reader<'a> {
    fn err(&self, why: &'static str) -> ParseError {
        ParseError { cmd: self.cmd, why }
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        if self.data.len() < 4 {
            return Err(self.err("short packet"));
        }
        let v = u32::from_be_bytes([self.data[0], self.data[1], self.data[2], self.data[3]]);
        self.data = &self.data[4..];
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let Some(nul) = self.data.iter().position(|&b| b == 0) else {
            return Err(self.err("string without NUL"));
        };
        let s = String::from_utf8_lossy(&self.data[..nul]).into_owned();
        self.data = &self.data[nul + 1..];
        Ok(s)
    }

    fn optional_string(&mut self) -> Result<String, ParseError> {
        if self.data.is_empty() {
            Ok(String::new())
        } else {
            self.string()
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing data"))
        }
    }
}

impl Reply {
    /// Parses one frame from the milter. `negotiating`: an `O` is the OPTNEG
    /// answer (it is no reply code otherwise).
    pub fn parse(frame: &Frame) -> Result<Reply, ParseError> {
        let mut r = Reader {
            data: &frame.data,
            cmd: frame.cmd,
        };
        let empty = |r: &Reader, reply: Reply| r.end().map(|_| reply);
        match frame.cmd {
            SMFIC_OPTNEG => {
                let version = r.u32()?;
                let actions = Actions(r.u32()?);
                let flags = ProtoFlags(r.u32()?);
                let mut macros = Vec::new();
                // SETSYMLIST (protocol 6): (stage, "m1 m2 ...\0") pairs.
                while !r.data.is_empty() {
                    let stage = r.u32()?;
                    let list = r.string()?;
                    // Unknown stages are ignored, as libmilter would never
                    // send them and Postfix skips them.
                    if let Some(stage) = Stage::from_index(stage) {
                        let names = list
                            .split([' ', ','])
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect();
                        macros.push((stage, names));
                    }
                    if macros.len() > 16 {
                        return Err(r.err("too many macro lists"));
                    }
                }
                Ok(Reply::Negotiate {
                    version,
                    actions,
                    flags,
                    macros,
                })
            }
            SMFIR_CONTINUE => empty(&r, Reply::Continue),
            SMFIR_ACCEPT => empty(&r, Reply::Accept),
            SMFIR_DISCARD => empty(&r, Reply::Discard),
            SMFIR_REJECT => empty(&r, Reply::Reject),
            SMFIR_TEMPFAIL => empty(&r, Reply::Tempfail),
            SMFIR_SHUTDOWN => empty(&r, Reply::Shutdown),
            SMFIR_PROGRESS => empty(&r, Reply::Progress),
            SMFIR_SKIP => empty(&r, Reply::Skip),
            SMFIR_REPLYCODE => {
                let s = r.string()?;
                r.end()?;
                Ok(Reply::ReplyCode(s))
            }
            SMFIR_QUARANTINE => {
                let s = r.optional_string()?;
                Ok(Reply::Quarantine(s))
            }
            SMFIR_ADDHEADER => {
                let name = r.string()?;
                let value = r.string()?;
                r.end()?;
                Ok(Reply::AddHeader { name, value })
            }
            SMFIR_INSHEADER | SMFIR_CHGHEADER => {
                let index = r.u32()?;
                let name = r.string()?;
                let value = r.string()?;
                r.end()?;
                Ok(if frame.cmd == SMFIR_INSHEADER {
                    Reply::InsertHeader { index, name, value }
                } else {
                    Reply::ChangeHeader { index, name, value }
                })
            }
            SMFIR_ADDRCPT => {
                let s = r.string()?;
                r.end()?;
                Ok(Reply::AddRcpt(s))
            }
            SMFIR_ADDRCPT_PAR => {
                let s = r.string()?;
                let args = r.optional_string()?;
                Ok(Reply::AddRcptPar(s, args))
            }
            SMFIR_DELRCPT => {
                let s = r.string()?;
                r.end()?;
                Ok(Reply::DelRcpt(s))
            }
            SMFIR_CHGFROM => {
                let s = r.string()?;
                let args = r.optional_string()?;
                Ok(Reply::ChangeFrom(s, args))
            }
            SMFIR_REPLBODY => Ok(Reply::ReplaceBody(frame.data.clone())),
            _ => Err(r.err("unknown reply")),
        }
    }
}

/// Appends `s` and its terminating NUL (a NUL inside `s` would split the
/// field, so it is dropped: no header or address may hold one).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cmd: u8, data: &[u8]) -> Result<Reply, ParseError> {
        Reply::parse(&Frame::new(cmd, data.to_vec()))
    }

    #[test]
    fn negotiation_with_symlist() {
        let mut d = Vec::new();
        d.extend_from_slice(&6u32.to_be_bytes());
        d.extend_from_slice(&0x1ffu32.to_be_bytes());
        d.extend_from_slice(&0x1fffu32.to_be_bytes());
        d.extend_from_slice(&5u32.to_be_bytes());
        d.extend_from_slice(b"i {mail_addr}\0");
        let r = parse(b'O', &d).unwrap();
        assert_eq!(
            r,
            Reply::Negotiate {
                version: 6,
                actions: Actions(0x1ff),
                flags: ProtoFlags(0x1fff),
                macros: vec![(Stage::Eom, vec!["i".into(), "{mail_addr}".into()])],
            }
        );
    }

    #[test]
    fn replies() {
        assert_eq!(parse(b'c', b""), Ok(Reply::Continue));
        assert!(parse(b'c', b"x").is_err());
        assert_eq!(
            parse(b'y', b"554 5.7.1 Spam\0"),
            Ok(Reply::ReplyCode("554 5.7.1 Spam".into()))
        );
        assert_eq!(
            parse(b'm', b"\0\0\0\x01Subject\0\0"),
            Ok(Reply::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new()
            })
        );
        assert_eq!(
            parse(b'i', b"\0\0\0\0X-A\0v\0"),
            Ok(Reply::InsertHeader {
                index: 0,
                name: "X-A".into(),
                value: "v".into()
            })
        );
        assert!(parse(b'h', b"X-A\0no-nul").is_err());
        assert!(parse(b'm', b"\0\0").is_err());
        assert!(parse(b'Z', b"").is_err());
        assert_eq!(parse(b'q', b"spam\0"), Ok(Reply::Quarantine("spam".into())));
    }
}
