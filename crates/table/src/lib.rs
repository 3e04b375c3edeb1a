//! Lookup tables with table(5) semantics: `texthash:`, `hash:`/`btree:`/
//! `cdb:`/`lmdb:` (all compiled by `yubin postmap` into one CDB file),
//! `static:`, `inline:{...}`, `regexp:`, `cidr:` and `pgsql:` (PostgreSQL,
//! whose lookups may fail temporarily), and lists of tables.
//!
//! A lookup returns the value and where it came from (table and, where known,
//! the source line) so that `yubin trace` can show an admin the line to edit.

pub mod cdb;
pub mod cidr;
pub mod error;
pub mod indexed;
pub mod inline;
pub mod maps;
pub mod regexp;
pub mod reload;
pub mod source;
pub mod spec;
pub mod texthash;

pub use error::TableError;
pub use maps::{Hit, Maps, Probe, Table};
pub use spec::TableSpec;
