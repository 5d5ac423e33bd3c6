//! The one error type of `pod-export`.

use std::path::PathBuf;

/// Why an export (or an upgrade) could not produce a document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("no pods directory at {path}")]
    NoPodsDir { path: PathBuf },

    #[error("no pod matches `{query}` in {home}")]
    PodNotFound { query: String, home: PathBuf },

    #[error("`{query}` matches more than one pod: {candidates}")]
    AmbiguousPod { query: String, candidates: String },

    #[error(transparent)]
    Home(pod_home::HomeError),

    #[error("could not read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a valid pod.json")]
    BadPodJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path} is not an export document")]
    NotADocument {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{path} is not an export document: `format` is {found:?}, expected \"pods.session-export\""
    )]
    WrongFormat { path: PathBuf, found: String },

    #[error(
        "{path} has schema_version {found}, which this pods does not know (it reads 1 to {supported})"
    )]
    UnknownSchema {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    /// The rendered document contains the value of a configured secret. The value itself is
    /// never part of the message.
    #[error("refusing to write the export: it contains the value of ${env_var}")]
    SecretInOutput { env_var: String },

    #[error("could not render the export document")]
    Render(#[source] std::io::Error),
}

impl ExportError {
    /// An error from writing the document: a secret found by the guard, or an I/O failure.
    pub(crate) fn from_io(error: std::io::Error) -> Self {
        match crate::redact::secret_found(&error) {
            Some(found) => ExportError::SecretInOutput {
                env_var: found.env_var.clone(),
            },
            None => ExportError::Render(error),
        }
    }
}
