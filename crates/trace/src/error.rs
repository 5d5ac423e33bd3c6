//! The trace crate's one error type; every variant names the sidecar file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    #[error("could not create trace sidecar {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write trace sidecar {} ({lost} entries not written)", path.display())]
    Write {
        path: PathBuf,
        /// Entries that could not be written since the first failure.
        lost: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read trace sidecar {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the trace writer for {} stopped before the trace was synced", path.display())]
    WriterGone { path: PathBuf },
}
