//! Hosting a [`Pod`] in its process: runs requested on the control socket (or given by the
//! command line), lifecycle actions from the socket, signals and parent death, and the pod's
//! children, until the pod is told to end.
//!
//! The pod itself runs on its own task ([`pod_task`]); the host loop ([`host_loop`]) only
//! routes, one handler per event (control calls in [`requests`]). Every lifecycle action that
//! reaches the pod is recorded (`lifecycle_action`) and, when a run is active, interrupts it
//! through the pod's [`RunControl`](crate::RunControl) (which resolves overlapping actions to the nearest). Actions
//! that end the pod cascade to its live children with a `caused_by` link, and name those
//! children (and their live descendants) in `affects`.
//!
//! Two things end hosting without the pod task's cooperation, each recorded as far as possible:
//! the pod task failing (a panic, or the task ending without reporting), which ends the active
//! run as `run_interrupted` by a `shutdown` action with a `runtime` origin naming the failure
//! and marks the pod failed ([`HostAbort::TaskFailed`]); and a second SIGINT/SIGTERM/SIGHUP
//! while the pod is already ending, which stops waiting for it ([`HostAbort::Forced`]). Both
//! are in [`forced`].
//!
//! Ending is bounded: children told to end get `limits.shutdown_grace_ms` to answer and exit,
//! then their process groups are killed, each kill recorded as a `kill` action
//! (`end_child` in [`crate::children`]).

mod affected;
mod forced;
mod host_loop;
mod pod_task;
mod progress;
mod requests;
mod signals;

use std::sync::Arc;

use crate::CoreError;
use crate::children::Children;
use crate::control::ControlServer;
use crate::record::LifecycleAction;
use crate::runtime::{Pod, Quiet, RunInput, RunObserver, RunReport};
use host_loop::HostLoop;

/// What the host listens to besides the control socket.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// End the pod with a `parent_exit` action when stdin reaches EOF (a child pod).
    pub watch_parent: bool,
    /// End the pod (and its tree) with a `shutdown` action on SIGTERM / SIGINT / SIGHUP; a
    /// second signal while the pod is ending stops waiting for it ([`HostAbort::Forced`]).
    pub handle_signals: bool,
    /// The pod's working directory; needed to reload (a new segment connects its model and
    /// scope again). Without it `reload` is refused.
    pub work_dir: Option<std::path::PathBuf>,
}

/// How hosting ended.
#[derive(Debug)]
pub struct HostEnd {
    /// The action that ended the pod, when one did.
    pub action: Option<LifecycleAction>,
    /// The report of the command-line run ([`crate::launch::Launched::run_once`]), when it ran
    /// to a recorded end.
    pub first_run: Option<RunReport>,
    /// Set when hosting ended without the pod task ending normally.
    pub abort: Option<HostAbort>,
}

/// Why hosting ended without the pod task ending normally.
#[derive(Debug)]
pub enum HostAbort {
    /// The pod task failed (panicked, or ended without reporting). The active run, if any, was
    /// recorded as `run_interrupted` by a `shutdown` action with a `runtime` origin naming the
    /// failure, and `pod.json` says `failed`.
    TaskFailed { detail: String },
    /// A second SIGINT/SIGTERM/SIGHUP arrived while the pod was ending (`action`, recorded).
    /// The host waited briefly for the pod task, then recorded the run's end and the segment's
    /// close in its place if the task had not.
    Forced { action: LifecycleAction },
}

/// A pod with its control socket and children, ready to be hosted.
pub struct Host {
    pod: Pod,
    server: ControlServer,
    children: Option<Arc<Children>>,
    options: HostOptions,
}

impl Host {
    pub fn new(
        pod: Pod,
        server: ControlServer,
        children: Option<Arc<Children>>,
        options: HostOptions,
    ) -> Host {
        Host {
            pod,
            server,
            children,
            options,
        }
    }

    /// Serve requests until a lifecycle action ends the pod (`pods serve`).
    pub async fn serve(self) -> Result<HostEnd, CoreError> {
        self.host(None, Arc::new(Quiet)).await
    }

    /// Run `input` while serving the control socket; end when that run ends (`pods run`), or
    /// earlier when an action ends the pod.
    pub async fn run_once(
        self,
        input: RunInput,
        observer: Arc<dyn RunObserver>,
    ) -> Result<HostEnd, CoreError> {
        self.host(Some(input), observer).await
    }

    async fn host(
        self,
        first: Option<RunInput>,
        observer: Arc<dyn RunObserver>,
    ) -> Result<HostEnd, CoreError> {
        HostLoop::start(self, first, observer).await.run().await
    }
}

#[cfg(test)]
mod tests;
