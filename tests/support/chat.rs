//! OpenAI Chat Completions streams for replay cassettes.

use serde_json::{Value, json};

use crate::support::cassettes::stream;

/// One Chat Completions chunk as an SSE frame.
pub fn chunk(delta: Value, finish: Option<&str>) -> String {
    let body = json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "model": "m",
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {body}\n\n")
}

/// The final usage chunk of a Chat stream (`stream_options.include_usage`); `details` are the
/// `prompt_tokens_details` and `completion_tokens_details` a server may add.
pub fn usage(prompt: u64, completion: u64, details: Option<(Value, Value)>) -> String {
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion});
    if let Some((prompt_details, completion_details)) = details {
        usage["prompt_tokens_details"] = prompt_details;
        usage["completion_tokens_details"] = completion_details;
    }
    let body = json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "model": "m",
                      "choices": [], "usage": usage});
    format!("data: {body}\n\n")
}

/// A Chat text answer, one delta per word, ending with `finish`, then `usage`.
pub fn text(words: &[&str], finish: &str, usage: Option<String>) -> Value {
    stream(text_body(words, finish, usage))
}

/// The SSE body of [`text`].
pub fn text_body(words: &[&str], finish: &str, usage: Option<String>) -> String {
    let mut body = chunk(json!({"role": "assistant", "content": ""}), None);
    for word in words {
        body.push_str(&chunk(json!({"content": word}), None));
    }
    body.push_str(&chunk(json!({}), Some(finish)));
    body.push_str(&usage.unwrap_or_default());
    body.push_str("data: [DONE]\n\n");
    body
}

/// A Chat turn that says `text`, then calls `tool` with the argument text `arguments`, exactly
/// as given, then `usage`.
pub fn tool_call(
    text: &str,
    call_id: &str,
    tool: &str,
    arguments: &str,
    usage: Option<String>,
) -> Value {
    stream(tool_call_body(text, call_id, tool, arguments, usage))
}

/// The SSE body of [`tool_call`].
pub fn tool_call_body(
    text: &str,
    call_id: &str,
    tool: &str,
    arguments: &str,
    usage: Option<String>,
) -> String {
    let mut body = chunk(json!({"role": "assistant", "content": text}), None);
    body.push_str(&chunk(
        json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                               "function": {"name": tool, "arguments": ""}}]}),
        None,
    ));
    body.push_str(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
        None,
    ));
    body.push_str(&chunk(json!({}), Some("tool_calls")));
    body.push_str(&usage.unwrap_or_default());
    body.push_str("data: [DONE]\n\n");
    body
}
