//! Google Gemini (`POST {base}/models/{model}:streamGenerateContent?alt=sse`).
//!
//! Data-only frames, each a whole `GenerateContentResponse`; no terminator: the stream ends when
//! the body does, and it is complete once candidate 0 has a `finishReason` (or the prompt was
//! blocked, `promptFeedback.blockReason`). `usageMetadata` is repeated, growing, in every chunk;
//! the last one is reported once, just before `completed`.
//!
//! Parts: `text` is text, `text` with `thought: true` is reasoning (a summary), a
//! `thoughtSignature` on a text or call part is an opaque reasoning payload to send back. A
//! `functionCall` arrives whole (`name` and `args`) and becomes a start and an end with the
//! complete arguments; Vertex's streamed form (`partialArgs`, `willContinue`) is assembled
//! into the same start and end. A call without an `id` gets one made up from the response id
//! and its index (`pods-call-…`), stable for the stream and never sent back to Gemini. Other
//! parts (`executableCode`, `inlineData`, …) become `unhandled` events named `part.<field>`.
//!
//! A top-level `error` object in a frame ends the stream with that error.

use serde_json::{Map, Value, json};

use super::{Adapter, Decoder, closed_early, join_url, malformed, unhandled};
use crate::classify::from_error_json;
use crate::event::{
    Completed, ReasoningDelta, ReasoningKind, Started, StopReason, StreamEvent, TextDelta,
    ToolCallEnd, ToolCallStart, Usage,
};
use crate::request::{Message, ModelRequest};
use crate::scheme::WireScheme;
use crate::secret::ApiKey;
use crate::sse::Frame;

/// The prefix of call ids made up for calls Gemini sent without one.
pub const SYNTHETIC_CALL_ID_PREFIX: &str = "pods-call-";

pub struct Gemini;

impl Adapter for Gemini {
    fn scheme(&self) -> WireScheme {
        WireScheme::Gemini
    }

    fn url(&self, base_url: &str, model: &str) -> String {
        // The key goes in a header, never in the query: URLs end up in logs.
        let model = model.strip_prefix("models/").unwrap_or(model);
        join_url(
            base_url,
            &format!("models/{model}:streamGenerateContent?alt=sse"),
        )
    }

    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)> {
        api_key
            .map(|k| vec![("x-goog-api-key", k.expose().to_owned())])
            .unwrap_or_default()
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let messages = request.sendable_messages();
        let mut contents: Vec<Value> = Vec::new();
        for m in &messages {
            let (role, parts) = match &**m {
                Message::User { text } => ("user", vec![json!({"text": text})]),
                Message::Assistant {
                    text,
                    reasoning,
                    tool_calls,
                } => ("model", model_parts(text, reasoning, tool_calls)),
                Message::ToolResult {
                    call_id,
                    output,
                    is_error,
                } => {
                    let name = call_name(&messages, call_id);
                    let key = if *is_error { "error" } else { "output" };
                    let mut response = json!({"name": name, "response": {key: output}});
                    if !call_id.starts_with(SYNTHETIC_CALL_ID_PREFIX) && !call_id.is_empty() {
                        response["id"] = json!(call_id);
                    }
                    ("user", vec![json!({"functionResponse": response})])
                }
            };
            // Consecutive turns of one role (the results of parallel calls, a result then the
            // user's next words) go in one content, as Gemini expects.
            match contents.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(p) = last["parts"].as_array_mut() {
                        p.extend(parts);
                    }
                }
                _ => contents.push(json!({"role": role, "parts": parts})),
            }
        }
        let mut body = json!({"contents": contents});
        if !request.instructions.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": request.instructions}]});
        }
        if !request.tools.is_empty() {
            let decls: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    // `parametersJsonSchema` takes JSON Schema as it is; `parameters` only an
                    // OpenAPI subset that rejects common keywords.
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "parametersJsonSchema": t.parameters,
                    })
                })
                .collect();
            body["tools"] = json!([{"functionDeclarations": decls}]);
        }
        let mut config = Map::new();
        if let Some(n) = request.max_output_tokens {
            config.insert("maxOutputTokens".into(), json!(n));
        }
        if let Some(t) = request.temperature {
            config.insert("temperature".into(), json!(t));
        }
        if !config.is_empty() {
            body["generationConfig"] = Value::Object(config);
        }
        body
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<GeminiDecoder>::default()
    }
}

/// The parts of a model turn: its text, then its calls. The turn's first signature goes back
/// on its first call (Gemini signs the first call of a step), else on the text part. Thought
/// summaries are not sent back; Gemini does not read them.
fn model_parts(
    text: &str,
    reasoning: &[ReasoningDelta],
    calls: &[crate::request::ToolCall],
) -> Vec<Value> {
    let signature = reasoning.iter().find_map(|r| r.signature.clone());
    let mut parts = Vec::new();
    if !text.is_empty() || calls.is_empty() {
        parts.push(json!({"text": text}));
    }
    for c in calls {
        let args = serde_json::from_str::<Value>(&c.arguments)
            .ok()
            .filter(Value::is_object)
            // Gemini takes an object; anything else the model never sent is passed on whole.
            .unwrap_or_else(|| json!({"arguments": c.arguments}));
        let mut call = json!({"name": c.name, "args": args});
        if !c.call_id.starts_with(SYNTHETIC_CALL_ID_PREFIX) && !c.call_id.is_empty() {
            call["id"] = json!(c.call_id);
        }
        parts.push(json!({"functionCall": call}));
    }
    if let Some(sig) = signature {
        let target = if calls.is_empty() {
            0
        } else {
            parts.len() - calls.len()
        };
        parts[target]["thoughtSignature"] = json!(sig);
    }
    parts
}

/// The function name of the call `call_id`, from the assistant turns before its result.
fn call_name(messages: &[std::borrow::Cow<'_, Message>], call_id: &str) -> String {
    messages
        .iter()
        .rev()
        .find_map(|m| match &**m {
            Message::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .find(|c| c.call_id == call_id)
                .map(|c| c.name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A call being streamed in Vertex's `partialArgs` form.
struct PartialCall {
    choice: u32,
    index: u32,
    args: Value,
}

#[derive(Default)]
struct GeminiDecoder {
    started: bool,
    response_id: Option<String>,
    next_index: u32,
    calls_seen: bool,
    partial: Option<PartialCall>,
    /// Candidate 0's `finishReason`, once it came.
    finish: Option<String>,
    block_reason: Option<String>,
    usage: Option<Usage>,
}

impl GeminiDecoder {
    fn start_call(
        &mut self,
        choice: u32,
        id: Option<&str>,
        name: &str,
        out: &mut Vec<StreamEvent>,
    ) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.calls_seen = true;
        let call_id = match id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => match &self.response_id {
                Some(r) => format!("{SYNTHETIC_CALL_ID_PREFIX}{r}-{index}"),
                None => format!("{SYNTHETIC_CALL_ID_PREFIX}{index}"),
            },
        };
        out.push(StreamEvent::ToolCallStart(ToolCallStart {
            choice,
            index,
            call_id,
            name: name.to_owned(),
        }));
        index
    }

    /// The last usage seen, once, before the terminal event (every chunk repeats it).
    fn report_usage(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(u) = self.usage.take() {
            out.push(StreamEvent::Usage(u));
        }
    }

    fn close_partial(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(p) = self.partial.take() {
            out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                choice: p.choice,
                index: p.index,
                arguments: p.args.to_string(),
            }));
        }
    }

    fn part(&mut self, choice: u32, part: &Map<String, Value>, out: &mut Vec<StreamEvent>) {
        let signature = part
            .get("thoughtSignature")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            if thought {
                out.push(StreamEvent::ReasoningDelta(ReasoningDelta {
                    choice,
                    kind: ReasoningKind::Summary,
                    text: text.to_owned(),
                    signature,
                }));
                return;
            }
            if let Some(sig) = signature {
                out.push(opaque(choice, sig));
            }
            if !text.is_empty() {
                out.push(StreamEvent::TextDelta(TextDelta {
                    choice,
                    text: text.to_owned(),
                }));
            }
            return;
        }
        if let Some(Value::Object(call)) = part.get("functionCall") {
            if let Some(sig) = signature {
                out.push(opaque(choice, sig));
            }
            self.function_call(choice, call, out);
            return;
        }
        let name = part
            .keys()
            .find(|k| !matches!(k.as_str(), "thought" | "thoughtSignature"))
            .map(String::as_str)
            .unwrap_or("empty");
        out.push(unhandled(
            &format!("part.{name}"),
            &Value::Object(part.clone()).to_string(),
        ));
    }

    fn function_call(
        &mut self,
        choice: u32,
        call: &Map<String, Value>,
        out: &mut Vec<StreamEvent>,
    ) {
        let name = call.get("name").and_then(Value::as_str);
        let id = call.get("id").and_then(Value::as_str);
        let more = call.get("willContinue").and_then(Value::as_bool) == Some(true);
        let partial = call.get("partialArgs").and_then(Value::as_array);
        match (name, partial) {
            // A new streamed call (Vertex): its arguments follow in `partialArgs`.
            (Some(name), None) if more => {
                self.close_partial(out);
                let index = self.start_call(choice, id, name, out);
                self.partial = Some(PartialCall {
                    choice,
                    index,
                    args: json!({}),
                });
            }
            (Some(name), None) => {
                self.close_partial(out);
                let index = self.start_call(choice, id, name, out);
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                out.push(StreamEvent::ToolCallEnd(ToolCallEnd {
                    choice,
                    index,
                    arguments: args.to_string(),
                }));
            }
            (_, Some(items)) if self.partial.is_some() => {
                if let Some(p) = self.partial.as_mut() {
                    for item in items {
                        if !apply_partial(&mut p.args, item) {
                            out.push(unhandled(
                                "part.functionCall.partialArgs",
                                &item.to_string(),
                            ));
                        }
                    }
                }
                if !more {
                    self.close_partial(out);
                }
            }
            // `{}` ends a streamed call.
            (None, None) if self.partial.is_some() => self.close_partial(out),
            _ => out.push(unhandled(
                "part.functionCall",
                &Value::Object(call.clone()).to_string(),
            )),
        }
    }
}

fn opaque(choice: u32, signature: String) -> StreamEvent {
    StreamEvent::ReasoningDelta(ReasoningDelta {
        choice,
        kind: ReasoningKind::Opaque,
        text: String::new(),
        signature: Some(signature),
    })
}

/// Apply one Vertex `partialArgs` item: a string value is appended (strings arrive in pieces),
/// any other value set, at its `jsonPath` (`$.a.b[0]`). `false` for an item that cannot be
/// placed (no path, no value, an array index past the next free one).
fn apply_partial(args: &mut Value, item: &Value) -> bool {
    let Some(slot) = item
        .get("jsonPath")
        .and_then(Value::as_str)
        .and_then(|path| slot_at(args, path))
    else {
        return false;
    };
    if let Some(s) = item.get("stringValue").and_then(Value::as_str) {
        match slot {
            Value::String(prev) => prev.push_str(s),
            other => *other = json!(s),
        }
    } else if let Some(v) = item.get("numberValue").or_else(|| item.get("boolValue")) {
        *slot = v.clone();
    } else if item.get("nullValue").is_some() {
        *slot = Value::Null;
    } else {
        return false;
    }
    true
}

/// The value at `path`, created (as objects, arrays and nulls) where missing. Arrays fill in
/// order, so an index may be at most the array's length: a stream cannot make one grow
/// without bound.
fn slot_at<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = root;
    let rest = path.strip_prefix('$').unwrap_or(path);
    for seg in rest.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = match cur {
                Value::Object(map) => map.entry(key).or_insert(Value::Null),
                _ => return None,
            };
        }
        for ix in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            let ix: usize = ix.parse().ok()?;
            if !cur.is_array() {
                *cur = json!([]);
            }
            let Value::Array(arr) = cur else {
                return None;
            };
            if ix > arr.len() {
                return None;
            }
            if ix == arr.len() {
                arr.push(Value::Null);
            }
            cur = &mut arr[ix];
        }
    }
    Some(cur)
}

fn usage(u: &Value) -> Option<Usage> {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let prompt = n("promptTokenCount");
    let candidates = n("candidatesTokenCount");
    let thoughts = n("thoughtsTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        // e.g. Vertex's `{"trafficType":"ON_DEMAND"}` on every chunk but the last.
        return None;
    }
    // Tool-use prompt tokens (code execution, search) are input too; thoughts are output.
    let input = match (prompt, n("toolUsePromptTokenCount")) {
        (Some(p), Some(t)) => Some(p + t),
        (p, _) => p,
    };
    let output = match (candidates, thoughts) {
        (None, None) => None,
        (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
    };
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: n("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
    })
}

fn stop_reason(reason: &str, calls: bool) -> StopReason {
    match reason {
        "STOP" if calls => StopReason::ToolCalls,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        other => StopReason::Other {
            raw: other.to_owned(),
        },
    }
}

impl Decoder for GeminiDecoder {
    fn frame(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) {
        let v: Value = match serde_json::from_str(frame.data) {
            Ok(v) => v,
            Err(e) => {
                out.push(malformed(frame.event, &e));
                return;
            }
        };
        let Value::Object(chunk) = &v else {
            out.push(unhandled("data", frame.data));
            return;
        };
        if chunk.get("error").is_some() {
            self.close_partial(out);
            self.report_usage(out);
            out.push(StreamEvent::Error(from_error_json(&v, None)));
            return;
        }
        if !self.started {
            let id = chunk.get("responseId").and_then(Value::as_str);
            let model = chunk.get("modelVersion").and_then(Value::as_str);
            if id.is_some() || model.is_some() {
                self.started = true;
                self.response_id = id.map(str::to_owned);
                out.push(StreamEvent::Started(Started {
                    response_id: id.map(str::to_owned),
                    model: model.map(str::to_owned),
                }));
            }
        }
        let mut read_something = false;
        if let Some(reason) = chunk
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .and_then(Value::as_str)
        {
            self.block_reason = Some(reason.to_owned());
            read_something = true;
        }
        if let Some(u) = chunk.get("usageMetadata") {
            read_something = true;
            if let Some(u) = usage(u) {
                self.usage = Some(u);
            }
        }
        if let Some(candidates) = chunk.get("candidates").and_then(Value::as_array) {
            read_something = true;
            for c in candidates {
                let choice = c.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                let parts = c
                    .get("content")
                    .and_then(|c| c.get("parts"))
                    .and_then(Value::as_array);
                for part in parts.into_iter().flatten() {
                    match part {
                        Value::Object(p) => self.part(choice, p, out),
                        other => out.push(unhandled("part", &other.to_string())),
                    }
                }
                if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
                    self.close_partial(out);
                    if choice == 0 {
                        self.finish = Some(reason.to_owned());
                    }
                }
            }
        }
        // A chunk with nothing read and more than the envelope is reported, not dropped.
        if !read_something
            && chunk
                .keys()
                .any(|k| !matches!(k.as_str(), "responseId" | "modelVersion" | "createTime"))
        {
            out.push(unhandled("data", frame.data));
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        let stop_reason = match (&self.finish, &self.block_reason) {
            (Some(reason), _) => stop_reason(reason, self.calls_seen),
            (None, Some(_)) => StopReason::ContentFilter,
            (None, None) => {
                self.close_partial(out);
                self.report_usage(out);
                out.push(closed_early("a `finishReason`"));
                return;
            }
        };
        self.close_partial(out);
        self.report_usage(out);
        out.push(StreamEvent::Completed(Completed {
            choice: 0,
            stop_reason,
        }));
    }
}
