//! Table errors name the file and, for source syntax, the line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{file}, line {line}: {msg}")]
    Syntax {
        file: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("open {file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spec(String),
    #[error("{file}: {msg}")]
    Corrupt { file: PathBuf, msg: String },
    /// A remote table (pgsql:) could not answer now: the caller defers
    /// (Postfix's DICT_ERR_RETRY: smtpd's "451 4.3.0 Temporary lookup
    /// failure", a deferred delivery), never treats it as "not found".
    #[error("{table}: temporary lookup failure: {msg}")]
    Temporary { table: String, msg: String },
}

impl TableError {
    /// Whether this is a temporary lookup failure (defer, do not reject).
    pub fn is_temporary(&self) -> bool {
        matches!(self, TableError::Temporary { .. })
    }

    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TableError::Io {
            file: file.into(),
            source,
        }
    }
    pub fn syntax(file: impl Into<PathBuf>, line: usize, msg: impl Into<String>) -> Self {
        TableError::Syntax {
            file: file.into(),
            line,
            msg: msg.into(),
        }
    }
}
