//! The shared cache's errors: each names the URL (redacted), the key or the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// `FER_CACHE_URL` (or `--url`) cannot be used: why.
    #[error("FER_CACHE_URL `{url}`: {message}")]
    Url { url: String, message: String },
    /// A request to the store failed.
    #[error("{url}: {key}")]
    Store {
        url: String,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}
