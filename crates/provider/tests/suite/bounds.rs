//! The client's bounds and early ends over real loopback HTTP: responses that never finish,
//! streams of empty chunks, frames cut in transit, connections that break off.

use std::time::Duration;

use futures_util::StreamExt;
use pod_provider::event::StopReason;
use pod_provider::{
    Cassette, CassetteResponse, Client, ClientConfig, ErrorClass, KeepaliveAfterEvents, Message,
    ModelRequest, ProviderError, ReplayServer, RetryPolicy, StreamEvent, WireScheme,
};

use crate::{facts, read};

const R: WireScheme = WireScheme::OpenaiResponses;
const C: WireScheme = WireScheme::OpenaiChat;

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

async fn run(cfg: ClientConfig) -> Vec<StreamEvent> {
    let request = ModelRequest {
        model: "m".into(),
        messages: vec![Message::User { text: "hi".into() }],
        ..ModelRequest::default()
    };
    Client::new(cfg)
        .unwrap()
        .stream(&request, None)
        .collect()
        .await
}

fn last_error(events: &[StreamEvent]) -> ProviderError {
    match events.last() {
        Some(StreamEvent::Error(e)) => e.clone(),
        other => panic!("expected a final error, got {other:?}"),
    }
}

/// A stream that starts and then sends `frame` forever, `every_ms` apart.
fn endless(scheme_start: &str, frame: &str, every_ms: u64) -> CassetteResponse {
    let mut r = CassetteResponse::sse(scheme_start.to_string());
    r.keepalive_after_events = Some(KeepaliveAfterEvents {
        events: 1,
        every_ms,
        count: usize::MAX,
        text: Some(frame.to_string()),
    });
    r
}

const RESPONSES_START: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"m\"}}\n\n";
const TEXT_FRAME: &str = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"more and more text \"}\n\n";

#[tokio::test]
async fn a_response_that_never_ends_is_cut_at_max_response_bytes() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![endless(RESPONSES_START, TEXT_FRAME, 0)],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.max_response_bytes = 256 * 1024;
    let events = run(cfg).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::ResponseTooLarge, "{e:?}");
    assert!(!e.retryable);
    assert!(e.message.contains("262144-byte limit"), "{e:?}");
    assert!(e.message.contains("limits.max_response_bytes"), "{e:?}");
    let text = facts(&events).text;
    assert!(!text.is_empty());
    assert!(
        text.len() <= 256 * 1024,
        "nothing past the bound is decoded: {}",
        text.len()
    );
    assert_eq!(server.requests_served(), 1);
}

#[tokio::test]
async fn a_response_streaming_past_max_response_ms_ends_as_response_timeout() {
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![endless(RESPONSES_START, TEXT_FRAME, 5)],
    ))
    .unwrap();
    let mut cfg = config(&server);
    cfg.max_response_time = Some(Duration::from_millis(400));
    let events = run(cfg).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::ResponseTimeout, "{e:?}");
    assert!(!e.retryable);
    assert!(e.message.contains("400 ms"), "{e:?}");
    assert!(e.message.contains("limits.max_response_ms"), "{e:?}");
    assert!(
        !facts(&events).text.is_empty(),
        "output streamed until the bound"
    );
    assert_eq!(server.requests_served(), 1);
}

#[tokio::test]
async fn a_response_that_sends_no_headers_within_max_response_ms_times_out() {
    let mut slow = CassetteResponse::sse(read_text("openai-responses/text-basic.sse"));
    slow.delay_before_headers_ms = Some(3_000);
    let server = ReplayServer::start(Cassette::new(R, vec![slow])).unwrap();
    let mut cfg = config(&server);
    cfg.max_response_time = Some(Duration::from_millis(200));
    let e = last_error(&run(cfg).await);
    assert_eq!(e.class, ErrorClass::ResponseTimeout, "{e:?}");
}

#[tokio::test]
async fn chat_chunks_with_empty_choices_do_not_hold_off_the_idle_timeout() {
    let start = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
    let empty = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[]}\n\n";
    let server = ReplayServer::start(Cassette::new(C, vec![endless(start, empty, 300)])).unwrap();
    let mut cfg = config(&server);
    cfg.idle_timeout = Duration::from_millis(1_000);
    let events = run(cfg).await;
    let e = last_error(&events);
    assert_eq!(e.class, ErrorClass::IdleTimeout, "{e:?}");
    assert_eq!(facts(&events).text, "Hi");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, StreamEvent::Unhandled(_))),
        "empty chunks are keep-alives, not events"
    );
}

#[tokio::test]
async fn repeated_usage_reports_do_not_hold_off_the_idle_timeout() {
    let start = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
    let usage = "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n";
    let server = ReplayServer::start(Cassette::new(C, vec![endless(start, usage, 300)])).unwrap();
    let mut cfg = config(&server);
    cfg.idle_timeout = Duration::from_millis(1_000);
    let e = last_error(&run(cfg).await);
    assert_eq!(e.class, ErrorClass::IdleTimeout, "{e:?}");
}

fn read_text(rel: &str) -> String {
    String::from_utf8(read(rel)).unwrap()
}

#[tokio::test]
async fn one_truncated_json_frame_before_output_is_retried() {
    let cut = format!(
        "{RESPONSES_START}event: response.in_progress\ndata: {{\"type\":\"response.in_progress\",\"resp\n\n"
    );
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::sse(cut),
            CassetteResponse::sse(read_text("openai-responses/text-basic.sse")),
        ],
    ))
    .unwrap();
    let events = run(config(&server)).await;
    let f = facts(&events);
    assert_eq!(f.text, "The capital of France is Paris.");
    assert!(matches!(
        &f.terminal,
        StreamEvent::Completed(c) if c.stop_reason == StopReason::EndTurn
    ));
    assert_eq!(server.requests_served(), 2);
}

#[tokio::test]
async fn a_truncated_json_frame_after_output_ends_the_run_without_a_retry() {
    let cut = format!(
        "{RESPONSES_START}{TEXT_FRAME}event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"del\n\n"
    );
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::sse(cut),
            CassetteResponse::sse(read_text("openai-responses/text-basic.sse")),
        ],
    ))
    .unwrap();
    let events = run(config(&server)).await;
    assert_eq!(last_error(&events).class, ErrorClass::MalformedStream);
    assert_eq!(server.requests_served(), 1);
}

#[tokio::test]
async fn a_stream_that_breaks_off_is_one_class_whatever_the_framing() {
    let body = read_text("openai-responses/text-basic.sse");
    // Cut mid-event or between events (the connection is aborted), or a body that ends
    // cleanly without the terminal event.
    let mut mid_event = CassetteResponse::sse(body.clone());
    mid_event.disconnect_after_bytes = Some(3000);
    let mut between = CassetteResponse::sse(body.clone());
    between.disconnect_after_events = Some(8);
    let clean_eof = CassetteResponse::sse(read_text(
        "synthetic/openai-responses/truncated-no-terminal.sse",
    ));
    for (what, resp) in [
        ("mid-event", mid_event),
        ("between events", between),
        ("clean end of body", clean_eof),
    ] {
        let server = ReplayServer::start(Cassette::new(R, vec![resp])).unwrap();
        let mut cfg = config(&server);
        cfg.retry = RetryPolicy::none();
        let e = last_error(&run(cfg).await);
        assert_eq!(
            e.class,
            ErrorClass::StreamClosedBeforeCompletion,
            "{what}: {e:?}"
        );
        assert!(e.retryable, "{what}");
    }
}
