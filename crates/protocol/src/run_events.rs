//! The event stream `pods run --json` and `pods resume --json` write on stdout: JSON Lines, one
//! [`RunEvent`] per line, tagged by `kind`. Programs driving pods can deserialize each line into
//! [`RunEvent`]. The format is described in `docs/RUN-JSON.md`; the first line is always
//! [`RunEvent::PodStarted`], carrying [`RUN_EVENTS_FORMAT`] and [`RUN_EVENTS_VERSION`], and the
//! last line of a run that took place is [`RunEvent::RunEnded`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{Decision, DecisionSource, SideEffectClass, ToolOutcome};
use crate::report::UsageTotals;

/// The `format` of the first line.
pub const RUN_EVENTS_FORMAT: &str = "pods-run-events";

/// The `version` of the first line. Adding a kind or an optional field keeps the version;
/// removing or changing the meaning of one bumps it.
pub const RUN_EVENTS_VERSION: u32 = 1;

/// The most bytes of a tool result a [`RunEvent::ToolCallFinished`] line previews.
pub const TOOL_PREVIEW_MAX_BYTES: usize = 1024;

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunEvent {
    /// The pod is hosted and about to run. Always the first line.
    PodStarted {
        format: String,
        version: u32,
        pod_id: String,
        name: String,
        profile: String,
        /// The parent pod's id; `null` for a top-level pod.
        parent_id: Option<String>,
        /// `true` for `pods resume` (an existing pod), `false` for a pod `pods run` created.
        resumed: bool,
    },
    /// The run is recorded as started in the session log.
    RunStarted { run_id: String },
    /// Assistant text: one line per batch of deltas the provider client delivered together
    /// (see `docs/RUN-JSON.md`); concatenating a turn's lines gives its text.
    Text { text: String },
    /// Reasoning text, batched like [`RunEvent::Text`].
    Reasoning { text: String },
    /// A tool call started. For a call that cannot run (unknown tool, arguments that are not
    /// JSON) `input` is the raw argument text as a string and its `tool_call_finished` says
    /// `rejected`.
    ToolCallStarted {
        call_id: String,
        tool: String,
        side_effect: SideEffectClass,
        input: Value,
    },
    /// Who decided whether a tool call may run, when it is worth saying: the call was asked
    /// about (a person, `--approve` or the parent answered) or denied. Written before the call's
    /// `tool_call_started`; a denied call then ends `rejected`.
    ToolDecision {
        call_id: String,
        tool: String,
        decision: Decision,
        source: DecisionSource,
        /// What decided, for people: the `[permissions]` key, the flag, the terminal's answer or
        /// the parent's.
        detail: String,
    },
    /// A tool call ended with `outcome` (`ok`, `error` or `rejected`).
    ToolCallFinished {
        call_id: String,
        tool: String,
        side_effect: SideEffectClass,
        outcome: ToolOutcome,
        /// The size of the whole result.
        output_bytes: u64,
        /// At most [`TOOL_PREVIEW_MAX_BYTES`] of the result.
        preview: String,
        /// Whether `preview` is shorter than the result.
        preview_truncated: bool,
    },
    /// A child pod's process is up and has its task.
    ChildSpawned {
        call_id: String,
        child_pod_id: String,
        profile: String,
    },
    /// A child pod's process ended.
    ChildExited {
        child_pod_id: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// `true` when it was told to stop; `false` is a loss.
        expected: bool,
    },
    /// The provider client retries a failed model request after `delay_ms`.
    RetryScheduled {
        /// The attempt that failed.
        attempt: u32,
        delay_ms: u64,
        /// The error class of the failure (e.g. `rate_limited`).
        class: String,
        message: String,
    },
    /// A model request ended; its token usage as the provider reported it (`null`: not
    /// reported).
    Usage {
        turn: u32,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cached_input_tokens: Option<u64>,
        reasoning_tokens: Option<u64>,
    },
    /// The command is done. Always the last line once `pod_started` was written.
    RunEnded {
        /// `null` when the run never got recorded as started.
        run_id: Option<String>,
        /// `completed`, `errored`, `interrupted` (a signal, `pods stop`; also when `pods` stopped
        /// without waiting for the pod to end) or `failed` (the pod task failed).
        outcome: String,
        /// The normalized stop reason of the last model request of a completed run.
        stop_reason: Option<String>,
        /// Whether a completed run's answer is incomplete (cut, filtered, refused).
        truncated: bool,
        turns: Option<u32>,
        error: Option<RunEventError>,
        /// Token usage summed over the run's requests (`null` fields: not reported).
        usage: Option<UsageTotals>,
        /// The exit code the process ends with.
        exit_code: i32,
    },
}

impl RunEvent {
    /// The `kind` tag of this event.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// Why a run failed: the provider error class and code, and its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEventError {
    /// The error class (e.g. `context_length_exceeded`), or `pod_failed` when the pod task
    /// itself failed.
    pub class: String,
    /// The provider's own error code, when it gave one.
    pub code: Option<String>,
    pub message: String,
}

/// At most `max` bytes of `text` (on a character boundary) and whether it was cut.
pub fn preview(text: &str, max: usize) -> (String, bool) {
    let kept = crate::text::cut_at_char_boundary(text, max);
    (kept.to_owned(), kept.len() < text.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_kind_round_trips_under_its_tag() {
        let event = RunEvent::ToolCallFinished {
            call_id: "c".into(),
            tool: "list_dir".into(),
            side_effect: SideEffectClass::ReadOnly,
            outcome: ToolOutcome::Rejected,
            output_bytes: 3,
            preview: "abc".into(),
            preview_truncated: false,
        };
        let line = serde_json::to_string(&event).unwrap();
        assert!(
            line.starts_with(r#"{"kind":"tool_call_finished""#),
            "{line}"
        );
        assert!(line.contains(r#""outcome":"rejected""#), "{line}");
        assert_eq!(serde_json::from_str::<RunEvent>(&line).unwrap(), event);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["kind"], event.kind());
    }

    #[test]
    fn a_preview_is_cut_on_a_character_boundary() {
        assert_eq!(preview("héllo", 2), ("h".to_owned(), true));
        assert_eq!(preview("hé", 3), ("hé".to_owned(), false));
    }
}
