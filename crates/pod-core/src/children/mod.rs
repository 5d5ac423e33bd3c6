//! A pod's children and the tools that manage them: `spawn_pod`, `wait_pod`, `send_to_pod`,
//! `stop_pod`, `list_pods`.
//!
//! [`Children`] owns the live child processes of one pod. Spawning checks the `[spawn]` limits,
//! asks a [`ChildFactory`] to materialize the child's manifest and write its pod directory
//! (that is the profile crate's child materialization; nothing is copied here by hand), launches
//! the child ([`Launcher`]), subscribes to its events on the control socket and hands it its
//! task. A failure before the child is live removes the directory again and leaves
//! no process and no registration. Every child's exit is recorded (`child_exited`), expected or
//! lost.
//!
//! The parts: `registry` tracks the live children and what each reported, `factory` turns a
//! `spawn_pod` request into a pod directory and a running process, `tools` offers all this to
//! the model, and `process` launches, watches, reaps and kills the child processes themselves.

mod error;
mod factory;
mod process;
mod registry;
mod tools;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pod_profile::manifest::SpawnSection;
use pod_telemetry::ids::TraceId;

use crate::record::LogBody;

pub use error::ChildError;
pub use factory::{ChildFactory, PreparedChild, ProfileChildFactory, SpawnArgs};
pub(crate) use process::watch_parent;
pub use process::{CHILD_EXE_ENV, ChildProcess, ExitInfo, Launcher, StderrTail, TRACEPARENT_ENV};
pub(crate) use tools::{ChildTool, SPAWN_TOOLS};

use registry::LiveChild;

/// Where a pod's child-related log entries go (the pod's session log).
pub type Recorder = Arc<dyn Fn(LogBody) + Send + Sync>;

/// The children of one pod.
pub struct Children {
    parent_pod_id: String,
    limits: SpawnSection,
    launcher: Launcher,
    factory: Arc<dyn ChildFactory>,
    record: Recorder,
    /// `limits.shutdown_grace_ms`: how long a child told to end may take to answer and exit
    /// before its process group is killed.
    grace: Duration,
    live: Mutex<Vec<Arc<LiveChild>>>,
    /// Decides the asks children forward up (`approval_requested`).
    approver: Arc<dyn crate::approval::Approver>,
    /// The trace this pod is in: each child is handed it with the `spawn_pod` call's span.
    trace_id: TraceId,
}

impl Children {
    pub fn new(
        parent_pod_id: impl Into<String>,
        limits: SpawnSection,
        launcher: Launcher,
        factory: Arc<dyn ChildFactory>,
        record: Recorder,
        grace: Duration,
    ) -> Children {
        let parent_pod_id = parent_pod_id.into();
        Children {
            trace_id: pod_telemetry::ids::trace_id(&parent_pod_id),
            parent_pod_id,
            limits,
            launcher,
            factory,
            record,
            grace,
            live: Mutex::new(Vec::new()),
            approver: Arc::new(crate::approval::Unattended::default()),
        }
    }

    /// Answer the children's asks with `approver` (by default every ask is denied).
    pub fn with_approver(mut self, approver: Arc<dyn crate::approval::Approver>) -> Children {
        self.approver = approver;
        self
    }

    /// Put the children in trace `trace_id` (by default the trace of a tree rooted at this pod).
    pub fn with_trace(mut self, trace_id: TraceId) -> Children {
        self.trace_id = trace_id;
        self
    }
}
