//! The core error type. Every variant names the file (and where useful the row or key).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: invalid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A pipeline file problem: `file: [section] key: message`.
    #[error("{file}: {message}")]
    Pipeline { file: PathBuf, message: String },
    /// A parameter that parsed but is not valid: names the section and key.
    #[error("{file}: [{section}] {key}: {message}")]
    Param {
        file: PathBuf,
        section: String,
        key: String,
        message: String,
    },
    /// A manifest lists an output path that does not stay inside its stage folder (absolute,
    /// with `..`, or through a symbolic link that leads out): `file: output path `p` problem`.
    #[error("{file}: output path `{path}` {problem}")]
    UnsafePath {
        file: PathBuf,
        path: String,
        problem: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn parquet(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Parquet {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

/// Extension to attach a path to `std::io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
