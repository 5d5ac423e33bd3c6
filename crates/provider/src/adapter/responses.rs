//! OpenAI Responses API (`POST {base}/responses`).
//!
//! Every frame's `data.type` names the event (it wins over the `event:` line). Terminal events:
//! `response.completed`, `response.incomplete`, `response.failed`, and `error`.
//!
//! A `response.incomplete`, or a `response.completed` whose `response.status` is `incomplete`,
//! is `completed` with the stop reason from `incomplete_details.reason`: `max_output_tokens` is
//! `max_tokens`, `content_filter` is `content_filter`, anything else `incomplete` with that
//! reason. Otherwise the stop reason is `tool_calls` when a tool call came, `refusal` after
//! refusal text, else `end_turn`.
//!
//! Tool calls are tied to their deltas and done item by `item_id` (the item's `id`), then
//! `call_id`, then `output_index`: some servers (llama.cpp) send no `output_index`. The reported
//! index is the `output_index` when there is one. A delta that cannot be tied to exactly one
//! open call is `unhandled`, never added to another call's arguments.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::lenient::LenientStr;
use super::{Adapter, Decoder, closed_early, join_url, not_understood, unhandled};
use crate::classify::from_error_json;
use crate::error::{ErrorClass, ProviderError};
use crate::event::{
    Completed, ReasoningDelta, ReasoningKind, Started, StopReason, StreamEvent, TextDelta,
    ToolCallDelta, ToolCallEnd, ToolCallStart, Usage,
};
use crate::request::{Message, ModelRequest};
use crate::scheme::WireScheme;
use crate::secret::ApiKey;
use crate::sse::Frame;

pub struct Responses;

impl Adapter for Responses {
    fn scheme(&self) -> WireScheme {
        WireScheme::OpenaiResponses
    }

    fn url(&self, base_url: &str, _model: &str) -> String {
        join_url(base_url, "responses")
    }

    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)> {
        api_key
            .map(|k| vec![("authorization", format!("Bearer {}", k.expose()))])
            .unwrap_or_default()
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let mut input = Vec::new();
        for m in request.sendable_messages() {
            match &*m {
                Message::User { text } => input.push(json!({"role": "user", "content": text})),
                Message::Assistant {
                    text,
                    reasoning,
                    tool_calls,
                } => {
                    let summary: String = reasoning
                        .iter()
                        .filter(|r| r.kind == ReasoningKind::Summary)
                        .map(|r| r.text.as_str())
                        .collect();
                    if let Some(sig) = reasoning.iter().find_map(|r| r.signature.as_deref()) {
                        input.push(json!({
                            "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": summary}],
                            "encrypted_content": sig,
                        }));
                    }
                    if !text.is_empty() {
                        input.push(json!({"role": "assistant", "content": text}));
                    }
                    for c in tool_calls {
                        input.push(json!({
                            "type": "function_call",
                            "call_id": c.call_id,
                            "name": c.name,
                            "arguments": c.arguments,
                        }));
                    }
                }
                Message::ToolResult {
                    call_id, output, ..
                } => input.push(json!({
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": output,
                })),
            }
        }
        let mut body = json!({"model": request.model, "input": input, "stream": true});
        if !request.instructions.is_empty() {
            body["instructions"] = json!(request.instructions);
        }
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        json!({
                            "type": "function",
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.parameters,
                        })
                    })
                    .collect(),
            );
        }
        if let Some(n) = request.max_output_tokens {
            body["max_output_tokens"] = json!(n);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<ResponsesDecoder>::default()
    }
}

#[derive(Default)]
struct ResponsesDecoder {
    started: bool,
    saw_tool_call: bool,
    saw_refusal: bool,
    /// Open tool calls (function or custom), in start order.
    open_calls: Vec<OpenCall>,
    /// Every index reported so far, to keep reported indexes unique.
    used: Vec<u32>,
}

/// One tool call between `output_item.added` and `output_item.done`.
struct OpenCall {
    /// The item's `id` (`fc_…`), which argument deltas name as `item_id`.
    item_id: Option<String>,
    call_id: Option<String>,
    output_index: Option<u32>,
    /// The index reported in events: `output_index` when the server sends one.
    index: u32,
    /// Arguments (or custom-tool input) received so far.
    arguments: String,
    /// The whole string from `response.function_call_arguments.done`, when one came.
    done_arguments: Option<String>,
}

/// The fields of a Responses event this adapter reads; everything else is skipped. The fields
/// every delta carries are borrowed from the frame.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    /// A string for text and argument deltas; some hosted-tool events send an object, read as
    /// no text.
    #[serde(default, borrow)]
    delta: LenientStr<'a>,
    #[serde(default)]
    output_index: Option<u32>,
    /// The output item an event belongs to; some servers (llama.cpp) send only this.
    #[serde(default, borrow)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    /// The whole argument string of `response.function_call_arguments.done`.
    #[serde(default)]
    arguments: Option<String>,
}

/// The normalized stop reason of a response that ended as `incomplete`.
fn incomplete_reason(response: &Value) -> StopReason {
    match response
        .pointer("/incomplete_details/reason")
        .and_then(Value::as_str)
    {
        Some("max_output_tokens" | "max_tokens") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFilter,
        Some(other) => StopReason::Incomplete {
            raw: other.to_string(),
        },
        None => StopReason::Incomplete {
            raw: "unknown".to_string(),
        },
    }
}

impl Decoder for ResponsesDecoder {
    fn frame(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) {
        if frame.data == "[DONE]" {
            // OpenRouter's sentinel after the terminal event; reaching it means no terminal came.
            out.push(closed_early("`response.completed` ([DONE] came first)"));
            return;
        }
        let ev: Event = match serde_json::from_str(frame.data) {
            Ok(ev) => ev,
            Err(e) => {
                out.push(not_understood(frame, &e));
                return;
            }
        };
        match &*ev.kind {
            "response.output_text.delta" => out.push(StreamEvent::TextDelta(TextDelta {
                choice: 0,
                text: ev.delta.into_string(),
            })),
            "response.refusal.delta" => {
                self.saw_refusal = true;
                out.push(StreamEvent::TextDelta(TextDelta {
                    choice: 0,
                    text: ev.delta.into_string(),
                }));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let kind = if ev.kind == "response.reasoning_text.delta" {
                    ReasoningKind::Raw
                } else {
                    ReasoningKind::Summary
                };
                out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                    choice: 0,
                    kind,
                    text: ev.delta.into_string(),
                    signature: None,
                }));
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let delta = ev.delta.into_string();
                match self.find_call(ev.item_id.as_deref(), None, ev.output_index) {
                    Some(p) => {
                        let call = &mut self.open_calls[p];
                        call.arguments.push_str(&delta);
                        out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                            choice: 0,
                            index: call.index,
                            arguments: delta,
                        }));
                    }
                    // Arguments that cannot be tied to one call are never given to another.
                    None => out.push(unhandled(&ev.kind, frame.data)),
                }
            }
            "response.created" | "response.in_progress" | "response.queued" => {
                if !self.started {
                    self.started = true;
                    let r = ev.response.as_ref();
                    out.push(StreamEvent::Started(Started {
                        response_id: r.and_then(|r| str_at(r, "id")),
                        model: r.and_then(|r| str_at(r, "model")),
                    }));
                }
            }
            // Usually a repeat of the deltas; kept in case a server sends the arguments only here.
            "response.function_call_arguments.done" => {
                match self.find_call(ev.item_id.as_deref(), None, ev.output_index) {
                    Some(p) => self.open_calls[p].done_arguments = ev.arguments,
                    None => out.push(unhandled(&ev.kind, frame.data)),
                }
            }
            "response.output_item.added" => self.item_added(ev.output_index, ev.item, frame, out),
            "response.output_item.done" => self.item_done(ev.output_index, ev.item, frame, out),
            // Lifecycle events whose content already arrived as deltas.
            "response.content_part.added"
            | "response.content_part.done"
            | "response.output_text.done"
            | "response.refusal.done"
            | "response.custom_tool_call_input.done"
            | "response.reasoning_summary_part.added"
            | "response.reasoning_summary_part.done"
            | "response.reasoning_summary_text.done"
            | "response.reasoning_text.done" => {}
            "response.completed" | "response.incomplete" => {
                let r = ev.response.unwrap_or(Value::Null);
                // Calls the server never closed end with what their deltas said.
                for call in std::mem::take(&mut self.open_calls) {
                    let arguments = Some(call.arguments)
                        .filter(|a| !a.is_empty())
                        .or(call.done_arguments)
                        .unwrap_or_default();
                    out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                        choice: 0,
                        index: call.index,
                        arguments,
                    }));
                }
                push_usage(&r, out);
                let incomplete = ev.kind == "response.incomplete"
                    || r.get("status").and_then(Value::as_str) == Some("incomplete");
                let stop_reason = if incomplete {
                    incomplete_reason(&r)
                } else if self.saw_tool_call {
                    StopReason::ToolCalls
                } else if self.saw_refusal {
                    StopReason::Refusal
                } else {
                    StopReason::EndTurn
                };
                out.push(StreamEvent::Completed(Completed {
                    choice: 0,
                    stop_reason,
                }));
            }
            "response.failed" => {
                let r = ev.response.unwrap_or(Value::Null);
                push_usage(&r, out);
                let mut err = match r.get("error") {
                    Some(e @ Value::Object(_)) => from_error_json(e, None),
                    _ => ProviderError::new(
                        ErrorClass::ServerError,
                        "response.failed without an error object",
                    ),
                };
                if err.provider_request_id.is_none() {
                    err.provider_request_id = str_at(&r, "id");
                }
                out.push(StreamEvent::Error(err));
            }
            "error" => {
                let v: Value = serde_json::from_str(frame.data).unwrap_or(Value::Null);
                out.push(StreamEvent::Error(from_error_json(&v, None)));
            }
            other => out.push(unhandled(other, frame.data)),
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        out.push(closed_early("`response.completed`"));
    }
}

impl ResponsesDecoder {
    /// The open call an event belongs to: by `item_id`, then `call_id`, then `output_index`;
    /// failing those, the only open call whose identifiers do not contradict the event's.
    fn find_call(
        &self,
        item_id: Option<&str>,
        call_id: Option<&str>,
        output_index: Option<u32>,
    ) -> Option<usize> {
        let calls = &self.open_calls;
        if let Some(id) = item_id
            && let Some(p) = calls.iter().position(|c| c.item_id.as_deref() == Some(id))
        {
            return Some(p);
        }
        if let Some(id) = call_id
            && let Some(p) = calls.iter().position(|c| c.call_id.as_deref() == Some(id))
        {
            return Some(p);
        }
        if let Some(i) = output_index
            && let Some(p) = calls.iter().position(|c| c.output_index == Some(i))
        {
            return Some(p);
        }
        let fits = |mine: Option<&str>, theirs: Option<&str>| {
            mine.is_none() || theirs.is_none() || mine == theirs
        };
        let mut candidates = calls.iter().enumerate().filter(|(_, c)| {
            fits(c.item_id.as_deref(), item_id)
                && fits(c.call_id.as_deref(), call_id)
                && (c.output_index.is_none() || output_index.is_none())
        });
        match (candidates.next(), candidates.next()) {
            (Some((p, _)), None) => Some(p),
            _ => None,
        }
    }

    /// Open a call and report its start; the reported index is `output_index` when the server
    /// sends one and it is not taken, else the next free one.
    fn open_call(
        &mut self,
        output_index: Option<u32>,
        item: &Value,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        self.saw_tool_call = true;
        let mut index = output_index.unwrap_or(0);
        while self.used.contains(&index) {
            index = index.saturating_add(1);
        }
        self.used.push(index);
        let call_id = str_at(item, "call_id");
        out.push(StreamEvent::ToolCallStart(ToolCallStart {
            choice: 0,
            index,
            call_id: call_id.clone().unwrap_or_default(),
            name: str_at(item, "name").unwrap_or_default(),
        }));
        self.open_calls.push(OpenCall {
            item_id: str_at(item, "id"),
            call_id,
            output_index,
            index,
            arguments: String::new(),
            done_arguments: None,
        });
        self.open_calls.len() - 1
    }

    fn item_added(
        &mut self,
        output_index: Option<u32>,
        item: Option<Value>,
        frame: &Frame<'_>,
        out: &mut Vec<StreamEvent>,
    ) {
        let item = item.unwrap_or(Value::Null);
        match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call") => {
                self.open_call(output_index, &item, out);
            }
            Some("message" | "reasoning") => {}
            _ => out.push(unhandled("response.output_item.added", frame.data)),
        }
    }

    fn item_done(
        &mut self,
        output_index: Option<u32>,
        item: Option<Value>,
        frame: &Frame<'_>,
        out: &mut Vec<StreamEvent>,
    ) {
        let item = item.unwrap_or(Value::Null);
        match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call") => {
                let found = self.find_call(
                    item.get("id").and_then(Value::as_str),
                    item.get("call_id").and_then(Value::as_str),
                    output_index,
                );
                // A call first announced by its done item still gets a start.
                let p = match found {
                    Some(p) => p,
                    None => self.open_call(output_index, &item, out),
                };
                let call = self.open_calls.remove(p);
                // The done item's full string when it has one; else what the deltas said; else
                // the arguments' own done event.
                let arguments = str_at(&item, "arguments")
                    .or_else(|| str_at(&item, "input"))
                    .filter(|a| !a.is_empty())
                    .or_else(|| Some(call.arguments).filter(|a| !a.is_empty()))
                    .or(call.done_arguments)
                    .unwrap_or_default();
                out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                    choice: 0,
                    index: call.index,
                    arguments,
                }));
            }
            Some("reasoning") => {
                if let Some(sig) = str_at(&item, "encrypted_content").filter(|s| !s.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                        choice: 0,
                        kind: ReasoningKind::Opaque,
                        text: String::new(),
                        signature: Some(sig),
                    }));
                }
            }
            Some("message") => {}
            _ => out.push(unhandled("response.output_item.done", frame.data)),
        }
    }
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn push_usage(response: &Value, out: &mut Vec<StreamEvent>) {
    let Some(u) = response.get("usage").filter(|u| u.is_object()) else {
        return;
    };
    out.push(StreamEvent::Usage(Usage {
        input_tokens: u.get("input_tokens").and_then(Value::as_u64),
        output_tokens: u.get("output_tokens").and_then(Value::as_u64),
        cached_input_tokens: u
            .pointer("/input_tokens_details/cached_tokens")
            .and_then(Value::as_u64),
        reasoning_tokens: u
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
    }));
}
