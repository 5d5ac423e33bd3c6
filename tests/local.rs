//! Whole-system tests of the builtin profiles for local OpenAI-compatible servers (Ollama,
//! llama.cpp's llama-server, vLLM): they resolve to their default ports with `auth = "none"`,
//! and a run against a loopback server speaking Chat Completions sends no key at all.

#![allow(clippy::unwrap_used)]

mod support;

use pod_provider::{Cassette, CassetteResponse, WireScheme};
use serde_json::json;
use support::replay_server::serve;
use support::{Sandbox, assert_exit, describe, stdout_json};

#[test]
fn the_local_server_profiles_resolve_to_their_default_ports_without_a_key() {
    let sandbox = Sandbox::new();
    for (name, base_url) in [
        ("ollama", "http://localhost:11434/v1"),
        ("llama-cpp", "http://localhost:8080/v1"),
        ("vllm", "http://localhost:8000/v1"),
    ] {
        let out = sandbox.run(&["profile", "show", name, "--json"]);
        assert_exit(&out, 0);
        let model = &stdout_json(&out)["manifest"]["model"];
        assert_eq!(model["scheme"], "openai-chat", "{name}");
        assert_eq!(model["base_url"], base_url, "{name}");
        assert_eq!(model["auth"], "none", "{name}");
        assert!(model.get("api_key_env").is_none(), "{name}: {model}");
    }
    // `doctor` asks for no key variable for them.
    let out = sandbox
        .pods()
        .env_remove("OPENAI_API_KEY")
        .args(["doctor", "-p", "ollama", "-p", "llama-cpp", "-p", "vllm"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("profile vllm: openai-chat"),
        "{}",
        describe(&out)
    );
    assert!(!text.contains("OPENAI_API_KEY"), "{}", describe(&out));
}

fn chat_answer(text: &str) -> String {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = json!({"id": "chatcmpl-1", "model": "llama3.2",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    [
        chunk(json!({"role": "assistant", "content": text}), None),
        chunk(json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

#[test]
fn a_run_on_a_local_server_profile_sends_no_authorization_header() {
    let served = serve(Cassette::new(
        WireScheme::OpenaiChat,
        vec![CassetteResponse::sse(chat_answer(
            "Hello from the local model.",
        ))],
    ));
    let server = &served.server;
    let sandbox = Sandbox::new();
    let base = format!("model.base_url={}/v1", server.base_url());
    // A key in the environment is not sent either: the profile says there is none.
    let out = sandbox
        .pods()
        .env("OPENAI_API_KEY", "sk-must-not-be-sent-0000000000")
        .args(["run", "-p", "ollama", "--set", &base, "hi"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello from the local model."),
        "{}",
        describe(&out)
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(
        received[0].header("authorization"),
        None,
        "{:?}",
        received[0].headers
    );
    assert_eq!(received[0].json()["model"], "llama3.2");
}

#[test]
fn auth_none_with_a_key_variable_is_refused_naming_both_keys() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "run",
        "-p",
        "ollama",
        "--set",
        "model.api_key_env=OPENAI_API_KEY",
        "hi",
    ]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model.auth") && stderr.contains("model.api_key_env"),
        "{stderr}"
    );
    let out = sandbox.run(&["run", "-p", "ollama", "--set", "model.auth=nope", "hi"]);
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model.auth") && stderr.contains("none"),
        "{stderr}"
    );
}
