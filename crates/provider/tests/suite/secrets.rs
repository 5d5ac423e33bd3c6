//! The configured key never comes out of the client in model output, even when the model
//! streams it split across deltas: text, reasoning and tool-call arguments, at every split point.

use futures_util::StreamExt;
use pod_provider::{
    ApiKey, Cassette, CassetteResponse, Client, ClientConfig, Message, ModelRequest, ReplayServer,
    StreamEvent, WireScheme,
};
use serde_json::json;

use crate::facts;

const KEYS: [&str; 2] = ["sk-proj-AbC123xyz789QRS", "plainkey-ABCDEF123456"];

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let c = json!({"id": "chatcmpl-k", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// A Chat stream whose reasoning, text and tool arguments each carry `key` cut at `cut`, with
/// `tail` (a proper prefix of the key, or nothing) at the very end of the text.
fn stream_with_key(key: &str, cut: usize, tail: &str) -> String {
    let (a, b) = key.split_at(cut);
    let mut s = String::new();
    s += &chunk(
        json!({"role": "assistant", "reasoning_content": format!("think {a}")}),
        None,
    );
    s += &chunk(json!({"reasoning_content": format!("{b} done")}), None);
    s += &chunk(json!({"content": format!("the key is {a}")}), None);
    s += &chunk(json!({"content": format!("{b}, and {tail}")}), None);
    let args_a = format!("{{\"token\":\"{a}");
    let args_b = format!("{b}\"}}");
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "use", "arguments": args_a}}]}),
        None,
    );
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": args_b}}]}),
        None,
    );
    s += &chunk(json!({}), Some("tool_calls"));
    s += "data: [DONE]\n\n";
    s
}

#[tokio::test]
async fn a_key_split_across_deltas_is_scrubbed_at_every_split_point() {
    for key in KEYS {
        let tail = &key[..6];
        let cuts: Vec<usize> = (1..key.len()).collect();
        let responses = cuts
            .iter()
            .map(|&c| CassetteResponse::sse(stream_with_key(key, c, tail)))
            .collect();
        let server = ReplayServer::start(Cassette::new(WireScheme::OpenaiChat, responses)).unwrap();
        let config = ClientConfig::new(WireScheme::OpenaiChat)
            .with_base_url(server.base_url())
            .with_api_key(Some(ApiKey::new(key)));
        let client = Client::new(config).unwrap();
        let request = ModelRequest {
            model: "m".into(),
            messages: vec![Message::User { text: "hi".into() }],
            ..ModelRequest::default()
        };
        for cut in cuts {
            let events: Vec<StreamEvent> = client.stream(&request, None).collect().await;
            let all = serde_json::to_string(&events).unwrap();
            assert!(!all.contains(key), "{key} cut at {cut}: {all}");
            let f = facts(&events);
            // A proper prefix of the key at the end is not the key: it is released at the end.
            assert_eq!(
                f.text,
                format!("the key is [redacted], and {tail}"),
                "cut {cut}"
            );
            assert_eq!(f.reasoning, "think [redacted] done", "cut {cut}");
            assert_eq!(f.calls.len(), 1);
            assert_eq!(f.calls[0].3, "{\"token\":\"[redacted]\"}", "cut {cut}");
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, StreamEvent::TextDelta(d) if d.text.is_empty())),
                "no empty deltas are produced"
            );
        }
    }
}

#[tokio::test]
async fn text_that_only_starts_like_the_key_is_passed_on_unchanged() {
    let key = KEYS[0];
    let mut s = chunk(
        json!({"role": "assistant", "content": "prefix sk-proj-A"}),
        None,
    );
    s += &chunk(json!({"content": "nd more"}), None);
    s += &chunk(json!({}), Some("stop"));
    s += "data: [DONE]\n\n";
    let server = ReplayServer::start(Cassette::new(
        WireScheme::OpenaiChat,
        vec![CassetteResponse::sse(s)],
    ))
    .unwrap();
    let config = ClientConfig::new(WireScheme::OpenaiChat)
        .with_base_url(server.base_url())
        .with_api_key(Some(ApiKey::new(key)));
    let request = ModelRequest {
        model: "m".into(),
        ..ModelRequest::default()
    };
    let events: Vec<StreamEvent> = Client::new(config)
        .unwrap()
        .stream(&request, None)
        .collect()
        .await;
    assert_eq!(facts(&events).text, "prefix sk-proj-And more");
}

#[tokio::test]
async fn a_gemini_key_echoed_in_text_thoughts_and_whole_call_arguments_is_scrubbed() {
    let key = "AIzaSyEchoedGeminiKey0123456789";
    let (a, b) = key.split_at(11);
    let part = |p: serde_json::Value, finish: Option<&str>| {
        let mut c = json!({"content": {"role": "model", "parts": [p]}});
        if let Some(f) = finish {
            c["finishReason"] = json!(f);
        }
        format!(
            "data: {}\r\n\r\n",
            json!({"candidates": [c], "responseId": "r"})
        )
    };
    let body = [
        part(
            json!({"text": format!("mulling {key}"), "thought": true}),
            None,
        ),
        part(json!({"text": format!("the key is {a}")}), None),
        part(json!({"text": format!("{b}.")}), None),
        part(
            json!({"functionCall": {"name": "use", "args": {"token": key}}}),
            Some("STOP"),
        ),
    ]
    .concat();
    let server = ReplayServer::start(Cassette::new(
        WireScheme::Gemini,
        vec![CassetteResponse::sse(body)],
    ))
    .unwrap();
    let config = ClientConfig::new(WireScheme::Gemini)
        .with_base_url(server.base_url())
        .with_api_key(Some(ApiKey::new(key)));
    let request = ModelRequest {
        model: "gemini-2.5-flash".into(),
        ..ModelRequest::default()
    };
    let events: Vec<StreamEvent> = Client::new(config)
        .unwrap()
        .stream(&request, None)
        .collect()
        .await;
    assert!(!serde_json::to_string(&events).unwrap().contains(key));
    let f = facts(&events);
    assert_eq!(f.text, "the key is [redacted].");
    assert_eq!(f.reasoning, "mulling [redacted]");
    assert_eq!(f.calls[0].3, "{\"token\":\"[redacted]\"}");
}
