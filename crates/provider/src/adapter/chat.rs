//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by Ollama, vLLM,
//! llama.cpp server, OpenRouter, Groq, DeepSeek and Azure.
//!
//! Data-only frames ending with `[DONE]`. `finish_reason` arrives per choice, usage in a final
//! chunk with `choices: []` (requested with `stream_options.include_usage`). The terminal
//! `completed` is emitted at `[DONE]`, or at the end of the stream when every choice seen has
//! finished (servers that omit `[DONE]`); it reports choice 0's stop reason. A top-level `error`
//! object in a data frame and an `event: error` frame (Groq) end the stream with an error.
//!
//! Delta fields the decoder does not read (legacy `function_call`, `audio`, …) become
//! `unhandled` events named `delta.<field>` with a preview of the value, after the choice's other
//! events. Fields that carry no content are not reported: `role`, Groq's `channel` label, any
//! `null`, and an OpenRouter `reasoning_details` that only repeats the `reasoning` text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Adapter, Decoder, closed_early, join_url, not_understood, unhandled};
use crate::classify::from_error_json;
use crate::event::{
    Completed, ReasoningDelta, ReasoningKind, Started, StopReason, StreamEvent, TextDelta,
    ToolCallDelta, ToolCallEnd, ToolCallStart, Usage,
};
use crate::request::{Message, ModelRequest};
use crate::scheme::WireScheme;
use crate::secret::ApiKey;
use crate::sse::Frame;

pub struct Chat;

impl Adapter for Chat {
    fn scheme(&self) -> WireScheme {
        WireScheme::OpenaiChat
    }

    fn url(&self, base_url: &str, _model: &str) -> String {
        join_url(base_url, "chat/completions")
    }

    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)> {
        api_key
            .map(|k| vec![("authorization", format!("Bearer {}", k.expose()))])
            .unwrap_or_default()
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let mut messages = Vec::new();
        if !request.instructions.is_empty() {
            messages.push(json!({"role": "system", "content": request.instructions}));
        }
        for m in request.sendable_messages() {
            match &*m {
                Message::User { text } => messages.push(json!({"role": "user", "content": text})),
                Message::Assistant {
                    text, tool_calls, ..
                } => {
                    let mut msg = json!({"role": "assistant", "content": text});
                    if !tool_calls.is_empty() {
                        msg["tool_calls"] = Value::Array(
                            tool_calls
                                .iter()
                                .map(|c| {
                                    json!({
                                        "id": c.call_id,
                                        "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments},
                                    })
                                })
                                .collect(),
                        );
                    }
                    messages.push(msg);
                }
                Message::ToolResult {
                    call_id, output, ..
                } => messages.push(json!({
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": output,
                })),
            }
        }
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        json!({
                            "type": "function",
                            "function": {
                                "name": t.name,
                                "description": t.description,
                                "parameters": t.parameters,
                            },
                        })
                    })
                    .collect(),
            );
        }
        if let Some(n) = request.max_output_tokens {
            body["max_completion_tokens"] = json!(n);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<ChatDecoder>::default()
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    /// Borrowed: read on every chunk, needed only once.
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// One choice's delta. Read by hand so that every field is accounted for: the ones the decoder
/// uses, the ones that carry no content (`role`, Groq's `channel` label), and the rest, kept in
/// `other` to be reported as `unhandled` (a `null` value carries nothing and is skipped).
#[derive(Default)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolDelta>>,
    /// OpenRouter's structured copy of `reasoning`; reported only when it says more.
    reasoning_details: Option<Value>,
    other: Vec<(String, Value)>,
}

enum DeltaKey {
    Content,
    ReasoningContent,
    Reasoning,
    Refusal,
    ToolCalls,
    ReasoningDetails,
    /// Known, and never carries content.
    Ignored,
    Other(String),
}

impl<'de> Deserialize<'de> for DeltaKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DeltaKey, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = DeltaKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<DeltaKey, E> {
                Ok(match key {
                    "content" => DeltaKey::Content,
                    "reasoning_content" => DeltaKey::ReasoningContent,
                    "reasoning" => DeltaKey::Reasoning,
                    "refusal" => DeltaKey::Refusal,
                    "tool_calls" => DeltaKey::ToolCalls,
                    "reasoning_details" => DeltaKey::ReasoningDetails,
                    "role" | "channel" => DeltaKey::Ignored,
                    other => DeltaKey::Other(other.to_string()),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Delta, D::Error> {
        struct DeltaVisitor;
        impl<'de> serde::de::Visitor<'de> for DeltaVisitor {
            type Value = Delta;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Chat delta object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Delta, M::Error> {
                let mut d = Delta::default();
                while let Some(key) = map.next_key::<DeltaKey>()? {
                    match key {
                        DeltaKey::Content => d.content = map.next_value()?,
                        DeltaKey::ReasoningContent => d.reasoning_content = map.next_value()?,
                        DeltaKey::Reasoning => d.reasoning = map.next_value()?,
                        DeltaKey::Refusal => d.refusal = map.next_value()?,
                        DeltaKey::ToolCalls => d.tool_calls = map.next_value()?,
                        DeltaKey::ReasoningDetails => d.reasoning_details = map.next_value()?,
                        DeltaKey::Ignored => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        DeltaKey::Other(name) => {
                            let v: Value = map.next_value()?;
                            if !v.is_null() {
                                d.other.push((name, v));
                            }
                        }
                    }
                }
                Ok(d)
            }
        }
        d.deserialize_map(DeltaVisitor)
    }
}

impl Delta {
    /// Every field the decoder does not turn into an event, as `(name, value)`. An OpenRouter
    /// `reasoning_details` that only repeats the `reasoning` text (or is empty) is not listed.
    fn take_unread(&mut self) -> Vec<(String, Value)> {
        let mut unread = std::mem::take(&mut self.other);
        if let Some(details) = self.reasoning_details.take() {
            let said = self
                .reasoning
                .as_deref()
                .or(self.reasoning_content.as_deref());
            if !details.is_null() && !repeats_reasoning(&details, said.unwrap_or_default()) {
                unread.push(("reasoning_details".to_string(), details));
            }
        }
        unread
    }
}

/// Whether `details` is a list of `reasoning.text` entries whose texts join to `said`.
fn repeats_reasoning(details: &Value, said: &str) -> bool {
    let Some(items) = details.as_array() else {
        return false;
    };
    let mut joined = String::new();
    for item in items {
        if item.get("type").and_then(Value::as_str) != Some("reasoning.text") {
            return false;
        }
        joined.push_str(item.get("text").and_then(Value::as_str).unwrap_or_default());
    }
    joined == said
}

#[derive(Deserialize)]
struct ToolDelta {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Value>,
    #[serde(default)]
    completion_tokens_details: Option<Value>,
}

struct OpenCall {
    choice: u32,
    /// The `index` the provider uses in its deltas.
    wire_index: u32,
    /// The index reported in events; differs from `wire_index` only when a server reuses an
    /// index for a second call (some compatible servers send every call as index 0).
    index: u32,
    call_id: String,
    arguments: String,
}

#[derive(Default)]
struct ChatDecoder {
    started: bool,
    /// Every (choice, index) reported so far, to keep reported indexes unique.
    used: Vec<(u32, u32)>,
    open: Vec<OpenCall>,
    /// Per choice seen: (choice, finish_reason once known, refusal seen).
    choices: Vec<(u32, Option<String>, bool)>,
}

impl ChatDecoder {
    fn choice_state(&mut self, choice: u32) -> &mut (u32, Option<String>, bool) {
        let pos = match self.choices.iter().position(|c| c.0 == choice) {
            Some(p) => p,
            None => {
                self.choices.push((choice, None, false));
                self.choices.len() - 1
            }
        };
        &mut self.choices[pos]
    }

    fn close_calls(&mut self, choice: u32, out: &mut Vec<StreamEvent>) {
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].choice == choice {
                let c = self.open.remove(i);
                out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                    choice: c.choice,
                    index: c.index,
                    arguments: c.arguments,
                }));
            } else {
                i += 1;
            }
        }
    }

    fn terminal(&mut self, out: &mut Vec<StreamEvent>) {
        let choices: Vec<u32> = self.open.iter().map(|c| c.choice).collect();
        for c in choices {
            self.close_calls(c, out);
        }
        self.choices.sort_by_key(|c| c.0);
        let (reason, refusal) = self
            .choices
            .first()
            .map(|c| (c.1.clone(), c.2))
            .unwrap_or((None, false));
        let stop_reason = match reason.as_deref() {
            Some("content_filter") => StopReason::ContentFilter,
            Some("stop") if refusal => StopReason::Refusal,
            Some("stop" | "eos") => StopReason::EndTurn,
            Some("tool_calls" | "function_call") => StopReason::ToolCalls,
            Some("length") => StopReason::MaxTokens,
            Some(other) => StopReason::Other {
                raw: other.to_string(),
            },
            None => StopReason::Other {
                raw: "unknown".to_string(),
            },
        };
        out.push(StreamEvent::Completed(Completed {
            choice: 0,
            stop_reason,
        }));
    }
}

impl Decoder for ChatDecoder {
    fn frame(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) {
        if frame.data == "[DONE]" {
            self.terminal(out);
            return;
        }
        if frame.event == "error" {
            let v: Value =
                serde_json::from_str(frame.data).unwrap_or_else(|_| json!({"message": frame.data}));
            out.push(StreamEvent::Error(from_error_json(&v, None)));
            return;
        }
        let chunk: Chunk = match serde_json::from_str(frame.data) {
            Ok(c) => c,
            Err(e) => {
                out.push(not_understood(frame, &e));
                return;
            }
        };
        if let Some(err) = chunk.error {
            let wrapped = json!({"error": err});
            out.push(StreamEvent::Error(from_error_json(&wrapped, None)));
            return;
        }
        let id = chunk.id.filter(|s| !s.is_empty());
        let model = chunk.model.filter(|s| !s.is_empty());
        let (id, model) = if self.started {
            (None, None)
        } else {
            (id.map(Cow::into_owned), model.map(Cow::into_owned))
        };
        let mut said_started = false;
        if !self.started && (id.is_some() || model.is_some()) {
            self.started = true;
            said_started = true;
            out.push(StreamEvent::Started(Started {
                response_id: id,
                model,
            }));
        }
        // A chunk with no choice and no usage but something else (e.g. Azure's
        // `prompt_filter_results`) is reported, not dropped; one with nothing at all is a
        // keep-alive and yields no event (so it does not hold off the idle timeout either).
        if chunk.choices.is_empty()
            && chunk.usage.is_none()
            && !said_started
            && carries_something(frame.data)
        {
            out.push(unhandled(
                if frame.event.is_empty() {
                    "data"
                } else {
                    frame.event
                },
                frame.data,
            ));
        }
        for choice in chunk.choices {
            let n = choice.index;
            self.choice_state(n);
            let mut delta = choice.delta.unwrap_or_default();
            let unread = delta.take_unread();
            for r in [delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
            {
                if !r.is_empty() {
                    out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                        choice: n,
                        kind: ReasoningKind::Raw,
                        text: r,
                        signature: None,
                    }));
                }
            }
            if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta(TextDelta { choice: n, text: t }));
            }
            if let Some(t) = delta.refusal.filter(|t| !t.is_empty()) {
                self.choice_state(n).2 = true;
                out.push(StreamEvent::TextDelta(TextDelta { choice: n, text: t }));
            }
            for tc in delta.tool_calls.unwrap_or_default() {
                let f = tc.function.unwrap_or(FunctionDelta {
                    name: None,
                    arguments: None,
                });
                let known = self
                    .open
                    .iter()
                    .rposition(|c| c.choice == n && c.wire_index == tc.index);
                let new_id = tc.id.filter(|id| !id.is_empty());
                // A different id at an open index is a new call, not more of the old one.
                let reused = match (known, &new_id) {
                    (Some(p), Some(id)) => {
                        !self.open[p].call_id.is_empty() && self.open[p].call_id != *id
                    }
                    _ => false,
                };
                if let (true, Some(p)) = (reused, known) {
                    let c = self.open.remove(p);
                    out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                        choice: c.choice,
                        index: c.index,
                        arguments: c.arguments,
                    }));
                }
                let pos = match known.filter(|_| !reused) {
                    Some(p) => p,
                    None => {
                        let mut index = tc.index;
                        while self.used.contains(&(n, index)) {
                            index += 1;
                        }
                        self.used.push((n, index));
                        let call_id = new_id.unwrap_or_default();
                        out.push(StreamEvent::ToolCallStart(ToolCallStart {
                            choice: n,
                            index,
                            call_id: call_id.clone(),
                            name: f.name.clone().unwrap_or_default(),
                        }));
                        self.open.push(OpenCall {
                            choice: n,
                            wire_index: tc.index,
                            index,
                            call_id,
                            arguments: String::new(),
                        });
                        self.open.len() - 1
                    }
                };
                if let Some(a) = f.arguments.filter(|a| !a.is_empty()) {
                    self.open[pos].arguments.push_str(&a);
                    out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                        choice: n,
                        index: self.open[pos].index,
                        arguments: a,
                    }));
                }
            }
            for (name, value) in unread {
                out.push(unhandled(&format!("delta.{name}"), &value.to_string()));
            }
            if let Some(reason) = choice.finish_reason {
                self.close_calls(n, out);
                self.choice_state(n).1 = Some(reason);
            }
        }
        if let Some(u) = chunk.usage {
            out.push(StreamEvent::Usage(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
                cached_input_tokens: u
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.get("cached_tokens"))
                    .and_then(Value::as_u64),
                reasoning_tokens: u
                    .completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.get("reasoning_tokens"))
                    .and_then(Value::as_u64),
            }));
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.choices.is_empty() && self.choices.iter().all(|c| c.1.is_some()) {
            self.terminal(out);
        } else {
            out.push(closed_early("`[DONE]` or a `finish_reason`"));
        }
    }
}

/// Fields of a chunk that say nothing about the answer.
const ENVELOPE_FIELDS: &[&str] = &[
    "id",
    "object",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
    "provider",
    "choices",
    "usage",
    "obfuscation",
];

/// Whether a chunk without choices or usage has any other non-null field.
fn carries_something(data: &str) -> bool {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(m)) => m
            .iter()
            .any(|(k, v)| !v.is_null() && !ENVELOPE_FIELDS.contains(&k.as_str())),
        _ => true,
    }
}
