//! The export document: its own serde types, separate from the on-disk record types, so that the
//! session-log format and the export schema can evolve independently.
//!
//! Schema history (see [`crate::upgrade()`]):
//! - **1**: the first shape of the document: pods with runs (outcome, times, error, interrupt)
//!   and incidents with a cause and a summary. It had no phase, retry safety, chains,
//!   `missing_provenance`, integrity or redaction sections.
//! - **2**: phase, retry safety, chains, `missing_provenance`, integrity and redaction.
//! - **3**: over 2 it adds `runs[].unreadable_terminal`, `tools_in_flight[].input_bytes` /
//!   `input_truncated` (inputs are cut to a preview) and `integrity[].read_error` (an unreadable
//!   log no longer stops the export).
//! - **4** (current): everything below; over 3 it adds `pods[].recorded_state`, and on runs
//!   `stop_reason`, `stop_raw`, `stop_statement`, `truncated`, `usage`, `unhandled_events` and
//!   `tool_calls_rejected`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `format` value of every export document.
pub const FORMAT_NAME: &str = "pods.session-export";

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 4;

/// One export: a pod (or a pod tree), its runs, incidents and the health of its logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportDocument {
    pub format: String,
    pub schema_version: u32,
    /// RFC 3339 UTC time the document was produced (for an upgraded document: when the
    /// original was produced).
    pub exported_at: String,
    pub tool: ToolInfo,
    /// Schema version of the document this one was upgraded from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded_from: Option<u32>,
    /// The pod the export was asked for.
    pub root_pod_id: String,
    /// Whether descendants were included.
    pub tree: bool,
    pub pods: Vec<PodDoc>,
    pub incidents: Vec<Incident>,
    /// One entry per session log read; `None` for upgraded documents whose schema had none.
    pub integrity: Option<Vec<LogIntegrity>>,
    /// Pod directories in the home whose `pod.json` could not be read: they (and anything below
    /// them) may be missing from a `--tree` export. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_pods: Vec<UnreadablePod>,
    /// Last: what sanitizing replaced is known only once every pod has been written.
    pub redaction: Redaction,
}

/// A pod directory skipped because its `pod.json` is unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadablePod {
    /// The directory name under `pods/`.
    pub dir: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// What redaction did to this document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    pub mode: RedactionMode,
    /// Names of the environment variables whose values were checked for (never the values).
    pub secrets_checked: Vec<String>,
    /// Number of distinct values replaced, by placeholder kind (`prompt`, `output`, `path`, …).
    pub replaced: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    /// Secrets refused; content kept.
    SecretsOnly,
    /// Secrets refused; prompts, outputs, tool inputs/outputs, paths and free text replaced.
    Sanitized,
    /// Upgraded from a schema that did not say.
    Unknown,
}

/// One pod: identity, the manifest it ran with and where each value came from, its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodDoc {
    pub id: String,
    pub name: String,
    pub profile: String,
    pub parent_id: Option<String>,
    /// Ids from the root of the tree down to the parent (empty for a root pod).
    pub ancestors: Vec<String>,
    pub created: Option<String>,
    /// The pod's state: `pod.json`'s, except `crashed` when it says `running` and its process
    /// is gone (the same answer as `pods ls`).
    pub state: Option<String>,
    /// What `pod.json` says, when it differs from `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_state: Option<String>,
    /// `manifest.toml` as written, as JSON (`None` when the file is absent).
    pub manifest: Option<Value>,
    /// `provenance.json` as written (`None` when the file is absent).
    pub provenance: Option<BTreeMap<String, ProvenanceDoc>>,
    pub runs: Vec<RunDoc>,
    /// After `runs`: a segment's `closed` is known only once its log has been read.
    pub segments: Vec<SegmentDoc>,
    /// Facts about the pod itself that its directory lacks (`manifest.toml`, …).
    pub missing: Vec<String>,
}

/// Provenance of one manifest key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceDoc {
    pub kind: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Box<ProvenanceDoc>>,
}

/// One session-log segment (one owning process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDoc {
    pub segment_id: String,
    /// Path relative to the pod directory.
    pub log: String,
    pub started_at: Option<String>,
    pub format_version: Option<u32>,
    pub writer: Option<String>,
    pub owner_pid: Option<u32>,
    /// `segment_closed` reason, when the segment was closed.
    pub closed: Option<String>,
}

/// A run's outcome: the one classifier `pods ls`, `show` and `log` use too.
pub use pod_home::RunOutcome as Outcome;

/// One run's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    pub run_id: String,
    pub pod_id: String,
    pub segment_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub outcome: Outcome,
    pub trigger: Option<TriggerDoc>,
    pub request_id: Option<String>,
    /// The run's input (prompt or task).
    pub input: Option<String>,
    /// The final text, for completed runs.
    pub output: Option<String>,
    /// Model requests made (attempts included); `None` when the source did not say.
    pub provider_requests: Option<u64>,
    pub model: Option<String>,
    /// For completed runs: the normalized stop reason of the last model request, `unknown` when
    /// the log does not record it. `None` for runs that did not complete.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The provider's own wording, for `incomplete` and `other`.
    #[serde(default)]
    pub stop_raw: Option<String>,
    /// The stop reason in plain words, e.g. "the answer was cut at the output-token limit".
    #[serde(default)]
    pub stop_statement: Option<String>,
    /// The answer is not a clean finish (any stop reason but `end_turn` / `tool_calls`); `None`
    /// when unknown or the run did not complete.
    #[serde(default)]
    pub truncated: Option<bool>,
    /// Token usage summed over the requests whose end the log records; `None` when it records
    /// none.
    #[serde(default)]
    pub usage: Option<UsageDoc>,
    /// Stream events the adapters could not map, by event name, over the same requests; their
    /// contents are only in a trace sidecar. `None` when no request's end is recorded.
    #[serde(default)]
    pub unhandled_events: Option<BTreeMap<String, u64>>,
    /// Tool calls that never ran (unknown tool, arguments that are not valid JSON, denied).
    #[serde(default)]
    pub tool_calls_rejected: Option<u64>,
    /// The approval policy's decisions other than the config's plain `allow`: denials, and
    /// calls allowed by the user, a flag or the parent. A call that started without one here
    /// was allowed by `[permissions]`. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_decisions: Vec<ToolDecisionDoc>,
    pub error: Option<ErrorDoc>,
    pub interrupt: Option<InterruptDoc>,
    pub crash_evidence: Option<CrashEvidence>,
    pub phase: Option<PhaseDoc>,
    pub tool_calls_started: Option<u64>,
    pub tool_calls_finished: Option<u64>,
    /// Tool calls started and never finished.
    pub tools_in_flight: Vec<ToolCallDoc>,
    pub retry_safety: Option<RetrySafety>,
    /// Facts about this run the logs do not hold, empty when complete.
    pub missing_provenance: Vec<String>,
    /// A terminal entry (`run_errored`, `run_interrupted`) of this run that is in the log but
    /// could not be read. Omitted when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable_terminal: Option<UnreadableEntry>,
}

/// Token usage of a run. Input counts the whole prompt, cached input included. A count is `None`
/// when no request reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDoc {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// Model requests (first attempts) the run started.
    pub requests_started: u64,
    /// Of those, the requests whose end the log records (the counts cover only these).
    pub requests_recorded: u64,
    /// Of those, the requests that reported usage.
    pub requests_with_usage: u64,
}

/// A log line of a known kind that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableEntry {
    /// Line number in the log, from 1.
    pub line: u64,
    /// The entry's kind, as found in the line.
    pub kind: String,
    /// The line is the log's last and has no newline: the writer was cut off while writing it.
    pub torn: bool,
    /// Why it could not be read (never quotes the line).
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TriggerDoc {
    Cli,
    ControlRequest {
        client: String,
    },
    ParentPod {
        parent_pod_id: String,
        tool_call_id: String,
    },
    /// A trigger this build does not know, kept as written.
    Other {
        raw: Value,
    },
}

/// One decision of the approval policy (a `tool_decision` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDecisionDoc {
    pub call_id: String,
    pub tool: String,
    pub side_effect: String,
    /// `allowed` or `denied`.
    pub decision: String,
    /// `config`, `user`, `flag` or `parent`.
    pub source: String,
    /// What decided: the `[permissions]` key, the flag, the answer and where it was given.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDoc {
    pub call_id: String,
    pub tool: String,
    pub side_effect: String,
    /// The input as logged when its JSON text is short; otherwise the start of that text, as a
    /// string (see `input_truncated`).
    pub input: Value,
    /// Length in bytes of the input's JSON text in the log.
    pub input_bytes: u64,
    /// `input` holds only the start of the input's JSON text.
    pub input_truncated: bool,
}

/// A structured provider error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    pub class: String,
    pub code: Option<String>,
    pub http_status: Option<u16>,
    pub provider_request_id: Option<String>,
    pub retryable: Option<bool>,
    pub message: Option<String>,
}

/// The terminal `run_interrupted` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptDoc {
    /// Short reason written by the runtime (`cancelled`, `stopped`, …).
    pub reason: String,
    /// The lifecycle action, `None` when the log did not record one.
    pub action: Option<ActionDoc>,
}

/// A lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDoc {
    pub action_id: String,
    pub kind: String,
    pub started_at: String,
    pub affects: Vec<String>,
    pub origin: OriginDoc,
    /// Free text given with the action.
    pub reason: Option<String>,
    pub caused_by: Option<ActionRef>,
}

/// A reference to an ancestor's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRef {
    pub pod_id: String,
    pub action_id: String,
    pub kind: String,
}

/// Who or what started something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OriginDoc {
    Cli {
        command: String,
        request_id: String,
    },
    ControlRequest {
        request_id: String,
        client: String,
    },
    Signal {
        signal: String,
    },
    ParentPod {
        parent_pod_id: String,
        tool_call_id: String,
    },
    Watchdog {
        idle_ms: u64,
    },
    Runtime {
        detail: String,
    },
    /// The provider reported the failure (provider errors).
    Provider {
        provider_request_id: Option<String>,
    },
    Unknown {
        missing: Vec<String>,
    },
    /// A control-socket client claimed `claimed` but it did not check out against the pod's
    /// records and the peer's credentials (`why`): a claim, not a fact.
    Unverified {
        claimed: Box<OriginDoc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claimed_caused_by: Option<ActionRef>,
        peer: PeerDoc,
        why: String,
    },
}

/// A control-socket peer as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDoc {
    pub pid: Option<u32>,
    pub uid: Option<u32>,
}

impl OriginDoc {
    pub fn is_unknown(&self) -> bool {
        matches!(self, OriginDoc::Unknown { .. })
    }
}

/// How a run ended without a terminal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashEvidence {
    /// Sequence number of the last entry of the log that holds the run.
    pub last_seq: Option<u64>,
    pub last_entry_kind: Option<String>,
    pub last_entry_at: Option<String>,
    pub owner_pid: Option<u32>,
    /// `gone`, or `unknown` when liveness could not be checked.
    pub owner: String,
    /// Why the owner is considered gone.
    pub detail: String,
    /// The log ends in a torn line.
    pub torn_tail: bool,
    /// Lifecycle actions that reached the pod while the run was active.
    pub actions_seen: Vec<String>,
    /// How the owning process ended, as its parent pod recorded it (`child_exited`), when a
    /// parent log read holds that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_seen_by_parent: Option<ChildExit>,
}

/// A child process's end as recorded in its parent's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildExit {
    pub parent_pod_id: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The parent had asked it to stop.
    pub expected: bool,
}

/// Where the run was when it ended: what a retry would repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseDoc {
    /// `recorded` (from the terminal entry) or `derived` (from the log entries of a run that has
    /// none).
    pub source: String,
    pub provider_progress_seen: Option<bool>,
    pub visible_output_seen: Option<bool>,
    pub tool_execution: String,
    pub side_effects_started: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryVerdict {
    Safe,
    AskUser,
    Unsafe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySafety {
    pub verdict: RetryVerdict,
    pub reason: String,
}

/// One run that did not complete, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub pod_id: String,
    pub run_id: String,
    pub cause: Cause,
    /// Ordered links from the run outward to whoever started the action.
    pub chain: Vec<ChainLink>,
    /// The known origin closest to the run.
    pub nearest_origin: Option<OriginDoc>,
    /// The origin at the far end of the chain (the initiator), possibly unknown.
    pub root_origin: Option<OriginDoc>,
    pub missing_provenance: Vec<String>,
    /// True only when `missing_provenance` is empty.
    pub diagnostics_complete: bool,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// `provider_error`, `interrupted` or `crashed`.
    pub category: String,
    pub detail: String,
}

/// One link of an incident chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum ChainLink {
    Run {
        pod_id: String,
        run_id: String,
        outcome: Outcome,
    },
    ProviderError {
        class: String,
        code: Option<String>,
        http_status: Option<u16>,
        provider_request_id: Option<String>,
    },
    Interrupt {
        pod_id: String,
        reason: String,
        at: Option<String>,
    },
    LifecycleAction {
        pod_id: String,
        action_id: String,
        kind: String,
        started_at: String,
    },
    Origin {
        pod_id: String,
        origin: OriginDoc,
    },
    Request {
        request_id: String,
        client: String,
    },
    /// A cascade link whose ancestor action was not found in the ancestor's logs.
    Unresolved {
        pod_id: String,
        action_id: String,
        kind: String,
    },
    CrashEvidence {
        pod_id: String,
        owner_pid: Option<u32>,
        owner: String,
    },
}

/// The health of one session log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogIntegrity {
    pub pod_id: String,
    /// Path relative to the pod directory.
    pub log: String,
    /// Why the log could not be read (or not to its end); `None` when it was read whole. The
    /// counts below cover what was read before.
    #[serde(default)]
    pub read_error: Option<String>,
    pub bytes: u64,
    pub lines: u64,
    pub entries: u64,
    /// The final line is incomplete (no newline and not a whole entry).
    pub torn_final_line: bool,
    /// Places where `seq` did not increase by one (first 100).
    pub sequence_gaps: Vec<SeqGap>,
    pub sequence_gap_count: u64,
    pub unparseable_count: u64,
    /// Line numbers (from 1) of unparseable entries (first 100).
    pub unparseable_lines: Vec<u64>,
    /// Entries of kinds this build does not know, by kind.
    pub unknown_kinds: BTreeMap<String, u64>,
    pub trace_sidecar: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqGap {
    pub after: u64,
    pub next: u64,
}
