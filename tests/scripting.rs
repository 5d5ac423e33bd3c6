//! Whole-system tests of driving `pods` from scripts and programs: the `run --json` event stream
//! (checked against the type that writes it and against the committed fixture), prompts from
//! stdin, `-m/--model` and its provenance, `resume --last`, and the effective provider settings
//! `profile show` / `explain` state. Real `pods` processes against the loopback replay server,
//! in each wire scheme's own shapes.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use pod_core::run_events::{RUN_EVENTS_FORMAT, RUN_EVENTS_VERSION, RunEvent};
use serde_json::{Value, json};
use support::cassettes::{scheme_profile, sse, stream};
use support::{
    Sandbox, assert_exit, chat, describe, log_entries, of_kind, pod_info, responses, stdout_json,
};

const FIXTURE: &str = include_str!("fixtures/run-json-demo.jsonl");
const DOC: &str = include_str!("../docs/RUN-JSON.md");

// ---------------------------------------------------------------------------------------------
// Reading the stream

/// Every stdout line as a [`RunEvent`]; each must also serialize back to exactly the JSON it
/// was read from (no field the type does not know, none it drops).
#[track_caller]
fn events(output: &Output) -> Vec<RunEvent> {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(stdout.ends_with('\n'), "{}", describe(output));
    stdout
        .lines()
        .map(|line| parse_line(line, output))
        .collect()
}

#[track_caller]
fn parse_line(line: &str, output: &Output) -> RunEvent {
    let value: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not JSON: {e}: {line}\n{}", describe(output)));
    let event: RunEvent = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a RunEvent: {e}: {line}\n{}", describe(output)));
    assert_eq!(serde_json::to_value(&event).unwrap(), value, "{line}");
    event
}

/// The kinds in order, a run of text (or reasoning) lines counted once: how deltas are batched
/// depends on how the bytes arrived.
fn kinds(events: &[RunEvent]) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for event in events {
        let kind = event.kind();
        if matches!(kind, "text" | "reasoning") && kinds.last() == Some(&kind) {
            continue;
        }
        kinds.push(kind);
    }
    kinds
}

fn text_of(events: &[RunEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The `run_ended` line, which must be the last, and whose exit code is the process's.
#[track_caller]
fn run_ended(output: &Output, events: &[RunEvent]) -> RunEvent {
    let last = events.last().cloned().expect("a line");
    let RunEvent::RunEnded { exit_code, .. } = &last else {
        panic!("the last line is not run_ended\n{}", describe(output));
    };
    assert_eq!(
        Some(*exit_code),
        output.status.code(),
        "{}",
        describe(output)
    );
    assert_eq!(events.iter().filter(|e| e.kind() == "run_ended").count(), 1);
    last
}

#[track_caller]
fn assert_pod_started(events: &[RunEvent], profile_name: &str, resumed_expected: bool) {
    let RunEvent::PodStarted {
        format,
        version,
        profile,
        parent_id,
        resumed,
        ..
    } = &events[0]
    else {
        panic!("the first line is not pod_started: {events:?}");
    };
    assert_eq!(format, RUN_EVENTS_FORMAT);
    assert_eq!(*version, RUN_EVENTS_VERSION);
    assert_eq!(profile, profile_name);
    assert_eq!(parent_id, &None);
    assert_eq!(*resumed, resumed_expected);
}

fn run_with_stdin(sandbox: &Sandbox, args: &[&str], stdin: &str) -> Output {
    let mut child = sandbox
        .pods()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run_inputs(pod: &Path) -> Vec<String> {
    of_kind(&log_entries(pod), "run_started")
        .iter()
        .map(|e| e["input"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Wire shapes, one per scheme: a turn calling list_dir, then a text answer with usage

fn chat_usage(prompt: u64, completion: u64) -> String {
    chat::usage(prompt, completion, None)
}

fn chat_responses() -> Vec<Value> {
    let mut call = chat::chunk(json!({"role": "assistant", "content": ""}), None);
    call.push_str(&chat::chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "list_dir", "arguments": ""}}]}),
        None,
    ));
    call.push_str(&chat::chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":\".\"}"}}]}),
        None,
    ));
    call.push_str(&chat::chunk(json!({}), Some("tool_calls")));
    call.push_str(&chat_usage(40, 9));
    call.push_str("data: [DONE]\n\n");
    let mut text = chat::chunk(json!({"role": "assistant", "content": ""}), None);
    for word in ["All ", "done ", "here."] {
        text.push_str(&chat::chunk(json!({"content": word}), None));
    }
    text.push_str(&chat::chunk(json!({}), Some("stop")));
    text.push_str(&chat_usage(60, 3));
    text.push_str("data: [DONE]\n\n");
    vec![stream(call), stream(text)]
}

fn anthropic_start(input_tokens: u64) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_t", "type": "message",
        "role": "assistant", "model": "m", "content": [], "stop_reason": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
}

fn anthropic_responses() -> Vec<Value> {
    let call = vec![
        anthropic_start(40),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "tool_use", "id": "toolu_1", "name": "list_dir",
                                 "input": {}}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": "{\"path\":\".\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
               "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let mut text = vec![
        anthropic_start(60),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}}),
    ];
    for word in ["All ", "done ", "here."] {
        text.push(json!({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": word}}));
    }
    text.extend([
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
               "stop_sequence": null}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ]);
    vec![stream(sse(&call)), stream(sse(&text))]
}

fn responses_completed(input: u64, output: u64) -> Value {
    let mut response = responses::response_shell("completed");
    response["usage"] = json!({"input_tokens": input, "output_tokens": output,
                               "total_tokens": input + output});
    json!({"type": "response.completed", "response": response})
}

fn responses_responses() -> Vec<Value> {
    let mut call = responses::tool_call_events("call_1", "list_dir", json!({"path": "."}));
    call.push(responses_completed(40, 9));
    let text =
        responses::text_events_ending(&["All ", "done ", "here."], &[], responses_completed(60, 3));
    vec![stream(sse(&call)), stream(sse(&text))]
}

// ---------------------------------------------------------------------------------------------
// 1. run --json

#[test]
fn the_committed_fixture_is_what_the_event_type_writes_and_the_doc_names_its_kinds() {
    let output = Output {
        status: std::process::ExitStatus::default(),
        stdout: FIXTURE.as_bytes().to_vec(),
        stderr: Vec::new(),
    };
    let fixture = events(&output);
    assert_pod_started(&fixture, "demo", false);
    assert_eq!(fixture.last().unwrap().kind(), "run_ended");
    for event in &fixture {
        assert!(
            DOC.contains(&format!("`{}`", event.kind())),
            "docs/RUN-JSON.md does not describe `{}`",
            event.kind()
        );
    }
    // The demo shows every kind but retries and reasoning (covered below and by the unit test).
    for kind in [
        "tool_call_started",
        "tool_call_finished",
        "child_spawned",
        "child_exited",
        "usage",
        "text",
    ] {
        assert!(kinds(&fixture).contains(&kind), "{kind}");
    }
}

#[test]
fn run_json_over_the_demo_matches_the_fixture_kind_for_kind() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["run", "-p", "demo", "--json", "look around"]);
    assert_exit(&output, 0);
    let live = events(&output);
    let fixture: Vec<RunEvent> = FIXTURE
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(kinds(&live), kinds(&fixture), "{}", describe(&output));
    assert_pod_started(&live, "demo", false);
    let RunEvent::RunEnded {
        outcome,
        stop_reason,
        exit_code,
        usage,
        ..
    } = run_ended(&output, &live)
    else {
        unreachable!()
    };
    assert_eq!(outcome, "completed");
    assert_eq!(stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(exit_code, 0);
    assert_eq!(usage.unwrap().requests_recorded, 4);
    // The child that was spawned is the child that exited, and the pod it names exists.
    let spawned: Vec<&str> = live
        .iter()
        .filter_map(|e| match e {
            RunEvent::ChildSpawned { child_pod_id, .. } => Some(child_pod_id.as_str()),
            _ => None,
        })
        .collect();
    let exited: Vec<&str> = live
        .iter()
        .filter_map(|e| match e {
            RunEvent::ChildExited { child_pod_id, .. } => Some(child_pod_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(spawned, exited);
    assert!(sandbox.home().join("pods").join(spawned[0]).is_dir());
    // People's messages stay on stderr: the pod line, not the tool arrows.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("pod demo-"), "{stderr}");
    assert!(!stderr.contains("→ list_dir"), "{stderr}");
}

#[test]
fn run_json_over_each_scheme_writes_the_documented_kinds_in_order_with_usage() {
    let cases = [
        ("openai-responses", responses_responses()),
        ("openai-chat", chat_responses()),
        ("anthropic-messages", anthropic_responses()),
    ];
    for (scheme, responses) in cases {
        let sandbox = Sandbox::new();
        sandbox.write("work/seen.txt", "x");
        scheme_profile(&sandbox, "wire", scheme, "", responses);
        let output = sandbox.run(&["run", "-p", "wire", "--json", "look"]);
        assert_exit(&output, 0);
        let events = events(&output);
        assert_eq!(
            kinds(&events),
            [
                "pod_started",
                "run_started",
                "usage",
                "tool_call_started",
                "tool_call_finished",
                "text",
                "usage",
                "run_ended"
            ],
            "{scheme}: {}",
            describe(&output)
        );
        assert_eq!(text_of(&events), "All done here.", "{scheme}");
        let finished = events
            .iter()
            .find(|e| e.kind() == "tool_call_finished")
            .unwrap();
        let RunEvent::ToolCallFinished {
            tool,
            outcome,
            preview,
            side_effect,
            ..
        } = finished
        else {
            unreachable!()
        };
        assert_eq!(tool, "list_dir", "{scheme}");
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            "ok",
            "{scheme}: {finished:?}"
        );
        assert_eq!(serde_json::to_value(side_effect).unwrap(), "read_only");
        assert!(preview.contains("seen.txt"), "{scheme}: {preview}");
        let usage: Vec<(Option<u64>, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Usage {
                    input_tokens,
                    output_tokens,
                    ..
                } => Some((*input_tokens, *output_tokens)),
                _ => None,
            })
            .collect();
        assert_eq!(
            usage,
            [(Some(40), Some(9)), (Some(60), Some(3))],
            "{scheme}"
        );
        let RunEvent::RunEnded {
            outcome,
            usage,
            turns,
            ..
        } = run_ended(&output, &events)
        else {
            unreachable!()
        };
        assert_eq!(outcome, "completed", "{scheme}");
        assert_eq!(turns, Some(2));
        let usage = usage.unwrap();
        assert_eq!(usage.input_tokens, Some(100), "{scheme}");
        assert_eq!(usage.output_tokens, Some(12), "{scheme}");
    }
}

#[test]
fn a_failed_run_ends_with_its_error_class_and_exit_code_1() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["run", "-p", "demo-child", "--json", "review"]);
    assert_exit(&output, 1);
    let events = events(&output);
    assert_eq!(
        kinds(&events),
        ["pod_started", "run_started", "text", "usage", "run_ended"]
    );
    let RunEvent::RunEnded {
        outcome,
        error,
        exit_code,
        ..
    } = run_ended(&output, &events)
    else {
        unreachable!()
    };
    assert_eq!(outcome, "errored");
    assert_eq!(exit_code, 1);
    let error = error.unwrap();
    assert_eq!(error.class, "context_length_exceeded");
    assert_eq!(error.code.as_deref(), Some("context_length_exceeded"));
    assert!(error.message.contains("context window"), "{error:?}");
    // The person still reads the error on stderr.
    assert!(String::from_utf8_lossy(&output.stderr).contains("context_length_exceeded"));
}

#[test]
fn a_truncated_answer_ends_with_truncated_true_and_exit_code_1() {
    let sandbox = Sandbox::new();
    support::responses::profile(
        &sandbox,
        "cut",
        "",
        vec![support::responses::truncated_text_response(&[
            "half ", "an ",
        ])],
    );
    let output = sandbox.run(&["run", "-p", "cut", "--json", "go"]);
    assert_exit(&output, 1);
    let events = events(&output);
    let RunEvent::RunEnded {
        outcome,
        stop_reason,
        truncated,
        error,
        ..
    } = run_ended(&output, &events)
    else {
        unreachable!()
    };
    assert_eq!(outcome, "completed");
    assert_eq!(stop_reason.as_deref(), Some("max_tokens"));
    assert!(truncated);
    assert_eq!(error, None);
}

#[test]
fn text_is_batched_until_the_client_waits_on_the_network() {
    let sandbox = Sandbox::new();
    // Three events (created, item added, "one ") arrive, then the server pauses.
    support::responses::profile(
        &sandbox,
        "paused",
        "",
        vec![support::responses::text_response(
            &["one ", "two ", "three"],
            false,
            Some((3, 300)),
        )],
    );
    let output = sandbox.run(&["run", "-p", "paused", "--json", "go"]);
    assert_exit(&output, 0);
    let events = events(&output);
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    // One line per batch: what came before the pause, and the rest (which the server sends
    // in one write after it) — not one line per delta.
    assert_eq!(texts, ["one ", "two three"]);
}

#[test]
fn a_retry_is_an_event_before_the_answer() {
    let sandbox = Sandbox::new();
    let limited = json!({
        "status": 429,
        "headers": {"content-type": "application/json", "retry-after-ms": "20"},
        "body": json!({"error": {"message": "Rate limit reached", "type": "tokens",
                                 "code": "rate_limit_exceeded"}}).to_string(),
    });
    support::responses::profile(
        &sandbox,
        "limited",
        "",
        vec![
            limited,
            support::responses::text_response(&["second ", "try"], false, None),
        ],
    );
    let output = sandbox.run(&["run", "-p", "limited", "--json", "go"]);
    assert_exit(&output, 0);
    let events = events(&output);
    assert_eq!(
        kinds(&events),
        [
            "pod_started",
            "run_started",
            "retry_scheduled",
            "text",
            "usage",
            "run_ended"
        ]
    );
    let RunEvent::RetryScheduled { attempt, class, .. } = &events[2] else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    assert_eq!(class, "rate_limited");
}

#[test]
fn text_is_written_while_the_model_waits_and_a_stopped_run_ends_with_exit_130() {
    let sandbox = Sandbox::new();
    // Its stream pauses for a minute after "hold ": only `pods stop` ends the run.
    support::responses::holder_profile(&sandbox);
    let mut run = sandbox.spawn(&["run", "-p", "holder", "--name", "h", "--json", "go"], "h");
    let out = sandbox.root().join("h.out");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains(r#"{"kind":"text","text":"hold "}"#)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no text line while the stream waits: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_exit(&sandbox.run(&["stop", "h"]), 0);
    let output = run.finish(std::time::Duration::from_secs(30));
    assert_exit(&output, 130);
    let events = events(&output);
    let RunEvent::RunEnded {
        outcome, exit_code, ..
    } = run_ended(&output, &events)
    else {
        unreachable!()
    };
    assert_eq!(outcome, "interrupted");
    assert_eq!(exit_code, 130);
}

#[test]
fn a_call_of_an_unknown_tool_is_started_with_its_raw_arguments_and_rejected() {
    let sandbox = Sandbox::new();
    support::responses::profile(
        &sandbox,
        "typo",
        "",
        vec![
            support::responses::tool_call_response("call_x", "no_such_tool", json!({"a": 1})),
            support::responses::text_response(&["sorry"], false, None),
        ],
    );
    let output = sandbox.run(&["run", "-p", "typo", "--json", "go"]);
    assert_exit(&output, 0);
    let events = events(&output);
    let started = events
        .iter()
        .find(|e| e.kind() == "tool_call_started")
        .unwrap();
    let RunEvent::ToolCallStarted { input, tool, .. } = started else {
        unreachable!()
    };
    assert_eq!(tool, "no_such_tool");
    assert_eq!(input, &json!(r#"{"a":1}"#));
    let finished = events
        .iter()
        .find(|e| e.kind() == "tool_call_finished")
        .unwrap();
    let RunEvent::ToolCallFinished {
        outcome, preview, ..
    } = finished
    else {
        unreachable!()
    };
    assert_eq!(serde_json::to_value(outcome).unwrap(), "rejected");
    assert!(preview.contains("unknown tool `no_such_tool`"), "{preview}");
}

#[test]
fn resume_json_says_resumed_and_ends_like_run() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(&["run", "-p", "demo", "--name", "first", "hi"]),
        0,
    );
    let output = sandbox.run(&["resume", "first", "--json", "again"]);
    assert_exit(&output, 0);
    let events = events(&output);
    assert_pod_started(&events, "demo", true);
    run_ended(&output, &events);
}

#[test]
fn a_usage_error_writes_nothing_on_stdout() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["run", "-p", "no-such-profile", "--json", "hi"]);
    assert_exit(&output, 2);
    assert!(output.stdout.is_empty(), "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// 2. Input like other CLIs

#[test]
fn the_prompt_comes_from_stdin_when_piped_or_given_as_a_dash() {
    let sandbox = Sandbox::new();
    let piped = run_with_stdin(
        &sandbox,
        &["run", "-p", "demo", "--name", "piped"],
        "from a pipe\n",
    );
    assert_exit(&piped, 0);
    let dash = run_with_stdin(
        &sandbox,
        &["run", "-p", "demo", "--name", "dash", "-"],
        "from a dash",
    );
    assert_exit(&dash, 0);
    let mut inputs: Vec<String> = sandbox
        .pod_dirs()
        .iter()
        .filter(|dir| pod_info(dir)["parent_id"].is_null())
        .flat_map(|dir| run_inputs(dir))
        .collect();
    inputs.sort();
    assert_eq!(inputs, ["from a dash", "from a pipe\n"]);
}

#[test]
fn an_empty_prompt_is_refused_with_exit_2_and_no_pod() {
    let sandbox = Sandbox::new();
    for output in [
        sandbox.run(&["run", "-p", "demo", "   "]),
        run_with_stdin(&sandbox, &["run", "-p", "demo"], " \n\t\n"),
        run_with_stdin(&sandbox, &["run", "-p", "demo", "-"], ""),
    ] {
        assert_exit(&output, 2);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error: the prompt is empty"), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    assert!(sandbox.pod_dirs().is_empty());
}

#[test]
fn a_prompt_on_stdin_over_the_limit_is_refused() {
    let sandbox = Sandbox::new();
    let big = "x".repeat(4 * 1024 * 1024 + 1);
    let output = run_with_stdin(&sandbox, &["run", "-p", "demo", "-"], &big);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("longer than 4 MiB"), "{stderr}");
    assert!(sandbox.pod_dirs().is_empty());
}

#[test]
fn a_prompt_on_stdin_that_is_not_utf8_is_refused() {
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .pods()
        .args(["run", "-p", "demo", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\xff\xfe").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not UTF-8"));
}

#[test]
fn dash_m_sets_the_model_with_command_line_provenance() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "run",
        "-p",
        "demo",
        "--set",
        "model.model=from-set",
        "-m",
        "from-flag",
        "hi",
    ]);
    assert_exit(&output, 0);
    let pod = sandbox
        .pod_dirs()
        .into_iter()
        .find(|dir| pod_info(dir)["parent_id"].is_null())
        .unwrap();
    let manifest = std::fs::read_to_string(pod.join("manifest.toml")).unwrap();
    assert!(manifest.contains("model = \"from-flag\""), "{manifest}");
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(pod.join("provenance.json")).unwrap()).unwrap();
    let model = &provenance["model.model"];
    assert_eq!(model["kind"], "command_line", "{provenance:#}");
    assert_eq!(model["detail"], "--model from-flag");

    let explained = sandbox.run(&[
        "profile",
        "explain",
        "demo",
        "model.model",
        "-m",
        "from-flag",
        "--json",
    ]);
    assert_exit(&explained, 0);
    let explained = stdout_json(&explained);
    assert_eq!(explained["value"], "from-flag");
    assert_eq!(explained["provenance"]["kind"], "command_line");
    let text = sandbox.run(&["profile", "explain", "demo", "model.model", "--model", "x"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("model.model = \"x\" — set on the command line (--model x)"),
        "{text}"
    );
}

#[test]
fn resume_last_resumes_the_newest_pod_of_this_directory() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(&["run", "-p", "demo", "--name", "older", "one"]),
        0,
    );
    assert_exit(
        &sandbox.run(&["run", "-p", "demo", "--name", "newer", "two"]),
        0,
    );
    // A pod created elsewhere is not this directory's.
    let elsewhere = sandbox.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let output = sandbox
        .pods()
        .current_dir(&elsewhere)
        .args(["run", "-p", "demo", "--name", "other", "three"])
        .output()
        .unwrap();
    assert_exit(&output, 0);

    let output = sandbox.run(&["resume", "--last", "and then?"]);
    assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("pod newer ("), "{stderr}");
    let newer = sandbox
        .pod_dirs()
        .into_iter()
        .find(|dir| pod_info(dir)["name"] == "newer")
        .unwrap();
    assert_eq!(run_inputs(&newer), ["two", "and then?"]);

    let output = sandbox.run(&["resume", "--last", "-", "x"]);
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--last takes the place of POD"));
}

#[test]
fn resume_last_without_a_pod_here_says_so() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["resume", "--last"]);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: no pod was created from "),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `pods ls`"), "{stderr}");
    let output = sandbox.run(&["resume"]);
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no pod given"));
}

// ---------------------------------------------------------------------------------------------
// 4. Tokens per run

#[test]
fn resume_prints_the_runs_token_usage_and_show_counts_it() {
    let sandbox = Sandbox::new();
    scheme_profile(&sandbox, "wire", "openai-chat", "", chat_responses());
    assert_exit(
        &sandbox.run(&["run", "-p", "wire", "--name", "w", "look"]),
        0,
    );
    // The resumed run's replay server serves the cassette from its start again.
    let output = sandbox.run(&["resume", "w", "again"]);
    assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("usage: input 100 tokens (unknown cached), output 12"),
        "the resumed run's tokens: {stderr}"
    );
    let shown = stdout_json(&sandbox.run(&["show", "w", "--json"]));
    let runs = shown["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{shown:#}");
    for run in runs {
        assert_eq!(run["usage"]["input_tokens"], 100, "{shown:#}");
        assert_eq!(run["usage"]["output_tokens"], 12, "{shown:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Provider setup without guessing

#[test]
fn profile_show_and_explain_state_the_schemes_endpoint_and_key_variable() {
    let sandbox = Sandbox::new();
    let cases = [
        ("openai-chat", "https://api.openai.com/v1", "OPENAI_API_KEY"),
        (
            "openai-responses",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
        ),
        (
            "anthropic-messages",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
        ),
    ];
    for (scheme, url, key) in cases {
        sandbox.write(
            &format!("work/.pods/profiles/{scheme}.toml"),
            &format!("[model]\nscheme = \"{scheme}\"\nmodel = \"m\"\n"),
        );
        let shown = sandbox.run(&["profile", "show", scheme, "--json"]);
        assert_exit(&shown, 0);
        let shown = stdout_json(&shown);
        assert_eq!(shown["manifest"]["model"]["base_url"], url, "{shown:#}");
        assert_eq!(shown["manifest"]["model"]["api_key_env"], key);
        for field in ["model.base_url", "model.api_key_env"] {
            assert_eq!(
                shown["provenance"][field]["kind"], "scheme_default",
                "{field}"
            );
            assert_eq!(
                shown["provenance"][field]["detail"],
                format!("scheme default of {scheme}")
            );
        }
        let text = sandbox.run(&["profile", "show", scheme]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!(
                "base_url = \"{url}\"\n    # scheme_default: scheme default of {scheme}"
            )),
            "{text}"
        );
        assert!(!text.contains("base_url = (unset)"), "{text}");
        let explained = sandbox.run(&["profile", "explain", scheme, "model.api_key_env"]);
        assert_exit(&explained, 0);
        let explained = String::from_utf8_lossy(&explained.stdout);
        assert!(
            explained.starts_with(&format!(
                "model.api_key_env = \"{key}\" — scheme default of {scheme}"
            )),
            "{explained}"
        );
    }
}

#[test]
fn a_base_url_a_profile_sets_wins_over_the_scheme_default() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "work/.pods/profiles/local.toml",
        "[model]\nscheme = \"openai-chat\"\nmodel = \"llama3.2\"\nbase_url = \"http://localhost:11434/v1\"\napi_key_env = \"OLLAMA_API_KEY\"\n",
    );
    let explained = sandbox.run(&["profile", "explain", "local", "model.base_url", "--json"]);
    assert_exit(&explained, 0);
    let explained = stdout_json(&explained);
    assert_eq!(explained["value"], "http://localhost:11434/v1");
    assert_eq!(explained["provenance"]["kind"], "profile");
    let shown = stdout_json(&sandbox.run(&["profile", "show", "local", "--json"]));
    assert_eq!(shown["manifest"]["model"]["api_key_env"], "OLLAMA_API_KEY");
    assert_eq!(shown["provenance"]["model.api_key_env"]["kind"], "profile");
}

#[test]
fn a_replay_profile_has_no_scheme_default_to_state() {
    let sandbox = Sandbox::new();
    let shown = stdout_json(&sandbox.run(&["profile", "show", "demo", "--json"]));
    assert!(
        shown["manifest"]["model"]["base_url"].is_null(),
        "{shown:#}"
    );
    assert_ne!(
        shown["provenance"]["model.base_url"]["kind"],
        "scheme_default"
    );
}
