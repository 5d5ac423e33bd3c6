//! pod-core's one error type. File errors always name their path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("could not write session log {}; the run cannot continue without its record", path.display())]
    LogWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "could not write session log {}: an earlier write failed ({cause}), so it accepts no more entries",
        path.display()
    )]
    LogPoisoned {
        path: PathBuf,
        /// The first failure, so whichever error reaches the user names the real cause.
        cause: String,
    },
    /// The manifest cannot run as written (missing key variable, bad cassette, …).
    #[error("{message}")]
    Config {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A file of the pod home could not be read, written or parsed.
    #[error(transparent)]
    Home(#[from] pod_home::HomeError),
    #[error(transparent)]
    Trace(#[from] pod_trace::TraceError),
    #[error(transparent)]
    Profile(#[from] pod_profile::ProfileError),
}

impl CoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CoreError {
        let io = pod_home::HomeError::io(action, path);
        move |source| CoreError::Home(io(source))
    }

    pub(crate) fn config(message: impl Into<String>) -> CoreError {
        CoreError::Config {
            message: message.into(),
            source: None,
        }
    }
}

pub use pod_protocol::text::error_chain;
