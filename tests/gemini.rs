//! Whole-system tests of the Gemini wire scheme: a real `pods run` with `scheme = "gemini"`
//! against a loopback server speaking Gemini's own SSE, a tool call and its result sent back
//! as a `functionResponse`, and the key variables the scheme reads.

#![allow(clippy::unwrap_used)]

mod support;

use pod_provider::{Cassette, CassetteResponse, ReceivedRequest, WireScheme};
use serde_json::{Value, json};
use support::replay_server::serve;
use support::{Sandbox, assert_exit, describe, log_entries, walk};

/// One Gemini SSE chunk (Gemini separates events with CRLF CRLF).
fn chunk(parts: Value, finish: Option<&str>, usage: Value) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    let body = json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    });
    format!("data: {body}\r\n\r\n")
}

fn tool_call_then_answer() -> Cassette {
    let call = chunk(
        json!([
            {"text": "Reading the notes."},
            {"functionCall": {"name": "read_file", "args": {"path": "notes.txt"}},
             "thoughtSignature": "SIG-1"},
        ]),
        Some("STOP"),
        json!({"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 30}),
    );
    let answer = [
        chunk(
            json!([{"text": "The notes say"}]),
            None,
            json!({"promptTokenCount": 60}),
        ),
        chunk(
            json!([{"text": " to remember the milk."}]),
            Some("STOP"),
            json!({"promptTokenCount": 60, "cachedContentTokenCount": 32, "candidatesTokenCount": 9}),
        ),
    ]
    .concat();
    Cassette::new(
        WireScheme::Gemini,
        vec![CassetteResponse::sse(call), CassetteResponse::sse(answer)],
    )
}

/// A profile speaking Gemini to `base_url`, with its key variables left to the scheme.
fn gemini_profile(sandbox: &Sandbox, base_url: &str) {
    sandbox.write(
        "work/.pods/profiles/gem.toml",
        &format!(
            "[model]\nscheme = \"gemini\"\nmodel = \"gemini-2.5-flash\"\nbase_url = \"{base_url}/v1beta\"\n"
        ),
    );
}

/// Run `pods run -p gem …` with `env` set (and both Gemini key variables otherwise unset) while
/// `cassette` is served; return the output and what the server received.
fn run_gemini(
    env: &[(&str, &str)],
    cassette: Cassette,
) -> (std::process::Output, Vec<ReceivedRequest>, Sandbox) {
    let served = serve(cassette);
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "remember the milk\n");
    gemini_profile(&sandbox, &served.server.base_url());
    let mut cmd = sandbox.pods();
    cmd.env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd
        .args(["run", "-p", "gem", "what do my notes say?"])
        .output()
        .unwrap();
    let received = served.server.received();
    drop(served);
    (output, received, sandbox)
}

#[test]
fn a_gemini_pod_calls_a_tool_and_sends_the_result_back_as_a_function_response() {
    let key = "AIzaSyGEMINITESTKEY000000000000";
    let (output, received, sandbox) =
        run_gemini(&[("GEMINI_API_KEY", key)], tool_call_then_answer());
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("The notes say to remember the milk."),
        "{}",
        describe(&output)
    );
    assert_eq!(received.len(), 2, "two model requests");
    for r in &received {
        assert_eq!(
            (r.path.as_str(), r.query.as_str()),
            (
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                "alt=sse"
            )
        );
        assert_eq!(
            r.header("x-goog-api-key"),
            Some("[redacted]"),
            "the key is sent as a header"
        );
        assert!(!r.query.contains(key));
    }
    let second = received[1].json();
    let contents = second["contents"].as_array().unwrap();
    let roles: Vec<&str> = contents
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"], "{second}");
    assert_eq!(
        contents[1]["parts"],
        json!([
            {"text": "Reading the notes."},
            {"functionCall": {"name": "read_file", "args": {"path": "notes.txt"}},
             "thoughtSignature": "SIG-1"},
        ]),
        "the call goes back as it came, with its signature: {second}"
    );
    assert_eq!(
        contents[2]["parts"],
        json!([{"functionResponse": {
            "name": "read_file",
            "response": {"output": "remember the milk\n"},
        }}]),
        "{second}"
    );

    let log = log_entries(&sandbox.only_pod());
    let finished: Vec<&Value> = log
        .iter()
        .filter(|e| e["kind"] == "provider_request_finished")
        .collect();
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["stop_reason"]["reason"], "tool_calls");
    assert_eq!(finished[1]["stop_reason"]["reason"], "end_turn");
    // Thoughts count as output; cached tokens are part of the prompt.
    assert_eq!(
        finished[0]["usage"],
        json!({"input_tokens": 40, "output_tokens": 42, "reasoning_tokens": 30})
    );
    assert_eq!(
        finished[1]["usage"],
        json!({"input_tokens": 60, "output_tokens": 9, "cached_input_tokens": 32})
    );
    let tool = log
        .iter()
        .find(|e| e["kind"] == "tool_call_finished")
        .unwrap();
    assert_eq!(tool["outcome"], "ok");
    let done = log.iter().find(|e| e["kind"] == "run_completed").unwrap();
    assert_eq!(done["stop_reason"]["reason"], "end_turn");
    // The key is in no file of the home.
    for entry in walk(&sandbox.home()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key),
            "{} holds the key",
            entry.display()
        );
    }
}

#[test]
fn google_api_key_is_read_when_gemini_api_key_is_not_set() {
    let (output, received, _sandbox) = run_gemini(
        &[("GOOGLE_API_KEY", "AIzaSyGOOGLEFALLBACK0000000000")],
        tool_call_then_answer(),
    );
    assert_exit(&output, 0);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("x-goog-api-key"), Some("[redacted]"));
}

#[test]
fn a_gemini_pod_without_either_key_variable_is_a_config_error_naming_gemini_api_key() {
    let (output, received, _sandbox) = run_gemini(&[], tool_call_then_answer());
    assert_exit(&output, 2);
    assert!(received.is_empty(), "nothing was sent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GEMINI_API_KEY"), "{}", describe(&output));
}
