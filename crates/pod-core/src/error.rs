//! pod-core's one error type. File errors always name their path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `create pod directory`.
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid {what}", path.display())]
    Parse {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
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
        let path = path.into();
        move |source| CoreError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> CoreError {
        CoreError::Config {
            message: message.into(),
            source: None,
        }
    }
}

pub use pod_protocol::text::error_chain;
