//! `yubin send`: a swaks-compatible SMTP test client, and the small blocking
//! submission client other parts of yubin (guard reports, notices) use to hand
//! a finished message to an SMTP server.

pub mod submit;
pub mod cli;
