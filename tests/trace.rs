//! Whole-system tests of the trace sidecar's markers and raw frames: real `pods` processes
//! against the replay server, whose fault knobs stall a stream mid-way.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use support::cassettes::{sse, stream};
use support::logs::only_trace;
use support::responses::{profile, text_events};
use support::{Sandbox, assert_exit, describe, log_entries, of_kind, read_json_lines};

const LIMIT: Duration = Duration::from_secs(60);

/// The entries of the pod's one trace sidecar.
fn trace_entries(pod: &Path) -> Vec<Value> {
    read_json_lines(&only_trace(pod))
}

fn marker_at(trace: &[Value], marker: &str) -> Option<usize> {
    trace
        .iter()
        .position(|e| e["kind"] == "lifecycle" && e["marker"] == marker)
}

const TRACING: &str = "[agent]\ntools = []\n\n[session]\nrecord_event_trace = true\n";

#[test]
fn raw_sse_frames_are_written_only_when_switched_on() {
    let sandbox = Sandbox::new();
    let body = sse(&text_events(&["plain ", "trace"], false));
    profile(&sandbox, "solo", TRACING, vec![stream(body)]);
    let output = sandbox.run_within(&["run", "-p", "solo", "hello"], LIMIT);
    assert_exit(&output, 0);
    let trace = trace_entries(&sandbox.only_pod());
    assert!(!of_kind(&trace, "stream").is_empty(), "{trace:#?}");
    assert!(
        of_kind(&trace, "raw_sse").is_empty(),
        "trace_raw_sse is off by default: {trace:#?}"
    );
}

#[test]
fn top_level_raw_sse_frames_are_bounded_and_keep_their_length() {
    let sandbox = Sandbox::new();
    let long = "y".repeat(700);
    let events = text_events(&["a ", &long], false);
    let body = sse(&events);
    profile(
        &sandbox,
        "solo",
        &format!("{TRACING}trace_raw_sse = true\ntrace_max_frame_bytes = 300\n"),
        vec![stream(body)],
    );
    let output = sandbox.run_within(&["run", "-p", "solo", "hello"], LIMIT);
    assert_exit(&output, 0);
    let trace = trace_entries(&sandbox.only_pod());
    let raw = of_kind(&trace, "raw_sse");
    // One raw entry per SSE frame the cassette sent, in order, with its event name.
    assert_eq!(raw.len(), events.len(), "{raw:#?}");
    for (frame, sent) in raw.iter().zip(&events) {
        let data = sent.to_string();
        assert_eq!(frame["event"], sent["type"]);
        assert_eq!(frame["original_len"], json!(data.len()), "{frame:#}");
        let kept = frame["data"].as_str().unwrap();
        assert!(data.starts_with(kept), "{frame:#}");
        if data.len() > 300 {
            assert_eq!(kept.len(), 300, "{frame:#}");
            assert_eq!(frame["truncated"], true);
        } else {
            assert_eq!(kept, data);
            assert_eq!(frame["truncated"], false);
        }
    }
    assert!(
        raw.iter().any(|f| f["truncated"] == true),
        "the long delta was cut"
    );
    // Raw frames carry the run and attempt they belong to.
    assert!(
        raw.iter()
            .all(|f| f["run_id"].is_string() && f["attempt"] == 1)
    );
}

/// A run whose stream stops making progress after its first text deltas; `knob` is the
/// replay server's fault setting on that response.
fn stalled_run(knob: (&str, Value)) -> (Sandbox, PathBuf, std::process::Output) {
    let sandbox = Sandbox::new();
    let mut response = stream(sse(&text_events(&["before ", "the ", "stall"], false)));
    response[knob.0] = knob.1;
    profile(
        &sandbox,
        "solo",
        &format!("{TRACING}\n[limits]\nidle_timeout_ms = 300\n"),
        vec![response],
    );
    let output = sandbox.run_within(&["run", "-p", "solo", "wait for it"], LIMIT);
    let pod = sandbox.only_pod();
    (sandbox, pod, output)
}

fn assert_idle_timeout_recorded(sandbox: &Sandbox, pod: &Path, output: &std::process::Output) {
    assert_exit(output, 1);
    let log = log_entries(pod);
    let errored = of_kind(&log, "run_errored");
    assert_eq!(errored.len(), 1, "{log:#?}");
    assert_eq!(
        errored[0]["error"]["class"], "idle_timeout",
        "{:#}",
        errored[0]
    );
    assert!(of_kind(&log, "run_completed").is_empty());
    // Output was seen, so the request is not sent again.
    assert_eq!(of_kind(&log, "provider_request_started").len(), 1);

    let trace = trace_entries(pod);
    let idle = marker_at(&trace, "idle_timeout")
        .unwrap_or_else(|| panic!("no idle_timeout marker: {trace:#?}"));
    let last_delta = trace
        .iter()
        .rposition(|e| e["kind"] == "stream" && e["event"]["type"] == "text_delta")
        .unwrap_or_else(|| panic!("{trace:#?}"));
    assert!(last_delta < idle, "the deltas came before the stall");
    assert!(marker_at(&trace, "retry_scheduled").is_none(), "{trace:#?}");
    let end = trace
        .iter()
        .position(|e| e["kind"] == "lifecycle" && e["marker"] == "stream_end")
        .unwrap();
    assert!(idle < end, "{trace:#?}");
    assert_eq!(trace[end]["outcome"], "idle_timeout", "{:#}", trace[end]);
    assert!(
        of_kind(&trace, "stream")
            .iter()
            .any(|e| e["event"]["type"] == "error" && e["event"]["class"] == "idle_timeout"),
        "{trace:#?}"
    );

    let shown = sandbox.run_within(&["trace", &pod_id(pod), "--errors"], LIMIT);
    assert_exit(&shown, 0);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("idle_timeout"), "{}", describe(&shown));
}

fn pod_id(pod: &Path) -> String {
    pod.file_name().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn a_paused_stream_ends_with_an_idle_timeout_marker() {
    // Three events (the first text delta among them), then nothing for 20 s.
    let (sandbox, pod, output) =
        stalled_run(("pause_after_events", json!({"events": 3, "ms": 20_000})));
    assert_idle_timeout_recorded(&sandbox, &pod, &output);
}

#[test]
fn keepalives_do_not_hold_off_the_idle_timeout() {
    // SSE comments keep bytes flowing for 4 s; only decoded events count as progress.
    let (sandbox, pod, output) = stalled_run((
        "keepalive_after_events",
        json!({"events": 3, "every_ms": 50, "count": 80}),
    ));
    assert_idle_timeout_recorded(&sandbox, &pod, &output);
}
