//! OpenAI Responses API (`POST {base}/responses`).
//!
//! Every frame's `data.type` names the event (it wins over the `event:` line). Terminal events:
//! `response.completed`, `response.incomplete`, `response.failed`, and `error`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Adapter, Decoder, closed_early, join_url, not_understood, unhandled};
use crate::classify::from_error_json;
use crate::error::{ErrorClass, ProviderError};
use crate::event::{
    Completed, Incomplete, ReasoningDelta, ReasoningKind, Started, StopReason, StreamEvent,
    TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart, Usage,
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

    fn url(&self, base_url: &str) -> String {
        join_url(base_url, "responses")
    }

    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)> {
        api_key
            .map(|k| vec![("authorization", format!("Bearer {}", k.expose()))])
            .unwrap_or_default()
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let mut input = Vec::new();
        for m in &request.messages {
            match m {
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
    /// Output indexes of open tool calls (function or custom), with accumulated input for custom
    /// tools whose done item carries `input` instead of `arguments`.
    open_calls: Vec<(u32, String)>,
}

/// The fields of a Responses event this adapter reads; everything else is skipped.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    /// A string for text and argument deltas; some hosted-tool events send an object.
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
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
        let index = ev.output_index.unwrap_or(0);
        match ev.kind.as_str() {
            "response.output_text.delta" => out.push(StreamEvent::TextDelta(TextDelta {
                choice: 0,
                text: delta_text(ev.delta),
            })),
            "response.refusal.delta" => {
                self.saw_refusal = true;
                out.push(StreamEvent::TextDelta(TextDelta {
                    choice: 0,
                    text: delta_text(ev.delta),
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
                    text: delta_text(ev.delta),
                    signature: None,
                }));
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let delta = delta_text(ev.delta);
                if let Some((_, acc)) = self.open_calls.iter_mut().find(|(i, _)| *i == index) {
                    acc.push_str(&delta);
                }
                out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                    choice: 0,
                    index,
                    arguments: delta,
                }));
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
            "response.output_item.added" => self.item_added(index, ev.item, frame, out),
            "response.output_item.done" => self.item_done(index, ev.item, frame, out),
            // Lifecycle events whose content already arrived as deltas.
            "response.content_part.added"
            | "response.content_part.done"
            | "response.output_text.done"
            | "response.refusal.done"
            | "response.function_call_arguments.done"
            | "response.custom_tool_call_input.done"
            | "response.reasoning_summary_part.added"
            | "response.reasoning_summary_part.done"
            | "response.reasoning_summary_text.done"
            | "response.reasoning_text.done" => {}
            "response.completed" => {
                let r = ev.response.unwrap_or(Value::Null);
                push_usage(&r, out);
                let stop_reason = if self.saw_tool_call {
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
            "response.incomplete" => {
                let r = ev.response.unwrap_or(Value::Null);
                push_usage(&r, out);
                let reason = r
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                out.push(StreamEvent::Incomplete(Incomplete { reason }));
            }
            "response.failed" => {
                let r = ev.response.unwrap_or(Value::Null);
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
    fn item_added(
        &mut self,
        index: u32,
        item: Option<Value>,
        frame: &Frame<'_>,
        out: &mut Vec<StreamEvent>,
    ) {
        let item = item.unwrap_or(Value::Null);
        match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call") => {
                self.saw_tool_call = true;
                self.open_calls.push((index, String::new()));
                out.push(StreamEvent::ToolCallStart(ToolCallStart {
                    choice: 0,
                    index,
                    call_id: str_at(&item, "call_id").unwrap_or_default(),
                    name: str_at(&item, "name").unwrap_or_default(),
                }));
            }
            Some("message" | "reasoning") => {}
            _ => out.push(unhandled("response.output_item.added", frame.data)),
        }
    }

    fn item_done(
        &mut self,
        index: u32,
        item: Option<Value>,
        frame: &Frame<'_>,
        out: &mut Vec<StreamEvent>,
    ) {
        let item = item.unwrap_or(Value::Null);
        match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call") => {
                let acc = self
                    .open_calls
                    .iter()
                    .position(|(i, _)| *i == index)
                    .map(|p| self.open_calls.remove(p).1)
                    .unwrap_or_default();
                let arguments = str_at(&item, "arguments")
                    .or_else(|| str_at(&item, "input"))
                    .unwrap_or(acc);
                out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                    choice: 0,
                    index,
                    arguments,
                }));
            }
            Some("reasoning") => {
                if let Some(sig) = str_at(&item, "encrypted_content") {
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

fn delta_text(delta: Option<Value>) -> String {
    match delta {
        Some(Value::String(s)) => s,
        _ => String::new(),
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
