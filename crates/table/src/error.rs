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
}

impl TableError {
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
