//! The real client against the loopback replay server: HTTP errors, retries, faults, timeouts,
//! request shapes, secrets, observation. Plus classification of every recorded error body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use pod_provider::event::StopReason;
use pod_provider::{
    ApiKey, Cassette, CassetteResponse, Client, ClientConfig, ErrorClass, KeepaliveAfterEvents,
    Message, Milestone, ModelRequest, PauseAfterEvents, ProviderError, RawFrames, ReplayServer,
    RequestInfo, RetryPolicy, StreamEvent, StreamObserver, ToolCall, ToolSpec, WireScheme,
    from_http, retry_after_ms, sse_body,
};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::{facts, fixture, read};

const R: WireScheme = WireScheme::OpenaiResponses;

fn text_basic() -> String {
    String::from_utf8(read("openai-responses/text-basic.sse")).unwrap()
}

fn error_body(rel: &str) -> String {
    String::from_utf8(read(&format!("errors/{rel}"))).unwrap()
}

fn config(server: &ReplayServer) -> ClientConfig {
    let mut c = ClientConfig::new(server.scheme()).with_base_url(server.base_url());
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        budget: Duration::from_secs(10),
    };
    c.first_event_timeout = Duration::from_secs(5);
    c.idle_timeout = Duration::from_secs(5);
    c
}

fn request() -> ModelRequest {
    ModelRequest {
        model: "test-model".into(),
        instructions: "Be brief.".into(),
        messages: vec![Message::User {
            text: "Capital of France?".into(),
        }],
        ..ModelRequest::default()
    }
}

async fn run(client: &Client, observer: Option<Arc<dyn StreamObserver>>) -> Vec<StreamEvent> {
    client.stream(&request(), observer).collect().await
}

fn last_error(events: &[StreamEvent]) -> ProviderError {
    match events.last() {
        Some(StreamEvent::Error(e)) => e.clone(),
        other => panic!("expected a final error, got {other:?} in {events:#?}"),
    }
}

#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
    raw: bool,
}

impl StreamObserver for Recorder {
    fn on_request_built(&self, info: &RequestInfo) {
        self.log.lock().unwrap().push(format!(
            "request {} {} msgs={}",
            info.attempt, info.url, info.message_count
        ));
    }
    fn on_milestone(&self, attempt: u32, m: &Milestone) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{attempt} {}", serde_json::to_string(m).unwrap()));
    }
    fn on_retry_scheduled(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.log.lock().unwrap().push(format!(
            "retry after {attempt} in {}ms: {}",
            delay.as_millis(),
            cause.class
        ));
    }
    fn wants_raw_frames(&self) -> bool {
        self.raw
    }
    fn on_raw_frames(&self, attempt: u32, frames: RawFrames) {
        let mut log = self.log.lock().unwrap();
        for frame in frames.iter() {
            log.push(format!("{attempt} raw {}", frame.event));
        }
    }
}

#[tokio::test]
async fn completes_and_sends_the_responses_wire_shape() {
    let server =
        ReplayServer::start(Cassette::new(R, vec![CassetteResponse::sse(text_basic())])).unwrap();
    let mut cfg = config(&server);
    cfg.api_key = Some(ApiKey::new("sk-live-abcdef123456"));
    let client = Client::new(cfg).unwrap();
    let mut req = request();
    req.tools = vec![ToolSpec {
        name: "get_capital".into(),
        description: "Look up a capital".into(),
        parameters: json!({"type": "object", "properties": {"country": {"type": "string"}}}),
    }];
    req.messages.push(Message::Assistant {
        text: String::new(),
        reasoning: vec![],
        tool_calls: vec![ToolCall {
            call_id: "call_1".into(),
            name: "get_capital".into(),
            arguments: "{\"country\":\"France\"}".into(),
        }],
    });
    req.messages.push(Message::ToolResult {
        call_id: "call_1".into(),
        output: "Paris".into(),
        is_error: false,
    });
    let events: Vec<StreamEvent> = client.stream(&req, None).collect().await;
    let f = facts(&events);
    assert_eq!(f.text, "The capital of France is Paris.");
    assert!(
        matches!(&f.terminal, StreamEvent::Completed(c) if c.stop_reason == StopReason::EndTurn)
    );

    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/responses")
    );
    assert_eq!(
        got[0].header("authorization"),
        Some("[redacted]"),
        "auth is sent but never recorded"
    );
    assert_eq!(got[0].header("accept"), Some("text/event-stream"));
    let body = got[0].json();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["name"], "get_capital");
    let input = body["input"].as_array().unwrap();
    assert_eq!(
        input[0],
        json!({"role": "user", "content": "Capital of France?"})
    );
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[1]["call_id"], "call_1");
    assert_eq!(
        input[2],
        json!({"type": "function_call_output", "call_id": "call_1", "output": "Paris"})
    );
}

#[tokio::test]
async fn chat_and_anthropic_request_shapes() {
    let chat_body = String::from_utf8(read("openai-chat/single-tool-call.sse")).unwrap();
    let server = ReplayServer::start(Cassette::new(
        WireScheme::OpenaiChat,
        vec![CassetteResponse::sse(chat_body)],
    ))
    .unwrap();
    let client = Client::new(config(&server).with_api_key(Some(ApiKey::new("k-123456")))).unwrap();
    let mut req = request();
    req.messages.push(Message::Assistant {
        text: String::new(),
        reasoning: vec![],
        tool_calls: vec![ToolCall {
            call_id: "c1".into(),
            name: "f".into(),
            arguments: "{}".into(),
        }],
    });
    req.messages.push(Message::ToolResult {
        call_id: "c1".into(),
        output: "ok".into(),
        is_error: false,
    });
    let events: Vec<StreamEvent> = client.stream(&req, None).collect().await;
    assert!(matches!(events.last(), Some(StreamEvent::Completed(_))));
    let got = &server.received()[0];
    assert_eq!(got.path, "/chat/completions");
    let body = got.json();
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        body["messages"][2]["tool_calls"][0]["function"]["name"],
        "f"
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "ok"})
    );

    let a_body = String::from_utf8(read("anthropic/text-basic.sse")).unwrap();
    let server = ReplayServer::start(Cassette::new(
        WireScheme::AnthropicMessages,
        vec![CassetteResponse::sse(a_body)],
    ))
    .unwrap();
    let client =
        Client::new(config(&server).with_api_key(Some(ApiKey::new("sk-ant-999999")))).unwrap();
    let events: Vec<StreamEvent> = client.stream(&req, None).collect().await;
    assert_eq!(facts(&events).text, "- Captain\n- Scoop");
    let got = &server.received()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.header("x-api-key"), Some("[redacted]"));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    let body = got.json();
    assert_eq!(body["system"], "Be brief.");
    assert!(body["max_tokens"].as_u64().unwrap() > 0);
    assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
    assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "c1");
}

#[tokio::test]
async fn non_retryable_http_errors_are_classified_and_not_retried() {
    let cases = [
        (
            400,
            "openai-chat-400-context_length_exceeded.json",
            ErrorClass::ContextLengthExceeded,
        ),
        (
            400,
            "anthropic-400-prompt-too-long.json",
            ErrorClass::ContextLengthExceeded,
        ),
        (
            401,
            "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}",
            ErrorClass::Auth,
        ),
        (
            404,
            "anthropic-404-not_found_error.json",
            ErrorClass::NotFound,
        ),
        (404, "openai-404-model_not_found.json", ErrorClass::NotFound),
    ];
    for (status, body, class) in cases {
        let body = if body.ends_with(".json") {
            error_body(body)
        } else {
            body.to_string()
        };
        let server = ReplayServer::start(Cassette::new(
            R,
            vec![
                CassetteResponse::error(status, body).with_header("x-request-id", "req_abc"),
                CassetteResponse::sse(text_basic()),
            ],
        ))
        .unwrap();
        let client = Client::new(config(&server)).unwrap();
        let events = run(&client, None).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let e = last_error(&events);
        assert_eq!(
            (e.class, e.http_status, e.retryable),
            (class, Some(status), false),
            "{e:?}"
        );
        assert!(e.provider_request_id.is_some());
        assert_eq!(server.requests_served(), 1, "{class:?} must not be retried");
    }
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried_then_succeeds() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(429, error_body("openai-429-rate_limit_exceeded.json"))
                .with_header("retry-after-ms", "30"),
            CassetteResponse::sse(text_basic()),
        ],
    ))
    .unwrap();
    let client = Client::new(config(&server)).unwrap();
    let rec = Arc::new(Recorder::default());
    let start = std::time::Instant::now();
    let events = run(&client, Some(rec.clone())).await;
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "Retry-After honoured"
    );
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
    assert_eq!(server.requests_served(), 2);
    let log = rec.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l == "retry after 1 in 30ms: rate_limited"),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.starts_with("request 2 ")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("\"milestone\":\"headers_received\",\"status\":429")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_attempts_run_out() {
    for (status, class) in [
        (500, ErrorClass::ServerError),
        (503, ErrorClass::Overloaded),
        (529, ErrorClass::Overloaded),
    ] {
        let body = if status == 529 {
            error_body("anthropic-529-overloaded_error.json")
        } else {
            "upstream failure".to_string()
        };
        let responses = (0..3)
            .map(|_| CassetteResponse::error(status, body.clone()))
            .collect();
        let server = ReplayServer::start(Cassette::new(R, responses)).unwrap();
        let client = Client::new(config(&server)).unwrap();
        let rec = Arc::new(Recorder::default());
        let events = run(&client, Some(rec.clone())).await;
        let e = last_error(&events);
        assert_eq!(
            (e.class, e.retryable, e.http_status),
            (class, true, Some(status))
        );
        assert_eq!(server.requests_served(), 3, "max_attempts = 3");
        let retries = rec
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("retry after"))
            .count();
        assert_eq!(retries, 2);
    }
}

#[tokio::test]
async fn disconnect_before_output_is_retried_after_output_is_not() {
    // Only response.created (not output) arrives before the cut: safe to send again.
    let mut cut_early = CassetteResponse::sse(text_basic());
    cut_early.disconnect_after_events = Some(1);
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![cut_early, CassetteResponse::sse(text_basic())],
    ))
    .unwrap();
    let client = Client::new(config(&server)).unwrap();
    let events = run(&client, None).await;
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
    assert_eq!(server.requests_served(), 2);

    // Text was shown before the cut: never re-sent.
    let mut cut_late = CassetteResponse::sse(text_basic());
    cut_late.disconnect_after_events = Some(8);
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![cut_late, CassetteResponse::sse(text_basic())],
    ))
    .unwrap();
    let client = Client::new(config(&server)).unwrap();
    let events = run(&client, None).await;
    let f = facts(&events);
    assert!(
        !f.text.is_empty() && f.text != "The capital of France is Paris.",
        "{}",
        f.text
    );
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::StreamClosedBeforeCompletion, "{e:?}");
    assert_eq!(server.requests_served(), 1);
}

#[tokio::test]
async fn disconnect_after_bytes_mid_event() {
    let mut cut = CassetteResponse::sse(text_basic());
    cut.disconnect_after_bytes = Some(3000);
    let server = ReplayServer::start(Cassette::new(R, vec![cut])).unwrap();
    let mut cfg = config(&server);
    cfg.retry = RetryPolicy::none();
    let events = run(&Client::new(cfg).unwrap(), None).await;
    assert_eq!(
        last_error(&events).class,
        ErrorClass::StreamClosedBeforeCompletion
    );
}

#[tokio::test]
async fn stall_past_idle_timeout_after_output() {
    let mut stall = CassetteResponse::sse(text_basic());
    stall.pause_after_events = Some(PauseAfterEvents {
        events: 8,
        ms: 3000,
    });
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![stall, CassetteResponse::sse(text_basic())],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.idle_timeout = Duration::from_millis(200);
    let rec = Arc::new(Recorder::default());
    let start = std::time::Instant::now();
    let events = run(&Client::new(cfg).unwrap(), Some(rec.clone())).await;
    assert!(start.elapsed() < Duration::from_secs(2));
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::IdleTimeout);
    assert!(e.message.contains("200 ms"), "{e:?}");
    assert!(!facts(&events).text.is_empty());
    assert_eq!(server.requests_served(), 1, "output was shown: no retry");
    assert!(
        rec.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("idle_timeout"))
    );
}

#[tokio::test]
async fn slow_first_event_times_out_then_retry_succeeds() {
    let mut slow = CassetteResponse::sse(text_basic());
    slow.delay_before_headers_ms = Some(3000);
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![slow, CassetteResponse::sse(text_basic())],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.first_event_timeout = Duration::from_millis(200);
    let events = run(&Client::new(cfg.clone()).unwrap(), None).await;
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
    assert_eq!(server.requests_served(), 2);

    let mut slow = CassetteResponse::sse(text_basic());
    slow.pause_after_events = Some(PauseAfterEvents {
        events: 0,
        ms: 3000,
    });
    let server = ReplayServer::start(Cassette::new(R, vec![slow])).unwrap();
    cfg.base_url = server.base_url().into();
    cfg.retry = RetryPolicy::none();
    let events = run(&Client::new(cfg).unwrap(), None).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::IdleTimeout);
    assert!(e.message.contains("within 200 ms"), "{e:?}");
}

#[tokio::test]
async fn in_stream_retryable_error_before_output_is_retried() {
    let overloaded =
        String::from_utf8(read("synthetic/anthropic/api-error-before-content.sse")).unwrap();
    let ok = String::from_utf8(read("anthropic/text-basic.sse")).unwrap();
    let server = ReplayServer::start(Cassette::new(
        WireScheme::AnthropicMessages,
        vec![CassetteResponse::sse(overloaded), CassetteResponse::sse(ok)],
    ))
    .unwrap();
    let events = run(&Client::new(config(&server)).unwrap(), None).await;
    let f = facts(&events);
    assert_eq!(f.text, "- Captain\n- Scoop");
    assert_eq!(f.started, 2, "one `started` per attempt");
    assert_eq!(server.requests_served(), 2);
}

#[tokio::test]
async fn the_api_key_never_leaks() {
    let key = "sk-proj-SECRETSECRET0123456789";
    let echo = format!(
        "{{\"error\":{{\"message\":\"Incorrect API key provided: {key}. Header was Bearer {key}\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}"
    );
    let server =
        ReplayServer::start(Cassette::new(R, vec![CassetteResponse::error(401, echo)])).unwrap();
    let cfg = config(&server).with_api_key(Some(ApiKey::new(key)));
    let client = Client::new(cfg.clone()).unwrap();
    let events = run(&client, None).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::Auth);
    for text in [
        format!("{e}"),
        format!("{e:?}"),
        serde_json::to_string(&e).unwrap(),
        format!("{client:?}"),
        format!("{cfg:?}"),
        format!("{:?}", server.received()),
    ] {
        assert!(!text.contains("SECRETSECRET"), "leaked in: {text}");
    }
    assert_eq!(format!("{}", ApiKey::new(key)), "[redacted]");
}

#[tokio::test]
async fn exhausted_cassette_answers_a_clear_non_retryable_400() {
    let server = ReplayServer::start(Cassette::new(R, vec![])).unwrap();
    let events = run(&Client::new(config(&server)).unwrap(), None).await;
    let e = last_error(&events);
    assert_eq!((e.class, e.retryable), (ErrorClass::InvalidRequest, false));
    assert_eq!(e.code.as_deref(), Some("cassette_exhausted"));
    assert!(e.message.contains("no response 1 left"), "{e:?}");
}

#[tokio::test]
async fn raw_frames_and_milestones_are_observed_in_order() {
    let body = sse_body(&[
        (
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "m"}}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "output_index": 0, "delta": "Hi"}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "response": {"id": "resp_1"}}),
        ),
    ]);
    let server = ReplayServer::start(Cassette::new(R, vec![CassetteResponse::sse(body)])).unwrap();
    let rec = Arc::new(Recorder {
        raw: true,
        ..Recorder::default()
    });
    let events = run(&Client::new(config(&server)).unwrap(), Some(rec.clone())).await;
    assert_eq!(facts(&events).text, "Hi");
    let log = rec.log.lock().unwrap().clone();
    let expected_prefix = [
        format!("request 1 {}/responses msgs=1", server.base_url()),
        "1 {\"milestone\":\"request_sent\"}".to_string(),
        "1 {\"milestone\":\"headers_received\",\"status\":200}".to_string(),
        "1 {\"milestone\":\"first_byte\"}".to_string(),
        "1 raw response.created".to_string(),
        "1 raw response.output_text.delta".to_string(),
        "1 raw response.completed".to_string(),
        "1 {\"milestone\":\"first_event\"}".to_string(),
    ];
    assert_eq!(
        &log[..expected_prefix.len()],
        &expected_prefix[..],
        "{log:#?}"
    );
    assert_eq!(
        log.last().unwrap(),
        "1 {\"milestone\":\"stream_end\",\"outcome\":\"completed\"}"
    );
}

#[tokio::test]
async fn cassette_file_with_http_capture_and_errors_naming_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("limited.http"),
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\nx-request-id: req_cap\r\n\r\n{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}",
    ).unwrap();
    std::fs::copy(
        fixture("openai-responses/text-basic.sse"),
        dir.path().join("ok.sse"),
    )
    .unwrap();
    let path = dir.path().join("cassette.json");
    std::fs::write(&path, r#"{"scheme":"openai-responses","responses":[{"body_file":"limited.http"},{"body_file":"ok.sse"}]}"#).unwrap();
    let cassette = Cassette::load(&path).unwrap();
    assert_eq!(cassette.responses[0].status, 429);
    let server = ReplayServer::start(cassette).unwrap();
    let rec = Arc::new(Recorder::default());
    let events = run(&Client::new(config(&server)).unwrap(), Some(rec.clone())).await;
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
    assert!(
        rec.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == "retry after 1 in 0ms: rate_limited")
    );

    std::fs::write(
        &path,
        r#"{"scheme":"openai-responses","responses":[{"body_file":"missing.sse"}]}"#,
    )
    .unwrap();
    let err = Cassette::load(&path).unwrap_err().to_string();
    assert!(err.contains("missing.sse"), "{err}");
    std::fs::write(&path, r#"{"scheme":"gopher","responses":[]}"#).unwrap();
    let err = Cassette::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("cassette.json") && err.contains("gopher"),
        "{err}"
    );
}

#[test]
fn client_rejects_a_bad_base_url() {
    let err = Client::new(ClientConfig::new(R).with_base_url("not a url")).unwrap_err();
    assert_eq!(err.class, ErrorClass::InvalidRequest);
    assert!(err.message.contains("not a url"));
}

#[test]
fn retry_after_headers() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after_ms(&h), Some(2000));
    h.insert("retry-after-ms", HeaderValue::from_static("150.5"));
    assert_eq!(retry_after_ms(&h), Some(150), "retry-after-ms wins");
    assert_eq!(retry_after_ms(&HeaderMap::new()), None);
}

/// Every recorded error body, with the status it was recorded with.
#[test]
fn recorded_error_bodies_classify() {
    let h = HeaderMap::new();
    let cases = [
        (
            "anthropic-400-prompt-too-long.json",
            400,
            ErrorClass::ContextLengthExceeded,
            Some("invalid_request_error"),
        ),
        (
            "anthropic-404-not_found_error.json",
            404,
            ErrorClass::NotFound,
            Some("not_found_error"),
        ),
        (
            "anthropic-529-overloaded_error.json",
            529,
            ErrorClass::Overloaded,
            Some("overloaded_error"),
        ),
        (
            "gemini-404-not_found.json",
            404,
            ErrorClass::NotFound,
            Some("NOT_FOUND"),
        ),
        (
            "gemini-429-resource_exhausted.json",
            429,
            ErrorClass::RateLimited,
            Some("RESOURCE_EXHAUSTED"),
        ),
        (
            "groq-400-tool_use_failed.json",
            400,
            ErrorClass::InvalidRequest,
            Some("tool_use_failed"),
        ),
        (
            "openai-400-invalid-param.json",
            400,
            ErrorClass::InvalidRequest,
            None,
        ),
        (
            "openai-404-model_not_found.json",
            404,
            ErrorClass::NotFound,
            Some("model_not_found"),
        ),
        (
            "openai-429-rate_limit_exceeded.json",
            429,
            ErrorClass::RateLimited,
            Some("rate_limit_exceeded"),
        ),
        (
            "openai-chat-400-context_length_exceeded.json",
            400,
            ErrorClass::ContextLengthExceeded,
            Some("context_length_exceeded"),
        ),
        (
            "openai-responses-400-context_length_exceeded.json",
            400,
            ErrorClass::ContextLengthExceeded,
            None,
        ),
        (
            "openrouter-429-wrapped.json",
            429,
            ErrorClass::RateLimited,
            None,
        ),
        (
            "llamacpp-400-exceed_context_size_error.json",
            400,
            ErrorClass::ContextLengthExceeded,
            Some("exceed_context_size_error"),
        ),
        (
            "llamacpp-400-exceed_context_size_error-flat.json",
            400,
            ErrorClass::ContextLengthExceeded,
            Some("exceed_context_size_error"),
        ),
    ];
    for (rel, status, class, code) in cases {
        let e = from_http(status, &h, &read(&format!("errors/{rel}")));
        assert_eq!(e.class, class, "{rel}: {e:?}");
        assert_eq!(e.http_status, Some(status));
        if let Some(code) = code {
            assert_eq!(e.code.as_deref(), Some(code), "{rel}");
        }
        assert_eq!(e.retryable, class.is_retryable(), "{rel}");
        assert!(
            !e.message.is_empty() && !e.message.starts_with('{'),
            "{rel}: message is the provider's words: {}",
            e.message
        );
    }
    let anthropic = from_http(400, &h, &read("errors/anthropic-400-prompt-too-long.json"));
    assert_eq!(
        anthropic.provider_request_id.as_deref(),
        Some("req_011CV5J4YZo4J3KLTDZgDN7S")
    );
    let gemini = from_http(429, &h, &read("errors/gemini-429-resource_exhausted.json"));
    assert!(
        gemini.retry_after_ms.is_some(),
        "RetryInfo.retryDelay is read: {gemini:?}"
    );
    let plain = from_http(502, &h, b"<html>Bad Gateway</html>");
    assert_eq!(
        (plain.class, plain.retryable),
        (ErrorClass::ServerError, true)
    );
    assert!(plain.message.contains("Bad Gateway"));
}

#[tokio::test]
async fn backoff_stays_within_the_cap_and_the_budget_is_respected() {
    let responses = (0..3)
        .map(|_| CassetteResponse::error(500, "boom"))
        .collect();
    let server = ReplayServer::start(Cassette::new(R, responses)).unwrap();
    let rec = Arc::new(Recorder::default());
    run(&Client::new(config(&server)).unwrap(), Some(rec.clone())).await;
    let delays: Vec<u64> = rec
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("retry after ")?
                .split(" in ")
                .nth(1)?
                .split("ms")
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(delays.len(), 2);
    assert!(
        delays[0] <= 5 && delays[1] <= 10,
        "full jitter below base * 2^n: {delays:?}"
    );

    // A provider asking for more time than the budget left: give up at once, keep its ask.
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(429, "{}").with_header("retry-after", "60"),
            CassetteResponse::sse(text_basic()),
        ],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.retry.budget = Duration::from_secs(1);
    let start = std::time::Instant::now();
    let events = run(&Client::new(cfg).unwrap(), None).await;
    let e = last_error(&events);
    assert_eq!(
        (e.class, e.retry_after_ms),
        (ErrorClass::RateLimited, Some(60_000))
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(server.requests_served(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_retryable_transport_error() {
    let server = ReplayServer::start(Cassette::new(R, vec![])).unwrap();
    let base = server.base_url();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut cfg = ClientConfig::new(R).with_base_url(base);
    cfg.retry = RetryPolicy::none();
    let events = run(&Client::new(cfg).unwrap(), None).await;
    let e = last_error(&events);
    assert_eq!(
        (e.class, e.retryable, e.http_status),
        (ErrorClass::Transport, true, None),
        "{e:?}"
    );
    assert!(e.message.contains("sending the request"), "{e:?}");
}

#[tokio::test]
async fn a_json_error_under_status_200_is_still_an_error() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::sse(
                "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}",
            )
            .with_header("content-type", "application/json"),
            CassetteResponse::sse("{\"id\":\"resp_1\",\"output\":[]}")
                .with_header("content-type", "application/json"),
        ],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.retry = RetryPolicy::none();
    let client = Client::new(cfg).unwrap();
    let e = last_error(&run(&client, None).await);
    assert_eq!(
        (e.class, e.code.as_deref()),
        (ErrorClass::RateLimited, Some("rate_limit_exceeded"))
    );
    let e = last_error(&run(&client, None).await);
    assert_eq!(e.class, ErrorClass::MalformedStream);
    assert!(e.message.contains("expected an event stream"), "{e:?}");
}

#[test]
fn anthropic_reasoning_is_sent_back_as_thinking_blocks() {
    use pod_provider::adapter::adapter_for;
    use pod_provider::event::{ReasoningDelta, ReasoningKind};
    let delta = |kind, text: &str, sig: Option<&str>| ReasoningDelta {
        choice: 0,
        kind,
        text: text.into(),
        signature: sig.map(str::to_string),
    };
    let req = ModelRequest {
        model: "m".into(),
        messages: vec![Message::Assistant {
            text: "answer".into(),
            reasoning: vec![
                delta(ReasoningKind::Opaque, "", Some("REDACTED_DATA")),
                delta(ReasoningKind::Raw, "think ", None),
                delta(ReasoningKind::Raw, "hard", None),
                delta(ReasoningKind::Opaque, "", Some("SIG")),
            ],
            tool_calls: vec![],
        }],
        ..ModelRequest::default()
    };
    let body = adapter_for(WireScheme::AnthropicMessages).body(&req);
    let content = &body["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"type": "redacted_thinking", "data": "REDACTED_DATA"})
    );
    assert_eq!(
        content[1],
        json!({"type": "thinking", "thinking": "think hard", "signature": "SIG"})
    );
    assert_eq!(content[2], json!({"type": "text", "text": "answer"}));

    let body = adapter_for(WireScheme::OpenaiResponses).body(&req);
    assert_eq!(body["input"][0]["type"], "reasoning");
    assert_eq!(body["input"][0]["encrypted_content"], "REDACTED_DATA");
}

#[tokio::test]
async fn the_exact_key_is_stripped_before_the_observer_sees_a_retry_cause() {
    struct Causes(Mutex<Vec<String>>);
    impl StreamObserver for Causes {
        fn on_retry_scheduled(&self, _: u32, _: Duration, cause: &ProviderError) {
            self.0.lock().unwrap().push(format!("{cause:?}"));
        }
    }
    let key = "plainkey-ABCDEF123456";
    let echo = format!(
        "{{\"error\":{{\"message\":\"upstream saw key {key}\",\"type\":\"server_error\"}}}}"
    );
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(503, echo.clone()),
            CassetteResponse::error(503, echo),
        ],
    ))
    .unwrap();
    let mut cfg = config(&server).with_api_key(Some(ApiKey::new(key)));
    cfg.retry.max_attempts = 2;
    let causes = Arc::new(Causes(Mutex::new(Vec::new())));
    let events = run(&Client::new(cfg).unwrap(), Some(causes.clone())).await;
    let e = last_error(&events);
    assert!(e.message.contains("upstream saw key [redacted]"), "{e:?}");
    let causes = causes.0.lock().unwrap();
    assert_eq!(causes.len(), 1);
    assert!(
        !causes[0].contains("ABCDEF123456") && causes[0].contains("[redacted]"),
        "{causes:?}"
    );
}

#[tokio::test]
async fn keepalive_comments_after_output_do_not_hold_off_the_idle_timeout() {
    // After some text the provider only sends `: keepalive` comments, for far longer than the
    // idle timeout, then the rest: the stream must end as stalled, not wait it out.
    let mut stalled = CassetteResponse::sse(text_basic());
    stalled.keepalive_after_events = Some(KeepaliveAfterEvents::comments(8, 50, 60));
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![stalled, CassetteResponse::sse(text_basic())],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.idle_timeout = Duration::from_millis(300);
    let events = run(&Client::new(cfg).unwrap(), None).await;
    let e = last_error(&events);
    assert_eq!((e.class, e.retryable), (ErrorClass::IdleTimeout, true));
    assert!(e.message.contains("300 ms"), "{e:?}");
    let text = facts(&events).text;
    assert!(
        !text.is_empty() && text != "The capital of France is Paris.",
        "{text}"
    );
    assert_eq!(server.requests_served(), 1, "output was shown: no retry");
}

#[tokio::test]
async fn anthropic_pings_do_not_hold_off_the_idle_timeout() {
    let body = String::from_utf8(read("anthropic/text-basic.sse")).unwrap();
    let mut stalled = CassetteResponse::sse(body);
    stalled.keepalive_after_events = Some(KeepaliveAfterEvents {
        events: 2,
        every_ms: 50,
        count: 60,
        text: Some("event: ping\ndata: {\"type\": \"ping\"}\n\n".into()),
    });
    let server =
        ReplayServer::start(Cassette::new(WireScheme::AnthropicMessages, vec![stalled])).unwrap();
    let mut cfg = config(&server);
    cfg.idle_timeout = Duration::from_millis(300);
    cfg.retry = RetryPolicy::none();
    let events = run(&Client::new(cfg).unwrap(), None).await;
    assert_eq!(last_error(&events).class, ErrorClass::IdleTimeout);
    assert_ne!(facts(&events).text, "- Captain\n- Scoop");
}

#[tokio::test]
async fn keepalive_comments_are_not_a_first_event() {
    let mut silent = CassetteResponse::sse(text_basic());
    silent.keepalive_after_events = Some(KeepaliveAfterEvents::comments(0, 50, 60));
    let server = ReplayServer::start(Cassette::new(R, vec![silent])).unwrap();
    let mut cfg = config(&server);
    cfg.first_event_timeout = Duration::from_millis(300);
    cfg.retry = RetryPolicy::none();
    let rec = Arc::new(Recorder::default());
    let events = run(&Client::new(cfg).unwrap(), Some(rec.clone())).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::IdleTimeout);
    assert!(e.message.contains("within 300 ms"), "{e:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    let log = rec.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l.contains("first_byte")),
        "the comments did arrive: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("first_event")), "{log:#?}");
}

#[tokio::test]
async fn request_shaped_rejections_are_classified_and_sent_exactly_once() {
    let cases = [
        (400, error_body("openai-400-invalid-param.json"), ErrorClass::InvalidRequest),
        (
            403,
            r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#.to_string(),
            ErrorClass::Permission,
        ),
        (
            403,
            r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#.to_string(),
            ErrorClass::Permission,
        ),
        (403, "<html>403 Forbidden</html>".to_string(), ErrorClass::Permission),
        (
            400,
            r#"{"error":{"message":"The response was filtered due to the prompt triggering the content management policy. Please modify your prompt and retry.","type":null,"param":"prompt","code":"content_filter","status":400}}"#.to_string(),
            ErrorClass::ContentFilter,
        ),
    ];
    for (status, body, class) in cases {
        let server = ReplayServer::start(Cassette::new(
            WireScheme::OpenaiChat,
            vec![
                CassetteResponse::error(status, body.clone()),
                CassetteResponse::sse(
                    String::from_utf8(read("openai-chat/text-usage-done.sse")).unwrap(),
                ),
            ],
        ))
        .unwrap();
        let events = run(&Client::new(config(&server)).unwrap(), None).await;
        assert_eq!(events.len(), 1, "{body}: {events:?}");
        let e = last_error(&events);
        assert_eq!(
            (e.class, e.http_status, e.retryable),
            (class, Some(status), false),
            "{body}: {e:?}"
        );
        assert_eq!(
            server.received().len(),
            1,
            "{body}: the server saw the request exactly once"
        );
    }
}

#[tokio::test]
async fn retry_after_and_retry_after_ms_are_waited_exactly() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(429, "{}").with_header("retry-after", "0.05"),
            CassetteResponse::error(503, "busy").with_header("retry-after-ms", "7"),
            CassetteResponse::sse(text_basic()),
        ],
    ))
    .unwrap();
    let rec = Arc::new(Recorder::default());
    let events = run(&Client::new(config(&server)).unwrap(), Some(rec.clone())).await;
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
    let retries: Vec<String> = rec
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("retry after"))
        .cloned()
        .collect();
    assert_eq!(
        retries,
        [
            "retry after 1 in 50ms: rate_limited",
            "retry after 2 in 7ms: overloaded"
        ]
    );
}

#[test]
fn a_cassette_with_an_impossible_status_or_header_is_rejected_naming_the_field() {
    let dir = std::path::Path::new(".");
    for (json, field) in [
        (
            r#"{"scheme":"openai-responses","responses":[{"body":"x"},{"status":42,"body":"x"}]}"#,
            "responses[1].status",
        ),
        (
            r#"{"scheme":"openai-responses","responses":[{"status":1000}]}"#,
            "responses[0].status",
        ),
        (
            r#"{"scheme":"openai-responses","responses":[{"headers":{"bad name":"v"}}]}"#,
            "responses[0].headers",
        ),
        (
            r#"{"scheme":"openai-responses","responses":[{"headers":{"x-ok":"line\nbreak"}}]}"#,
            "responses[0].headers.x-ok",
        ),
    ] {
        let err = Cassette::from_json(json, dir).unwrap_err().to_string();
        assert!(err.contains(field), "{json}: {err}");
    }
    let err = Cassette::from_json(
        r#"{"scheme":"openai-responses","responses":[{"status":42}]}"#,
        dir,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("42") && err.contains("100 to 599"), "{err}");
    // Built in code, the same cassette is refused by the server instead of served as a 500.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let err = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::sse(text_basic()),
            CassetteResponse::error(700, "{}"),
        ],
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("responses[1].status"), "{err}");
}

/// Every formatted tracing event on this thread, while `capture` is held.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<String>>>);

struct FieldText(String);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for LogCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = FieldText(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn base_url_userinfo_and_query_never_appear_in_errors_logs_or_debug() {
    let server = ReplayServer::start(Cassette::new(R, vec![])).unwrap();
    let port = server.base_url().rsplit(':').next().unwrap().to_string();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let base = format!("http://agent:hunter2pw@127.0.0.1:{port}/v1?sig=QUERYSECRET#FRAGSECRET");
    let mut cfg = ClientConfig::new(R).with_base_url(base);
    cfg.retry = RetryPolicy::none();
    let client = Client::new(cfg.clone()).unwrap();

    let logs = LogCapture::default();
    let guard = tracing::subscriber::set_default(logs.clone());
    let rec = Arc::new(Recorder::default());
    let events = run(&client, Some(rec.clone())).await;
    drop(guard);
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::Transport, "{e:?}");
    assert!(
        e.message.contains(&format!("http://127.0.0.1:{port}/v1")),
        "the host is still named: {e:?}"
    );
    let logs = logs.0.lock().unwrap().clone();
    assert!(
        logs.iter().any(
            |l| l.contains("provider request sent") && l.contains(&format!("127.0.0.1:{port}"))
        ),
        "{logs:#?}"
    );
    let bad = Client::new(
        ClientConfig::new(R).with_base_url("ftp://agent:hunter2pw@host/v1?sig=QUERYSECRET"),
    )
    .unwrap_err();
    assert!(bad.message.contains("`ftp://host/v1`"), "{bad:?}");
    let mut shown = vec![
        format!("{e}"),
        format!("{e:?}"),
        format!("{client:?}"),
        format!("{cfg:?}"),
        format!("{bad:?}"),
    ];
    shown.extend(logs);
    shown.extend(rec.log.lock().unwrap().iter().cloned());
    for text in shown {
        for secret in ["hunter2pw", "QUERYSECRET", "FRAGSECRET"] {
            assert!(!text.contains(secret), "{secret} shown in: {text}");
        }
    }
}

#[tokio::test]
async fn huge_timeouts_and_a_huge_retry_ask_do_not_panic() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(429, "{}").with_header("retry-after-ms", "1e30"),
            CassetteResponse::sse(text_basic()),
        ],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.first_event_timeout = Duration::MAX;
    cfg.idle_timeout = Duration::MAX;
    let client = Client::new(cfg).unwrap();
    let e = last_error(&run(&client, None).await);
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(
        server.requests_served(),
        1,
        "a wait past the budget is not scheduled"
    );
    let events = run(&client, None).await;
    assert_eq!(facts(&events).text, "The capital of France is Paris.");
}

/// Keeps the data of every raw frame.
#[derive(Default)]
struct FrameData(Mutex<Vec<String>>);

impl StreamObserver for FrameData {
    fn wants_raw_frames(&self) -> bool {
        true
    }
    fn on_raw_frames(&self, _attempt: u32, frames: RawFrames) {
        let mut data = self.0.lock().unwrap();
        data.extend(frames.iter().map(|f| f.data.to_owned()));
    }
}

#[tokio::test]
async fn raw_frames_never_carry_the_key_or_a_bearer_token_and_others_pass_as_they_came() {
    let key = "sk-live-frame-key-0123456789";
    let body = sse_body(&[
        (
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "m"}}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "output_index": 0, "delta": format!("echo {key}")}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "output_index": 0, "delta": "Authorization: Bearer tok-123 \"ok\""}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "response": {"id": "resp_1"}}),
        ),
    ]);
    let server = ReplayServer::start(Cassette::new(R, vec![CassetteResponse::sse(body)])).unwrap();
    let mut cfg = config(&server);
    cfg.api_key = Some(ApiKey::new(key));
    let frames = Arc::new(FrameData::default());
    run(&Client::new(cfg).unwrap(), Some(frames.clone())).await;
    let data = frames.0.lock().unwrap().clone();
    assert_eq!(data.len(), 4, "{data:#?}");
    assert!(
        data.iter()
            .all(|d| !d.contains(key) && !d.contains("tok-123")),
        "{data:#?}"
    );
    assert!(data[1].contains("echo [redacted]"), "{data:#?}");
    assert!(data[2].contains("Bearer [redacted]"), "{data:#?}");
    // Frames without either pass as they came.
    assert_eq!(
        data[0],
        json!({"type": "response.created", "response": {"id": "resp_1", "model": "m"}}).to_string()
    );
}
