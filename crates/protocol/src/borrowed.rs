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

/// `run_started`: the fields of [`crate::record::RunStarted`], strings borrowed.
#[derive(Deserialize)]
pub struct RunStartedLite<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub run_id: Cow<'a, str>,
    pub trigger: RunTrigger,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(borrow)]
    pub input: Cow<'a, str>,
}

/// `run_completed`: the fields of [`crate::record::RunCompleted`], strings borrowed.
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
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
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
