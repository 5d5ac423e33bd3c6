use opentelemetry::trace::Status;
use opentelemetry::{Key, Value};
use serde_json::json;

use pod_protocol::record::{LogEntry, PodInfo, PodState};

use super::*;
use crate::pod::ModelFacts;

const POD: &str = "0193a1b2-0000-7000-8000-000000000002";
const PARENT: &str = "0193a1b2-0000-7000-8000-000000000001";
const SECRET: &str = "sk-unit-secret-0123456789";

fn context() -> PodContext {
    let info = PodInfo {
        id: POD.into(),
        name: "kid".into(),
        profile: "child".into(),
        parent_id: Some(PARENT.into()),
        created: "2026-01-01T00:00:00.000Z".into(),
        // No process recorded and the segment's pid does not exist: crashed when unfinished.
        pid: None,
        state: PodState::Running,
        work_dir: None,
    };
    let model = ModelFacts::from_manifest(
        "[model]\nscheme = \"openai-responses\"\nmodel = \"gpt-test\"\napi_key_env = \"K\"\n",
    );
    PodContext::new(&info, PARENT, model)
}

/// Log entries from JSON bodies (each with its `kind`), numbered and a second apart.
fn entries(bodies: &[serde_json::Value]) -> Vec<LogEntry> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut entry = body.clone();
            entry["seq"] = json!(i + 1);
            entry["ts"] = json!(format!("2026-01-01T00:00:{:02}.000Z", i));
            serde_json::from_value(entry).unwrap_or_else(|e| panic!("{body}: {e}"))
        })
        .collect()
}

fn build(content: Content, log: &[serde_json::Value]) -> Vec<SpanData> {
    let mut builder = SpanBuilder::new(context(), content);
    let mut out = Vec::new();
    for entry in entries(log) {
        builder.feed(&entry, &mut out);
    }
    builder.finish(&mut out);
    out
}

fn segment() -> serde_json::Value {
    // A pid no process has (above the kernel's limit).
    json!({"kind": "segment_started", "pod_id": POD, "segment_id": "s1", "profile": "child",
           "manifest_digest": "sha256:0", "pid": 4_194_305u32, "format_version": 1, "writer": "t"})
}

fn run_started() -> serde_json::Value {
    json!({"kind": "run_started", "run_id": "r1", "input": "secret plan",
           "trigger": {"type": "parent_pod", "parent_pod_id": PARENT, "tool_call_id": "call_kid"}})
}

fn request(turn: u32, attempt: u32) -> serde_json::Value {
    json!({"kind": "provider_request_started", "run_id": "r1", "turn": turn, "attempt": attempt,
           "scheme": "openai-responses", "model": "gpt-test"})
}

fn finished(turn: u32, end: &str) -> serde_json::Value {
    let mut body = json!({"kind": "provider_request_finished", "run_id": "r1", "turn": turn,
           "attempt": 1, "end": end, "usage": {"input_tokens": 12, "output_tokens": 3}});
    if end == "completed" {
        body["stop_reason"] = json!({"reason": "tool_calls"});
    }
    body
}

fn tool_turn() -> Vec<serde_json::Value> {
    vec![
        request(1, 1),
        finished(1, "completed"),
        json!({"kind": "assistant_message", "run_id": "r1", "turn": 1, "text": "looking",
               "tool_calls": [{"call_id": "c1", "tool": "read_file", "arguments": "{\"path\":\"a\"}"}]}),
        json!({"kind": "tool_decision", "run_id": "r1", "call_id": "c1", "tool": "read_file",
               "side_effect": "read_only", "decision": "allowed", "source": "config", "detail": "d"}),
        json!({"kind": "tool_call_started", "run_id": "r1", "call_id": "c1", "tool": "read_file",
               "side_effect": "read_only", "input": {"path": "a"}}),
        json!({"kind": "tool_call_finished", "run_id": "r1", "call_id": "c1", "tool": "read_file",
               "side_effect": "read_only", "outcome": "error", "output": format!("no such file {SECRET}")}),
    ]
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], prefix: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .collect()
}

fn all_text(spans: &[SpanData]) -> String {
    format!("{spans:?}")
}

#[test]
fn ids_are_deterministic_and_parentage_follows_the_records() {
    let mut log = vec![segment(), run_started()];
    log.extend(tool_turn());
    log.push(
        json!({"kind": "run_completed", "run_id": "r1", "turns": 1, "text": "t",
                    "reason": "end_turn", "stop_reason": {"reason": "end_turn"}}),
    );
    let first = build(Content::Off, &log);
    let again = build(Content::Off, &log);
    let ids = |spans: &[SpanData]| -> Vec<_> {
        spans
            .iter()
            .map(|s| (s.span_context.span_id(), s.parent_span_id))
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(first.len(), 3, "{first:#?}");

    let run = named(&first, "invoke_agent")[0];
    assert_eq!(run.name, "invoke_agent kid");
    assert_eq!(run.span_context.trace_id(), crate::ids::trace_id(PARENT));
    assert_eq!(
        run.span_context.trace_id().to_string(),
        PARENT.replace('-', ""),
        "the trace is the root pod's id"
    );
    assert_eq!(run.span_context.span_id(), crate::ids::run_span(POD, "r1"));
    assert_eq!(
        run.parent_span_id,
        crate::ids::tool_span(PARENT, "call_kid")
    );
    assert!(run.parent_span_is_remote);
    let chat = named(&first, "chat")[0];
    assert_eq!(chat.name, "chat gpt-test");
    assert_eq!(chat.parent_span_id, run.span_context.span_id());
    assert_eq!(
        chat.span_context.span_id(),
        crate::ids::chat_span(POD, "r1", 1, 1)
    );
    let tool = named(&first, "execute_tool")[0];
    assert_eq!(tool.name, "execute_tool read_file");
    assert_eq!(tool.parent_span_id, run.span_context.span_id());
    assert_eq!(
        tool.span_context.span_id(),
        crate::ids::tool_span(POD, "c1")
    );
}

#[test]
fn attributes_follow_the_genai_conventions() {
    let mut log = vec![segment(), run_started()];
    log.extend(tool_turn());
    log.push(
        json!({"kind": "run_completed", "run_id": "r1", "turns": 1, "text": "t",
                    "reason": "end_turn", "stop_reason": {"reason": "end_turn"}}),
    );
    let spans = build(Content::Off, &log);
    let run = named(&spans, "invoke_agent")[0];
    assert_eq!(
        text(run, "gen_ai.operation.name").as_deref(),
        Some("invoke_agent")
    );
    assert_eq!(text(run, "gen_ai.agent.id").as_deref(), Some(POD));
    assert_eq!(text(run, "gen_ai.agent.name").as_deref(), Some("kid"));
    assert_eq!(text(run, "gen_ai.conversation.id").as_deref(), Some(POD));
    assert_eq!(text(run, "gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(
        text(run, "gen_ai.request.model").as_deref(),
        Some("gpt-test")
    );
    assert_eq!(text(run, "pods.pod.profile").as_deref(), Some("child"));
    assert_eq!(text(run, "pods.run.outcome").as_deref(), Some("completed"));
    assert_eq!(
        text(run, "pods.run.stop_reason").as_deref(),
        Some("end_turn")
    );
    assert_eq!(run.status, Status::Unset);

    let chat = named(&spans, "chat")[0];
    assert_eq!(
        attr(chat, "gen_ai.usage.input_tokens"),
        Some(&Value::I64(12))
    );
    assert_eq!(
        attr(chat, "gen_ai.usage.output_tokens"),
        Some(&Value::I64(3))
    );
    assert_eq!(
        text(chat, "gen_ai.response.finish_reasons").as_deref(),
        Some("[\"tool_calls\"]")
    );

    let tool = named(&spans, "execute_tool")[0];
    assert_eq!(text(tool, "gen_ai.tool.name").as_deref(), Some("read_file"));
    assert_eq!(text(tool, "gen_ai.tool.call.id").as_deref(), Some("c1"));
    assert_eq!(
        text(tool, "pods.tool.side_effect").as_deref(),
        Some("read_only")
    );
    assert_eq!(text(tool, "pods.tool.decision").as_deref(), Some("allowed"));
    assert_eq!(
        text(tool, "pods.tool.decision.source").as_deref(),
        Some("config")
    );
    assert!(
        matches!(tool.status, Status::Error { .. }),
        "a failed tool call is ERROR"
    );
}

#[test]
fn an_interrupted_run_carries_its_action_and_origin_as_attributes_and_an_event() {
    let log = vec![
        segment(),
        run_started(),
        request(1, 1),
        json!({"kind": "run_interrupted", "run_id": "r1", "reason": "stopped",
               "phase": {"provider_progress_seen": true, "visible_output_seen": false,
                         "tool_execution": "not_started"},
               "action": {"action_id": "a1", "kind": "stop_tree", "started_at": "2026-01-01T00:00:02.500Z",
                          "started_mono_ms": 5, "affects": [POD], "reason": "wrap up",
                          "origin": {"type": "parent_pod", "parent_pod_id": PARENT, "tool_call_id": "c9"},
                          "caused_by": {"pod_id": PARENT, "action_id": "a0", "kind": "stop_tree"}}}),
    ];
    let spans = build(Content::Off, &log);
    let run = named(&spans, "invoke_agent")[0];
    assert_eq!(
        text(run, "pods.run.outcome").as_deref(),
        Some("interrupted")
    );
    assert_eq!(
        text(run, "pods.lifecycle.kind").as_deref(),
        Some("stop_tree")
    );
    assert_eq!(
        text(run, "pods.lifecycle.origin").as_deref(),
        Some("parent_pod")
    );
    assert_eq!(
        text(run, "pods.lifecycle.caused_by.pod_id").as_deref(),
        Some(PARENT)
    );
    assert_eq!(
        text(run, "pods.lifecycle.caused_by.action_id").as_deref(),
        Some("a0")
    );
    assert!(
        text(run, "pods.lifecycle.reason").is_none(),
        "free text is content"
    );
    let event = run
        .events
        .iter()
        .find(|e| e.name == "pods.lifecycle_action");
    let event = event.unwrap_or_else(|| panic!("{run:#?}"));
    assert!(
        event
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "pods.lifecycle.origin")
    );
    assert_eq!(run.status, Status::Unset);
    // The request in flight ends with the run, marked unfinished.
    let chat = named(&spans, "chat")[0];
    assert_eq!(attr(chat, "pods.unfinished"), Some(&Value::Bool(true)));
}

#[test]
fn a_provider_error_is_error_on_the_run_and_its_request() {
    let log = vec![
        segment(),
        run_started(),
        request(1, 1),
        finished(1, "errored"),
        json!({"kind": "assistant_message", "run_id": "r1", "turn": 1, "text": "Reading"}),
        json!({"kind": "run_errored", "run_id": "r1",
               "error": {"class": "context_length_exceeded", "code": "context_length_exceeded",
                         "retryable": false, "message": "too long"},
               "phase": {"provider_progress_seen": true, "visible_output_seen": true,
                         "tool_execution": "not_started"}}),
    ];
    let spans = build(Content::Off, &log);
    let run = named(&spans, "invoke_agent")[0];
    assert_eq!(
        text(run, "pods.run.outcome").as_deref(),
        Some("provider_error")
    );
    assert_eq!(
        text(run, "error.type").as_deref(),
        Some("context_length_exceeded")
    );
    assert!(matches!(run.status, Status::Error { .. }));
    let chat = named(&spans, "chat")[0];
    assert_eq!(
        text(chat, "error.type").as_deref(),
        Some("context_length_exceeded")
    );
    assert!(matches!(chat.status, Status::Error { .. }));
}

#[test]
fn a_retried_attempt_is_its_own_error_span() {
    let log = vec![segment(), run_started(), request(1, 1), request(1, 2)];
    let mut builder = SpanBuilder::new(context(), Content::Off);
    let mut out = Vec::new();
    for entry in entries(&log) {
        builder.feed(&entry, &mut out);
    }
    assert_eq!(out.len(), 1, "the first attempt ends when the retry starts");
    assert_eq!(attr(&out[0], "pods.request.attempt"), Some(&Value::I64(1)));
    assert_eq!(
        attr(&out[0], "pods.request.retried"),
        Some(&Value::Bool(true))
    );
    assert!(matches!(out[0].status, Status::Error { .. }));
}

#[test]
fn a_run_whose_owner_is_gone_is_crashed_with_evidence() {
    let mut log = vec![segment(), run_started()];
    log.extend(tool_turn().into_iter().take(4));
    let spans = build(Content::Off, &log);
    let run = named(&spans, "invoke_agent")[0];
    assert_eq!(text(run, "pods.run.outcome").as_deref(), Some("crashed"));
    assert!(matches!(run.status, Status::Error { .. }));
    assert_eq!(text(run, "pods.crash.owner").as_deref(), Some("gone"));
    assert_eq!(
        attr(run, "pods.crash.owner_pid"),
        Some(&Value::I64(4_194_305))
    );
    assert_eq!(attr(run, "pods.crash.last_seq"), Some(&Value::I64(6)));
    assert_eq!(
        text(run, "pods.crash.last_entry_kind").as_deref(),
        Some("tool_decision")
    );
    assert!(run.events.iter().any(|e| e.name == "pods.crash"));
    // The decided call never finished: it ends with the run.
    let tool = named(&spans, "execute_tool")[0];
    assert_eq!(attr(tool, "pods.unfinished"), Some(&Value::Bool(true)));
}

#[test]
fn a_run_left_open_by_an_earlier_segment_is_crashed_when_a_new_segment_starts() {
    let log = vec![segment(), run_started(), segment()];
    let mut builder = SpanBuilder::new(context(), Content::Off);
    let mut out = Vec::new();
    for entry in entries(&log) {
        builder.feed(&entry, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(
        text(&out[0], "pods.run.outcome").as_deref(),
        Some("crashed")
    );
    assert!(
        text(&out[0], "pods.crash.detail").is_some_and(|d| d.contains("later segment")),
        "{:?}",
        out[0].attributes
    );
    assert!(!builder.has_open_runs());
}

#[test]
fn no_content_by_default() {
    let mut log = vec![segment(), run_started()];
    log.extend(tool_turn());
    log.push(
        json!({"kind": "run_completed", "run_id": "r1", "turns": 1, "text": "final words",
                    "reason": "end_turn"}),
    );
    let spans = build(Content::Off, &log);
    let all = all_text(&spans);
    for content in [
        "secret plan",
        "looking",
        "\\\"path\\\"",
        "no such file",
        "final words",
    ] {
        assert!(!all.contains(content), "{content} leaked: {all}");
    }
    assert!(!all.contains(SECRET));
    for span in &spans {
        for key in [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        ] {
            assert!(attr(span, key).is_none(), "{key} on {}", span.name);
        }
    }
}

#[test]
fn capture_gives_bounded_scrubbed_content_and_never_the_key() {
    let mut log = vec![segment(), run_started()];
    log.extend(tool_turn());
    log.push(json!({"kind": "run_completed", "run_id": "r1", "turns": 1,
                    "text": "x".repeat(500), "reason": "end_turn"}));
    let content = Content::Capture {
        max_bytes: 100,
        secrets: vec![SECRET.to_owned()],
    };
    let spans = build(content, &log);
    let run = named(&spans, "invoke_agent")[0];
    assert!(text(run, "gen_ai.input.messages").is_some_and(|m| m.contains("secret plan")));
    let output = text(run, "gen_ai.output.messages").unwrap_or_default();
    assert!(output.len() <= 100 && output.ends_with('…'), "{output}");
    let chat = named(&spans, "chat")[0];
    assert!(text(chat, "gen_ai.output.messages").is_some_and(|m| m.contains("looking")));
    let tool = named(&spans, "execute_tool")[0];
    assert!(text(tool, "gen_ai.tool.call.arguments").is_some_and(|a| a.contains("path")));
    let result = text(tool, "gen_ai.tool.call.result").unwrap_or_default();
    assert!(result.contains("no such file [redacted]"), "{result}");
    assert!(!all_text(&spans).contains(SECRET));
    assert!(!format!("{:?}", Content::capture(vec![SECRET.into()])).contains(SECRET));
}

const OUTER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn completed_run() -> serde_json::Value {
    json!({"kind": "run_completed", "run_id": "r1", "turns": 1, "text": "t",
           "reason": "end_turn", "stop_reason": {"reason": "end_turn"}})
}

#[test]
fn a_root_run_started_inside_an_outer_trace_is_in_it_under_its_span() {
    let mut log = vec![
        segment(),
        json!({"kind": "run_started", "run_id": "r1", "input": "x", "trigger": {"type": "cli"},
               "traceparent": OUTER}),
    ];
    log.extend(tool_turn());
    log.push(completed_run());
    let spans = build(Content::Off, &log);
    assert_eq!(spans.len(), 3);
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c",
            "{}",
            span.name
        );
    }
    let run = named(&spans, "invoke_agent")[0];
    assert_eq!(run.parent_span_id.to_string(), "b7ad6b7169203331");
    assert!(run.parent_span_is_remote);
    // The run's own children still hang under it.
    assert_eq!(
        named(&spans, "chat")[0].parent_span_id,
        run.span_context.span_id()
    );
}

#[test]
fn a_child_run_takes_the_recorded_trace_but_keeps_its_parent_pods_tool_span() {
    let handed = crate::ids::child_traceparent(
        crate::ids::parse_traceparent(OUTER).unwrap().0,
        PARENT,
        "call_kid",
    );
    let mut started = run_started();
    started["traceparent"] = json!(handed);
    // A later run started by `send_to_pod`: same process (same traceparent), another call.
    let mut later = started.clone();
    later["run_id"] = json!("r2");
    later["trigger"]["tool_call_id"] = json!("call_again");
    let log = vec![
        segment(),
        started,
        completed_run(),
        later,
        json!({"kind": "run_completed", "run_id": "r2", "turns": 1, "text": "t",
               "reason": "end_turn"}),
    ];
    let spans = build(Content::Off, &log);
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
    }
    assert_eq!(
        spans[0].parent_span_id,
        crate::ids::tool_span(PARENT, "call_kid")
    );
    assert_eq!(
        spans[1].parent_span_id,
        crate::ids::tool_span(PARENT, "call_again"),
        "the trigger names the call, not the traceparent the process got"
    );
}

#[test]
fn a_malformed_recorded_traceparent_is_ignored() {
    let log = vec![
        segment(),
        json!({"kind": "run_started", "run_id": "r1", "input": "x", "trigger": {"type": "cli"},
               "traceparent": "00-not-a-trace-01"}),
        completed_run(),
    ];
    let spans = build(Content::Off, &log);
    assert_eq!(
        spans[0].span_context.trace_id(),
        crate::ids::trace_id(PARENT)
    );
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
    assert!(!spans[0].parent_span_is_remote);
}

#[test]
fn a_request_carries_its_response_id_model_and_time_to_first_chunk() {
    let mut done = finished(1, "completed");
    done["time_to_first_chunk_ms"] = json!(1250);
    done["response_id"] = json!("resp_42");
    done["response_model"] = json!("gpt-test-2026-01-01");
    let log = vec![segment(), run_started(), request(1, 1), done];
    let spans = build(Content::Off, &log);
    let chat = named(&spans, "chat")[0];
    assert_eq!(text(chat, "gen_ai.response.id").as_deref(), Some("resp_42"));
    assert_eq!(
        text(chat, "gen_ai.response.model").as_deref(),
        Some("gpt-test-2026-01-01")
    );
    assert_eq!(
        attr(chat, "gen_ai.response.time_to_first_chunk"),
        Some(&Value::F64(1.25))
    );
    assert_eq!(
        attr(chat, "pods.request.time_to_first_chunk_ms"),
        Some(&Value::I64(1250))
    );
    // A log that does not record them leaves them out.
    let log = vec![
        segment(),
        run_started(),
        request(1, 1),
        finished(1, "completed"),
    ];
    let spans = build(Content::Off, &log);
    let chat = named(&spans, "chat")[0];
    for key in [
        "gen_ai.response.id",
        "gen_ai.response.model",
        "gen_ai.response.time_to_first_chunk",
    ] {
        assert_eq!(attr(chat, key), None, "{key}");
    }
}

#[test]
fn a_retried_attempt_carries_the_error_class_and_wait_its_retry_recorded() {
    let mut retry = request(1, 2);
    retry["retry_of"] = json!({"class": "rate_limited", "code": "rate_limit_exceeded",
                               "http_status": 429, "retry_after_ms": 2000, "delay_ms": 2000});
    let log = vec![segment(), run_started(), request(1, 1), retry];
    let spans = build(Content::Off, &log);
    let first = named(&spans, "chat")
        .into_iter()
        .find(|s| attr(s, "pods.request.attempt") == Some(&Value::I64(1)))
        .expect("the first attempt");
    assert_eq!(text(first, "error.type").as_deref(), Some("rate_limited"));
    assert_eq!(
        attr(first, "pods.request.retry.delay_ms"),
        Some(&Value::I64(2000))
    );
    assert_eq!(
        attr(first, "pods.request.retry.retry_after_ms"),
        Some(&Value::I64(2000))
    );
    assert_eq!(
        attr(first, "pods.error.http_status"),
        Some(&Value::I64(429))
    );
    assert_eq!(
        text(first, "pods.error.code").as_deref(),
        Some("rate_limit_exceeded")
    );
    assert!(
        matches!(&first.status, Status::Error { description } if description.contains("rate_limited"))
    );
    // The retry itself is no failure of its own.
    let second = named(&spans, "chat")
        .into_iter()
        .find(|s| attr(s, "pods.request.attempt") == Some(&Value::I64(2)))
        .expect("the retry");
    assert_eq!(attr(second, "error.type"), None);
}
