//! The messages that cross a pod's control socket (JSON Lines both ways): requests (who sends
//! them, which method with which parameters), replies and events. Data only; `pod-core`'s
//! server and client move them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ProviderError;
use crate::event::StopReason;
use crate::record::{CausedBy, DecisionSource, LifecycleAction, LifecycleKind, SideEffectClass};

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientInfo {
    /// A `pods` command line.
    Cli { command: String },
    /// A parent pod, usually from one of its tool calls.
    ParentPod {
        pod_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<String>,
    },
    /// Anything else, self-described.
    Other { name: String },
}

impl ClientInfo {
    /// Short text for records: `cli`, `parent_pod:<id>`, `other:<name>`.
    pub fn describe(&self) -> String {
        match self {
            ClientInfo::Cli { .. } => "cli".to_owned(),
            ClientInfo::ParentPod { pod_id, .. } => format!("parent_pod:{pod_id}"),
            ClientInfo::Other { name } => format!("other:{name}"),
        }
    }
}

/// Parameters of the methods that are lifecycle actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set by a parent cascading one of its own actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    pub input: String,
}

/// A tool call waiting for approval, as a pod asks its parent (an `approval_requested` event)
/// and the parent passes on up the tree until a pod that can decide answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsk {
    /// Names this ask in the answer (`approve`).
    pub ask_id: String,
    /// The pod whose model asked for the call.
    pub pod_id: String,
    pub pod_name: String,
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    pub side_effect: SideEffectClass,
    /// The call's arguments as JSON text, bounded and scrubbed: what the user is shown.
    pub input: String,
    /// What made it an ask (`permissions.process = "ask"`).
    pub why: String,
}

/// The answer to an [`ApprovalAsk`], sent back down with `approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub ask_id: String,
    pub allow: bool,
    /// Allowed for the rest of the asking pod's life, not only this call.
    #[serde(default)]
    pub for_pod: bool,
    /// Who decided, where the ask was answered.
    pub source: DecisionSource,
    /// How it was decided, for the asking pod's record.
    pub detail: String,
}

/// A request's method with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Run(RunParams),
    /// The answer to an ask this pod published; only its verified parent may send it.
    Approve(ApprovalAnswer),
    /// A lifecycle action of `kind` (cancel, stop, stop_tree, reload).
    Action(LifecycleKind, ActionParams),
    Status,
    Subscribe,
}

impl Call {
    pub const METHODS: &'static [&'static str] = &[
        "run",
        "cancel",
        "stop",
        "stop_tree",
        "shutdown",
        "parent_exit",
        "reload",
        "status",
        "subscribe",
        "approve",
    ];

    pub fn method(&self) -> &'static str {
        match self {
            Call::Run(_) => "run",
            Call::Approve(_) => "approve",
            Call::Action(kind, _) => kind.as_str(),
            Call::Status => "status",
            Call::Subscribe => "subscribe",
        }
    }

    /// The `params` object of a request for this call.
    pub fn params(&self) -> Value {
        match self {
            Call::Run(p) => serde_json::to_value(p).unwrap_or(Value::Null),
            Call::Approve(p) => serde_json::to_value(p).unwrap_or(Value::Null),
            Call::Action(_, p) => serde_json::to_value(p).unwrap_or(Value::Null),
            Call::Status | Call::Subscribe => Value::Object(Default::default()),
        }
    }

    /// Parse `method` + `params`; the error goes back to the client.
    pub fn parse(method: &str, params: Value) -> Result<Call, ReplyError> {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        let action = |kind| {
            serde_json::from_value(params.clone())
                .map(|p| Call::Action(kind, p))
                .map_err(|e| bad_request(format!("invalid params for `{method}`: {e}")))
        };
        match method {
            "run" => serde_json::from_value(params.clone())
                .map(Call::Run)
                .map_err(|e| bad_request(format!("invalid params for `run`: {e}"))),
            "cancel" => action(LifecycleKind::Cancel),
            "stop" => action(LifecycleKind::Stop),
            "stop_tree" => action(LifecycleKind::StopTree),
            "shutdown" => action(LifecycleKind::Shutdown),
            "parent_exit" => action(LifecycleKind::ParentExit),
            "reload" => action(LifecycleKind::Reload),
            "approve" => serde_json::from_value(params.clone())
                .map(Call::Approve)
                .map_err(|e| bad_request(format!("invalid params for `approve`: {e}"))),
            "status" => Ok(Call::Status),
            "subscribe" => Ok(Call::Subscribe),
            other => Err(ReplyError::new(
                "unknown_method",
                format!(
                    "unknown method `{other}`; expected one of: {}",
                    Call::METHODS.join(", ")
                ),
            )),
        }
    }
}

/// How a run ended, as told to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunResult {
    Completed {
        text: String,
        /// Why the model stopped; a parent learns from it that its child's answer was cut
        /// (absent from pods that predate it: unknown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reason: Option<StopReason>,
        /// Whether the answer is not a clean finish (see [`StopReason::is_truncated`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        truncated: Option<bool>,
    },
    Errored {
        error: ProviderError,
    },
    Interrupted {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<LifecycleAction>,
    },
}

/// Something a pod tells its subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PodEvent {
    RunStarted {
        run_id: String,
        /// The `run` request that started the run (none for a command-line run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    TurnEnded {
        run_id: String,
        turn: u32,
    },
    RunEnded {
        run_id: String,
        /// The `run` request that started the run (none for a command-line run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        result: RunResult,
    },
    /// The run could not be recorded (session log failure); the pod stops.
    RunFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        message: String,
    },
    /// The pod process is about to exit.
    Exiting {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<LifecycleAction>,
    },
    /// A tool call of this pod (or of a pod below it) waits for approval; the parent answers
    /// with `approve`.
    ApprovalRequested(ApprovalAsk),
    /// This subscriber fell behind and `missed` events were dropped for it.
    Lagged {
        missed: u64,
    },
}

/// A `bad_request` error with `message`.
pub fn bad_request(message: impl Into<String>) -> ReplyError {
    ReplyError::new("bad_request", message)
}

/// Error half of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// `bad_request`, `unknown_method`, `busy`, `not_running`, `failed`.
    pub code: String,
    pub message: String,
}

impl ReplyError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ReplyError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// A request line as read, every field optional so that a line missing one gets an error reply
/// naming it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest {
    pub id: Option<String>,
    pub client: Option<ClientInfo>,
    pub method: Option<String>,
    #[serde(default)]
    pub params: Value,
}

/// A reply line: `result` when `ok`, else `error`.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireReply {
    pub id: Option<String>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

impl WireReply {
    pub fn from_result(id: Option<String>, result: Result<Value, ReplyError>) -> Self {
        match result {
            Ok(value) => WireReply {
                id,
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(error) => WireReply {
                id,
                ok: false,
                result: None,
                error: Some(error),
            },
        }
    }
}
