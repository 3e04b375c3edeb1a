//! Configuration errors: every one names the file and line it came from, so an
//! admin can go straight to the mistake (DESIGN.md, "Config errors").

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{file}:{line}: {msg}")]
    Syntax {
        file: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: parameter {name}: {msg}")]
    Value {
        /// Where the parameter was set (`file:line`), or "default".
        origin: String,
        name: String,
        msg: String,
    },
}

impl ConfError {
    pub fn syntax(file: impl Into<PathBuf>, line: usize, msg: impl Into<String>) -> Self {
        ConfError::Syntax {
            file: file.into(),
            line,
            msg: msg.into(),
        }
    }
}
