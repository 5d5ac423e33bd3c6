//! OpenAI Responses streams for replay cassettes, and project profiles replaying them.

use serde_json::{Value, json};

use crate::support::Sandbox;
use crate::support::cassettes::{PROJECT_PROFILES, replay_profile_in, sse, stream};

pub fn response_shell(status: &str) -> Value {
    json!({"id": "resp_test", "object": "response", "created_at": 1767225600,
           "status": status, "error": null, "model": "test-replay", "output": []})
}

/// A `response.completed` event whose response carries `usage`.
pub fn completed(usage: Value) -> Value {
    let mut response = response_shell("completed");
    response["usage"] = usage;
    json!({"type": "response.completed", "response": response})
}

/// The events of a streamed text answer: `extra` after the message item opens, a delta per
/// word, then `end`.
pub fn text_events_ending(words: &[&str], extra: &[Value], end: Value) -> Vec<Value> {
    let mut events = vec![
        json!({"type": "response.created", "response": response_shell("in_progress")}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"id": "msg_1", "type": "message", "role": "assistant",
                        "status": "in_progress", "content": []}}),
    ];
    events.extend(extra.iter().cloned());
    for word in words {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_1",
                           "output_index": 0, "content_index": 0, "delta": word}),
        );
    }
    events.push(end);
    events
}

/// The events of a streamed text answer; `fail` ends it with `response.failed` (context
/// length) instead of `response.completed`.
pub fn text_events(words: &[&str], fail: bool) -> Vec<Value> {
    let end = if fail {
        let mut failed = response_shell("failed");
        failed["error"] = json!({"code": "context_length_exceeded",
            "message": "Your input exceeds the context window of this model."});
        json!({"type": "response.failed", "response": failed})
    } else {
        json!({"type": "response.completed", "response": response_shell("completed")})
    };
    text_events_ending(words, &[], end)
}

/// A streamed text answer cut at the output-token limit (`response.incomplete` with
/// `max_output_tokens`).
pub fn truncated_text_response(words: &[&str]) -> Value {
    let mut shell = response_shell("incomplete");
    shell["incomplete_details"] = json!({"reason": "max_output_tokens"});
    let end = json!({"type": "response.incomplete", "response": shell});
    stream(sse(&text_events_ending(words, &[], end)))
}

/// A streamed text answer; `pause` is `(after_events, ms)` for the replay server's
/// `pause_after_events` knob.
pub fn text_response(words: &[&str], fail: bool, pause: Option<(usize, u64)>) -> Value {
    let mut response = stream(sse(&text_events(words, fail)));
    if let Some((after, ms)) = pause {
        response["pause_after_events"] = json!({"events": after, "ms": ms});
    }
    response
}

/// The events of a model turn that calls `tool` with `args`, up to (not including) the
/// terminal event.
pub fn tool_call_events(call_id: &str, tool: &str, args: Value) -> Vec<Value> {
    let args = args.to_string();
    let item = json!({"type": "function_call", "id": format!("fc_{call_id}"),
                      "call_id": call_id, "name": tool, "arguments": "",
                      "status": "in_progress"});
    let mut done = item.clone();
    done["arguments"] = json!(args);
    done["status"] = json!("completed");
    vec![
        json!({"type": "response.created", "response": response_shell("in_progress")}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
        json!({"type": "response.function_call_arguments.delta",
               "item_id": format!("fc_{call_id}"), "output_index": 0, "delta": args}),
        json!({"type": "response.function_call_arguments.done",
               "item_id": format!("fc_{call_id}"), "output_index": 0, "arguments": args}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": done}),
    ]
}

/// A model turn that calls `tool` with `args`.
pub fn tool_call_response(call_id: &str, tool: &str, args: Value) -> Value {
    let mut events = tool_call_events(call_id, tool, args);
    events.push(json!({"type": "response.completed", "response": response_shell("completed")}));
    stream(sse(&events))
}

/// The responses of a parent that spawns two `holder` children named `a` and `b`, waits on
/// `a`, then answers.
pub fn spawn_two_holders() -> Vec<Value> {
    vec![
        tool_call_response(
            "call_a",
            "spawn_pod",
            json!({"profile": "holder", "task": "hold a", "name": "a"}),
        ),
        tool_call_response(
            "call_b",
            "spawn_pod",
            json!({"profile": "holder", "task": "hold b", "name": "b"}),
        ),
        tool_call_response("call_wait", "wait_pod", json!({"pod_id": "a"})),
        text_response(&["done"], false, None),
    ]
}

/// Project profile `holder`: a child whose stream pauses (for a minute, longer than any
/// test waits) after three events, so it is mid-run until something interrupts it.
pub fn holder_profile(sandbox: &Sandbox) {
    profile(
        sandbox,
        "holder",
        "[agent]\ntools = []\n",
        vec![text_response(
            &["hold ", "the ", "line ", "please"],
            false,
            Some((3, 60_000)),
        )],
    );
}

/// Project profile `name`: a pod with no tools whose one answer is `words`.
pub fn answering_profile(sandbox: &Sandbox, name: &str, words: &[&str]) {
    profile(
        sandbox,
        name,
        "[agent]\ntools = []\n",
        vec![text_response(words, false, None)],
    );
}

/// A cassette of OpenAI Responses `responses`.
pub fn cassette(responses: Vec<Value>) -> String {
    crate::support::cassettes::cassette("openai-responses", responses)
}

/// Write project profile `name` (a replay model serving `responses`) with `body` after its
/// `[model]` section.
pub fn profile(sandbox: &Sandbox, name: &str, body: &str, responses: Vec<Value>) {
    profile_in(sandbox, PROJECT_PROFILES, name, body, responses);
}

/// [`profile`] in the profile directory `dir` (below the sandbox root).
pub fn profile_in(sandbox: &Sandbox, dir: &str, name: &str, body: &str, responses: Vec<Value>) {
    replay_profile_in(
        sandbox,
        dir,
        name,
        "test-replay",
        &cassette(responses),
        body,
    );
}
