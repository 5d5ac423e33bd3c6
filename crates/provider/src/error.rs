//! The provider error taxonomy (its format is `pod_protocol::error`) and this crate's own errors.

pub use pod_protocol::error::{ERROR_MESSAGE_MAX_BYTES, ErrorClass, ProviderError};

/// Errors of this crate that are not provider failures: reading cassettes and capture files,
/// starting the replay server.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid cassette: {message}", path.display())]
    InvalidCassette {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{} is not a valid HTTP response capture: {message}", path.display())]
    InvalidCapture {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot start the replay server on 127.0.0.1")]
    Bind(#[source] std::io::Error),
}
