//! On-disk record types: the session log's entries, lifecycle actions with their origins, and
//! the pod identity file. These shapes are a file format read back by `pods ls`, `show`, `log`
//! and the export (including files written by older versions), so fields are only ever added,
//! and every added field is optional on read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use crate::error::{ErrorClass, ProviderError};
pub use crate::event::{StopReason, Usage};

/// Version of the session log format written by this build (in `segment_started`).
pub const LOG_FORMAT_VERSION: u32 = 1;

/// One line of a session log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the segment, starting at 1, without gaps.
    pub seq: u64,
    /// Wall-clock time, RFC 3339 with milliseconds, UTC.
    pub ts: String,
    #[serde(flatten)]
    pub body: LogBody,
}

/// What a session log entry records; the `kind` tag in JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum LogBody {
    SegmentStarted(SegmentStarted),
    RunStarted(RunStarted),
    ProviderRequestStarted(ProviderRequestStarted),
    /// A model request's stream ended: stop reason, token usage, unhandled events.
    ProviderRequestFinished(ProviderRequestFinished),
    AssistantMessage(AssistantMessage),
    /// Whether a tool call the model asked for may run, and who decided (before its
    /// `tool_call_started`, or before the `rejected` result of a denied call).
    ToolDecision(ToolDecision),
    ToolCallStarted(ToolCallStarted),
    ToolCallFinished(ToolCallFinished),
    /// A lifecycle action reached this pod (recorded whether or not a run was active).
    LifecycleAction(LifecycleActionRecorded),
    ChildSpawned(ChildSpawned),
    ChildExited(ChildExited),
    RunCompleted(RunCompleted),
    RunErrored(RunErrored),
    RunInterrupted(RunInterrupted),
    /// Live telemetry export lost spans in this segment (written once, when it closes).
    TelemetryExportFailed(TelemetryExportFailed),
    SegmentClosed(SegmentClosed),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentStarted {
    pub pod_id: String,
    pub segment_id: String,
    pub profile: String,
    /// `sha256:<hex>` of the `manifest.toml` the segment runs with.
    pub manifest_digest: String,
    /// Process id of the pod process that owns this segment.
    pub pid: u32,
    pub format_version: u32,
    /// `pods` version that wrote the segment.
    pub writer: String,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunTrigger {
    /// A prompt from the command line (`pods run`, `pods resume`).
    Cli,
    /// A `run` request on the control socket.
    ControlRequest { client: String },
    /// The task handed to a child by its parent's `spawn_pod` / `send_to_pod`.
    ParentPod {
        parent_pod_id: String,
        tool_call_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: String,
    pub trigger: RunTrigger,
    /// The id of the request that asked for this run, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The user input (prompt or task).
    pub input: String,
    /// The W3C trace context (`00-<trace id>-<span id>-<flags>`) the pod process was started
    /// in (its `TRACEPARENT`): the outer trace a root pod belongs to, or the trace and
    /// `spawn_pod` span a parent handed its child. Only a well-formed value is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRequestStarted {
    pub run_id: String,
    /// Model request number within the run, from 1.
    pub turn: u32,
    /// Attempt number for this request, from 1 (retries increment it).
    pub attempt: u32,
    pub scheme: String,
    pub model: String,
    /// For a retried attempt: why the attempt before it failed and how long the client waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RetryCause>,
}

/// The failure that made the provider client retry a request, and the wait before the retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCause {
    pub class: ErrorClass,
    /// The provider's own code or type, e.g. `rate_limit_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// How long the provider asked to wait (`Retry-After`), in milliseconds, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// How long the client waited before the retry, in milliseconds.
    pub delay_ms: u64,
}

impl RetryCause {
    /// The cause recorded for a retry of `error` after `delay_ms`.
    pub fn of(error: &ProviderError, delay_ms: u64) -> RetryCause {
        RetryCause {
            class: error.class,
            code: error.code.clone(),
            http_status: error.http_status,
            retry_after_ms: error.retry_after_ms,
            delay_ms,
        }
    }
}

/// How one model request's stream ended, written when it ends (whatever the end). Written by
/// every build that records stop reasons and usage; a log without these entries does not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRequestFinished {
    pub run_id: String,
    pub turn: u32,
    /// The attempt the stream belongs to (the last one made for this request).
    pub attempt: u32,
    /// `completed` (a normal end, see `stop_reason`), `errored`, `interrupted`, or `closed`
    /// (the stream ended without a terminal event).
    pub end: String,
    /// The normalized stop reason, for a `completed` end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// Token usage as the provider reported it (input includes cached input); `None` when the
    /// stream reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Stream events the adapter could not map, by event name, with counts. Their contents are
    /// kept only in the trace sidecar (`session.record_event_trace`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unhandled: BTreeMap<String, u64>,
    /// Milliseconds from the attempt's request being sent to its first stream event; `None`
    /// when no event came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_chunk_ms: Option<u64>,
    /// The provider's id of the response (`resp_…`, `chatcmpl-…`, `msg_…`), when the stream
    /// reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// The model that answered, as the stream reported it (may name a dated snapshot of the
    /// requested model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub run_id: String,
    pub turn: u32,
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// Tool calls the model asked for in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<RequestedToolCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedToolCall {
    pub call_id: String,
    pub tool: String,
    /// The argument JSON string exactly as the model produced it.
    pub arguments: String,
}

/// What a tool may do to the world; drives retry safety.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SideEffectClass {
    ReadOnly,
    LocalWrite,
    /// Starts a local process (`shell`).
    Process,
    Spawn,
    /// Reaches other machines.
    Network,
    /// Not known (an MCP server's tools unless its profile says otherwise): judged as unsafe.
    Unknown,
}

/// Spans live export could not deliver: the files still hold everything, and
/// `pods telemetry push` sends it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryExportFailed {
    pub endpoint: String,
    pub spans_failed: u64,
    /// Log entries the export thread could not take in (their spans may be missing).
    pub entries_dropped: u64,
    /// The first failure.
    pub error: String,
}

/// The approval policy's decision on one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDecision {
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    pub side_effect: SideEffectClass,
    pub decision: Decision,
    pub source: DecisionSource,
    /// What decided, for people: the `[permissions]` key and its value, the flag, the answer
    /// given at which terminal, or the parent that answered and how it decided.
    pub detail: String,
}

/// Whether a tool call may run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    Allowed,
    Denied,
}

/// Whether a decision is worth showing beside its call: anything but the config's plain
/// `allow`, which is the rule for every call nobody is asked about.
pub fn decision_is_notable(decision: Decision, source: DecisionSource) -> bool {
    source != DecisionSource::Config || decision != Decision::Allowed
}

/// Who decided a tool call.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DecisionSource {
    /// `[permissions]` said `allow` or `deny`, or said `ask` with nobody to ask.
    Config,
    /// The user, answering at the root pod's terminal (for this call or for this pod).
    User,
    /// `--approve` on the root pod's command line.
    Flag,
    /// The parent pod answered the ask it forwarded up the tree.
    Parent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallStarted {
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    pub side_effect: SideEffectClass,
    pub input: Value,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ToolOutcome {
    Ok,
    /// The tool failed; the error text went back to the model.
    Error,
    /// The call never ran (an unknown tool, or arguments that are not valid JSON); the error
    /// text went back to the model. No `tool_call_started` precedes it.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFinished {
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    pub side_effect: SideEffectClass,
    pub outcome: ToolOutcome,
    /// What the model was given back (bounded).
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildSpawned {
    pub run_id: String,
    pub call_id: String,
    pub child_pod_id: String,
    pub profile: String,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildExited {
    pub child_pod_id: String,
    /// Exit code, when the process exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal number, when the process was killed by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether the child's exit was expected (it was told to stop) or a loss.
    pub expected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCompleted {
    pub run_id: String,
    pub turns: u32,
    /// The final assistant text of the run.
    pub text: String,
    /// Why the run ended, for readers older than `stop_reason`: the stop reason's name (`end_turn`,
    /// `max_tokens`, …, `incomplete: RAW`, `other: RAW`), or `max_turns` when the turn budget ran
    /// out.
    pub reason: String,
    /// The normalized stop reason of the run's last model request. `None` in logs written
    /// before stop reasons were recorded: unknown, not `end_turn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunErrored {
    pub run_id: String,
    pub error: ProviderError,
    pub phase: RunPhase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInterrupted {
    pub run_id: String,
    /// Short plain reason, e.g. `cancelled`, `stopped`.
    pub reason: String,
    /// The lifecycle action that interrupted the run; `None` only when the code path that ended
    /// the run did not know one (export reports that as missing provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<LifecycleAction>,
    pub phase: RunPhase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentClosed {
    /// `completed`, `stopped`, `errored`, …
    pub reason: String,
}

/// Where a run was when it ended: what a retry would repeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunPhase {
    /// The provider sent at least one stream event for this run.
    pub provider_progress_seen: bool,
    /// Visible output (text) reached the user.
    pub visible_output_seen: bool,
    pub tool_execution: ToolExecutionPhase,
    /// Side-effect classes of tool calls that started, deduplicated, in order.
    #[serde(default)]
    pub side_effects_started: Vec<SideEffectClass>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ToolExecutionPhase {
    #[default]
    NotStarted,
    /// A tool call is executing (started, not finished).
    Started,
    /// At least one tool call ran and none is executing.
    Completed,
}

/// One operation that can end or disturb an active run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleAction {
    /// UUIDv7.
    pub action_id: String,
    pub kind: LifecycleKind,
    /// Wall-clock start, RFC 3339 with milliseconds, UTC.
    pub started_at: String,
    /// Monotonic start: milliseconds since the acting process started.
    pub started_mono_ms: u64,
    /// Pod ids this action affects.
    pub affects: Vec<String>,
    pub origin: Origin,
    /// Free text given with the action (e.g. `pods stop --reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For cascades: the action on an ancestor pod that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LifecycleKind {
    Cancel,
    Stop,
    StopTree,
    Shutdown,
    ParentExit,
    Reload,
    Watchdog,
    /// A pod's process group was killed (SIGKILL) by its parent, after it did not end within
    /// `limits.shutdown_grace_ms` of being told to. Recorded in the parent's log.
    Kill,
}

/// Who or what started a lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Origin {
    /// A `pods` command line.
    Cli { command: String, request_id: String },
    /// A request on the control socket.
    ControlRequest { request_id: String, client: String },
    /// A signal delivered to the process (`SIGTERM`, `SIGINT`, …).
    Signal { signal: String },
    /// The parent pod, from one of its tool calls.
    ParentPod {
        parent_pod_id: String,
        tool_call_id: String,
    },
    /// The idle watchdog.
    Watchdog { idle_ms: u64 },
    /// The runtime itself (e.g. shutting down after the last run).
    Runtime { detail: String },
    /// The origin was not recorded; `missing` says which facts are absent.
    Unknown { missing: Vec<String> },
    /// A control-socket client's claim that did not check out against the pod's records and
    /// the peer's credentials: kept as a claim, never as fact.
    Unverified(Box<UnverifiedOrigin>),
}

/// What a control-socket client claimed and why it could not be verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnverifiedOrigin {
    /// The origin the client claimed.
    pub claimed: Origin,
    /// The cascade link it sent, if any (not followed: it is no cascade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_caused_by: Option<CausedBy>,
    pub peer: PeerCred,
    /// What did not match.
    pub why: String,
}

/// The kernel's account of a control-socket peer (`SO_PEERCRED`); a field is `None` when the
/// kernel did not give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCred {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// Link from a cascaded action to the ancestor action that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausedBy {
    pub pod_id: String,
    pub action_id: String,
    pub kind: LifecycleKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleActionRecorded {
    pub action: LifecycleAction,
    /// The run the action found active, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run_id: Option<String>,
}

/// `pod.json`: a pod's identity and last known state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    pub id: String,
    pub name: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// RFC 3339 creation time.
    pub created: String,
    /// Process id of the live pod process, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub state: PodState,
    /// The absolute working directory the pod was created in; its scope resolves against it
    /// on every run. `None` in pods written by versions before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<std::path::PathBuf>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PodState {
    Created,
    Running,
    Idle,
    Stopped,
    Failed,
}

/// The names these records use in JSON (their serde tags and values), for code that shows or
/// matches them without serializing. Derived beside serde's names; a test checks they agree.
macro_rules! names {
    ($($ty:ty => $doc:literal $fn:ident;)*) => {$(
        impl $ty {
            #[doc = $doc]
            pub fn $fn(&self) -> &'static str {
                self.into()
            }
        }
    )*};
}

names! {
    LogBody => "The entry's `kind` tag." kind;
    RunTrigger => "The trigger's `type` tag." kind;
    Origin => "The origin's `type` tag." kind;
    SideEffectClass => "The class as in JSON (`read_only`, …)." as_str;
    ToolOutcome => "The outcome as in JSON (`ok`, `error`, `rejected`)." as_str;
    ToolExecutionPhase => "The phase as in JSON (`not_started`, …)." as_str;
    LifecycleKind => "The kind as in JSON (`stop_tree`, …)." as_str;
    PodState => "The state as in JSON (`running`, …)." as_str;
    Decision => "The decision as in JSON (`allowed`, `denied`)." as_str;
    DecisionSource => "The source as in JSON (`config`, `user`, `flag`, `parent`)." as_str;
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
