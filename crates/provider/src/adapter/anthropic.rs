//! Anthropic Messages (`POST {base}/v1/messages`).
//!
//! `event:` lines name the events; `ping` may come anywhere; `message_stop` is the terminal
//! event and `event: error` ends the stream with an error. Usage arrives in `message_start` and
//! `message_delta`; it is reported once, merged, just before the terminal event, with
//! `input_tokens` normalized to the whole prompt (Anthropic's `input_tokens` plus
//! `cache_read_input_tokens` and `cache_creation_input_tokens`).
//!
//! `stop_reason`: `end_turn` and `stop_sequence` are `end_turn`, `tool_use` is `tool_calls`,
//! `max_tokens` and `refusal` keep their names, `pause_turn` and
//! `model_context_window_exceeded` are `incomplete` with that reason, anything else `other`.
//! A `[DONE]` data line (not Anthropic's, but some compatible servers send it) ends the message
//! when a stop reason has arrived, else the stream ended early. A `message_delta` carrying
//! anything besides the stop reason and usage (text, as some compatible servers send) is
//! reported as `unhandled`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::lenient::{FromObject, LenientStr, object_or_default};
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

/// The API version header value sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; used when the request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

pub struct Anthropic;

impl Adapter for Anthropic {
    fn scheme(&self) -> WireScheme {
        WireScheme::AnthropicMessages
    }

    fn url(&self, base_url: &str, _model: &str) -> String {
        join_url(base_url, "v1/messages")
    }

    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)> {
        let mut h = vec![("anthropic-version", ANTHROPIC_VERSION.to_string())];
        if let Some(k) = api_key {
            h.push(("x-api-key", k.expose().to_string()));
        }
        h
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        for m in request.sendable_messages() {
            match &*m {
                Message::User { text } => messages.push(json!({"role": "user", "content": text})),
                Message::Assistant {
                    text,
                    reasoning,
                    tool_calls,
                } => {
                    let mut content = thinking_blocks(reasoning);
                    if !text.is_empty() {
                        content.push(json!({"type": "text", "text": text}));
                    }
                    for c in tool_calls {
                        // `input` must be an object. Arguments that are not one (cut by
                        // max_tokens, or not JSON) never ran a tool; their result says so, and
                        // an empty object keeps the history sendable.
                        let input = match serde_json::from_str::<Value>(&c.arguments) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => json!({}),
                        };
                        content.push(json!({
                            "type": "tool_use", "id": c.call_id, "name": c.name, "input": input,
                        }));
                    }
                    messages.push(json!({"role": "assistant", "content": content}));
                }
                Message::ToolResult {
                    call_id,
                    output,
                    is_error,
                } => {
                    let block = json!({
                        "type": "tool_result",
                        "tool_use_id": call_id,
                        "content": output,
                        "is_error": is_error,
                    });
                    // Consecutive results belong in one user turn.
                    let merged = messages.last_mut().and_then(|last| {
                        let is_results = last["role"] == "user"
                            && last["content"]
                                .as_array()
                                .is_some_and(|c| c.iter().all(|b| b["type"] == "tool_result"));
                        if is_results {
                            last["content"].as_array_mut()
                        } else {
                            None
                        }
                    });
                    match merged {
                        Some(content) => content.push(block),
                        None => messages.push(json!({"role": "user", "content": [block]})),
                    }
                }
            }
        }
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if !request.instructions.is_empty() {
            body["system"] = json!(request.instructions);
        }
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        json!({
                            "name": t.name,
                            "description": t.description,
                            "input_schema": t.parameters,
                        })
                    })
                    .collect(),
            );
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<AnthropicDecoder>::default()
    }
}

/// Rebuild thinking blocks from received deltas: raw text up to a signature is one `thinking`
/// block; a signature with no text before it is a `redacted_thinking` block.
fn thinking_blocks(reasoning: &[ReasoningDelta]) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut text = String::new();
    for r in reasoning {
        match (&r.kind, &r.signature) {
            (_, Some(sig)) if text.is_empty() && r.text.is_empty() => {
                blocks.push(json!({"type": "redacted_thinking", "data": sig}));
            }
            (_, Some(sig)) => {
                text.push_str(&r.text);
                blocks.push(json!({"type": "thinking", "thinking": text, "signature": sig}));
                text = String::new();
            }
            (ReasoningKind::Raw, None) => text.push_str(&r.text),
            _ => {}
        }
    }
    blocks
}

/// The fields of an Anthropic event this adapter reads. `type` and the delta, which every
/// `content_block_delta` carries, are read typed and borrowed from the frame; the rarer events'
/// objects as `Value`s.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
}

/// The fields of a `content_block_delta`'s `delta` the decoder reads, each as
/// `delta[field].as_str()` would give it: a field that is not a string, or a delta that is not
/// an object, reads as absent.
#[derive(Default)]
struct Delta<'a> {
    kind: LenientStr<'a>,
    text: LenientStr<'a>,
    thinking: LenientStr<'a>,
    signature: LenientStr<'a>,
    partial_json: LenientStr<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Delta<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Delta<'a>, D::Error> {
        object_or_default(d)
    }
}

impl<'de: 'a, 'a> FromObject<'de> for Delta<'a> {
    fn from_object<M: serde::de::MapAccess<'de>>(mut map: M) -> Result<Delta<'a>, M::Error> {
        let mut d = Delta::default();
        // Like a `Value` map, a repeated field keeps its last value.
        // Keys read as borrowed text, without an allocation each.
        while let Some(key) = map.next_key::<LenientStr<'_>>()? {
            let slot = match key.as_str().unwrap_or_default() {
                "type" => &mut d.kind,
                "text" => &mut d.text,
                "thinking" => &mut d.thinking,
                "signature" => &mut d.signature,
                "partial_json" => &mut d.partial_json,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(d)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    Tool,
    Other,
}

#[derive(Default)]
struct AnthropicDecoder {
    started: bool,
    produced: bool,
    blocks: Vec<(u32, Block, String)>,
    usage: WireUsage,
    stop_reason: Option<String>,
}

/// Usage as Anthropic counts it: `input_tokens` excludes the cached part of the prompt
/// (`cache_read_input_tokens`) and the part written to the cache
/// (`cache_creation_input_tokens`). `message_delta` values are cumulative and replace earlier
/// ones.
#[derive(Default, PartialEq)]
struct WireUsage {
    seen: bool,
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    thinking: Option<u64>,
}

impl WireUsage {
    /// The normalized usage: `input_tokens` is the whole prompt, cached parts included.
    fn normalized(&self) -> Usage {
        let input = match (self.input, self.cache_read, self.cache_creation) {
            (None, None, None) => None,
            (i, r, c) => Some(
                i.unwrap_or(0)
                    .saturating_add(r.unwrap_or(0))
                    .saturating_add(c.unwrap_or(0)),
            ),
        };
        Usage {
            input_tokens: input,
            output_tokens: self.output,
            cached_input_tokens: self.cache_read,
            reasoning_tokens: self.thinking,
        }
    }
}

/// Map Anthropic's `stop_reason`.
fn stop_reason(raw: Option<&str>) -> StopReason {
    match raw {
        Some("end_turn" | "stop_sequence") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolCalls,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("refusal") => StopReason::Refusal,
        // The server paused a long turn, or the prompt plus answer filled the context window:
        // the answer is unfinished, in the provider's words.
        Some(r @ ("pause_turn" | "model_context_window_exceeded")) => {
            StopReason::Incomplete { raw: r.to_string() }
        }
        Some(other) => StopReason::Other {
            raw: other.to_string(),
        },
        None => StopReason::Other {
            raw: "unknown".to_string(),
        },
    }
}

/// `message_delta.delta` fields that say how the message ended; anything else in a
/// `message_delta` is not understood.
const MESSAGE_DELTA_FIELDS: &[&str] =
    &["stop_reason", "stop_sequence", "stop_details", "container"];
/// Top-level `message_delta` fields read or known to carry nothing to act on.
const MESSAGE_DELTA_TOP: &[&str] = &["type", "delta", "usage", "context_management"];

impl AnthropicDecoder {
    fn block(&self, index: u32) -> Option<Block> {
        self.blocks.iter().find(|b| b.0 == index).map(|b| b.1)
    }

    fn merge_usage(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        let usage = &mut self.usage;
        for (key, slot) in [
            ("input_tokens", &mut usage.input),
            ("output_tokens", &mut usage.output),
            ("cache_read_input_tokens", &mut usage.cache_read),
            ("cache_creation_input_tokens", &mut usage.cache_creation),
        ] {
            if let Some(v) = get(key) {
                *slot = Some(v);
                usage.seen = true;
            }
        }
        if let Some(v) = u
            .pointer("/output_tokens_details/thinking_tokens")
            .and_then(Value::as_u64)
        {
            usage.thinking = Some(v);
        }
    }

    /// The usage seen so far, once, before the stream's terminal event.
    fn flush_usage(&mut self, out: &mut Vec<StreamEvent>) {
        if std::mem::take(&mut self.usage.seen) {
            out.push(StreamEvent::Usage(self.usage.normalized()));
        }
    }
}

impl Decoder for AnthropicDecoder {
    fn frame(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) {
        if frame.data == "[DONE]" {
            // Not Anthropic's own (it ends with `message_stop`), but compatible servers add it.
            // After a stop reason it ends the message; before one, the stream ended early.
            self.flush_usage(out);
            match self.stop_reason.take() {
                Some(r) => out.push(StreamEvent::Completed(Completed {
                    choice: 0,
                    stop_reason: stop_reason(Some(&r)),
                })),
                None => out.push(closed_early(
                    "`message_stop` (a `[DONE]` marker came before any stop reason)",
                )),
            }
            return;
        }
        let ev: Event = match serde_json::from_str(frame.data) {
            Ok(ev) => ev,
            Err(e) => {
                out.push(not_understood(frame, &e));
                return;
            }
        };
        let index = ev.index.unwrap_or(0);
        match &*ev.kind {
            "ping" => {}
            "message_start" => {
                let m = ev.message.unwrap_or(Value::Null);
                if self.started {
                    if self.produced {
                        out.push(StreamEvent::Error(ProviderError::new(
                            ErrorClass::MalformedStream,
                            "a second `message_start` arrived in the middle of a message",
                        )));
                    } else {
                        out.push(unhandled("message_start", frame.data));
                    }
                    return;
                }
                self.started = true;
                if let Some(u) = m.get("usage") {
                    self.merge_usage(u);
                }
                out.push(StreamEvent::Started(Started {
                    response_id: m.get("id").and_then(Value::as_str).map(str::to_string),
                    model: m.get("model").and_then(Value::as_str).map(str::to_string),
                }));
            }
            "content_block_start" => {
                let b = ev.content_block.unwrap_or(Value::Null);
                let kind = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = b
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            self.produced = true;
                            out.push(StreamEvent::TextDelta(TextDelta {
                                choice: 0,
                                text: t.to_string(),
                            }));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("redacted_thinking") => {
                        self.produced = true;
                        out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                            choice: 0,
                            kind: ReasoningKind::Opaque,
                            text: String::new(),
                            signature: b.get("data").and_then(Value::as_str).map(str::to_string),
                        }));
                        Block::Other
                    }
                    Some("tool_use") => {
                        self.produced = true;
                        out.push(StreamEvent::ToolCallStart(ToolCallStart {
                            choice: 0,
                            index,
                            call_id: b
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            name: b
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        }));
                        Block::Tool
                    }
                    _ => {
                        out.push(unhandled("content_block_start", frame.data));
                        Block::Other
                    }
                };
                self.blocks.retain(|b| b.0 != index);
                self.blocks.push((index, kind, String::new()));
            }
            "content_block_delta" => {
                let d = ev.delta.unwrap_or_default();
                match (d.kind.as_str(), self.block(index)) {
                    (Some("text_delta"), _) => {
                        self.produced = true;
                        out.push(StreamEvent::TextDelta(TextDelta {
                            choice: 0,
                            text: d.text.into_string(),
                        }));
                    }
                    (Some("thinking_delta"), _) => {
                        self.produced = true;
                        out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                            choice: 0,
                            kind: ReasoningKind::Raw,
                            text: d.thinking.into_string(),
                            signature: None,
                        }));
                    }
                    // An empty signature is no signature: nothing to send back.
                    (Some("signature_delta"), _)
                        if d.signature.as_str().unwrap_or_default().is_empty() => {}
                    (Some("signature_delta"), _) => {
                        out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                            choice: 0,
                            kind: ReasoningKind::Opaque,
                            text: String::new(),
                            signature: Some(d.signature.into_string()),
                        }));
                    }
                    (Some("input_json_delta"), Some(Block::Tool)) => {
                        let part = d.partial_json.into_string();
                        if let Some(b) = self.blocks.iter_mut().find(|b| b.0 == index) {
                            b.2.push_str(&part);
                        }
                        if !part.is_empty() {
                            out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                                choice: 0,
                                index,
                                arguments: part,
                            }));
                        }
                    }
                    _ => out.push(unhandled("content_block_delta", frame.data)),
                }
            }
            "content_block_stop" => {
                let pos = self.blocks.iter().position(|b| b.0 == index);
                if let Some((_, Block::Tool, args)) = pos.map(|p| self.blocks.remove(p)) {
                    // A tool without input streams no JSON at all: its input is `{}`.
                    let arguments = if args.is_empty() {
                        "{}".to_string()
                    } else {
                        args
                    };
                    out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                        choice: 0,
                        index,
                        arguments,
                    }));
                }
            }
            "message_delta" => {
                // Read whole: once per message, and every field of it matters below.
                let whole = serde_json::from_str::<Value>(frame.data).ok();
                let delta = whole.as_ref().and_then(|v| v.get("delta"));
                if let Some(r) = delta
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = &ev.usage {
                    self.merge_usage(u);
                }
                // Some compatible servers stream text in `message_delta`: not dropped silently.
                if carries_more(delta, MESSAGE_DELTA_FIELDS)
                    || carries_more(whole.as_ref(), MESSAGE_DELTA_TOP)
                {
                    out.push(unhandled("message_delta", frame.data));
                }
            }
            "message_stop" => {
                self.flush_usage(out);
                out.push(StreamEvent::Completed(Completed {
                    choice: 0,
                    stop_reason: stop_reason(self.stop_reason.as_deref()),
                }));
            }
            "error" => {
                self.flush_usage(out);
                let v: Value = serde_json::from_str(frame.data).unwrap_or(Value::Null);
                out.push(StreamEvent::Error(from_error_json(&v, None)));
            }
            other => out.push(unhandled(other, frame.data)),
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        self.flush_usage(out);
        out.push(closed_early("`message_stop`"));
    }
}

/// Whether the object `v` has a non-null field outside `known`.
fn carries_more(v: Option<&Value>, known: &[&str]) -> bool {
    v.and_then(Value::as_object).is_some_and(|m| {
        m.iter()
            .any(|(k, v)| !v.is_null() && !known.contains(&k.as_str()))
    })
}
