//! pod-home's one error type. File errors always name their path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
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
    #[error("no pods home: set PODS_HOME or pass --home (neither XDG_STATE_HOME nor HOME is set)")]
    NoHome,
    #[error("no pod matches `{query}` in {}", home.display())]
    PodNotFound { query: String, home: PathBuf },
    #[error("`{query}` matches several pods: {}", candidates.join(", "))]
    AmbiguousPod {
        query: String,
        candidates: Vec<String>,
    },
}

impl HomeError {
    /// A closure turning an I/O error into [`HomeError::Io`] for `action` on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> HomeError {
        let path = path.into();
        move |source| HomeError::Io {
            action,
            path,
            source,
        }
    }
}
