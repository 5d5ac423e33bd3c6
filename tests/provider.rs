//! Whole-system tests: `pods provider replay` runs recorded streams through the real adapters.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use support::{Sandbox, assert_exit, stdout_json_lines};

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../provider/tests/fixtures")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn replay_json_lines_for_a_completed_tool_call() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-chat",
        "--json",
        &fixture("openai-chat/parallel-tool-calls.sse"),
    ]);
    assert_exit(&out, 0);
    let events = stdout_json_lines(&out);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"completed"));
    assert_eq!(
        events.last().unwrap()["stop_reason"]["reason"],
        "tool_calls"
    );
    let ends: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_end")
        .map(|e| serde_json::from_str(e["arguments"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[1]["ticker"], "AAPL");
    let usage = events.iter().find(|e| e["type"] == "usage").unwrap();
    assert_eq!(
        (
            usage["input_tokens"].as_u64(),
            usage["output_tokens"].as_u64()
        ),
        (Some(149), Some(60))
    );
}

#[test]
fn replay_readable_rendering() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "anthropic-messages",
        &fixture("anthropic/text-basic.sse"),
    ]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("text           [0] \"- Captain\\n- Scoop\"\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("usage          input=17 output=10"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("completed      stop_reason=EndTurn"),
        "{stdout}"
    );
}

#[test]
fn replay_stream_error_exits_1_with_the_error_last() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "anthropic-messages",
        "--json",
        &fixture("synthetic/anthropic/overloaded-error-midstream.sse"),
    ]);
    assert_exit(&out, 1);
    let events = stdout_json_lines(&out);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["class"], "overloaded");
    assert_eq!(last["retryable"], true);
    assert!(events.iter().any(|e| e["type"] == "text_delta"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overloaded"));
}

#[test]
fn replay_http_capture_status_drives_classification() {
    let sandbox = Sandbox::new();
    let capture = sandbox.write(
        "capture.http",
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nrequest-id: req_cli_1\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long: 205351 tokens > 200000 maximum\"}}",
    );
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "anthropic-messages",
        "--json",
        capture.to_str().unwrap(),
    ]);
    assert_exit(&out, 1);
    let events = stdout_json_lines(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["class"], "context_length_exceeded");
    assert_eq!(events[0]["http_status"], 400);
    assert_eq!(events[0]["provider_request_id"], "req_cli_1");
}

#[test]
fn replay_truncated_stream_is_stream_closed_before_completion() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-responses",
        "--json",
        &fixture("synthetic/openai-responses/truncated-no-terminal.sse"),
    ]);
    assert_exit(&out, 1);
    let events = stdout_json_lines(&out);
    assert_eq!(
        events.last().unwrap()["class"],
        "stream_closed_before_completion"
    );
}

#[test]
fn replay_reads_a_gemini_stream_with_its_tool_call() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "gemini",
        "--json",
        &fixture("gemini/function-call-thought-signature.sse"),
    ]);
    assert_exit(&out, 0);
    let events = stdout_json_lines(&out);
    let end = events
        .iter()
        .find(|e| e["type"] == "tool_call_end")
        .expect("a tool call");
    assert_eq!(end["arguments"], "{}");
    assert_eq!(
        events.last().unwrap()["stop_reason"]["reason"],
        "tool_calls"
    );
}

#[test]
fn replay_bad_usage_exits_2() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["provider", "replay", "--scheme", "gemeni", "x.sse"]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown wire scheme `gemeni`")
            && stderr.contains("openai-chat")
            && stderr.contains("gemini"),
        "{stderr}"
    );

    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-chat",
        "no/such/file.sse",
    ]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no/such/file.sse"), "{stderr}");
    assert!(out.stdout.is_empty());

    let bad = sandbox.write("bad.http", "HTTP/1.1 banana\r\n\r\n");
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-chat",
        bad.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.http"));
}

#[test]
fn replay_reads_a_curl_capture_with_a_dechunked_body_and_says_so() {
    let sandbox = Sandbox::new();
    let body = std::fs::read_to_string(fixture("openai-chat/text-usage-done.sse")).unwrap();
    // What `curl -i` writes: the headers as sent, the body already de-chunked.
    let capture = sandbox.write(
        "curl.txt",
        &format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{body}"
        ),
    );
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-chat",
        "--json",
        capture.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: response 1:") && stderr.contains("transfer-encoding: chunked"),
        "{stderr}"
    );
    let events = stdout_json_lines(&out);
    assert_eq!(events.last().unwrap()["type"], "completed");
    assert!(events.iter().any(|e| e["type"] == "text_delta"));
}

#[test]
fn replay_of_a_truncated_answer_exits_1_naming_the_cut() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "openai-chat",
        &fixture("openai-chat/finish-length.sse"),
    ]);
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a clean finish") && stderr.contains("cut at the output-token limit"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MaxTokens"));
}

#[test]
fn replay_plays_every_response_of_a_cassette_under_its_own_scheme() {
    let sandbox = Sandbox::new();
    let text = std::fs::read_to_string(fixture("openai-chat/text-usage-done.sse")).unwrap();
    let calls = std::fs::read_to_string(fixture("openai-chat/parallel-tool-calls.sse")).unwrap();
    let cassette = serde_json::json!({
        "scheme": "openai-chat",
        "responses": [
            {"status": 200, "headers": {"content-type": "text/event-stream"}, "body": calls},
            {"status": 200, "headers": {"content-type": "text/event-stream"}, "body": text},
        ]
    });
    let path = sandbox.write("cassette.json", &cassette.to_string());
    let out = sandbox.run(&["provider", "replay", "--json", path.to_str().unwrap()]);
    assert_exit(&out, 0);
    let ends: Vec<String> = stdout_json_lines(&out)
        .iter()
        .filter(|e| e["type"] == "completed")
        .map(|e| e["stop_reason"]["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ends, ["tool_calls", "end_turn"]);

    // A scheme that contradicts the cassette's is refused, naming both.
    let out = sandbox.run(&[
        "provider",
        "replay",
        "--scheme",
        "anthropic-messages",
        path.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cassette for scheme openai-chat, not anthropic-messages"),
        "{stderr}"
    );

    // A bare body without --scheme is refused with the fix.
    let out = sandbox.run(&[
        "provider",
        "replay",
        &fixture("openai-chat/text-usage-done.sse"),
    ]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scheme"));
}
