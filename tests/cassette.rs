//! Whole-system tests of `pods provider cassette`: a run recorded with raw capture becomes a
//! cassette, and `pods run` with that cassette replays the same stream events, the same retry
//! and the same error offline. Without raw capture the command says what is missing.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::logs::trace_entries;
use support::{Sandbox, assert_exit, describe, log_entries, of_kind};

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": "chatcmpl-9", "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// Turn 1 calls read_file; turn 2 is rate limited once (retry-after 0), then its stream
/// breaks off after some text.
fn field_responses() -> Vec<Value> {
    let call = [
        chunk(json!({"role": "assistant", "content": "Reading."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\":\"notes.txt\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let cut = [
        chunk(json!({"role": "assistant", "content": "The notes "}), None),
        chunk(json!({"content": "say to "}), None),
        chunk(json!({"content": "never finish"}), None),
    ]
    .concat();
    vec![
        json!({"status": 200, "headers": {"content-type": "text/event-stream"}, "body": call}),
        json!({"status": 429,
            "headers": {"content-type": "application/json", "retry-after": "0",
                "x-request-id": "req_field_1", "set-cookie": "session=secret-cookie"},
            "body": json!({"error": {"message": "Rate limit reached for requests",
                "type": "requests", "code": "rate_limit_exceeded"}}).to_string()}),
        json!({"status": 200, "headers": {"content-type": "text/event-stream"},
            "body": cut, "disconnect_after_events": 3}),
    ]
}

fn replay_profile(sandbox: &Sandbox, name: &str, cassette: &Path, session: &str) {
    sandbox.write(
        &format!("work/.pods/profiles/{name}.toml"),
        &format!(
            "[model]\nscheme = \"replay\"\nmodel = \"m\"\ncassette = \"{}\"\n\n[session]\n{session}\n",
            cassette.display()
        ),
    );
}

/// Run `profile` and return its new pod directory.
fn run_new_pod(sandbox: &Sandbox, profile: &str, exit: i32) -> PathBuf {
    let before = sandbox.pod_dirs();
    let out = sandbox.run(&["run", "-p", profile, "what do my notes say?"]);
    assert_exit(&out, exit);
    let new: Vec<PathBuf> = sandbox
        .pod_dirs()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{}", describe(&out));
    new[0].clone()
}

/// What the runtime received, attempt by attempt: every stream event (errors by class and
/// code), retries by delay and cause class, and how each attempt opened and ended.
fn replayable_facts(trace: &[Value]) -> Vec<Value> {
    trace
        .iter()
        .filter_map(|e| {
            let at = json!([e["turn"], e["attempt"]]);
            match e["kind"].as_str()? {
                "stream" if e["event"]["type"] == "error" => Some(json!([
                    at,
                    "error",
                    e["event"]["class"],
                    e["event"]["code"]
                ])),
                "stream" => Some(json!([at, e["event"]])),
                "lifecycle" => match e["marker"].as_str()? {
                    "retry_scheduled" => {
                        Some(json!([at, "retry", e["delay_ms"], e["cause"]["class"]]))
                    }
                    "stream_open_ok" | "stream_open_error" | "stream_end" | "run_end" => {
                        Some(json!([
                            at,
                            e["marker"],
                            e["http_status"],
                            e["class"],
                            e["outcome"]
                        ]))
                    }
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}

fn run_errored(pod: &Path) -> Value {
    of_kind(&log_entries(pod), "run_errored")
        .first()
        .map(|entry| (*entry).clone())
        .unwrap_or_else(|| panic!("no run_errored in {}", pod.display()))
}

#[test]
fn a_field_run_becomes_a_cassette_that_replays_the_same_events_retry_and_error() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "remember the milk\n");
    let original = sandbox.write(
        "work/original.json",
        &json!({"scheme": "openai-chat", "responses": field_responses()}).to_string(),
    );
    let capture = "record_event_trace = true\ntrace_raw_sse = true";
    replay_profile(&sandbox, "field", &original, capture);
    let field = run_new_pod(&sandbox, "field", 1);

    let out_file = sandbox.work().join("field-cassette.json");
    let id = field.file_name().unwrap().to_string_lossy().into_owned();
    // A bare file name is written in the working directory.
    let out = sandbox.run(&["provider", "cassette", &id, "-o", "field-cassette.json"]);
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&out_file).unwrap();
    let cassette: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cassette["version"], 1);
    assert_eq!(cassette["scheme"], "openai-chat");
    let responses = cassette["responses"].as_array().unwrap();
    let statuses: Vec<&Value> = responses.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(200), &json!(429), &json!(200)], "{text}");
    assert_eq!(responses[1]["headers"]["retry-after"], "0");
    assert_eq!(responses[1]["headers"]["x-request-id"], "req_field_1");
    assert!(
        !text.contains("secret-cookie") && !text.contains("set-cookie"),
        "cookies are not kept: {text}"
    );
    assert!(
        responses[1]["body"]
            .as_str()
            .unwrap()
            .contains("rate_limit_exceeded")
    );
    assert!(
        responses[2]["body"].as_str().unwrap().contains("say to "),
        "{text}"
    );

    // Replayed offline (without raw capture, so the replay's trace is plain).
    replay_profile(&sandbox, "again", &out_file, "record_event_trace = true");
    let again = run_new_pod(&sandbox, "again", 1);

    let before = replayable_facts(&trace_entries(&field));
    let after = replayable_facts(&trace_entries(&again));
    assert!(
        before.iter().any(|f| f[1] == "retry"),
        "the field run retried: {before:#?}"
    );
    assert_eq!(after, before);
    let (a, b) = (run_errored(&field), run_errored(&again));
    assert_eq!(a["error"]["class"], "stream_closed_before_completion");
    assert_eq!(b["error"]["class"], a["error"]["class"]);
    assert_eq!(b["error"]["message"], a["error"]["message"]);
}

#[test]
fn without_raw_capture_the_command_says_what_is_missing_and_how_to_record_it() {
    let sandbox = Sandbox::new();
    let original = sandbox.write(
        "work/original.json",
        &json!({"scheme": "openai-chat", "responses": field_responses()}).to_string(),
    );
    // Traced, but without raw frames.
    replay_profile(&sandbox, "plain", &original, "record_event_trace = true");
    let traced = run_new_pod(&sandbox, "plain", 1);
    let id = traced.file_name().unwrap().to_string_lossy().into_owned();
    let out = sandbox.run(&["provider", "cassette", &id]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without raw capture") && stderr.contains("session.trace_raw_sse=true"),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "no cassette is printed");

    // Not traced at all.
    replay_profile(
        &sandbox,
        "untraced",
        &original,
        "record_event_trace = false",
    );
    let untraced = run_new_pod(&sandbox, "untraced", 1);
    let id = untraced.file_name().unwrap().to_string_lossy().into_owned();
    let out = sandbox.run(&["provider", "cassette", &id]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no trace") && stderr.contains("session.record_event_trace=true"),
        "{}",
        describe(&out)
    );

    // An unknown run of a captured pod.
    replay_profile(
        &sandbox,
        "captured",
        &original,
        "record_event_trace = true\ntrace_raw_sse = true",
    );
    let captured = run_new_pod(&sandbox, "captured", 1);
    let id = captured.file_name().unwrap().to_string_lossy().into_owned();
    let out = sandbox.run(&["provider", "cassette", &id, "--run", "no-such-run"]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no run `no-such-run`"),
        "{}",
        describe(&out)
    );
    // Printed to stdout when no file is given, and it is a cassette that loads.
    let out = sandbox.run(&["provider", "cassette", &id]);
    assert_exit(&out, 0);
    let printed = sandbox.write("work/printed.json", &String::from_utf8_lossy(&out.stdout));
    let out = sandbox.run(&["provider", "replay", printed.to_str().unwrap()]);
    assert_exit(&out, 1);
}

#[test]
fn a_child_that_failed_mid_stream_in_a_tree_replays_from_its_cassette() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "run",
        "-p",
        "demo",
        "--set",
        "session.record_event_trace=true",
        "--set",
        "session.trace_raw_sse=true",
        "look around",
    ]);
    assert_exit(&out, 0);
    let out = sandbox.run(&["provider", "cassette", "demo-reviewer", "-o", "child.json"]);
    assert_exit(&out, 0);
    let child = sandbox
        .pod_dirs()
        .into_iter()
        .find(|p| {
            let info: Value =
                serde_json::from_str(&std::fs::read_to_string(p.join("pod.json")).unwrap())
                    .unwrap();
            info["name"] == "demo-reviewer"
        })
        .unwrap();
    let cassette = sandbox.work().join("child.json");
    replay_profile(
        &sandbox,
        "child-again",
        &cassette,
        "record_event_trace = true",
    );
    let again = run_new_pod(&sandbox, "child-again", 1);
    let before = replayable_facts(&trace_entries(&child));
    assert!(
        before
            .iter()
            .any(|f| f[1] == "error" && f[2] == "context_length_exceeded"),
        "{before:#?}"
    );
    assert_eq!(replayable_facts(&trace_entries(&again)), before);
    let (a, b) = (run_errored(&child), run_errored(&again));
    assert_eq!(a["error"]["class"], "context_length_exceeded");
    assert_eq!(b["error"], a["error"]);
}
