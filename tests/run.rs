//! Whole-system tests: `pods run` and friends with the real binary against the replay server
//! (loopback HTTP + SSE), reading back the session log and trace sidecar it leaves on disk.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::cassettes::{PROJECT_PROFILES, cassette, replay_profile_in, stream};
use support::logs::{
    entries_so_far, kinds, only_segment, only_trace, parse_json_lines, session_logs, trace_logs,
};
use support::{
    Background, Sandbox, assert_exit, chat, describe, home, id_of, pod_info, signal, stdout_json,
    wait_until, walk,
};

/// A streamed text answer, one delta per word, ending the turn.
fn text_stream(text: &str) -> String {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    chat::text_body(&words, "stop", None)
}

/// Write a cassette and a project profile `NAME` replaying it; extra TOML lines go into the
/// profile (e.g. a `[session]` section).
fn replay_profile(sandbox: &Sandbox, name: &str, responses: Vec<Value>, extra: &str) {
    replay_profile_in(
        sandbox,
        PROJECT_PROFILES,
        name,
        "test-model",
        &cassette("openai-chat", responses),
        &format!("[limits]\nmax_attempts = 3\n\n{extra}"),
    );
}

/// The session log entries of the pod's only segment, every line JSON.
fn log_entries(pod: &Path) -> Vec<Value> {
    parse_json_lines(&only_segment(pod))
}

/// The entries of the pod's only trace sidecar, every line JSON.
fn trace_entries(pod: &Path) -> Vec<Value> {
    parse_json_lines(&only_trace(pod))
}

#[test]
fn completed_run_with_a_tool_call_is_fully_recorded() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "remember the milk\n");
    replay_profile(
        &sandbox,
        "reader",
        vec![
            chat::tool_call(
                "Reading the notes.",
                "call_1",
                "read_file",
                r#"{"path":"notes.txt"}"#,
                None,
            ),
            stream(text_stream("The notes say to remember the milk.")),
        ],
        "",
    );
    let output = sandbox.run(&["run", "-p", "reader", "what do my notes say?"]);
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Reading the notes."),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("The notes say to remember the milk."),
        "{}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("read_file"),
        "tool call shown on stderr\n{}",
        describe(&output)
    );

    let pod = sandbox.only_pod();
    for file in ["pod.json", "manifest.toml", "provenance.json"] {
        assert!(pod.join(file).is_file(), "{file} missing");
    }
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(pod.join("pod.json")).unwrap()).unwrap();
    assert_eq!(info["state"], "stopped");
    assert_eq!(info["profile"], "reader");

    let log = log_entries(&pod);
    // The host may record the lifecycle action that ends the pod after its run; the run's own
    // record is what is checked here.
    let run_kinds: Vec<&str> = kinds(&log)
        .into_iter()
        .filter(|k| *k != "lifecycle_action")
        .collect();
    assert_eq!(
        run_kinds,
        vec![
            "segment_started",
            "run_started",
            "provider_request_started",
            "provider_request_finished",
            "assistant_message",
            "tool_decision",
            "tool_call_started",
            "tool_call_finished",
            "provider_request_started",
            "provider_request_finished",
            "assistant_message",
            "run_completed",
            "segment_closed",
        ]
    );
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
    assert_eq!(log[1]["input"], "what do my notes say?");
    assert_eq!(log[3]["stop_reason"]["reason"], "tool_calls");
    // Reads are allowed by the default `[permissions]`, and the log says so.
    assert_eq!(log[5]["decision"], "allowed");
    assert_eq!(log[5]["source"], "config");
    assert_eq!(log[5]["detail"], "permissions.read_only = \"allow\"");
    assert_eq!(log[6]["side_effect"], "read_only");
    assert_eq!(log[7]["outcome"], "ok");
    assert_eq!(log[7]["output"], "remember the milk\n");
    assert_eq!(log[11]["reason"], "end_turn");
    assert_eq!(log[11]["stop_reason"]["reason"], "end_turn");
    assert_eq!(log[11]["turns"], 2);
    assert!(
        log[0]["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // Tracing is off by default: no sidecar at all.
    assert!(trace_logs(&pod).is_empty());

    let ls = sandbox.run(&["ls", "--json"]);
    assert_exit(&ls, 0);
    let rows = stdout_json(&ls);
    assert_eq!(rows[0]["last_run"]["outcome"], "completed");
    assert_eq!(rows[0]["state"], "stopped");
}

#[test]
fn streamed_text_and_tool_lines_keep_their_order_on_one_terminal() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "remember the milk\n");
    replay_profile(
        &sandbox,
        "reader",
        vec![
            chat::tool_call(
                "Reading the notes.",
                "call_1",
                "read_file",
                r#"{"path":"notes.txt"}"#,
                None,
            ),
            stream(text_stream("The notes say to remember the milk.")),
        ],
        "",
    );
    // stdout and stderr into one file, as on a terminal: text is gathered per network read, so
    // it must be written out before any line on stderr that follows it.
    let out = sandbox.root().join("both.txt");
    let file = std::fs::File::create(&out).unwrap();
    let status = sandbox
        .pods()
        .args(["run", "-p", "reader", "what do my notes say?"])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    let both = std::fs::read_to_string(&out).unwrap();
    assert_eq!(status.code(), Some(0), "{both}");
    let at = |needle: &str| {
        both.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from:\n{both}"))
    };
    assert!(at("Reading the notes.") < at("→ read_file"), "{both}");
    assert!(at("→ read_file") < at("← read_file"), "{both}");
    assert!(
        at("← read_file") < at("The notes say to remember the milk."),
        "{both}"
    );
}

#[test]
fn text_is_on_stdout_while_the_stream_is_still_going() {
    let sandbox = Sandbox::new();
    // The role chunk and two words, then the stream stops for 30 s (within the idle timeout).
    let mut response = stream(text_stream("Hello there, world."));
    response["pause_after_events"] = json!({"events": 3, "ms": 30_000});
    replay_profile(&sandbox, "paused", vec![response], "");
    let run = sandbox.spawn(&["run", "-p", "paused", "greet me"], "paused");
    let out = sandbox.root().join("paused.out");
    // A safety deadline, not a timing assertion: text held back until the stream ends would
    // only show after the pause.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        if stdout.contains("Hello there, ") {
            assert!(!stdout.contains("world."), "{stdout}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the text before the pause never reached stdout: {stdout:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        support::process_running(run.pid()),
        "pods ended before the stream did"
    );
}

#[test]
fn a_tool_path_outside_the_scope_is_an_error_the_model_sees() {
    let sandbox = Sandbox::new();
    sandbox.write("secret.txt", "top secret\n");
    replay_profile(
        &sandbox,
        "escape",
        vec![
            chat::tool_call(
                "",
                "call_1",
                "read_file",
                r#"{"path":"../secret.txt"}"#,
                None,
            ),
            stream(text_stream("I may not read that.")),
        ],
        "",
    );
    let output = sandbox.run(&["run", "-p", "escape", "read ../secret.txt"]);
    assert_exit(&output, 0);
    let log = log_entries(&sandbox.only_pod());
    let finished = log
        .iter()
        .find(|e| e["kind"] == "tool_call_finished")
        .unwrap();
    assert_eq!(finished["outcome"], "error");
    assert!(
        finished["output"]
            .as_str()
            .unwrap()
            .contains("outside this pod's scope")
    );
    let all = serde_json::to_string(&log).unwrap();
    assert!(!all.contains("top secret"), "the outside file was read");
}

#[test]
fn mid_stream_context_length_exceeded_is_run_errored_with_the_trace_before_it() {
    let sandbox = Sandbox::new();
    let mut body = chat::chunk(json!({"role": "assistant", "content": "Partial "}), None);
    body.push_str(&chat::chunk(json!({"content": "answer "}), None));
    let error = json!({"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded"
    }});
    body.push_str(&format!("data: {error}\n\n"));
    replay_profile(
        &sandbox,
        "overflow",
        vec![stream(body)],
        "[session]\nrecord_event_trace = true\n",
    );
    let output = sandbox.run(&["run", "-p", "overflow", "summarize everything"]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("context_length_exceeded"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains(".trace.jsonl"),
        "names the trace\n{}",
        describe(&output)
    );

    let pod = sandbox.only_pod();
    let log = log_entries(&pod);
    let errored = log.iter().find(|e| e["kind"] == "run_errored").unwrap();
    assert_eq!(errored["error"]["class"], "context_length_exceeded");
    assert_eq!(errored["error"]["code"], "context_length_exceeded");
    assert_eq!(errored["phase"]["provider_progress_seen"], true);
    assert_eq!(errored["phase"]["visible_output_seen"], true);
    assert!(!log.iter().any(|e| e["kind"] == "run_completed"));
    // The partial output is on record too.
    let message = log
        .iter()
        .find(|e| e["kind"] == "assistant_message")
        .unwrap();
    assert_eq!(message["text"], "Partial answer ");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(pod.join("pod.json")).unwrap()).unwrap();
    assert_eq!(info["state"], "failed");

    let trace = trace_entries(&pod);
    let error_at = trace
        .iter()
        .position(|e| e["kind"] == "stream" && e["event"]["type"] == "error")
        .expect("error event in the trace");
    assert_eq!(trace[error_at]["event"]["class"], "context_length_exceeded");
    let texts: Vec<&str> = trace[..error_at]
        .iter()
        .filter(|e| e["event"]["type"] == "text_delta")
        .map(|e| e["event"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["Partial ", "answer "]);
    let markers: Vec<&str> = trace.iter().filter_map(|e| e["marker"].as_str()).collect();
    for marker in [
        "run_started",
        "request_built",
        "stream_open_ok",
        "first_event",
        "run_end",
    ] {
        assert!(
            markers.contains(&marker),
            "{marker} missing from {markers:?}"
        );
    }

    let errors = sandbox.run(&[
        "trace",
        pod.file_name().unwrap().to_str().unwrap(),
        "--errors",
    ]);
    assert_exit(&errors, 0);
    let shown = String::from_utf8_lossy(&errors.stdout);
    assert!(shown.contains("failed request"), "{}", describe(&errors));
    assert!(
        shown.contains("context_length_exceeded"),
        "{}",
        describe(&errors)
    );
    assert!(
        shown.contains("Partial answer"),
        "deltas coalesced before the error\n{}",
        describe(&errors)
    );
}

#[test]
fn rate_limited_then_success_leaves_retry_markers_in_the_trace() {
    let sandbox = Sandbox::new();
    let limited = json!({
        "status": 429,
        "headers": {"content-type": "application/json", "retry-after-ms": "20"},
        "body": json!({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}).to_string(),
    });
    replay_profile(
        &sandbox,
        "limited",
        vec![limited, stream(text_stream("Worked on the second try."))],
        "[session]\nrecord_event_trace = true\n",
    );
    let output = sandbox.run(&["run", "-p", "limited", "hello"]);
    assert_exit(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("Worked on the second try."));
    let pod = sandbox.only_pod();
    let trace = trace_entries(&pod);
    let retry = trace
        .iter()
        .find(|e| e["marker"] == "retry_scheduled")
        .expect("retry marker");
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["cause"]["class"], "rate_limited");
    let open_error = trace
        .iter()
        .find(|e| e["marker"] == "stream_open_error")
        .unwrap();
    assert_eq!(open_error["http_status"], 429);
    assert!(
        trace
            .iter()
            .any(|e| e["marker"] == "stream_open_ok" && e["attempt"] == 2)
    );
    let log = log_entries(&pod);
    let attempts: Vec<u64> = log
        .iter()
        .filter(|e| e["kind"] == "provider_request_started")
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2]);
    // The retry's entry says why: the class, status and Retry-After of the attempt before.
    let retry_of = &log
        .iter()
        .find(|e| e["kind"] == "provider_request_started" && e["attempt"] == 2)
        .unwrap()["retry_of"];
    assert_eq!(retry_of["class"], "rate_limited");
    assert_eq!(retry_of["http_status"], 429);
    assert_eq!(retry_of["retry_after_ms"], 20);
    assert!(retry_of["delay_ms"].is_u64(), "{retry_of}");
    let first = log
        .iter()
        .find(|e| e["kind"] == "provider_request_started")
        .unwrap();
    assert!(
        first.get("retry_of").is_none(),
        "a first attempt retries nothing"
    );
    let finished = log
        .iter()
        .find(|e| e["kind"] == "provider_request_finished")
        .unwrap();
    assert_eq!(finished["attempt"], 2);
    assert!(finished["time_to_first_chunk_ms"].is_u64(), "{finished}");
    assert!(log.iter().any(|e| e["kind"] == "run_completed"));
}

#[test]
fn tracing_off_writes_no_sidecar_and_trace_says_so() {
    let sandbox = Sandbox::new();
    replay_profile(
        &sandbox,
        "quiet",
        vec![stream(text_stream("Hi."))],
        "[session]\nrecord_event_trace = true\n",
    );
    let output = sandbox.run(&[
        "run",
        "-p",
        "quiet",
        "--set",
        "session.record_event_trace=false",
        "--name",
        "hush",
        "hello",
    ]);
    assert_exit(&output, 0);
    let pod = sandbox.only_pod();
    let sessions: Vec<PathBuf> = walk(&pod.join("sessions"));
    assert_eq!(sessions.len(), 1, "only the log: {sessions:?}");
    assert!(!sessions[0].to_string_lossy().contains(".trace."));
    let trace = sandbox.run(&["trace", "hush"]);
    assert_exit(&trace, 0);
    let stderr = String::from_utf8_lossy(&trace.stderr);
    assert!(
        stderr.contains("session.record_event_trace"),
        "{}",
        describe(&trace)
    );
    assert!(trace.stdout.is_empty());
}

#[test]
fn a_torn_final_log_line_is_reported_and_nothing_before_it_is_lost() {
    let sandbox = Sandbox::new();
    replay_profile(&sandbox, "torn", vec![stream(text_stream("All done."))], "");
    assert_exit(
        &sandbox.run(&["run", "-p", "torn", "--name", "t", "hello"]),
        0,
    );
    let pod = sandbox.only_pod();
    let log_path = session_logs(&pod).remove(0);
    let before = std::fs::read_to_string(&log_path).unwrap();
    let whole_lines = before.lines().count();
    // A crash in the middle of writing one more entry.
    let mut torn = before.clone();
    torn.push_str(r#"{"seq":99,"ts":"2026-01-01T00:00:00.000Z","kind":"run_sta"#);
    std::fs::write(&log_path, torn).unwrap();

    let show = sandbox.run(&["show", "t", "--json"]);
    assert_exit(&show, 0);
    let json = stdout_json(&show);
    let problems = json["segments"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = problems[0].as_str().unwrap();
    assert!(
        problem.contains(&format!("line {}", whole_lines + 1)),
        "{problem}"
    );
    assert!(problem.contains("torn"), "{problem}");
    assert_eq!(
        json["runs"][0]["outcome"], "completed",
        "the run before the tear is intact"
    );
    // A pod.json left at `running` by a process that no longer exists shows as crashed.
    let info_path = pod.join("pod.json");
    let mut info: Value =
        serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
    info["state"] = json!("running");
    info["pid"] = json!(u32::MAX - 1);
    std::fs::write(&info_path, info.to_string()).unwrap();
    let ls = stdout_json(&sandbox.run(&["ls", "--json"]));
    assert_eq!(ls[0]["state"], "crashed");
    let text = String::from_utf8_lossy(&sandbox.run(&["show", "t"]).stdout).into_owned();
    assert!(text.contains("!! line"), "{text}");
}

#[test]
fn the_api_key_never_reaches_disk_or_output() {
    const KEY: &str = "sk-test-9f3c1d7e5b2a4c6e8d0f1a3b5c7d9e1f";
    let sandbox = Sandbox::new();
    // The provider echoes the key back in an error body, as real providers do on a bad key.
    let unauthorized = json!({
        "status": 401,
        "headers": {"content-type": "application/json"},
        "body": json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
    });
    let output = run_keyed(&sandbox, vec![unauthorized], KEY);
    assert_exit(&output, 1);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("auth"),
        "{}",
        describe(&output)
    );
    let files = walk(&sandbox.home());
    let scanned = files.len();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "API key found in {}",
            path.display()
        );
    }
    assert!(
        scanned >= 5,
        "expected pod.json, manifest, provenance, log, trace; scanned {scanned}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(KEY));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(KEY));
}

#[test]
fn a_key_echoed_inside_the_stream_never_reaches_the_trace_log_or_export() {
    // No `sk-` prefix: only knowing the configured value can catch it.
    const KEY: &str = "pk9f3c1d7e5b2a4c6e8d0f1a3b5c7d9e1f";
    let sandbox = Sandbox::new();
    // A delta field the adapter does not read (becomes `unhandled`), a frame carrying the key in
    // an auth header echo, then an in-stream error that quotes the key.
    let mut body = chat::chunk(json!({"role": "assistant", "content": "Hello "}), None);
    body.push_str(&chat::chunk(
        json!({"audio": {"transcript": format!("key {KEY}")}}),
        None,
    ));
    body.push_str(&format!(
        "data: {}\n\n",
        json!({"error": {"message": format!("upstream rejected Authorization: Bearer {KEY}"), "type": "server_error", "code": "server_error"}})
    ));
    let output = run_keyed(&sandbox, vec![stream(body)], KEY);
    assert_exit(&output, 1);
    let pod = sandbox.only_pod();
    let trace = trace_entries(&pod);
    // The frames and the unhandled event were recorded, with the key taken out.
    let raw: Vec<&Value> = trace.iter().filter(|e| e["kind"] == "raw_sse").collect();
    assert!(raw.len() >= 3, "{trace:#?}");
    let unhandled = trace
        .iter()
        .find(|e| e["kind"] == "stream" && e["event"]["type"] == "unhandled")
        .unwrap_or_else(|| panic!("no unhandled entry: {trace:#?}"));
    assert!(
        unhandled["event"]["preview"]
            .as_str()
            .unwrap()
            .contains("[redacted]"),
        "{unhandled}"
    );
    let export = sandbox.run(&["export", pod.file_name().unwrap().to_str().unwrap()]);
    assert_exit(&export, 0);
    assert!(!String::from_utf8_lossy(&export.stdout).contains(KEY));
    for path in walk(&sandbox.home()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "API key found in {}",
            path.display()
        );
    }
    assert!(!String::from_utf8_lossy(&output.stdout).contains(KEY));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(KEY));
}

/// Run a traced (raw SSE too) replay pod `keyed` whose API key variable holds `key`.
fn run_keyed(sandbox: &Sandbox, responses: Vec<Value>, key: &str) -> std::process::Output {
    replay_profile(
        sandbox,
        "keyed",
        responses,
        "[session]\nrecord_event_trace = true\ntrace_raw_sse = true\n",
    );
    let profile = sandbox.work().join(".pods/profiles/keyed.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace(
            "[model]\n",
            "[model]\napi_key_env = \"TEST_PROVIDER_KEY\"\n",
        ),
    )
    .unwrap();
    sandbox
        .pods()
        .env("TEST_PROVIDER_KEY", key)
        .args(["run", "-p", "keyed", "hello"])
        .output()
        .unwrap()
}

#[test]
fn a_missing_api_key_is_a_config_error_naming_the_variable() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "work/.pods/profiles/real.toml",
        "[model]\nscheme = \"openai-chat\"\nmodel = \"gpt-test\"\napi_key_env = \"TEST_MISSING_KEY\"\n",
    );
    let output = sandbox
        .pods()
        .env_remove("TEST_MISSING_KEY")
        .args(["run", "-p", "real", "hello"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("TEST_MISSING_KEY"),
        "{}",
        describe(&output)
    );
    assert!(
        !sandbox.home().join("pods").exists(),
        "no pod is created for a run that cannot start"
    );
}

#[test]
fn ctrl_c_cancels_the_run_and_records_the_signal() {
    let sandbox = Sandbox::new();
    let body = text_stream("one two three four five six seven");
    let paused = json!({
        "status": 200,
        "headers": {"content-type": "text/event-stream"},
        "body": body,
        "pause_after_events": {"events": 3, "ms": 30000},
    });
    replay_profile(
        &sandbox,
        "slow",
        vec![paused],
        "[session]\nrecord_event_trace = true\n",
    );
    let child = sandbox
        .pods()
        .args(["run", "-p", "slow", "count slowly"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the pod has streamed some text (its trace shows deltas), then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started streaming"
        );
        let streamed = sandbox
            .home()
            .join("pods")
            .read_dir()
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|pod| {
                trace_logs(&pod.unwrap().path())
                    .iter()
                    .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("text_delta")))
            });
        if streamed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 130);
    let log = log_entries(&sandbox.only_pod());
    let interrupted = log.iter().find(|e| e["kind"] == "run_interrupted").unwrap();
    // SIGINT to `pods run` ends the run (and with children, the whole tree): a `cancel` of the
    // run or a `shutdown` of the pod, always with the signal as origin.
    let kind = interrupted["action"]["kind"].as_str().unwrap();
    assert!(kind == "cancel" || kind == "shutdown", "{kind}");
    assert_eq!(interrupted["action"]["origin"]["type"], "signal");
    assert_eq!(interrupted["action"]["origin"]["signal"], "SIGINT");
    assert_eq!(interrupted["phase"]["provider_progress_seen"], true);
    assert_eq!(interrupted["phase"]["tool_execution"], "not_started");
    assert_eq!(log.last().unwrap()["kind"], "segment_closed");
}

#[test]
fn resume_runs_again_in_a_new_segment_with_the_stored_manifest() {
    let sandbox = Sandbox::new();
    replay_profile(
        &sandbox,
        "again",
        vec![stream(text_stream("First answer."))],
        "[session]\nrecord_event_trace = true\n",
    );
    assert_exit(
        &sandbox.run(&["run", "-p", "again", "--name", "r", "first"]),
        0,
    );
    // The profile changes afterwards; resume uses the manifest stored in the pod.
    sandbox.write(
        "work/.pods/profiles/again.toml",
        "[model]\nscheme = \"openai-chat\"\n",
    );
    let output = sandbox.run(&["resume", "r", "second"]);
    assert_exit(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("First answer."));
    let pod = sandbox.only_pod();
    let logs: Vec<PathBuf> = session_logs(&pod);
    assert_eq!(logs.len(), 2, "one segment per process: {logs:?}");
    let inputs: Vec<String> = logs
        .iter()
        .flat_map(|l| parse_json_lines(l))
        .filter(|e| e["kind"] == "run_started")
        .map(|e| e["input"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inputs, vec!["first", "second"]);
    let show = stdout_json(&sandbox.run(&["show", "r", "--json"]));
    assert_eq!(show["runs"].as_array().unwrap().len(), 2);

    let json = sandbox.run(&["trace", "r", "--json"]);
    assert_exit(&json, 0);
    let entries = support::stdout_json_lines(&json);
    let run_ends = entries.iter().filter(|e| e["marker"] == "run_end").count();
    assert_eq!(run_ends, 2, "both segments' traces are passed through");

    // Following a pod that is no longer running prints what there is and returns.
    let follow = sandbox.run(&["trace", "r", "--follow"]);
    assert_exit(&follow, 0);
    assert!(String::from_utf8_lossy(&follow.stdout).contains("run_end completed"));
}

#[test]
fn resume_of_an_unknown_pod_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["resume", "nope", "hello"]);
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no pod matches `nope`"));
}

#[test]
fn doctor_names_key_variables_without_their_values() {
    const VALUE: &str = "sk-doctor-5e7f9a1b3c";
    let sandbox = Sandbox::new();
    sandbox.write(
        "work/.pods/profiles/real.toml",
        "[model]\nscheme = \"openai-chat\"\napi_key_env = \"TEST_DOCTOR_KEY\"\n",
    );
    let output = sandbox
        .pods()
        .env("TEST_DOCTOR_KEY", VALUE)
        .args(["doctor", "--json", "-p", "real", "-p", "demo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    let checks = json["checks"].as_array().unwrap();
    let key = checks
        .iter()
        .find(|c| c["check"] == "api key TEST_DOCTOR_KEY")
        .unwrap();
    assert!(key["detail"].as_str().unwrap().starts_with("set"), "{key}");
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "profile demo" && c["ok"] == true)
    );
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "home" && c["ok"] == true)
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(VALUE));

    sandbox.write(
        "work/.pods/profiles/broken.toml",
        "[model]\nschem = \"x\"\n",
    );
    let broken = sandbox.run(&["doctor"]);
    assert_exit(&broken, 2);
    assert!(String::from_utf8_lossy(&broken.stdout).contains("[BAD] profile broken"));
}

#[test]
fn a_session_log_write_failure_fails_the_run_loudly() {
    let sandbox = Sandbox::new();
    // One long answer: its `assistant_message` entry cannot fit under the file size limit.
    let long = "word ".repeat(4000);
    replay_profile(&sandbox, "big", vec![stream(text_stream(&long))], "");
    // `ulimit -f 16` (in 512-byte blocks: 8 KiB per file) with SIGXFSZ ignored, so a write past
    // the limit fails with EFBIG instead of killing the process.
    let command = sandbox.pods();
    let program = command.get_program().to_owned();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"")
        .arg(program)
        .args(["run", "-p", "big", "--name", "b", "say a lot"])
        .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(sandbox.work())
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not write session log"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains(".jsonl"),
        "names the log file\n{}",
        describe(&output)
    );
    assert!(
        stderr.contains("os error 27"),
        "names the cause (EFBIG)\n{}",
        describe(&output)
    );
    // Everything written before the failure is intact and readable.
    let show = sandbox.run(&["show", "b", "--json"]);
    assert_exit(&show, 0);
    let json = stdout_json(&show);
    assert_eq!(json["runs"][0]["input"], "say a lot");
    assert_eq!(json["runs"][0]["outcome"], "crashed");
}

// ---------------------------------------------------------------------------------------------
// Output that goes nowhere, stuck pods, failures before the pod starts, and cascades

#[test]
fn closed_stdout_and_stderr_neither_crash_nor_hang_the_run() {
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .pods()
        .args(["run", "-p", "demo", "hi"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads: both pipes are closed before the pod writes anything.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let mut proc = Background::adopt(child);
    let code = proc.wait(std::time::Duration::from_secs(60));
    let root = home::pods_with_parent(&sandbox.home(), None);
    assert_eq!(root.len(), 1, "{root:?}");
    let entries = entries_so_far(&root[0]);
    assert_eq!(code, Some(0), "{entries:#?}");
    let kinds = kinds(&entries);
    assert!(kinds.contains(&"run_completed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"segment_closed"), "{kinds:?}");
    assert_eq!(pod_info(&root[0])["state"], "stopped");
}

/// Whether a thread of process `pid` is blocked writing to its stdout (a pipe nobody reads).
fn blocked_writing_stdout(pid: u32) -> bool {
    // The `write` system call number.
    let write = if cfg!(target_arch = "aarch64") { 64 } else { 1 };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).any(|task| {
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        let mut fields = syscall.split_whitespace();
        let in_write = fields.next() == Some(&write.to_string()) && fields.next() == Some("0x1");
        let wchan = std::fs::read_to_string(task.path().join("wchan")).unwrap_or_default();
        in_write && wchan.contains("pipe_write")
    })
}

#[test]
fn a_second_signal_ends_a_pod_stuck_writing_its_output() {
    use support::responses::answering_profile;
    let sandbox = Sandbox::new();
    // More text than any pipe holds, streamed to a stdout nobody reads: the pod blocks in the
    // write and cannot notice the first signal.
    let word = format!("{} ", "x".repeat(128 * 1024));
    let words: Vec<&str> = std::iter::repeat_n(word.as_str(), 16).collect();
    answering_profile(&sandbox, "flood", &words);
    let child = sandbox
        .pods()
        .args(["run", "-p", "flood", "say a lot"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(sandbox.root().join("flood.err")).unwrap())
        .spawn()
        .unwrap();
    let mut proc = Background::adopt(child);
    let pid = proc.pid();
    wait_until(
        "the pod to block writing to stdout",
        std::time::Duration::from_secs(30),
        || blocked_writing_stdout(pid).then_some(()),
    );
    let pod = sandbox.root_pod().unwrap();
    signal(pid, "-INT");
    let first = wait_until(
        "the first SIGINT to be recorded",
        std::time::Duration::from_secs(30),
        || {
            entries_so_far(&pod).into_iter().find(|e| {
                e["kind"] == "lifecycle_action" && e["action"]["origin"]["type"] == "signal"
            })
        },
    );
    assert!(
        support::process_running(pid),
        "the pod is stuck, so the first signal cannot end it"
    );
    signal(pid, "-INT");
    let code = proc.wait(std::time::Duration::from_secs(30));
    let stderr = std::fs::read_to_string(sandbox.root().join("flood.err")).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("stopped without waiting"), "{stderr}");
    // What could be recorded is: both signals, the run's interruption by the first (the one
    // that governs it), the segment's close, and the pod's state.
    let entries = entries_so_far(&pod);
    let signals: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "lifecycle_action" && e["action"]["origin"]["type"] == "signal")
        .collect();
    assert_eq!(signals.len(), 2, "{entries:#?}");
    let run_id = entries.iter().find(|e| e["kind"] == "run_started").unwrap()["run_id"].clone();
    assert_eq!(signals[1]["active_run_id"], run_id);
    let interrupted = entries
        .iter()
        .find(|e| e["kind"] == "run_interrupted")
        .unwrap_or_else(|| panic!("{entries:#?}"));
    assert_eq!(interrupted["run_id"], run_id);
    assert_eq!(
        interrupted["action"]["action_id"],
        first["action"]["action_id"]
    );
    assert_eq!(interrupted["action"]["origin"]["signal"], "SIGINT");
    assert_eq!(interrupted["phase"]["visible_output_seen"], true);
    let last = entries.last().unwrap();
    assert_eq!(last["kind"], "segment_closed", "{last}");
    assert_eq!(last["reason"], "interrupted");
    let info = pod_info(&pod);
    assert_eq!(info["state"], "stopped");
    assert!(info.get("pid").is_none(), "{info}");
}

#[test]
fn a_pod_whose_control_socket_cannot_be_bound_leaves_no_directory() {
    let sandbox = Sandbox::new();
    replay_profile(&sandbox, "quick", vec![stream(text_stream("Hello."))], "");
    // The runtime directory's `pods` is a file, not a directory: the pod directory is made,
    // then binding its socket fails.
    let runtime = sandbox.root().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::write(runtime.join("pods"), "in the way").unwrap();
    let home = sandbox.home();
    let output = sandbox
        .pods()
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["run", "-p", "quick", "hi"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: it is not a directory",
            runtime.join("pods").display()
        )),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains("unset XDG_RUNTIME_DIR"),
        "{}",
        describe(&output)
    );
    let left: Vec<PathBuf> = std::fs::read_dir(home.join("pods"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a pod that never started leaves nothing behind: {left:?}"
    );
    assert!(
        !stderr.contains("pod quick-"),
        "no pod is announced that does not exist\n{}",
        describe(&output)
    );
}

#[test]
fn a_tree_wide_action_names_the_live_children_it_affects() {
    use support::responses::{holder_profile, profile, spawn_two_holders};
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "parent",
        "[agent]\nmax_turns = 8\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"holder\"]\nmax_depth = 2\nmax_children = 4\n",
        spawn_two_holders(),
    );
    holder_profile(&sandbox);
    let mut proc = sandbox.spawn(&["run", "-p", "parent", "build a tree"], "parent");
    let parent = wait_until("the parent pod", std::time::Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    let parent_id = id_of(&parent);
    // Both children are registered once the parent recorded their spawn.
    wait_until(
        "two spawned children",
        std::time::Duration::from_secs(30),
        || {
            let spawned = entries_so_far(&parent)
                .iter()
                .filter(|e| e["kind"] == "child_spawned")
                .count();
            (spawned == 2).then_some(())
        },
    );
    let kids = sandbox.children_of(&parent);
    assert_eq!(kids.len(), 2, "{kids:?}");
    let stop = sandbox.run(&["stop", &parent_id, "--tree"]);
    assert_exit(&stop, 0);
    let ended = proc.finish(std::time::Duration::from_secs(30));
    assert_exit(&ended, 130);

    let parent_log = entries_so_far(&parent);
    let action = parent_log
        .iter()
        .find(|e| e["kind"] == "lifecycle_action" && e["action"]["kind"] == "stop_tree")
        .unwrap_or_else(|| panic!("{parent_log:#?}"))["action"]
        .clone();
    let affects: Vec<String> = action["affects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(affects.first(), Some(&parent_id), "{action:#}");
    let mut below: Vec<String> = affects[1..].to_vec();
    below.sort();
    let mut expected: Vec<String> = kids.iter().map(|k| id_of(k)).collect();
    expected.sort();
    assert_eq!(
        below, expected,
        "the stop reaches both children: {action:#}"
    );
    // Each child's own (cascaded) action names the child, which has no children of its own.
    for kid in &kids {
        let entries = entries_so_far(kid);
        let cascaded = entries
            .iter()
            .find(|e| e["kind"] == "run_interrupted")
            .unwrap_or_else(|| panic!("{entries:#?}"));
        assert_eq!(cascaded["action"]["affects"], json!([id_of(kid)]));
        assert_eq!(
            cascaded["action"]["caused_by"]["action_id"],
            action["action_id"]
        );
    }
}

#[test]
fn listing_commands_into_a_closed_pipe_exit_cleanly() {
    let sandbox = Sandbox::new();
    assert_exit(&sandbox.run(&["run", "-p", "demo", "hi"]), 0);
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["trace", "demo-reviewer"],
        &["trace", "demo-reviewer", "--json"],
        &["profile", "list"],
        &["export", "demo-reviewer"],
    ] {
        // A pipe whose reader is gone before anything is written: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = sandbox
            .pods()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}
