//! Captures as people make them (`curl -i`, cut transfers, cassettes handed to the replay tool),
//! read by `load_replay_file` and replayed through the real client over loopback.

use futures_util::StreamExt;
use pod_provider::event::StopReason;
use pod_provider::{
    Cassette, CassetteResponse, Client, ClientConfig, ErrorClass, ModelRequest, ReplayFile,
    ReplayServer, RetryPolicy, StreamEvent, WireScheme, load_replay_file, parse_http_capture,
};

use crate::{facts, read};

const R: WireScheme = WireScheme::OpenaiResponses;

fn body() -> String {
    String::from_utf8(read("openai-responses/text-basic.sse")).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn response(file: ReplayFile) -> CassetteResponse {
    match file {
        ReplayFile::Response(r) => *r,
        other => panic!("expected a response, got {other:?}"),
    }
}

async fn replay(resp: CassetteResponse) -> Vec<StreamEvent> {
    let server = ReplayServer::start(Cassette::new(R, vec![resp])).unwrap();
    let mut cfg = ClientConfig::new(R).with_base_url(server.base_url());
    cfg.retry = RetryPolicy::none();
    let client = Client::new(cfg).unwrap();
    client
        .stream(&ModelRequest::default(), None)
        .collect()
        .await
}

const CURL_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\nx-request-id: req_curl\r\n\r\n";

#[tokio::test]
async fn a_curl_capture_with_a_dechunked_body_under_chunked_is_accepted_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "curl.txt",
        format!("{CURL_HEAD}{}", body()).as_bytes(),
    );
    let resp = response(load_replay_file(&path).unwrap());
    assert_eq!(resp.notes.len(), 1, "{:?}", resp.notes);
    assert!(
        resp.notes[0].contains("transfer-encoding: chunked"),
        "{:?}",
        resp.notes
    );
    assert_eq!(
        resp.headers.get("x-request-id").map(String::as_str),
        Some("req_curl")
    );
    let f = facts(&replay(resp).await);
    assert_eq!(f.text, "The capital of France is Paris.");
    assert!(
        matches!(&f.terminal, StreamEvent::Completed(c) if c.stop_reason == StopReason::EndTurn)
    );
}

#[test]
fn a_really_chunked_capture_is_dechunked_without_notes_and_informational_heads_are_skipped() {
    let b = body();
    let (first, second) = b.split_at(1000);
    let chunked = format!(
        "HTTP/1.1 100 Continue\r\n\r\n{CURL_HEAD}{:x}\r\n{first}\r\n{:x};ext=1\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let c = parse_http_capture(chunked.as_bytes()).unwrap().unwrap();
    assert_eq!(c.status, 200);
    assert_eq!(c.body, b.as_bytes());
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert!(!c.cut_short);
}

#[tokio::test]
async fn a_capture_cut_mid_body_replays_as_a_disconnect() {
    let b = body();
    let cut = &b[..b.find("response.output_text.delta").unwrap() + 400];
    // Three ways a capture ends early: a de-chunked body cut inside an event, a chunked body
    // without its last chunk, and fewer bytes than content-length.
    let dechunked = format!("{CURL_HEAD}{cut}");
    let chunked = format!("{CURL_HEAD}{:x}\r\n{cut}", b.len());
    let by_length = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n{}",
        b.len(),
        &b[..2000]
    );
    for (what, capture) in [
        ("dechunked", dechunked),
        ("chunked", chunked),
        ("content-length", by_length),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "cut.txt", capture.as_bytes());
        let resp = response(load_replay_file(&path).unwrap());
        assert!(resp.disconnect_after_bytes.is_some(), "{what}");
        assert!(
            resp.notes.iter().any(|n| n.contains("broken connection")),
            "{what}: {:?}",
            resp.notes
        );
        let events = replay(resp).await;
        match events.last() {
            Some(StreamEvent::Error(e)) => {
                assert_eq!(
                    e.class,
                    ErrorClass::StreamClosedBeforeCompletion,
                    "{what}: {e:?}"
                )
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_cassette_file_is_recognised_as_a_cassette() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "stream.sse", body().as_bytes());
    let cassette = r#"{
      "scheme": "openai-responses",
      "responses": [
        {"status": 429, "body": "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow\"}}"},
        {"body_file": "stream.sse"}
      ]
    }"#;
    let path = write(&dir, "cassette.json", cassette.as_bytes());
    match load_replay_file(&path).unwrap() {
        ReplayFile::Cassette(c) => {
            assert_eq!(c.scheme, R);
            assert_eq!(c.responses.len(), 2);
            assert_eq!(c.responses[0].status, 429);
        }
        other => panic!("{other:?}"),
    }
    // Read as a single capture, it is refused with an error saying what it is.
    let err = CassetteResponse::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("cassette.json"), "{err}");
    let source = std::error::Error::source(&CassetteResponse::from_file(&path).unwrap_err())
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("cassette") || source.contains("cassette"),
        "{err}"
    );
}

#[test]
fn cassette_versions_old_ones_load_and_newer_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sse = serde_json::to_string(&body()).unwrap();
    for (name, version) in [("none.json", ""), ("one.json", "\"version\": 1,")] {
        let path = write(
            &dir,
            name,
            format!("{{{version} \"scheme\": \"openai-responses\", \"responses\": [{{\"body\": {sse}}}]}}")
                .as_bytes(),
        );
        let c = Cassette::load(&path).unwrap();
        assert_eq!(c.responses.len(), 1, "{name}");
    }
    let path = write(
        &dir,
        "two.json",
        b"{\"version\": 2, \"scheme\": \"openai-responses\", \"responses\": []}",
    );
    let err = Cassette::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("two.json") && err.contains("`version` 2") && err.contains("up to 1"),
        "{err}"
    );
}

#[tokio::test]
async fn raw_capture_sees_each_response_head_and_error_body_without_secrets() {
    use pod_provider::{ApiKey, RawResponse, StreamObserver};
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Heads(Mutex<Vec<RawResponse>>);
    impl StreamObserver for Heads {
        fn wants_raw_frames(&self) -> bool {
            true
        }
        fn on_raw_response(&self, _attempt: u32, r: &RawResponse) {
            self.0.lock().unwrap().push(r.clone());
        }
    }
    let key = "sk-raw-capture-key-123456";
    let server = ReplayServer::start(Cassette::new(
        R,
        vec![
            CassetteResponse::error(
                429,
                format!("{{\"error\":{{\"code\":\"rate_limit_exceeded\",\"message\":\"key {key} is slow\"}}}}"),
            )
            .with_header("retry-after-ms", "1")
            .with_header("set-cookie", "sid=1")
            .with_header("x-api-key-echo", key)
            .with_header("x-request-id", "req_7"),
            CassetteResponse::sse(body()),
        ],
    ))
    .unwrap();
    let mut cfg = ClientConfig::new(R).with_base_url(server.base_url());
    cfg.api_key = Some(ApiKey::new(key));
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let client = Client::new(cfg).unwrap();
    let heads = Arc::new(Heads::default());
    let request = ModelRequest {
        model: "m".into(),
        ..ModelRequest::default()
    };
    let events: Vec<StreamEvent> = client
        .stream(&request, Some(heads.clone() as Arc<dyn StreamObserver>))
        .collect()
        .await;
    assert!(matches!(events.last(), Some(StreamEvent::Completed(_))));
    let heads = heads.0.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!((heads[0].status, heads[1].status), (429, 200));
    let names: Vec<&str> = heads[0].headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"retry-after-ms") && names.contains(&"x-request-id"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("cookie") || n.contains("key")),
        "{names:?}"
    );
    let error_body = heads[0].body.as_deref().unwrap();
    assert!(
        error_body.contains("rate_limit_exceeded") && !error_body.contains(key),
        "{error_body}"
    );
    assert_eq!(heads[1].body, None, "a stream's body is its frames");
}
