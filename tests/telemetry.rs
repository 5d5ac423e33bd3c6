//! Whole-system tests of `pods telemetry push` and `pods export --format otlp`: real pod trees
//! (replayed providers, real child processes), stopped or killed, sent from their files to a
//! loopback OTLP/HTTP receiver that decodes the requests with the official protobuf types.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Value, json};

use support::control::wait_streaming;
use support::logs::entries_so_far;
use support::otlp::Receiver;
use support::responses::{
    answering_profile, holder_profile, profile, text_response, tool_call_response,
};
use support::{Background, Sandbox, assert_exit, describe, home, id_of, of_kind, wait_until};

/// A key value in the environment of every command: it must never reach a request.
const KEY: &str = "sk-telemetry-test-key-0123456789";

const PROMPT: &str = "delegate the review please";

// ---------------------------------------------------------------------------------------------
// Spans as decoded

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(AnyValue::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn status(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

fn runs_of<'a>(spans: &'a [Span], pod_id: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| {
            text(s, "gen_ai.operation.name") == Some("invoke_agent")
                && text(s, "gen_ai.agent.id") == Some(pod_id)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace id every span of a tree carries: the root pod's id.
fn trace_of(root_id: &str) -> String {
    root_id.replace('-', "")
}

/// The `service.name` of an OTLP JSON document's first resource.
fn service_name(doc: &Value) -> String {
    doc["resourceSpans"][0]["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == "service.name")
        .and_then(|kv| kv["value"]["stringValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn push(sandbox: &Sandbox, root: &Path, receiver: &Receiver, extra: &[&str]) -> Value {
    let id = id_of(root);
    let endpoint = receiver.endpoint();
    let mut args = vec![
        "telemetry",
        "push",
        id.as_str(),
        "--tree",
        "--endpoint",
        endpoint.as_str(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = sandbox
        .pods()
        .env("OPENAI_API_KEY", KEY)
        .args(&args)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)))
}

// ---------------------------------------------------------------------------------------------
// A tree: the parent spawns a child that fails with context_length_exceeded, then a holder it
// waits on, and is stopped with `stop --tree`.

fn stopped_tree(sandbox: &Sandbox) -> (PathBuf, PathBuf, PathBuf) {
    stopped_tree_with(sandbox, &[])
}

/// [`stopped_tree`] with `env` set for the parent's process (and so its children's).
fn stopped_tree_with(sandbox: &Sandbox, env: &[(&str, &str)]) -> (PathBuf, PathBuf, PathBuf) {
    profile(
        sandbox,
        "parent",
        "[agent]\nmax_turns = 8\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"child\", \"holder\"]\n",
        vec![
            tool_call_response(
                "call_kid",
                "spawn_pod",
                json!({"profile": "child", "task": "review everything", "name": "kid"}),
            ),
            tool_call_response("call_wait_kid", "wait_pod", json!({"pod_id": "kid"})),
            tool_call_response(
                "call_hold",
                "spawn_pod",
                json!({"profile": "holder", "task": "hold on", "name": "hold"}),
            ),
            tool_call_response("call_wait_hold", "wait_pod", json!({"pod_id": "hold"})),
            text_response(&["done"], false, None),
        ],
    );
    profile(
        sandbox,
        "child",
        "[agent]\ntools = []\n",
        vec![text_response(
            &["Reading ", "all ", "of ", "it"],
            true,
            None,
        )],
    );
    holder_profile(sandbox);
    let mut command = sandbox.pods();
    command.envs(env.iter().copied());
    let mut proc: Background =
        sandbox.spawn_command(command, &["run", "-p", "parent", PROMPT], "parent");
    let parent = wait_until("the parent dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    let kids = wait_until("two children", Duration::from_secs(20), || {
        let kids = sandbox.children_of(&parent);
        (kids.len() == 2).then_some(kids)
    });
    let hold = home::named(&kids, "hold");
    let kid = home::named(&kids, "kid");
    wait_streaming(&hold);
    let stop = sandbox.run(&["stop", &id_of(&parent), "--tree"]);
    assert_exit(&stop, 0);
    proc.wait(Duration::from_secs(30));
    (parent, kid, hold)
}

#[test]
fn a_stopped_tree_is_pushed_as_one_trace_with_lifecycle_actions_and_the_childs_error() {
    let sandbox = Sandbox::new();
    let (parent, kid, hold) = stopped_tree(&sandbox);
    let (parent_id, kid_id, hold_id) = (id_of(&parent), id_of(&kid), id_of(&hold));
    let receiver = Receiver::start(200);
    let summary = push(&sandbox, &parent, &receiver, &[]);
    let spans = receiver.spans();
    assert_eq!(summary["spans"], json!(spans.len()), "{summary}");
    assert_eq!(summary["trace_id"], json!(trace_of(&parent_id)));

    // OTLP/HTTP protobuf, to the endpoint as given.
    for request in receiver.requests() {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.content_type, "application/x-protobuf");
        let bytes = String::from_utf8_lossy(&request.body);
        assert!(!bytes.contains(KEY), "no key in any request");
        assert!(!bytes.contains(PROMPT), "no prompt by default");
        assert!(!bytes.contains("review everything"), "no task by default");
        assert!(!bytes.contains("Reading all"), "no output by default");
    }

    // One trace for the three processes.
    for span in &spans {
        assert_eq!(hex(&span.trace_id), trace_of(&parent_id), "{}", span.name);
    }

    // The parent's run: interrupted by stop_tree from the command line, as attributes and event.
    let parent_run = runs_of(&spans, &parent_id);
    assert_eq!(parent_run.len(), 1);
    let parent_run = parent_run[0];
    let parent_name = home::pod_info(&parent)["name"].as_str().unwrap().to_owned();
    assert_eq!(parent_run.name, format!("invoke_agent {parent_name}"));
    assert!(
        parent_run.parent_span_id.is_empty(),
        "the root span has no parent"
    );
    assert_eq!(text(parent_run, "pods.run.outcome"), Some("interrupted"));
    assert_eq!(text(parent_run, "pods.lifecycle.kind"), Some("stop_tree"));
    assert_eq!(text(parent_run, "pods.lifecycle.origin"), Some("cli"));
    assert_eq!(
        text(parent_run, "gen_ai.conversation.id"),
        Some(parent_id.as_str())
    );
    assert!(text(parent_run, "gen_ai.provider.name").is_some());
    assert_eq!(
        text(parent_run, "gen_ai.request.model"),
        Some("test-replay")
    );
    assert_eq!(status(parent_run), StatusCode::Unset as i32);
    let event = parent_run
        .events
        .iter()
        .find(|e| e.name == "pods.lifecycle_action")
        .expect("the interrupting action as a span event");
    assert!(
        event
            .attributes
            .iter()
            .any(|kv| kv.key == "pods.lifecycle.origin")
    );

    // The parent's tool spans, children of its run.
    let tool = |call: &str| {
        spans
            .iter()
            .find(|s| text(s, "gen_ai.tool.call.id") == Some(call))
            .unwrap_or_else(|| panic!("no span for {call}"))
    };
    let spawn_kid = tool("call_kid");
    assert_eq!(spawn_kid.name, "execute_tool spawn_pod");
    assert_eq!(spawn_kid.parent_span_id, parent_run.span_id);
    assert_eq!(text(spawn_kid, "gen_ai.tool.name"), Some("spawn_pod"));
    assert_eq!(text(spawn_kid, "pods.tool.side_effect"), Some("spawn"));
    assert_eq!(
        text(spawn_kid, "pods.tool.child_pod_id"),
        Some(kid_id.as_str())
    );

    // The child's run hangs below the spawn_pod call that started it, and failed.
    let kid_run = runs_of(&spans, &kid_id);
    assert_eq!(kid_run.len(), 1);
    let kid_run = kid_run[0];
    assert_eq!(kid_run.parent_span_id, spawn_kid.span_id);
    assert_eq!(kid_run.name, "invoke_agent kid");
    // The parent, in no outer trace, handed the child its own tree's trace and that span.
    assert_eq!(
        recorded_traceparent(&kid),
        Some(format!(
            "00-{}-{}-01",
            trace_of(&parent_id),
            hex(&spawn_kid.span_id)
        ))
    );
    assert_eq!(recorded_traceparent(&parent), None);
    assert_eq!(text(kid_run, "pods.run.outcome"), Some("provider_error"));
    assert_eq!(text(kid_run, "error.type"), Some("context_length_exceeded"));
    assert_eq!(status(kid_run), StatusCode::Error as i32);
    let kid_chat: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == kid_run.span_id && s.name == "chat test-replay")
        .collect();
    assert_eq!(kid_chat.len(), 1, "one request attempt");
    assert_eq!(text(kid_chat[0], "gen_ai.operation.name"), Some("chat"));
    assert_eq!(
        text(kid_chat[0], "error.type"),
        Some("context_length_exceeded")
    );
    assert_eq!(status(kid_chat[0]), StatusCode::Error as i32);

    // The parent's chat spans: one per request, finish reasons recorded.
    let parent_chats: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == parent_run.span_id && s.name.starts_with("chat "))
        .collect();
    assert_eq!(parent_chats.len(), 4, "spawn, wait, spawn, wait");
    assert!(
        parent_chats
            .iter()
            .all(|c| attr(c, "gen_ai.response.finish_reasons").is_some())
    );
    assert_eq!(int(parent_chats[0], "pods.request.turn"), Some(1));

    // The holder: interrupted by the parent's cascade, linked to the parent's action.
    let hold_run = runs_of(&spans, &hold_id);
    assert_eq!(hold_run.len(), 1);
    let hold_run = hold_run[0];
    assert_eq!(hold_run.parent_span_id, tool("call_hold").span_id);
    assert_eq!(text(hold_run, "pods.run.outcome"), Some("interrupted"));
    assert_eq!(
        text(hold_run, "pods.lifecycle.caused_by.pod_id"),
        Some(parent_id.as_str())
    );
    assert_eq!(
        text(hold_run, "pods.lifecycle.caused_by.action_id"),
        text(parent_run, "pods.lifecycle.action_id")
    );
    assert!(text(hold_run, "pods.lifecycle.origin").is_some());
    // The wait on it was cut short by the stop.
    assert_eq!(tool("call_wait_hold").parent_span_id, parent_run.span_id);

    // `pods export --format otlp` holds the same spans.
    let export = sandbox.run(&["export", &parent_id, "--tree", "--format", "otlp"]);
    assert_exit(&export, 0);
    let doc: Value = serde_json::from_slice(&export.stdout).unwrap();
    let mut exported: Vec<(String, String, String)> = doc["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap().clone())
        .flat_map(|s| s["spans"].as_array().unwrap().clone())
        .map(|s| {
            (
                s["spanId"].as_str().unwrap().to_owned(),
                s["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                s["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut pushed: Vec<(String, String, String)> = spans
        .iter()
        .map(|s| (hex(&s.span_id), hex(&s.parent_span_id), s.name.clone()))
        .collect();
    exported.sort();
    pushed.sort();
    assert_eq!(exported, pushed);
    assert_eq!(service_name(&doc), "pods", "service.name defaults to pods");
    let named = sandbox
        .pods()
        .env("OTEL_SERVICE_NAME", "agents")
        .args(["export", &parent_id, "--format", "otlp"])
        .output()
        .unwrap();
    assert_exit(&named, 0);
    assert_eq!(
        service_name(&serde_json::from_slice(&named.stdout).unwrap()),
        "agents"
    );
}

#[test]
fn content_is_sent_only_with_capture_content_and_never_the_key() {
    let sandbox = Sandbox::new();
    let (parent, _kid, _hold) = stopped_tree(&sandbox);
    let receiver = Receiver::start(200);
    push(&sandbox, &parent, &receiver, &["--capture-content"]);
    let spans = receiver.spans();
    let parent_run = runs_of(&spans, &id_of(&parent))[0];
    assert!(
        text(parent_run, "gen_ai.input.messages").is_some_and(|m| m.contains(PROMPT)),
        "the prompt with capture"
    );
    let spawn = spans
        .iter()
        .find(|s| text(s, "gen_ai.tool.call.id") == Some("call_kid"))
        .unwrap();
    assert!(
        text(spawn, "gen_ai.tool.call.arguments").is_some_and(|a| a.contains("review everything"))
    );
    assert!(text(spawn, "gen_ai.tool.call.result").is_some());
    for request in receiver.requests() {
        assert!(!String::from_utf8_lossy(&request.body).contains(KEY));
    }
}

#[test]
fn a_killed_tree_is_pushed_with_crash_evidence() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "parent",
        "[agent]\nmax_turns = 8\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"holder\"]\n",
        support::responses::spawn_two_holders(),
    );
    holder_profile(&sandbox);
    let mut proc = sandbox.spawn(&["run", "-p", "parent", "build a tree"], "parent");
    let parent = wait_until("the parent dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    let kids = wait_until("two children", Duration::from_secs(20), || {
        let kids = sandbox.children_of(&parent);
        (kids.len() == 2).then_some(kids)
    });
    for kid in &kids {
        wait_streaming(kid);
    }
    // Children first, then the parent, in one call: nobody is left to record an end.
    let mut pids: Vec<String> = of_kind(&entries_so_far(&parent), "child_spawned")
        .iter()
        .map(|e| e["pid"].to_string())
        .collect();
    assert_eq!(pids.len(), 2);
    pids.push(proc.pid().to_string());
    let killed = std::process::Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status()
        .unwrap();
    assert!(killed.success());
    proc.wait(Duration::from_secs(10));

    let receiver = Receiver::start(200);
    push(&sandbox, &parent, &receiver, &[]);
    let spans = receiver.spans();
    for pod in std::iter::once(&parent).chain(&kids) {
        let runs = runs_of(&spans, &id_of(pod));
        assert_eq!(runs.len(), 1, "{}", id_of(pod));
        let run = runs[0];
        assert_eq!(text(run, "pods.run.outcome"), Some("crashed"), "{run:#?}");
        assert_eq!(status(run), StatusCode::Error as i32);
        assert_eq!(text(run, "pods.crash.owner"), Some("gone"));
        assert!(text(run, "pods.crash.detail").is_some_and(|d| !d.is_empty()));
        assert!(int(run, "pods.crash.last_seq").is_some());
        assert!(run.events.iter().any(|e| e.name == "pods.crash"));
    }
}

#[test]
fn a_refusing_collector_fails_the_push_with_exit_1_naming_the_endpoint() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["hi"]);
    let run = sandbox.run(&["run", "-p", "solo", "hello"]);
    assert_exit(&run, 0);
    let pod = sandbox.only_pod();
    let receiver = Receiver::start(400);
    let endpoint = receiver.endpoint();
    let output = sandbox.run(&["telemetry", "push", &id_of(&pod), "--endpoint", &endpoint]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&endpoint), "{stderr}");
    assert!(
        !receiver.requests().is_empty(),
        "the request reached the collector"
    );

    let missing = sandbox.run(&["telemetry", "push", "no-such-pod", "--endpoint", &endpoint]);
    assert_exit(&missing, 2);
    let unset = sandbox.run(&[
        "telemetry",
        "push",
        &id_of(&pod),
        "--endpoint",
        &endpoint,
        "--headers-env",
        "PODS_TEST_UNSET_HEADERS",
    ]);
    assert_exit(&unset, 2);
    assert!(String::from_utf8_lossy(&unset.stderr).contains("$PODS_TEST_UNSET_HEADERS"));
}

// ---------------------------------------------------------------------------------------------
// Trace context across processes, and the facts of each request

/// The outer trace a tree is started in, as a caller's tracing would hand it over.
const OUTER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const OUTER_SPAN: &str = "b7ad6b7169203331";

fn outer_traceparent() -> String {
    format!("00-{OUTER_TRACE}-{OUTER_SPAN}-01")
}

/// The `traceparent` recorded on a pod's first run.
fn recorded_traceparent(pod: &Path) -> Option<String> {
    let entries = entries_so_far(pod);
    let runs = of_kind(&entries, "run_started");
    runs[0]["traceparent"].as_str().map(str::to_owned)
}

#[test]
fn a_tree_started_in_an_outer_trace_is_pushed_into_it_across_three_processes() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "parent",
        "[agent]\nmax_turns = 4\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"kid\"]\n",
        vec![
            tool_call_response(
                "call_kid",
                "spawn_pod",
                json!({"profile": "kid", "task": "delegate on", "name": "kid"}),
            ),
            tool_call_response("call_wait_kid", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["all ", "done"], false, None),
        ],
    );
    profile(
        &sandbox,
        "kid",
        "[agent]\nmax_turns = 4\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"grandkid\"]\n",
        vec![
            tool_call_response(
                "call_grandkid",
                "spawn_pod",
                json!({"profile": "grandkid", "task": "look", "name": "grandkid"}),
            ),
            tool_call_response(
                "call_wait_grandkid",
                "wait_pod",
                json!({"pod_id": "grandkid"}),
            ),
            text_response(&["kid ", "done"], false, None),
        ],
    );
    answering_profile(&sandbox, "grandkid", &["seen"]);
    let run = sandbox
        .pods()
        .env("TRACEPARENT", outer_traceparent())
        .args(["run", "-p", "parent", PROMPT])
        .output()
        .unwrap();
    assert_exit(&run, 0);
    let parent = sandbox.root_pod().unwrap();
    let kid = sandbox.children_of(&parent).pop().expect("the kid");
    let grandkid = sandbox.children_of(&kid).pop().expect("the grandkid");
    let (parent_id, kid_id, grandkid_id) = (id_of(&parent), id_of(&kid), id_of(&grandkid));

    // Each process recorded the context it was started in.
    assert_eq!(recorded_traceparent(&parent), Some(outer_traceparent()));
    let handed_to = |pod: &Path| {
        let recorded = recorded_traceparent(pod).expect("a child records its TRACEPARENT");
        let parts: Vec<String> = recorded.split('-').map(str::to_owned).collect();
        assert_eq!(parts.len(), 4, "{recorded}");
        assert_eq!(parts[1], OUTER_TRACE, "the child is in the outer trace");
        parts[2].clone()
    };
    let kid_parent_span = handed_to(&kid);
    let grandkid_parent_span = handed_to(&grandkid);

    let receiver = Receiver::start(200);
    let summary = push(&sandbox, &parent, &receiver, &[]);
    assert_eq!(summary["trace_id"], json!(OUTER_TRACE));
    let spans = receiver.spans();
    for span in &spans {
        assert_eq!(hex(&span.trace_id), OUTER_TRACE, "{}", span.name);
    }
    let tool = |call: &str| {
        spans
            .iter()
            .find(|s| text(s, "gen_ai.tool.call.id") == Some(call))
            .unwrap_or_else(|| panic!("no span for {call}"))
    };
    let parent_run = runs_of(&spans, &parent_id)[0];
    assert_eq!(hex(&parent_run.parent_span_id), OUTER_SPAN);
    let spawn_kid = tool("call_kid");
    assert_eq!(spawn_kid.parent_span_id, parent_run.span_id);
    assert_eq!(
        hex(&spawn_kid.span_id),
        kid_parent_span,
        "the kid got the spawn_pod span"
    );
    let kid_run = runs_of(&spans, &kid_id)[0];
    assert_eq!(kid_run.parent_span_id, spawn_kid.span_id);
    let spawn_grandkid = tool("call_grandkid");
    assert_eq!(spawn_grandkid.parent_span_id, kid_run.span_id);
    assert_eq!(hex(&spawn_grandkid.span_id), grandkid_parent_span);
    let grandkid_run = runs_of(&spans, &grandkid_id)[0];
    assert_eq!(grandkid_run.parent_span_id, spawn_grandkid.span_id);
}

#[test]
fn a_malformed_traceparent_is_ignored_with_a_warning_and_never_recorded() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["hi"]);
    let run = sandbox
        .pods()
        .env("TRACEPARENT", "00-not-a-trace-context-01")
        .args(["run", "-p", "solo", "hello"])
        .output()
        .unwrap();
    assert_exit(&run, 0);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("ignoring TRACEPARENT") && stderr.contains("00-not-a-trace-context-01"),
        "{stderr}"
    );
    let pod = sandbox.only_pod();
    assert_eq!(recorded_traceparent(&pod), None);
    let receiver = Receiver::start(200);
    let summary = push(&sandbox, &pod, &receiver, &[]);
    assert_eq!(summary["trace_id"], json!(trace_of(&id_of(&pod))));
    let run = runs_of(&receiver.spans(), &id_of(&pod))[0].clone();
    assert!(run.parent_span_id.is_empty(), "a root span");
}

#[test]
fn a_retried_request_and_its_answer_carry_the_facts_the_log_recorded() {
    let sandbox = Sandbox::new();
    let limited = json!({
        "status": 429,
        "headers": {"content-type": "application/json", "retry-after-ms": "20"},
        "body": json!({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}).to_string(),
    });
    profile(
        &sandbox,
        "limited",
        "[agent]\ntools = []\n",
        vec![limited, text_response(&["second ", "try"], false, None)],
    );
    let run = sandbox.run(&["run", "-p", "limited", "hello"]);
    assert_exit(&run, 0);
    let pod = sandbox.only_pod();
    let receiver = Receiver::start(200);
    push(&sandbox, &pod, &receiver, &[]);
    let spans = receiver.spans();
    let attempt = |n: i64| {
        spans
            .iter()
            .find(|s| s.name.starts_with("chat ") && int(s, "pods.request.attempt") == Some(n))
            .unwrap_or_else(|| panic!("no attempt {n}"))
    };
    let retried = attempt(1);
    assert_eq!(text(retried, "error.type"), Some("rate_limited"));
    assert_eq!(int(retried, "pods.error.http_status"), Some(429));
    assert_eq!(int(retried, "pods.request.retry.retry_after_ms"), Some(20));
    assert!(int(retried, "pods.request.retry.delay_ms").is_some());
    assert_eq!(status(retried), StatusCode::Error as i32);
    let answered = attempt(2);
    assert_eq!(text(answered, "error.type"), None);
    assert_eq!(text(answered, "gen_ai.response.id"), Some("resp_test"));
    assert_eq!(text(answered, "gen_ai.response.model"), Some("test-replay"));
    assert!(
        matches!(
            attr(answered, "gen_ai.response.time_to_first_chunk"),
            Some(AnyValue::DoubleValue(_))
        ),
        "{answered:#?}"
    );
    assert!(int(answered, "pods.request.time_to_first_chunk_ms").is_some());
}

// ---------------------------------------------------------------------------------------------
// Live export

/// A histogram's series (its attributes, rendered) and count of recorded values.
fn histogram_count(metric: &opentelemetry_proto::tonic::metrics::v1::Metric) -> Vec<(String, u64)> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &metric.data {
        Some(Data::Histogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|p| {
                (
                    format!("{:?}{}", p.attributes, p.start_time_unix_nano),
                    p.count,
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What identifies a span and its place (trace, id, parent, name, status) and what it says
/// (its attributes and events, rendered in order).
fn shape(spans: &[Span]) -> Vec<(String, String, String, String, i32, String)> {
    let mut out: Vec<_> = spans
        .iter()
        .map(|s| {
            let mut attributes: Vec<String> =
                s.attributes.iter().map(|kv| format!("{kv:?}")).collect();
            attributes.sort();
            let events: Vec<String> = s
                .events
                .iter()
                .map(|e| format!("{}@{}", e.name, e.time_unix_nano))
                .collect();
            (
                hex(&s.trace_id),
                hex(&s.span_id),
                hex(&s.parent_span_id),
                s.name.clone(),
                status(s),
                format!("{attributes:?} {events:?}"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_running_tree_exports_live_the_spans_a_push_from_its_files_sends() {
    let sandbox = Sandbox::new();
    let live = Receiver::start(200);
    let base = format!("http://{}", live.addr);
    let (parent, kid, hold) = stopped_tree_with(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", base.as_str()),
            ("OPENAI_API_KEY", KEY),
        ],
    );
    let requests = live.requests();
    assert!(!requests.is_empty(), "nothing was exported live");
    for request in &requests {
        assert!(
            ["/v1/traces", "/v1/metrics"].contains(&request.path.as_str()),
            "{}",
            request.path
        );
        assert_eq!(request.content_type, "application/x-protobuf");
        assert!(
            !String::from_utf8_lossy(&request.body).contains(KEY),
            "the key reached the collector"
        );
    }
    let live_spans = live.spans();
    // All three processes reported, in one trace.
    for pod in [&parent, &kid, &hold] {
        assert!(
            !runs_of(&live_spans, &id_of(pod)).is_empty(),
            "no run span of {}",
            id_of(pod)
        );
    }
    let traces: std::collections::BTreeSet<String> =
        live_spans.iter().map(|s| hex(&s.trace_id)).collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_eq!(traces.into_iter().next(), Some(trace_of(&id_of(&parent))));

    // Metrics, from the same chat spans: one duration per model request, in every process.
    let chats = live_spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .count() as u64;
    let metrics = live.metrics();
    let durations: u64 = metrics
        .iter()
        .filter(|m| m.name == "gen_ai.client.operation.duration")
        .flat_map(histogram_count)
        // Cumulative: each process's last report holds its totals; sum the largest per series.
        .fold(
            std::collections::BTreeMap::new(),
            |mut acc, (series, count)| {
                let entry = acc.entry(series).or_insert(0u64);
                *entry = (*entry).max(count);
                acc
            },
        )
        .values()
        .sum();
    assert_eq!(durations, chats, "{metrics:#?}");

    // The same spans (ids, parents, names, statuses, attributes, events) as a push from the
    // files sends.
    let pushed = Receiver::start(200);
    push(&sandbox, &parent, &pushed, &[]);
    assert_eq!(shape(&live_spans), shape(&pushed.spans()));
}

/// A traces endpoint on a loopback port nobody listens on (bound, then let go).
fn unreachable_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/v1/traces", listener.local_addr().unwrap())
}

/// `pods ARGS` with live export to `endpoint`.
fn run_exporting_to(sandbox: &Sandbox, endpoint: &str, args: &[&str]) -> std::process::Output {
    sandbox
        .pods()
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_collector_never_fails_a_run_and_is_told_once() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["all ", "good"]);
    let endpoint = unreachable_endpoint();
    let run = run_exporting_to(&sandbox, &endpoint, &["run", "-p", "solo", "hello"]);
    assert_exit(&run, 0);
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "all good");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.matches(&endpoint).count(),
        1,
        "told once, naming the collector: {stderr}"
    );
    assert!(stderr.contains("pods telemetry push"), "{stderr}");
    // OTEL_SDK_DISABLED turns it off: nothing is tried, nothing is said.
    let off = sandbox
        .pods()
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)
        .env("OTEL_SDK_DISABLED", "true")
        .args(["run", "-p", "solo", "hello"])
        .output()
        .unwrap();
    assert_exit(&off, 0);
    assert!(
        !String::from_utf8_lossy(&off.stderr).contains(&endpoint),
        "{}",
        describe(&off)
    );
}

#[test]
fn doctor_checks_the_collector_live_export_would_use() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["hi"]);
    let receiver = Receiver::start(200);
    let up = format!("http://{}", receiver.addr);
    let doctor = |base: &str| {
        sandbox
            .pods()
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", base)
            .args(["doctor", "-p", "solo", "--json"])
            .output()
            .unwrap()
    };
    let check = |output: &std::process::Output| -> Value {
        let document: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", describe(output)));
        document["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"].as_str().unwrap().starts_with("telemetry "))
            .cloned()
            .unwrap_or_else(|| panic!("no telemetry check: {document:#}"))
    };
    let fine = doctor(&up);
    assert_exit(&fine, 0);
    let found = check(&fine);
    assert_eq!(found["check"], format!("telemetry {up}/v1/traces"));
    assert_eq!(found["ok"], true, "{found:#}");
    assert!(found["detail"].as_str().unwrap().contains("used by solo"));

    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let bad = doctor(&down);
    assert_exit(&bad, 2);
    let found = check(&bad);
    assert_eq!(found["ok"], false, "{found:#}");
    let detail = found["detail"].as_str().unwrap();
    assert!(
        detail.contains("nothing answers") && detail.contains("pods telemetry push"),
        "{detail}"
    );
}

#[test]
fn spans_lost_while_a_pod_runs_are_noted_in_its_log_and_a_bad_header_variable_is_said() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "notes\n");
    // The first request's spans are complete, and refused (after the exporter's three retries,
    // about a second), while the second one streams.
    profile(
        &sandbox,
        "slow",
        "[agent]\ntools = [\"read_file\"]\n",
        vec![
            tool_call_response("c1", "read_file", json!({"path": "notes.txt"})),
            text_response(&["read ", "them"], false, Some((2, 2500))),
        ],
    );
    let endpoint = unreachable_endpoint();
    let run = run_exporting_to(&sandbox, &endpoint, &["run", "-p", "slow", "read"]);
    assert_exit(&run, 0);
    let entries = entries_so_far(&sandbox.only_pod());
    let noted = of_kind(&entries, "telemetry_export_failed");
    assert_eq!(noted.len(), 1, "{}", describe(&run));
    assert_eq!(noted[0]["endpoint"], endpoint.as_str());
    assert!(
        noted[0]["spans_failed"].as_u64().unwrap() >= 1,
        "{noted:#?}"
    );
    // Written before the segment closes.
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"segment_closed"), "{kinds:?}");

    // A header variable the profile names but the environment lacks: said, and the run goes on.
    answering_profile(&sandbox, "headed", &["fine"]);
    sandbox.write(
        "work/.pods/profiles/headed.toml",
        &format!(
            "{}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\nheaders_env = [\"PODS_TEST_NO_SUCH_HEADERS\"]\n",
            std::fs::read_to_string(sandbox.root().join("work/.pods/profiles/headed.toml")).unwrap()
        ),
    );
    let run = sandbox.run(&["run", "-p", "headed", "hello"]);
    assert_exit(&run, 0);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("$PODS_TEST_NO_SUCH_HEADERS is not set"),
        "{}",
        describe(&run)
    );
}
