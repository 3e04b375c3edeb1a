//! Mail the server writes itself: bounces and delay warnings (RFC 3464), the
//! postmaster's copies and double bounces, and notices of SMTP sessions with
//! errors, built from typed inputs and handed to the queue through [`Submit`].
//! It must not reach into the daemon: no globals, no sockets, no clock of its
//! own for grouping (time is a parameter).

pub mod bounce;
pub mod classes;
pub mod notice;
pub mod settings;
pub mod submit;
pub mod template;

pub use bounce::{Bounced, Kind};
pub use classes::{Class, Classes};
pub use notice::{Notices, SessionReport};
pub use settings::Settings;
pub use submit::{Notify, Submit};
pub use template::{Template, Templates};
