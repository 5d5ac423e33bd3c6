//! Request bodies as the loopback server receives them: what a conversation turns into on each
//! wire scheme.

use futures_util::StreamExt;
use pod_provider::event::{ReasoningDelta, ReasoningKind};
use pod_provider::{
    Cassette, CassetteResponse, Client, ClientConfig, Message, ModelRequest, ReplayServer,
    WireScheme,
};
use serde_json::Value;

use crate::read;

/// Send `messages` once on `scheme` and return the JSON body the server received.
async fn sent_body(scheme: WireScheme, messages: Vec<Message>) -> Value {
    let fixture = match scheme {
        WireScheme::OpenaiResponses => "openai-responses/text-basic.sse",
        WireScheme::OpenaiChat => "openai-chat/text-usage-done.sse",
        WireScheme::AnthropicMessages => "anthropic/text-basic.sse",
        WireScheme::Gemini => "gemini/text.sse",
    };
    let body = String::from_utf8(read(fixture)).unwrap();
    let server =
        ReplayServer::start(Cassette::new(scheme, vec![CassetteResponse::sse(body)])).unwrap();
    let client = Client::new(ClientConfig::new(scheme).with_base_url(server.base_url())).unwrap();
    let request = ModelRequest {
        model: "m".into(),
        messages,
        ..ModelRequest::default()
    };
    let _: Vec<_> = client.stream(&request, None).collect().await;
    server.received()[0].json()
}

fn user(t: &str) -> Message {
    Message::User { text: t.into() }
}

/// An answer that was all reasoning: no text, no tool call.
fn all_reasoning(signature: &str) -> Message {
    Message::Assistant {
        text: String::new(),
        reasoning: vec![
            ReasoningDelta {
                choice: 0,
                kind: ReasoningKind::Raw,
                text: "thinking it over".into(),
                signature: None,
            },
            ReasoningDelta {
                choice: 0,
                kind: ReasoningKind::Opaque,
                text: String::new(),
                signature: Some(signature.into()),
            },
        ],
        tool_calls: vec![],
    }
}

#[tokio::test]
async fn an_all_reasoning_answer_is_never_sent_as_an_empty_assistant_turn() {
    let history = || vec![user("first"), all_reasoning("SIG"), user("second")];

    let body = sent_body(WireScheme::AnthropicMessages, history()).await;
    let messages = body["messages"].as_array().unwrap();
    for m in messages {
        assert_ne!(m["content"], Value::Array(vec![]), "{body}");
    }
    assert_eq!(messages.len(), 1, "{body}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "first\n\nsecond");

    let body = sent_body(WireScheme::OpenaiResponses, history()).await;
    let input = body["input"].as_array().unwrap();
    let roles: Vec<&str> = input.iter().filter_map(|i| i["role"].as_str()).collect();
    assert!(
        !roles.windows(2).any(|w| w == ["user", "user"]),
        "two user turns in a row: {body}"
    );
    assert!(
        !input.iter().any(|i| i["type"] == "reasoning"),
        "a reasoning item with no turn after it is not sent: {body}"
    );

    let body = sent_body(WireScheme::OpenaiChat, history()).await;
    let messages = body["messages"].as_array().unwrap();
    assert!(
        !messages.iter().any(|m| m["role"] == "assistant"
            && m["content"] == ""
            && m.get("tool_calls").is_none()),
        "{body}"
    );
}

#[tokio::test]
async fn an_empty_signature_is_sent_as_no_signature() {
    let turn = |sig: &str| {
        let mut m = all_reasoning(sig);
        if let Message::Assistant { text, .. } = &mut m {
            *text = "answer".into();
        }
        m
    };
    let body = sent_body(
        WireScheme::AnthropicMessages,
        vec![user("q"), turn(""), user("again")],
    )
    .await;
    let content = body["messages"][1]["content"].as_array().unwrap();
    assert_eq!(
        content,
        &vec![serde_json::json!({"type": "text", "text": "answer"})],
        "unsigned thinking is not sent, and no block carries an empty signature: {body}"
    );

    let body = sent_body(
        WireScheme::OpenaiResponses,
        vec![user("q"), turn(""), user("again")],
    )
    .await;
    assert!(
        !body["input"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["type"] == "reasoning"),
        "{body}"
    );
    // With a real signature the reasoning goes back.
    let body = sent_body(
        WireScheme::OpenaiResponses,
        vec![user("q"), turn("ENC"), user("again")],
    )
    .await;
    assert_eq!(body["input"][1]["type"], "reasoning", "{body}");
    assert_eq!(body["input"][1]["encrypted_content"], "ENC");
}

#[tokio::test]
async fn anthropic_tool_input_is_always_an_object_so_the_history_stays_sendable() {
    use pod_provider::ToolCall;
    let call = |id: &str, arguments: &str| ToolCall {
        call_id: id.into(),
        name: "write_file".into(),
        arguments: arguments.into(),
    };
    let history = vec![
        user("go"),
        Message::Assistant {
            text: String::new(),
            reasoning: vec![],
            tool_calls: vec![
                call("a", r#"{"path":"x.txt"}"#),
                call("b", r#"{"path": "cut"#),
                call("c", "[1, 2]"),
            ],
        },
    ];
    let body = sent_body(WireScheme::AnthropicMessages, history).await;
    let content = body["messages"][1]["content"].as_array().unwrap();
    assert_eq!(content[0]["input"], serde_json::json!({"path": "x.txt"}));
    assert_eq!(content[1]["input"], serde_json::json!({}));
    assert_eq!(content[2]["input"], serde_json::json!({}));
}

#[tokio::test]
async fn gemini_request_names_the_model_in_the_path_keeps_the_key_in_a_header_and_sends_results_back()
 {
    use pod_provider::{ApiKey, ToolCall, ToolSpec};
    let body = String::from_utf8(read("gemini/text.sse")).unwrap();
    let server = ReplayServer::start(Cassette::new(
        WireScheme::Gemini,
        vec![CassetteResponse::sse(body)],
    ))
    .unwrap();
    let key = "AIzaSyTESTKEY0123456789";
    let client = Client::new(
        ClientConfig::new(WireScheme::Gemini)
            .with_base_url(format!("{}/v1beta", server.base_url()))
            .with_api_key(Some(ApiKey::new(key))),
    )
    .unwrap();
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        call_id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    };
    let request = ModelRequest {
        model: "gemini-2.5-flash".into(),
        instructions: "be brief".into(),
        messages: vec![
            user("list and read"),
            Message::Assistant {
                text: String::new(),
                reasoning: vec![ReasoningDelta {
                    choice: 0,
                    kind: ReasoningKind::Opaque,
                    text: String::new(),
                    signature: Some("SIG".into()),
                }],
                tool_calls: vec![
                    call("pods-call-r1-0", "list_dir", r#"{"path":"."}"#),
                    call("fc_7", "read_file", r#"{"path":"a.txt"}"#),
                ],
            },
            Message::ToolResult {
                call_id: "pods-call-r1-0".into(),
                output: "a.txt".into(),
                is_error: false,
            },
            Message::ToolResult {
                call_id: "fc_7".into(),
                output: "no such file".into(),
                is_error: true,
            },
        ],
        tools: vec![ToolSpec {
            name: "read_file".into(),
            description: "Read a file".into(),
            parameters: serde_json::json!({"type": "object", "additionalProperties": false}),
        }],
        max_output_tokens: Some(100),
        temperature: Some(0.5),
    };
    let _: Vec<_> = client.stream(&request, None).collect().await;
    let got = &server.received()[0];
    assert_eq!(
        (got.method.as_str(), got.path.as_str(), got.query.as_str()),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            "alt=sse"
        )
    );
    assert_eq!(got.header("x-goog-api-key"), Some("[redacted]"));
    assert_eq!(got.header("authorization"), None);
    let b = got.json();
    assert!(!got.query.contains(key) && !b.to_string().contains(key));
    use serde_json::json;
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    assert_eq!(
        b["contents"],
        json!([
            {"role": "user", "parts": [{"text": "list and read"}]},
            {"role": "model", "parts": [
                // The turn's signature goes back on its first call; a made-up id is not sent.
                {"functionCall": {"name": "list_dir", "args": {"path": "."}}, "thoughtSignature": "SIG"},
                {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}, "id": "fc_7"}},
            ]},
            // Both results in one user turn, named after their calls.
            {"role": "user", "parts": [
                {"functionResponse": {"name": "list_dir", "response": {"output": "a.txt"}}},
                {"functionResponse": {"name": "read_file", "id": "fc_7", "response": {"error": "no such file"}}},
            ]},
        ]),
        "{b}"
    );
    assert_eq!(
        b["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"],
        json!({"type": "object", "additionalProperties": false})
    );
    assert_eq!(
        b["generationConfig"],
        json!({"maxOutputTokens": 100, "temperature": 0.5})
    );
}
