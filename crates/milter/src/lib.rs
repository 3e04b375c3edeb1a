//! The Sendmail milter protocol (version 6, as Postfix's smtpd and cleanup
//! speak it) from the MTA's side: frames in, events and edits out. It does
//! no I/O and knows no socket; the daemon writes the bytes and feeds back
//! what the milter answers.
//!
//! References: Postfix MILTER_README, Postfix src/milter/milter8.c, and
//! Sendmail's libmilter (include/libmilter/mfdef.h) for the wire format.

pub mod client;
pub mod edit;
pub mod frame;
pub mod proto;

pub use client::{Client, Config, DefaultAction, Event, Macros, Outcome, Step, Verdict};
pub use edit::{Edit, Message};
pub use frame::{Decoder, Frame, FrameError, MAX_FRAME};
pub use proto::{Actions, ProtoFlags, Reply, Stage};
