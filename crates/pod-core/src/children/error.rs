//! What can go wrong supervising children, on the control socket and in the spawn tools.

use std::path::PathBuf;

/// Errors of child supervision, the control socket and the spawn tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    #[error("cannot create control socket {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable directory for control sockets: {detail}")]
    SocketDir { detail: String },
    #[error("control socket {path} is served by another live process")]
    SocketInUse { path: PathBuf },
    #[error("pod is not running (no answer on {path})")]
    NotRunning {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod did not answer on {path} within {waited_ms} ms (is its process stopped or hung?)")]
    Unanswered { path: PathBuf, waited_ms: u64 },
    #[error("control connection {path} closed before the reply")]
    Disconnected {
        path: PathBuf,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("unreadable control traffic on {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("pod refused `{method}` ({code}): {message}")]
    Refused {
        method: &'static str,
        code: String,
        message: String,
    },
    #[error("cannot find the pods executable to launch a child")]
    CurrentExe(#[source] std::io::Error),
    #[error("cannot launch child pod {pod_id} with {exe}")]
    Launch {
        pod_id: String,
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "child pod {pod_id} did not report ready within {timeout_ms} ms{}",
        tail_suffix(stderr_tail)
    )]
    NotReady {
        pod_id: String,
        timeout_ms: u64,
        stderr_tail: String,
    },
    #[error(
        "child pod {pod_id} exited before it was ready ({status}){}",
        tail_suffix(stderr_tail)
    )]
    ExitedBeforeReady {
        pod_id: String,
        status: String,
        stderr_tail: String,
    },
    #[error("cannot write {path}")]
    PodFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    SpawnRefused(String),
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        "; its stderr was empty".to_owned()
    } else {
        format!("; last lines of its stderr:\n{}", tail.trim_end())
    }
}
