//! `pod-core`: the running pod. It owns the durable session log's writer ([`SessionLog`]), the
//! run state machine and agent loop ([`Pod`]), tools confined to the manifest's scope ([`Tool`],
//! [`ToolRegistry`], [`Scope`]), interruption by lifecycle actions ([`RunControl`],
//! [`lifecycle`]), child pods ([`children`]), the control socket ([`control`]) and launching a
//! hosted pod ([`launch`]). The pods home on disk and reading it back are `pod-home`'s
//! (re-exported here where a running pod uses them), the formats `pod-protocol`'s, resolving
//! profiles `pod-profile`'s, talking to providers `pod-provider`'s, writing the trace sidecar
//! `pod-trace`'s; presenting anything is the CLI's.
//!
//! ```no_run
//! # async fn demo(manifest: pod_profile::Manifest) -> Result<(), pod_core::CoreError> {
//! use std::sync::Arc;
//! use pod_core::{ModelConnection, Pod, PodHome, PodOptions, Quiet, RunControl, RunInput};
//! use pod_core::record::RunTrigger;
//! let home = PodHome::resolve(None)?;
//! let work_dir = std::env::current_dir().unwrap_or_default();
//! let model = ModelConnection::connect(&manifest, &work_dir).await?;
//! let dir = home.create_pod(None, "demo", None)?;
//! let mut pod = Pod::start(dir, manifest, PodOptions {
//!     work_dir, model, control: RunControl::new(), approvals: Default::default(),
//!     telemetry: None, traceparent: None,
//! })?;
//! let input = RunInput { text: "hello".into(), trigger: RunTrigger::Cli, request_id: None };
//! let report = pod.run(input, Arc::new(Quiet)).await?;
//! println!("{}", report.outcome.label());
//! pod.close("completed").await?;
//! # Ok(()) }
//! ```

pub mod approval;
pub mod children;
pub mod control;
mod control_handle;
pub mod error;
pub mod home;
mod host;
pub mod launch;
pub mod lifecycle;
pub mod model;
pub mod runtime;
pub mod scope;
pub mod secrets;
pub mod session_log;
pub mod telemetry;
pub mod tools;

/// What ls, show and log read back from a pod's files: owned by `pod-home`.
pub use pod_home::{conversation, summary};
/// The session log's records and the `run --json` events: formats owned by `pod-protocol`.
pub use pod_protocol::{record, run_events};

pub use control_handle::RunControl;
pub use error::{CoreError, error_chain};
pub use home::{
    PodDir, PodHome, PodRef, PrunePlan, PruneRule, RemoveError, SegmentFiles, vouch_manifest,
    write_atomic,
};
pub use lifecycle::{new_id, now_rfc3339};
pub use model::{
    ModelConnection, api_key_var, builtin_cassette, wire_scheme, with_scheme_defaults,
};
pub use pod_home::summary::{
    PodSummary, RunSummary, SegmentSummary, StopFacts, UsageTotals, summarize,
};
pub use pod_protocol::text::printable;
pub use runtime::{
    Pod, PodOptions, Quiet, RunInput, RunObserver, RunOutcome, RunReport, history_from_segments,
};
pub use scope::{Access, Scope};
pub use session_log::{
    LogItem, LogProblem, LogReader, LogSink, SegmentRead, SessionLog, read_segment,
};
pub use tools::{Tool, ToolContext, ToolError, ToolFuture, ToolRegistry};
