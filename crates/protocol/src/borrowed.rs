//! Borrowed readings of the session-log records a reader meets most (`run_started`,
//! `run_completed`, `assistant_message`, requests and tool calls): the same fields as the owned
//! types in [`crate::record`], strings borrowed from the line where they need no unescaping and
//! bulky fields skipped unread, so a scan of a large log allocates little per line. A few are
//! more lenient than their owned type (an optional `attempt`, an `outcome` as written); the test
//! beside them holds each to the owned type's reading of every record this build writes.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::record::{RunTrigger, SideEffectClass, StopReason};

/// Any entry: only its `seq`.
#[derive(Deserialize)]
pub struct SeqOnly {
    pub seq: u64,
}

/// `assistant_message`: its run, the text skipped (see [`crate::record::AssistantMessage`]).
#[derive(Deserialize)]
pub struct AssistantLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    /// Skipped without unescaping; emptiness is read from the raw line.
    pub text: IgnoredAny,
}

/// `tool_call_finished`: the call and its outcome as written, the output skipped (see
/// [`crate::record::ToolCallFinished`]).
#[derive(Deserialize)]
pub struct ToolFinishedLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    #[serde(borrow)]
    pub call_id: Cow<'a, str>,
    pub output: IgnoredAny,
    #[serde(default, borrow)]
    pub outcome: Option<Cow<'a, str>>,
}

/// `provider_request_started`: run, model and attempt (see
/// [`crate::record::ProviderRequestStarted`]).
#[derive(Deserialize)]
pub struct RequestLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    #[serde(default)]
    pub attempt: Option<u32>,
}

/// `run_started`: the fields of [`crate::record::RunStarted`], strings borrowed, the trigger
/// as its JSON text until asked for (see [`RunStartedLite::trigger`]).
#[derive(Deserialize)]
pub struct RunStartedLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    #[serde(borrow)]
    trigger: &'a RawValue,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(borrow)]
    pub input: Cow<'a, str>,
}

impl RunStartedLite<'_> {
    /// The trigger. Nearly every one is `{"type":"cli"}`, told by its text without the
    /// tagged-enum parse (which buffers the object first); any other text is parsed as the
    /// enum, so a line reads exactly as the owned type would read it.
    pub fn trigger(&self) -> serde_json::Result<RunTrigger> {
        const CLI: &str = r#"{"type":"cli"}"#;
        match self.trigger.get() {
            CLI => Ok(RunTrigger::Cli),
            other => serde_json::from_str(other),
        }
    }
}

/// `run_completed`: the fields of [`crate::record::RunCompleted`], strings borrowed, the stop
/// reason as its JSON text until asked for (see [`RunCompletedLite::stop_reason`]).
#[derive(Deserialize)]
pub struct RunCompletedLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    pub turns: u32,
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    #[serde(borrow)]
    pub reason: Cow<'a, str>,
    #[serde(default, borrow)]
    stop_reason: Option<&'a RawValue>,
}

impl RunCompletedLite<'_> {
    /// The stop reason, when recorded. The usual two are told by their text, as
    /// [`RunStartedLite::trigger`] tells the usual trigger.
    pub fn stop_reason(&self) -> serde_json::Result<Option<StopReason>> {
        const END_TURN: &str = r#"{"reason":"end_turn"}"#;
        const TOOL_CALLS: &str = r#"{"reason":"tool_calls"}"#;
        match self.stop_reason.map(RawValue::get) {
            None => Ok(None),
            Some(END_TURN) => Ok(Some(StopReason::EndTurn)),
            Some(TOOL_CALLS) => Ok(Some(StopReason::ToolCalls)),
            Some(other) => serde_json::from_str(other).map(Some),
        }
    }
}

/// `tool_call_started`: the call, its class and its input as JSON text (see
/// [`crate::record::ToolCallStarted`]).
#[derive(Deserialize)]
pub struct ToolStartedLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    pub call_id: String,
    pub tool: String,
    pub side_effect: SideEffectClass,
    #[serde(borrow)]
    pub input: &'a RawValue,
}

#[cfg(test)]
#[path = "borrowed_tests.rs"]
mod tests;
