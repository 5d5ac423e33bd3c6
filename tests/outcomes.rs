//! Whole-system tests of what the record says about a run's end: stop reasons (a truncated
//! answer is never a clean finish), token usage and unhandled stream events in the session log
//! with tracing off, rejected tool calls, and the small promises of the CLI (escaped names,
//! `trace --errors --json`, `doctor`, `stop`, name lookups, crash state, log colours). Real
//! `pods` processes against the loopback replay server, in each wire scheme's own shapes.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::cassettes::{scheme_profile, sse, stream};
use support::{
    Sandbox, assert_exit, chat, describe, id_of, log_entries, of_kind, responses, stderr_text,
    stdout_json,
};

// ---------------------------------------------------------------------------------------------
// Wire shapes

/// The final usage chunk of a Chat stream, with cached prompt and reasoning tokens.
fn chat_usage(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> String {
    chat::usage(
        prompt,
        completion,
        Some((
            json!({"cached_tokens": cached}),
            json!({"reasoning_tokens": reasoning}),
        )),
    )
}

/// A Chat turn that calls `tool` with the argument text `arguments`, exactly as given.
fn chat_tool_call(call_id: &str, tool: &str, arguments: &str, usage: Option<String>) -> Value {
    chat::tool_call("", call_id, tool, arguments, usage)
}

/// An Anthropic Messages text answer ending with `stop_reason`.
fn anthropic_text(words: &[&str], stop_reason: &str) -> Value {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_t", "type": "message",
            "role": "assistant", "model": "m", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 314,
                      "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}}),
    ];
    for word in words {
        events.push(json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": word}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": 7}}));
    events.push(json!({"type": "message_stop"}));
    stream(sse(&events))
}

/// An OpenAI Responses text answer; `end` is the terminal event (its `response` is filled in).
fn responses_text(words: &[&str], end: Value, extra: &[Value]) -> Value {
    stream(sse(&responses::text_events_ending(words, extra, end)))
}

// ---------------------------------------------------------------------------------------------
// Reading back

fn has_trace(pod: &Path) -> bool {
    std::fs::read_dir(pod.join("sessions")).unwrap().any(|e| {
        e.unwrap()
            .path()
            .to_string_lossy()
            .ends_with(".trace.jsonl")
    })
}

fn export_json(sandbox: &Sandbox, pod: &str) -> Value {
    let output = sandbox.run(&["export", pod, "--tree"]);
    assert_exit(&output, 0);
    stdout_json(&output)
}

fn export_markdown(sandbox: &Sandbox, pod: &str) -> String {
    let output = sandbox.run(&["export", pod, "--tree", "--format", "markdown"]);
    assert_exit(&output, 0);
    String::from_utf8(output.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Stop reasons

#[test]
fn a_truncated_answer_is_recorded_shown_and_exported_as_such_on_every_scheme() {
    let cases = [
        (
            "openai-chat",
            chat::text(&["The ", "answer ", "is"], "length", None),
        ),
        (
            "anthropic-messages",
            anthropic_text(&["The ", "answer ", "is"], "max_tokens"),
        ),
        (
            "openai-responses",
            responses_text(
                &["The ", "answer ", "is"],
                json!({"type": "response.incomplete", "response": {
                    "id": "resp_t", "object": "response", "status": "incomplete",
                    "incomplete_details": {"reason": "max_output_tokens"}, "output": []}}),
                &[],
            ),
        ),
    ];
    for (scheme, response) in cases {
        let sandbox = Sandbox::new();
        scheme_profile(&sandbox, "cut", scheme, "", vec![response]);
        let run = sandbox.run(&["run", "-p", "cut", "explain"]);
        // Exit 1: scripts tell a cut answer from a clean finish.
        assert_exit(&run, 1);
        let err = stderr_text(&run);
        assert!(
            err.contains("the answer was cut at the output-token limit")
                && err.contains("max_tokens"),
            "{scheme}: {}",
            describe(&run)
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            "The answer is",
            "{scheme}: the text that came is still shown"
        );
        let pod = sandbox.only_pod();
        let id = id_of(&pod);
        let entries = log_entries(&pod);
        let done = of_kind(&entries, "run_completed");
        assert_eq!(
            done.len(),
            1,
            "{scheme}: recorded as completed, with its stop reason"
        );
        assert_eq!(done[0]["stop_reason"]["reason"], "max_tokens", "{scheme}");
        assert_eq!(
            done[0]["reason"], "max_tokens",
            "{scheme}: older readers see it too"
        );
        let finished = of_kind(&entries, "provider_request_finished");
        assert_eq!(finished.len(), 1, "{scheme}");
        assert_eq!(finished[0]["stop_reason"]["reason"], "max_tokens");

        let show = stdout_json(&sandbox.run(&["show", &id, "--json"]));
        let shown = &show["runs"][0];
        assert_eq!(shown["outcome"], "completed", "{scheme}: {show:#}");
        assert_eq!(shown["stop_reason"], "max_tokens", "{scheme}: {show:#}");
        assert_eq!(shown["truncated"], true, "{scheme}");
        let text = String::from_utf8_lossy(&sandbox.run(&["show", &id]).stdout).into_owned();
        assert!(
            text.contains("completed (max_tokens, truncated)")
                && text.contains("the answer was cut at the output-token limit"),
            "{scheme}: {text}"
        );
        let ls = stdout_json(&sandbox.run(&["ls", "--json"]));
        assert_eq!(ls[0]["last_run"]["stop_reason"], "max_tokens", "{scheme}");
        assert_eq!(ls[0]["truncated"], true, "{scheme}");
        let table = String::from_utf8_lossy(&sandbox.run(&["ls"]).stdout).into_owned();
        assert!(
            table.contains("completed (max_tokens, truncated)"),
            "{scheme}: {table}"
        );

        let doc = export_json(&sandbox, &id);
        let exported = &doc["pods"][0]["runs"][0];
        assert_eq!(
            exported["stop_reason"], "max_tokens",
            "{scheme}: {exported:#}"
        );
        assert_eq!(exported["truncated"], true);
        assert_eq!(
            exported["stop_statement"],
            "the answer was cut at the output-token limit"
        );
        let markdown = export_markdown(&sandbox, &id);
        assert!(
            markdown.contains(
                "**truncated** (max_tokens): the answer was cut at the output-token limit"
            ),
            "{scheme}: {markdown}"
        );
    }
}

#[test]
fn a_content_filter_end_is_not_a_clean_finish_and_a_clean_end_is() {
    let sandbox = Sandbox::new();
    scheme_profile(
        &sandbox,
        "filtered",
        "openai-chat",
        "",
        vec![chat::text(&["Some"], "content_filter", None)],
    );
    scheme_profile(
        &sandbox,
        "clean",
        "openai-chat",
        "",
        vec![chat::text(&["All ", "done"], "stop", None)],
    );
    let filtered = sandbox.run(&["run", "-p", "filtered", "--name", "f", "go"]);
    assert_exit(&filtered, 1);
    assert!(
        stderr_text(&filtered).contains("content filter"),
        "{}",
        describe(&filtered)
    );
    let clean = sandbox.run(&["run", "-p", "clean", "--name", "c", "go"]);
    assert_exit(&clean, 0);
    assert!(
        !stderr_text(&clean).contains("incomplete"),
        "{}",
        describe(&clean)
    );

    let f = stdout_json(&sandbox.run(&["show", "f", "--json"]));
    assert_eq!(f["runs"][0]["stop_reason"], "content_filter", "{f:#}");
    assert_eq!(f["runs"][0]["truncated"], true);
    let c = stdout_json(&sandbox.run(&["show", "c", "--json"]));
    assert_eq!(c["runs"][0]["stop_reason"], "end_turn", "{c:#}");
    assert_eq!(c["runs"][0]["truncated"], false);
    let doc = export_json(&sandbox, c["id"].as_str().unwrap());
    assert_eq!(doc["pods"][0]["runs"][0]["stop_reason"], "end_turn");
    assert_eq!(doc["pods"][0]["runs"][0]["truncated"], false);
    assert_eq!(
        doc["pods"][0]["runs"][0]["missing_provenance"],
        json!([]),
        "a recorded stop reason is a known fact"
    );
}

#[test]
fn an_older_log_without_a_stop_reason_reads_as_unknown_never_as_end_turn() {
    let sandbox = Sandbox::new();
    scheme_profile(
        &sandbox,
        "clean",
        "openai-chat",
        "",
        vec![chat::text(&["hi"], "stop", None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "clean", "go"]), 0);
    let pod = sandbox.only_pod();
    // Rewrite the log as a build before stop reasons wrote it.
    let log = std::fs::read_dir(pod.join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    let old: Vec<String> = support::read_json_lines(&log)
        .into_iter()
        .filter(|e| e["kind"] != "provider_request_finished")
        .enumerate()
        .map(|(i, mut e)| {
            e["seq"] = json!(i + 1);
            if let Some(o) = e.as_object_mut() {
                o.remove("stop_reason");
            }
            e.to_string()
        })
        .collect();
    std::fs::write(&log, old.join("\n") + "\n").unwrap();
    let id = id_of(&pod);
    let show = stdout_json(&sandbox.run(&["show", &id, "--json"]));
    assert_eq!(show["runs"][0]["stop_reason"], "unknown", "{show:#}");
    assert_eq!(show["runs"][0]["truncated"], Value::Null);
    let text = String::from_utf8_lossy(&sandbox.run(&["ls"]).stdout).into_owned();
    assert!(text.contains("completed (stop reason unknown)"), "{text}");
    let doc = export_json(&sandbox, &id);
    let run = &doc["pods"][0]["runs"][0];
    assert_eq!(run["stop_reason"], "unknown", "{run:#}");
    assert_eq!(run["truncated"], Value::Null);
    assert!(
        run["missing_provenance"]
            .as_array()
            .unwrap()
            .contains(&json!("stop_reason")),
        "{run:#}"
    );
    assert_eq!(run["usage"], Value::Null, "no request's end is recorded");
}

#[test]
fn an_answer_that_is_all_reasoning_prints_a_notice() {
    let sandbox = Sandbox::new();
    let reasoning = stream(sse(&[
        json!({"type": "message_start", "message": {"id": "msg_t", "type": "message",
            "role": "assistant", "model": "m", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "thinking_delta", "thinking": "Let me think."}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "signature_delta", "signature": "sig"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
               "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ]));
    scheme_profile(
        &sandbox,
        "thinker",
        "anthropic-messages",
        "",
        vec![reasoning],
    );
    let run = sandbox.run(&["run", "-p", "thinker", "go"]);
    assert_exit(&run, 0);
    assert!(
        stderr_text(&run).contains("the answer is all reasoning and no text"),
        "{}",
        describe(&run)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Usage

#[test]
fn usage_is_recorded_per_request_and_summed_per_run_with_tracing_off() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "milk\n");
    scheme_profile(
        &sandbox,
        "counted",
        "openai-chat",
        "[agent]\ntools = [\"read_file\"]\n",
        vec![
            chat_tool_call(
                "call_1",
                "read_file",
                r#"{"path": "notes.txt"}"#,
                Some(chat_usage(100, 80, 10, 3)),
            ),
            chat::text(&["done"], "stop", Some(chat_usage(326, 314, 12, 0))),
        ],
    );
    let run = sandbox.run(&["run", "-p", "counted", "read it"]);
    assert_exit(&run, 0);
    assert!(
        stderr_text(&run).contains(
            "usage: input 426 tokens (394 cached), output 22, reasoning 3, over 2 request(s)"
        ),
        "{}",
        describe(&run)
    );
    let pod = sandbox.only_pod();
    assert!(!has_trace(&pod), "tracing is off");
    let entries = log_entries(&pod);
    let finished = of_kind(&entries, "provider_request_finished");
    assert_eq!(finished.len(), 2, "one per request");
    assert_eq!(
        finished[0]["usage"],
        json!({"input_tokens": 100, "output_tokens": 10, "cached_input_tokens": 80,
               "reasoning_tokens": 3})
    );
    assert_eq!(finished[1]["usage"]["input_tokens"], 326);
    assert_eq!(finished[0]["stop_reason"]["reason"], "tool_calls");

    let id = id_of(&pod);
    let expected = json!({"input_tokens": 426, "output_tokens": 22,
                          "cached_input_tokens": 394, "reasoning_tokens": 3});
    let show = stdout_json(&sandbox.run(&["show", &id, "--json"]));
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&show["runs"][0]["usage"][key], value, "{key}: {show:#}");
    }
    let text = String::from_utf8_lossy(&sandbox.run(&["show", &id]).stdout).into_owned();
    assert!(
        text.contains("usage  input 426 tokens (394 cached), output 22, reasoning 3"),
        "{text}"
    );
    let ls = stdout_json(&sandbox.run(&["ls", "--json"]));
    assert_eq!(ls[0]["last_run"]["usage"]["output_tokens"], 22, "{ls:#}");
    let doc = export_json(&sandbox, &id);
    let usage = &doc["pods"][0]["runs"][0]["usage"];
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&usage[key], value, "{key}: {usage:#}");
    }
    assert_eq!(usage["requests_started"], 2);
    assert_eq!(usage["requests_recorded"], 2);
    let markdown = export_markdown(&sandbox, &id);
    assert!(
        markdown.contains("in 426 (cached 394), out 22, reasoning 3"),
        "{markdown}"
    );
}

#[test]
fn usage_of_the_responses_and_anthropic_schemes_reaches_the_record() {
    let sandbox = Sandbox::new();
    scheme_profile(
        &sandbox,
        "resp",
        "openai-responses",
        "",
        vec![responses_text(
            &["hi"],
            responses::completed(json!({"input_tokens": 326, "output_tokens": 12,
                "input_tokens_details": {"cached_tokens": 314},
                "output_tokens_details": {"reasoning_tokens": 4}})),
            &[],
        )],
    );
    scheme_profile(
        &sandbox,
        "anth",
        "anthropic-messages",
        "",
        vec![anthropic_text(&["hi"], "end_turn")],
    );
    assert_exit(&sandbox.run(&["run", "-p", "resp", "--name", "r", "go"]), 0);
    assert_exit(&sandbox.run(&["run", "-p", "anth", "--name", "a", "go"]), 0);
    let r = stdout_json(&sandbox.run(&["show", "r", "--json"]));
    let usage = &r["runs"][0]["usage"];
    assert_eq!(usage["input_tokens"], 326, "{usage:#}");
    assert_eq!(usage["cached_input_tokens"], 314);
    assert_eq!(usage["output_tokens"], 12);
    assert_eq!(usage["reasoning_tokens"], 4);
    let a = stdout_json(&sandbox.run(&["show", "a", "--json"]));
    let usage = &a["runs"][0]["usage"];
    // The last usage of the stream wins field by field: output from `message_delta`, cached
    // input from `message_start`.
    assert_eq!(usage["output_tokens"], 7, "{usage:#}");
    assert_eq!(usage["cached_input_tokens"], 314);
    assert_eq!(usage["requests_with_usage"], 1);
    let doc = export_json(&sandbox, a["id"].as_str().unwrap());
    assert_eq!(doc["pods"][0]["runs"][0]["usage"]["output_tokens"], 7);
}

// ---------------------------------------------------------------------------------------------
// 3. Unhandled events with tracing off

#[test]
fn unhandled_stream_events_are_counted_in_the_log_with_tracing_off() {
    let sandbox = Sandbox::new();
    let odd = json!({"type": "response.vendor_heartbeat", "beat": 1});
    scheme_profile(
        &sandbox,
        "odd",
        "openai-responses",
        "",
        vec![responses_text(
            &["hi"],
            responses::completed(json!({"input_tokens": 3, "output_tokens": 1})),
            &[odd.clone(), odd],
        )],
    );
    let run = sandbox.run(&["run", "-p", "odd", "go"]);
    assert_exit(&run, 0);
    let err = stderr_text(&run);
    assert!(
        err.contains("response.vendor_heartbeat ×2") && err.contains("session.record_event_trace"),
        "{}",
        describe(&run)
    );
    let pod = sandbox.only_pod();
    assert!(!has_trace(&pod));
    let entries = log_entries(&pod);
    let finished = of_kind(&entries, "provider_request_finished");
    assert_eq!(
        finished[0]["unhandled"],
        json!({"response.vendor_heartbeat": 2}),
        "{:#?}",
        finished
    );
    let id = id_of(&pod);
    let text = String::from_utf8_lossy(&sandbox.run(&["show", &id]).stdout).into_owned();
    assert!(
        text.contains("2 unhandled stream event(s): response.vendor_heartbeat ×2")
            && text.contains("tracing was off")
            && text.contains("session.record_event_trace"),
        "{text}"
    );
    let doc = export_json(&sandbox, &id);
    assert_eq!(
        doc["pods"][0]["runs"][0]["unhandled_events"],
        json!({"response.vendor_heartbeat": 2})
    );
    let markdown = export_markdown(&sandbox, &id);
    assert!(
        markdown.contains("unhandled stream events: response.vendor_heartbeat ×2")
            && markdown.contains("session.record_event_trace"),
        "{markdown}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Tool calls that cannot run

#[test]
fn a_write_file_call_with_unparseable_arguments_never_counts_as_started() {
    let sandbox = Sandbox::new();
    let failure = json!({"status": 400, "headers": {"content-type": "application/json"},
        "body": json!({"error": {"message": "bad request", "type": "invalid_request_error",
                                 "code": null}}).to_string()});
    scheme_profile(
        &sandbox,
        "writer",
        "openai-chat",
        "[agent]\ntools = [\"write_file\"]\n\n[scope]\nallow = [\".\"]\n",
        vec![
            chat_tool_call(
                "call_w",
                "write_file",
                r#"{"path": "out.txt", "content": "x"#,
                None,
            ),
            failure,
        ],
    );
    let run = sandbox.run(&["run", "-p", "writer", "write it"]);
    assert_exit(&run, 1);
    assert!(
        stderr_text(&run).contains("← write_file: error: the arguments are not valid JSON"),
        "{}",
        describe(&run)
    );
    assert!(!sandbox.work().join("out.txt").exists());
    let pod = sandbox.only_pod();
    let entries = log_entries(&pod);
    assert!(
        of_kind(&entries, "tool_call_started").is_empty(),
        "the call never started"
    );
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["outcome"], "rejected");
    // The request that was sent back carries the arguments exactly as received.
    let message = of_kind(&entries, "assistant_message");
    assert_eq!(
        message[0]["tool_calls"][0]["arguments"],
        r#"{"path": "out.txt", "content": "x"#
    );
    let errored = of_kind(&entries, "run_errored");
    assert_eq!(errored[0]["phase"]["side_effects_started"], json!([]));
    assert_eq!(errored[0]["phase"]["tool_execution"], "not_started");

    let id = id_of(&pod);
    let doc = export_json(&sandbox, &id);
    let run = &doc["pods"][0]["runs"][0];
    assert_eq!(run["phase"]["side_effects_started"], json!([]), "{run:#}");
    assert_eq!(run["retry_safety"]["verdict"], "safe", "{run:#}");
    assert_eq!(run["tool_calls_started"], 0);
    assert_eq!(run["tool_calls_rejected"], 1);
    let show = String::from_utf8_lossy(&sandbox.run(&["show", &id]).stdout).into_owned();
    assert!(show.contains("0 tool call(s) (1 rejected)"), "{show}");
}

// ---------------------------------------------------------------------------------------------
// 5. The CLI's small promises

#[test]
fn trace_errors_json_prints_only_the_failed_requests() {
    let sandbox = Sandbox::new();
    let mut failing = chat::chunk(json!({"role": "assistant", "content": "Hal"}), None);
    failing.push_str(&format!(
        "data: {}\n\n",
        json!({"error": {"message": "too long", "type": "invalid_request_error",
                         "code": "context_length_exceeded"}})
    ));
    scheme_profile(
        &sandbox,
        "flaky",
        "openai-chat",
        "[agent]\ntools = [\"list_dir\"]\n\n[session]\nrecord_event_trace = true\n",
        vec![
            chat_tool_call("call_l", "list_dir", r#"{"path": "."}"#, None),
            stream(failing),
        ],
    );
    let run = sandbox.run(&["run", "-p", "flaky", "go"]);
    assert_exit(&run, 1);
    let id = id_of(&sandbox.only_pod());
    let all = support::stdout_json_lines(&sandbox.run(&["trace", &id, "--json"]));
    let errors_out = sandbox.run(&["trace", &id, "--errors", "--json"]);
    assert_exit(&errors_out, 0);
    let errors = support::stdout_json_lines(&errors_out);
    assert!(
        !errors.is_empty() && errors.len() < all.len(),
        "{errors:#?}"
    );
    // The failed request's entries and run-level markers; nothing of the first request.
    assert!(
        errors
            .iter()
            .all(|e| e["turn"] == 2 || e.get("turn").is_none()),
        "only the failed request's entries: {errors:#?}"
    );
    assert!(all.iter().any(|e| e["turn"] == 1), "{all:#?}");
    let last = errors.last().unwrap();
    assert_eq!(last["event"]["type"], "error", "{last:#}");
    // `--follow` shows every new entry: with `--errors` it would not keep that promise.
    assert_exit(&sandbox.run(&["trace", &id, "--errors", "--follow"]), 2);
}

#[test]
fn doctor_fails_for_an_unset_key_variable_and_passes_once_it_is_set() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "work/.pods/profiles/real.toml",
        "[model]\nscheme = \"openai-chat\"\napi_key_env = \"TEST_DOCTOR_UNSET_KEY\"\n",
    );
    let unset = sandbox
        .pods()
        .env_remove("TEST_DOCTOR_UNSET_KEY")
        .args(["doctor", "-p", "real"])
        .output()
        .unwrap();
    assert_exit(&unset, 2);
    let text = String::from_utf8_lossy(&unset.stdout).into_owned();
    assert!(
        text.contains("[BAD] api key TEST_DOCTOR_UNSET_KEY: not set: profile(s) real cannot run"),
        "{}",
        describe(&unset)
    );
    let set = sandbox
        .pods()
        .env("TEST_DOCTOR_UNSET_KEY", "sk-doctor-value-123456")
        .args(["doctor", "-p", "real", "--json"])
        .output()
        .unwrap();
    assert_exit(&set, 0);
    let json = stdout_json(&set);
    assert_eq!(json["ok"], true, "{json:#}");
    let unknown = sandbox.run(&["doctor", "-p", "nope"]);
    assert_exit(&unknown, 2);
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("[BAD] profile nope"));
}

#[test]
fn rust_log_output_into_a_pipe_has_no_colour() {
    let sandbox = Sandbox::new();
    for no_color in [None, Some("1")] {
        let mut command = sandbox.pods();
        command
            .env("RUST_LOG", "trace")
            .args(["run", "-p", "demo", "hi"]);
        if let Some(v) = no_color {
            command.env("NO_COLOR", v);
        }
        let output = command.output().unwrap();
        assert_exit(&output, 0);
        let err = stderr_text(&output);
        assert!(
            err.contains("TRACE") || err.contains("DEBUG"),
            "RUST_LOG=trace logs something: {err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "no ANSI escapes in a pipe: {err:?}"
        );
    }
}

#[test]
fn stopping_a_pod_that_is_not_running_exits_1_saying_so() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(&["run", "-p", "demo", "--name", "done", "hi"]),
        0,
    );
    let stop = sandbox.run(&["stop", "done"]);
    assert_exit(&stop, 1);
    assert!(
        stderr_text(&stop).contains("is not running (state stopped): there is nothing to stop"),
        "{}",
        describe(&stop)
    );
    let unknown = sandbox.run(&["stop", "nobody"]);
    assert_exit(&unknown, 2);
}

#[test]
fn the_readme_tour_works_after_two_demo_runs_in_one_home() {
    let sandbox = Sandbox::new();
    for _ in 0..2 {
        let run = sandbox.run_within(
            &["run", "-p", "demo", "look around"],
            Duration::from_secs(60),
        );
        assert_exit(&run, 0);
    }
    let listed = stdout_json(&sandbox.run(&["ls", "--json"]));
    let mut reviewers: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "demo-reviewer")
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reviewers.len(), 2, "{listed:#}");
    reviewers.sort();
    let trace = sandbox.run(&["trace", "demo-reviewer", "--errors"]);
    assert_exit(&trace, 0);
    assert!(
        String::from_utf8_lossy(&trace.stdout).contains("== failed request"),
        "{}",
        describe(&trace)
    );
    // The newest pod with the name wins.
    let show = stdout_json(&sandbox.run(&["show", "demo-reviewer", "--json"]));
    assert_eq!(show["id"], reviewers[1].as_str());
}

#[test]
fn after_kill_9_ls_and_export_both_say_crashed() {
    let sandbox = Sandbox::new();
    let paused = responses_text(
        &["one ", "two ", "three ", "four"],
        responses::completed(json!({"input_tokens": 1, "output_tokens": 1})),
        &[],
    );
    let mut paused = paused;
    paused["pause_after_events"] = json!({"events": 3, "ms": 60_000});
    scheme_profile(&sandbox, "slow", "openai-responses", "", vec![paused]);
    let mut run = sandbox.spawn(&["run", "-p", "slow", "--name", "slow", "go"], "slow");
    let pid = run.pid();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let entries = sandbox
            .home()
            .join("pods")
            .read_dir()
            .ok()
            .and_then(|mut d| d.next())
            .map(|d| log_entries(&d.unwrap().path()))
            .unwrap_or_default();
        if entries
            .iter()
            .any(|e| e["kind"] == "provider_request_started")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = run.finish(Duration::from_secs(10));
    let listed = stdout_json(&sandbox.run(&["ls", "--json"]));
    assert_eq!(listed[0]["state"], "crashed", "{listed:#}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let doc = export_json(&sandbox, &id);
    assert_eq!(doc["pods"][0]["state"], "crashed", "{:#}", doc["pods"][0]);
    assert_eq!(doc["pods"][0]["recorded_state"], "running");
    assert_eq!(doc["pods"][0]["runs"][0]["outcome"], "crashed");
    let markdown = export_markdown(&sandbox, &id);
    assert!(
        markdown.contains("(profile slow, crashed, 1 runs)"),
        "{markdown}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Names cannot inject

#[test]
fn a_model_chosen_child_name_with_escape_sequences_is_escaped_everywhere() {
    let sandbox = Sandbox::new();
    let evil = "ev\u{1b}]0;pwned\u{7}il\u{1b}[2J\u{1b}[31m";
    scheme_profile(
        &sandbox,
        "quick",
        "openai-responses",
        "[agent]\ntools = []\n",
        vec![responses_text(
            &["ok"],
            responses::completed(json!({"input_tokens": 1, "output_tokens": 1})),
            &[],
        )],
    );
    scheme_profile(
        &sandbox,
        "boss",
        "openai-responses",
        "[agent]\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"quick\"]\n\n[session]\nrecord_event_trace = true\n",
        vec![
            responses::tool_call_response(
                "call_s",
                "spawn_pod",
                json!({"profile": "quick", "task": "say ok", "name": evil}),
            ),
            responses::tool_call_response("call_w", "wait_pod", json!({"pod_id": evil})),
            responses_text(
                &["done"],
                responses::completed(json!({"input_tokens": 1, "output_tokens": 1})),
                &[],
            ),
        ],
    );
    let run = sandbox.run_within(
        &["run", "-p", "boss", "--name", "boss", "go"],
        Duration::from_secs(60),
    );
    assert_exit(&run, 0);
    let listed = stdout_json(&sandbox.run(&["ls", "--json"]));
    let child = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "quick")
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert_eq!(child["name"], evil, "JSON keeps the name as it is");
    let child_id = child["id"].as_str().unwrap().to_owned();
    let boss = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "boss")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let outputs = [
        ("run", run.stderr.clone()),
        ("ls", sandbox.run(&["ls"]).stdout),
        ("show", sandbox.run(&["show", &child_id]).stdout),
        ("trace", sandbox.run(&["trace", &boss]).stdout),
        (
            "export markdown",
            export_markdown(&sandbox, &boss).into_bytes(),
        ),
    ];
    for (what, bytes) in outputs {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what}: {text:?}"
        );
    }
    let ls = String::from_utf8_lossy(&sandbox.run(&["ls"]).stdout).into_owned();
    assert!(ls.contains("ev\\u{1b}]0;pwned\\u{7}il\\u{1b}[2J"), "{ls}");
    let show = String::from_utf8_lossy(&sandbox.run(&["show", &child_id]).stdout).into_owned();
    assert!(show.contains("ev\\u{1b}]0;pwned"), "{show}");
    let markdown = export_markdown(&sandbox, &boss);
    assert!(markdown.contains("ev\\u{1b}]0;pwned"), "{markdown}");
}

// ---------------------------------------------------------------------------------------------
// Real servers' deviations, through a whole run

fn provider_fixture(rel: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../provider/tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn parallel_calls_keyed_by_item_id_run_apart_and_the_pod_goes_on_and_resumes() {
    let sandbox = Sandbox::new();
    sandbox.write("work/in.txt", "the input\n");
    // llama.cpp's llama-server: two parallel calls with no `output_index`, the second one's
    // done item carrying empty arguments (its deltas hold them).
    let calls = stream(provider_fixture(
        "synthetic/openai-responses/compat-llamacpp-parallel-calls-item-id.sse",
    ));
    scheme_profile(
        &sandbox,
        "llama",
        "openai-responses",
        "[agent]\ntools = [\"read_file\", \"write_file\"]\n\n[scope]\nallow = [\".\"]\n",
        vec![
            calls,
            responses_text(&["both ", "done"], responses::completed(json!(null)), &[]),
        ],
    );
    let run = sandbox.run(&["run", "-p", "llama", "read and write"]);
    assert_exit(&run, 0);
    let pod = sandbox.only_pod();
    let entries = log_entries(&pod);
    // Two calls, each with its own arguments, each run with them.
    let message = of_kind(&entries, "assistant_message");
    let sent: Vec<(String, String)> = message[0]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["tool"].as_str().unwrap().to_owned(),
                c["arguments"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("read_file".to_owned(), r#"{"path":"in.txt"}"#.to_owned()),
            (
                "write_file".to_owned(),
                r#"{"path":"out.txt","text":"hi"}"#.to_owned()
            ),
        ],
        "{message:#?}"
    );
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished.len(), 2, "{finished:#?}");
    assert_eq!(finished[0]["output"], "the input\n");
    // The next request went out and the run ended cleanly; the history stays sendable.
    let completed = of_kind(&entries, "run_completed");
    assert_eq!(completed[0]["text"], "both done");
    // Resumed, the pod sends the whole history (both calls and their results) again; the
    // replay server serves its cassette from the top, so the same two calls run once more.
    let resumed = sandbox.run(&["resume", &id_of(&pod), "once more"]);
    assert_exit(&resumed, 0);
    let entries = log_entries(&pod);
    assert_eq!(of_kind(&entries, "run_completed").len(), 2, "{entries:#?}");
    assert_eq!(of_kind(&entries, "tool_call_finished").len(), 4);
}

#[test]
fn a_responses_completed_event_with_status_incomplete_is_a_truncated_run() {
    let sandbox = Sandbox::new();
    scheme_profile(
        &sandbox,
        "cut",
        "openai-responses",
        "[agent]\ntools = []\n",
        vec![stream(provider_fixture(
            "synthetic/openai-responses/completed-status-incomplete-max-output.sse",
        ))],
    );
    let run = sandbox.run(&["run", "-p", "cut", "say a lot"]);
    assert_exit(&run, 1);
    assert!(
        stderr_text(&run).contains("cut at the output-token limit"),
        "{}",
        describe(&run)
    );
    let pod = sandbox.only_pod();
    let entries = log_entries(&pod);
    let completed = of_kind(&entries, "run_completed");
    assert_eq!(completed[0]["stop_reason"]["reason"], "max_tokens");
    let doc = export_json(&sandbox, &id_of(&pod));
    assert_eq!(doc["pods"][0]["runs"][0]["truncated"], true, "{doc:#}");
}
