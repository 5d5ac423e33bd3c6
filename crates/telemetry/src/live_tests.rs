use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use pod_protocol::record::{LogEntry, PodInfo, PodState};

use super::*;
use crate::otlp::resource;
use crate::pod::{ModelFacts, PodContext};
use crate::{Content, SPANS_PER_REQUEST, SpanBuilder};

const POD: &str = "0193a1b2-0000-7000-8000-00000000000a";

fn builder() -> SpanBuilder {
    let info = PodInfo {
        id: POD.into(),
        name: "live".into(),
        profile: "p".into(),
        parent_id: None,
        created: "2026-01-01T00:00:00.000Z".into(),
        pid: Some(std::process::id()),
        state: PodState::Running,
        work_dir: None,
    };
    SpanBuilder::new(
        PodContext::new(&info, POD, ModelFacts::default()),
        Content::Off,
    )
}

/// A run of one request, as the session log records it.
fn run_entries(run: &str) -> Vec<LogEntry> {
    let bodies = [
        json!({"kind": "run_started", "run_id": run, "trigger": {"type": "cli"}, "input": "hi"}),
        json!({"kind": "provider_request_started", "run_id": run, "turn": 1, "attempt": 1,
               "scheme": "openai-responses", "model": "m"}),
        json!({"kind": "assistant_message", "run_id": run, "turn": 1, "text": "hello",
               "reasoning": "", "tool_calls": []}),
        json!({"kind": "provider_request_finished", "run_id": run, "turn": 1, "attempt": 1,
               "end": "completed", "stop_reason": {"reason": "end_turn"}}),
        json!({"kind": "run_completed", "run_id": run, "turns": 1, "text": "hello",
               "reason": "end_turn", "stop_reason": {"reason": "end_turn"}}),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, mut body)| {
            body["seq"] = json!(i + 1);
            body["ts"] = json!(format!("2026-01-01T00:00:{i:02}.000Z"));
            serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn target(endpoint: String, timeout: Duration) -> PushTarget {
    PushTarget {
        endpoint,
        headers_env: Vec::new(),
        resource: resource(None),
        timeout,
    }
}

/// A collector on loopback that answers every request with 200 and reports each body's size;
/// it stops with the test (its thread ends when the listener is dropped with the process).
fn answering_collector() -> (String, std_mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (bodies, received) = std_mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16).flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = bodies.send(body.len());
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (format!("http://{address}/v1/traces"), received)
}

/// Live export to `target`, and what it told through its problem callback.
fn start(target: PushTarget) -> (LiveExport, Arc<Mutex<Vec<String>>>) {
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = problems.clone();
    let live = LiveExport::start(
        &target,
        builder(),
        Box::new(move |text| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text.into())
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (live, problems)
}

#[test]
fn spans_of_fed_entries_reach_the_collector_and_are_counted() {
    let (endpoint, received) = answering_collector();
    let (live, problems) = start(target(endpoint.clone(), Duration::from_secs(10)));
    for entry in run_entries("r1") {
        live.feed(&entry);
    }
    let report = live.finish(Duration::from_secs(10));
    assert_eq!(report.endpoint, endpoint);
    // One run of one request: an invoke_agent and a chat span.
    assert_eq!(report.spans_sent, 2, "{report:?}");
    assert!(!report.has_problems(), "{report:?}");
    assert!(received.recv_timeout(Duration::from_secs(5)).unwrap_or(0) > 0);
    assert!(
        problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    );
}

#[test]
fn a_collector_that_never_answers_neither_blocks_feeding_nor_holds_the_end_past_its_grace() {
    // Accepts connections (the kernel's backlog) and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let endpoint = format!(
        "http://{}/v1/traces",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (live, problems) = start(target(endpoint.clone(), Duration::from_secs(30)));
    // More runs than fit one request: feeding never waits for the collector.
    for run in 0..(SPANS_PER_REQUEST + 10) {
        for entry in run_entries(&format!("r{run}")) {
            live.feed(&entry);
        }
    }
    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let report = live.finish(grace);
    // A safety bound on the grace, not a timing assertion about speed.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.spans_sent, 0);
    // None was taken: the spans made by the end are counted as failed (on a busy machine the
    // thread may not have taken every entry in by then).
    let made = 2 * (SPANS_PER_REQUEST as u64 + 10);
    assert!((1..=made).contains(&report.spans_failed), "{report:?}");
    let first = report.first_error.clone().unwrap_or_default();
    assert!(first.contains(&endpoint), "{first}");
    drop(listener);
    // The callback is for failures the thread saw; the end's own deadline is in the report.
    assert!(problems.lock().unwrap_or_else(|e| e.into_inner()).len() <= 1);
}

#[test]
fn a_refused_connection_is_reported_once() {
    // A port nobody listens on.
    let endpoint = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        format!(
            "http://{}/v1/traces",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        )
    };
    let (live, problems) = start(target(endpoint.clone(), Duration::from_secs(5)));
    for run in ["r1", "r2", "r3"] {
        for entry in run_entries(run) {
            live.feed(&entry);
        }
    }
    let report = live.finish(Duration::from_secs(10));
    assert_eq!(report.spans_sent, 0);
    assert!(report.spans_failed >= 2, "{report:?}");
    let told = problems.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    assert!(told[0].contains(&endpoint), "{told:?}");
}
