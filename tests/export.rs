//! Whole-system tests: `pods export` over pod homes made by real `pods` processes (replayed
//! providers on loopback, real child processes, real signals), checked fact by fact. Every pod
//! process started here is killed and reaped by a guard.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use support::control::{control_request, wait_streaming};
use support::live::{start_solo, start_tree};
use support::logs::{entries_so_far, session_logs};
use support::{
    Background, Sandbox, assert_exit, describe, home, id_of, pod_info, signal, stdout_json,
    wait_until,
};

// ---------------------------------------------------------------------------------------------
// Cassettes (OpenAI Responses wire format) and profiles

use support::responses::{answering_profile, profile, tool_call_response};

/// A streamed text answer; `fail` ends it with a context-length `response.failed`; `pause`
/// holds the stream after that many events (for a minute, longer than any test waits).
fn text_response(words: &[&str], fail: bool, pause: Option<usize>) -> Value {
    support::responses::text_response(words, fail, pause.map(|after| (after, 60_000)))
}

const PARENT_TOOLS: &str = r#"["spawn_pod", "wait_pod", "send_to_pod", "stop_pod", "list_pods"]"#;

// ---------------------------------------------------------------------------------------------
// Running pods and their logs

/// The kind of every entry in `dir`'s logs so far.
fn log_kinds(dir: &Path) -> Vec<String> {
    entries_so_far(dir)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A pod whose one run streams `words`, pausing after `pause` events.
fn holding_pod(
    sandbox: &Sandbox,
    words: &[&str],
    pause: usize,
    prompt: &str,
) -> (Background, PathBuf) {
    profile(
        sandbox,
        "solo",
        "[agent]\ntools = []\n",
        vec![text_response(words, false, Some(pause))],
    );
    start_solo(sandbox, prompt)
}

/// A parent that spawns two holding children and waits on the first.
fn tree(sandbox: &Sandbox) -> (Background, PathBuf, Vec<PathBuf>) {
    profile(
        sandbox,
        "parent",
        &format!(
            "[agent]\nmax_turns = 8\ntools = {PARENT_TOOLS}\n\n[spawn]\nallowed_profiles = [\"holder\"]\nmax_depth = 2\nmax_children = 4\n"
        ),
        support::responses::spawn_two_holders(),
    );
    support::responses::holder_profile(sandbox);
    start_tree(sandbox, sandbox.pods(), &sandbox.home())
}

// ---------------------------------------------------------------------------------------------
// Reading the export

/// `pods export ARGS…` as JSON (exit 0 asserted).
fn export_json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut full = vec!["export"];
    full.extend_from_slice(args);
    let output = sandbox.run(&full);
    assert_exit(&output, 0);
    stdout_json(&output)
}

fn runs(doc: &Value) -> Vec<&Value> {
    doc["pods"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["runs"].as_array().unwrap())
        .collect()
}

fn runs_of<'a>(doc: &'a Value, pod_id: &str) -> Vec<&'a Value> {
    runs(doc)
        .into_iter()
        .filter(|r| r["pod_id"] == json!(pod_id))
        .collect()
}

fn incident_of<'a>(doc: &'a Value, run_id: &Value) -> &'a Value {
    doc["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| &i["run_id"] == run_id)
        .unwrap_or_else(|| panic!("no incident for {run_id}: {doc:#}"))
}

fn link_types(incident: &Value) -> Vec<&str> {
    incident["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["link"].as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Outcomes

#[test]
fn completed_run_exports_as_completed_with_progress_only_on_stderr() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["Hello ", "there."]);
    let run = sandbox.run(&["run", "-p", "solo", "greet me"]);
    assert_exit(&run, 0);
    let dir = sandbox.root_pod().unwrap();
    let output = sandbox.run(&["export", &id_of(&dir)]);
    assert_exit(&output, 0);
    let doc = stdout_json(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("exporting 1 pod"),
        "{}",
        describe(&output)
    );
    assert_eq!(doc["format"], "pods.session-export");
    assert_eq!(doc["schema_version"], 4);
    assert_eq!(doc["tool"]["name"], "pods");
    let runs = runs(&doc);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "completed");
    assert_eq!(runs[0]["input"], "greet me");
    assert_eq!(runs[0]["output"], "Hello there.");
    assert_eq!(doc["incidents"], json!([]));
    let integrity = &doc["integrity"][0];
    assert_eq!(integrity["torn_final_line"], false);
    assert_eq!(integrity["sequence_gap_count"], 0);
    assert_eq!(integrity["unparseable_count"], 0);
    assert_eq!(integrity["trace_sidecar"], false);
    assert_eq!(doc["pods"][0]["manifest"]["model"]["scheme"], "replay");
    assert!(doc["pods"][0]["provenance"]["model.scheme"]["kind"].is_string());
}

#[test]
fn provider_error_exports_class_and_code_with_the_sidecar_noted() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "solo",
        "[agent]\ntools = []\n\n[session]\nrecord_event_trace = true\n",
        vec![text_response(&["Reading ", "it"], true, None)],
    );
    let run = sandbox.run(&["run", "-p", "solo", "read everything"]);
    assert_exit(&run, 1);
    let dir = sandbox.root_pod().unwrap();
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["outcome"], "provider_error", "{doc:#}");
    assert_eq!(run["error"]["class"], "context_length_exceeded");
    assert_eq!(run["error"]["code"], "context_length_exceeded");
    assert_eq!(run["phase"]["visible_output_seen"], true);
    assert_eq!(run["retry_safety"]["verdict"], "ask_user");
    let incident = incident_of(&doc, &run["run_id"]);
    assert_eq!(incident["cause"]["category"], "provider_error");
    assert_eq!(link_types(incident), ["run", "provider_error"]);
    assert!(
        incident["summary"]
            .as_str()
            .unwrap()
            .contains("context_length_exceeded")
    );
    assert_eq!(doc["integrity"][0]["trace_sidecar"], true);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle actions, origins and chains

#[test]
fn pods_stop_exports_a_chain_to_the_cli_request() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one ", "two ", "three"], 3, "hold on");
    let stop = sandbox.run(&["stop", &id_of(&dir), "--reason", "enough"]);
    assert_exit(&stop, 0);
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["outcome"], "interrupted");
    let action = &run["interrupt"]["action"];
    assert_eq!(action["kind"], "stop");
    assert_eq!(action["origin"]["type"], "cli");
    let incident = incident_of(&doc, &run["run_id"]);
    assert_eq!(
        link_types(incident),
        ["run", "interrupt", "lifecycle_action", "origin", "request"]
    );
    let request = incident["chain"].as_array().unwrap().last().unwrap();
    assert_eq!(request["request_id"], action["origin"]["request_id"]);
    assert_eq!(incident["nearest_origin"]["type"], "cli");
    assert_eq!(incident["diagnostics_complete"], true);
    assert_eq!(incident["missing_provenance"], json!([]));
    // Visible text was streamed before the stop.
    assert_eq!(run["phase"]["visible_output_seen"], true);
    assert_eq!(run["retry_safety"]["verdict"], "ask_user");
}

#[test]
fn control_socket_cancel_and_sigterm_export_their_origins() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one ", "two"], 3, "hold on");
    let reply = control_request(
        &dir,
        json!({"id": "req-export-1", "client": {"type": "other", "name": "harness"},
               "method": "cancel"}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let incident = incident_of(&doc, &runs(&doc)[0]["run_id"]);
    assert_eq!(incident["chain"][2]["kind"], "cancel");
    assert_eq!(
        incident["nearest_origin"],
        json!({"type": "control_request", "request_id": "req-export-1", "client": "other:harness"})
    );
    let request = incident["chain"].as_array().unwrap().last().unwrap();
    assert_eq!(
        request,
        &json!({"link": "request", "request_id": "req-export-1", "client": "other:harness"})
    );

    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one ", "two"], 3, "hold on");
    signal(proc.pid(), "-TERM");
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let shutdown = incident_of(&doc, &runs(&doc)[0]["run_id"]);
    assert_eq!(shutdown["chain"][2]["kind"], "shutdown");
    assert_eq!(
        shutdown["nearest_origin"],
        json!({"type": "signal", "signal": "SIGTERM"})
    );
    assert_eq!(shutdown["diagnostics_complete"], true);
}

#[test]
fn stop_tree_cascade_links_each_child_through_the_parents_action_to_the_cli() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let stop = sandbox.run(&["stop", &id_of(&parent), "--tree"]);
    assert_exit(&stop, 0);
    proc.wait(Duration::from_secs(20));
    let parent_id = id_of(&parent);
    let doc = export_json(&sandbox, &[&parent_id, "--tree"]);
    assert_eq!(doc["pods"].as_array().unwrap().len(), 3);
    let parent_run = runs_of(&doc, &parent_id)[0];
    let parent_action = &parent_run["interrupt"]["action"];
    assert_eq!(parent_action["kind"], "stop_tree");
    for kid in &kids {
        let kid_id = id_of(kid);
        let pod = doc["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == json!(kid_id))
            .unwrap();
        assert_eq!(pod["ancestors"], json!([parent_id]));
        let run = runs_of(&doc, &kid_id)[0];
        assert_eq!(run["outcome"], "interrupted");
        let incident = incident_of(&doc, &run["run_id"]);
        let actions: Vec<&Value> = incident["chain"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["link"] == "lifecycle_action")
            .collect();
        assert_eq!(actions.len(), 2, "{incident:#}");
        assert_eq!(actions[0]["pod_id"], json!(kid_id));
        assert_eq!(actions[1]["pod_id"], json!(parent_id));
        assert_eq!(actions[1]["action_id"], parent_action["action_id"]);
        // The child's own action names the parent as its origin (as a parent_pod origin, or a
        // control request whose client is the parent pod).
        let nearest = &incident["nearest_origin"];
        let names_parent = nearest["parent_pod_id"] == json!(parent_id)
            || nearest["client"]
                .as_str()
                .is_some_and(|c| c.contains(parent_id.as_str()));
        assert!(names_parent, "{incident:#}");
        assert_eq!(incident["root_origin"]["type"], "cli");
        assert_eq!(
            incident["root_origin"]["request_id"],
            parent_action["origin"]["request_id"]
        );
        assert_eq!(incident["diagnostics_complete"], true, "{incident:#}");
    }
    // Exporting one child alone still reaches the parent's action and shows where it sits.
    let kid_id = id_of(&kids[0]);
    let doc = export_json(&sandbox, &[&kid_id]);
    assert_eq!(doc["pods"][0]["ancestors"], json!([parent_id]));
    assert_eq!(doc["incidents"][0]["root_origin"]["type"], "cli");
}

#[test]
fn kill_9_is_crash_evidence_and_the_childrens_parent_exit_lacks_a_cause() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    signal(proc.pid(), "-KILL");
    proc.wait(Duration::from_secs(10));
    // The children notice their parent is gone and stop with parent_exit.
    for kid in &kids {
        wait_until(
            "the child to record its end",
            Duration::from_secs(15),
            || {
                log_kinds(kid)
                    .iter()
                    .any(|k| k == "run_interrupted")
                    .then_some(())
            },
        );
    }
    let parent_id = id_of(&parent);
    let doc = export_json(&sandbox, &[&parent_id, "--tree"]);
    let parent_run = runs_of(&doc, &parent_id)[0];
    assert_eq!(parent_run["outcome"], "crashed", "{doc:#}");
    assert_eq!(parent_run["crash_evidence"]["owner"], "gone");
    assert_eq!(parent_run["interrupt"], Value::Null);
    let parent_incident = incident_of(&doc, &parent_run["run_id"]);
    assert_eq!(parent_incident["cause"]["category"], "crashed");
    assert_eq!(link_types(parent_incident), ["run", "crash_evidence"]);
    // The parent had spawned children: a retry would spawn them again.
    assert_eq!(parent_run["retry_safety"]["verdict"], "unsafe");
    for kid in &kids {
        let run = runs_of(&doc, &id_of(kid))[0];
        assert_eq!(run["interrupt"]["action"]["kind"], "parent_exit");
        let incident = incident_of(&doc, &run["run_id"]);
        assert_eq!(incident["diagnostics_complete"], false, "{incident:#}");
        assert_eq!(
            incident["missing_provenance"],
            json!(["interrupt.parent_exit.cause"])
        );
    }
}

#[test]
fn a_pod_that_is_still_streaming_exports_as_running() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one ", "two"], 3, "hold on");
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["outcome"], "running", "{doc:#}");
    assert_eq!(run["crash_evidence"], Value::Null);
    assert_eq!(run["retry_safety"], Value::Null);
    assert_eq!(doc["incidents"], json!([]));
    // The export only read files: the pod is still there to be stopped.
    assert_exit(&sandbox.run(&["stop", &id_of(&dir)]), 0);
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    assert_eq!(runs(&doc)[0]["outcome"], "interrupted");
}

#[test]
fn killed_child_mid_run_is_crashed_not_a_lifecycle_close() {
    let sandbox = Sandbox::new();
    let (proc, dir) = holding_pod(&sandbox, &["one ", "two"], 3, "hold on");
    let pid = proc.pid();
    signal(pid, "-KILL");
    drop(proc);
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["outcome"], "crashed");
    assert_eq!(run["crash_evidence"]["owner_pid"], pid);
    assert_eq!(
        run["crash_evidence"]["last_entry_kind"],
        "provider_request_started"
    );
    // Text was streaming when it died and the log holds no message: output may have been seen.
    assert_eq!(run["phase"]["visible_output_seen"], Value::Null);
    assert_eq!(run["retry_safety"]["verdict"], "ask_user");
}

/// A `caused_by` link from a client that is not the pod's parent is no cascade: the export
/// states the origin as an unverified claim (with the link inside it) and the provenance as
/// incomplete, and follows no link.
#[test]
fn a_cascade_link_from_a_client_that_is_not_the_parent_is_an_unverified_claim() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one"], 2, "hold on");
    let reply = control_request(
        &dir,
        json!({"id": "req-orphan", "client": {"type": "other", "name": "harness"},
               "method": "stop", "params": {"caused_by": {
                   "pod_id": "0193ffff-0000-7000-8000-000000000000",
                   "action_id": "0193ffff-0000-7000-8000-00000000dead",
                   "kind": "stop_tree"}}}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let incident = &doc["incidents"][0];
    assert_eq!(incident["diagnostics_complete"], false);
    assert_eq!(
        incident["missing_provenance"],
        json!(["interrupt.origin.verified"]),
        "{incident:#}"
    );
    let origin = &incident["nearest_origin"];
    assert_eq!(origin["type"], "unverified", "{incident:#}");
    assert_eq!(origin["claimed"]["client"], "other:harness");
    assert_eq!(
        origin["claimed_caused_by"]["action_id"],
        "0193ffff-0000-7000-8000-00000000dead"
    );
    assert!(
        incident["chain"]
            .as_array()
            .unwrap()
            .iter()
            .all(|link| link["link"] != "unresolved"),
        "{incident:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Retry safety

#[test]
fn retry_safety_nothing_started_is_safe() {
    let sandbox = Sandbox::new();
    // Paused after the first event: the stream started, no text reached the user.
    let (mut proc, dir) = holding_pod(&sandbox, &["late"], 1, "hold on");
    assert_exit(&sandbox.run(&["stop", &id_of(&dir)]), 0);
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["phase"]["visible_output_seen"], false, "{run:#}");
    assert_eq!(run["retry_safety"]["verdict"], "safe");
}

#[test]
fn retry_safety_after_a_write_is_unsafe() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "writer",
        "[agent]\nmax_turns = 4\ntools = [\"write_file\"]\n",
        vec![
            tool_call_response(
                "call_w",
                "write_file",
                json!({"path": "notes.txt", "content": "draft"}),
            ),
            text_response(&["wrote ", "it"], false, Some(2)),
        ],
    );
    let mut proc = sandbox.spawn(&["run", "-p", "writer", "write notes"], "w");
    let dir = wait_until("the pod dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    wait_until("the write to finish", Duration::from_secs(15), || {
        let kinds = log_kinds(&dir);
        (kinds
            .iter()
            .filter(|k| *k == "provider_request_started")
            .count()
            == 2)
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exit(&sandbox.run(&["stop", &id_of(&dir)]), 0);
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let run = runs(&doc)[0];
    assert_eq!(run["phase"]["side_effects_started"], json!(["local_write"]));
    assert_eq!(run["retry_safety"]["verdict"], "unsafe");
    assert!(
        run["retry_safety"]["reason"]
            .as_str()
            .unwrap()
            .contains("local_write")
    );
}

// ---------------------------------------------------------------------------------------------
// Integrity, redaction, formats, upgrade, errors

#[test]
fn torn_log_is_reported_and_runs_before_it_are_kept() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["fine"]);
    assert_exit(&sandbox.run(&["run", "-p", "solo", "go"]), 0);
    let dir = sandbox.root_pod().unwrap();
    let log = &session_logs(&dir)[0];
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    file.write_all(b"{\"seq\":99,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_st")
        .unwrap();
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    assert_eq!(doc["integrity"][0]["torn_final_line"], true);
    assert_eq!(runs(&doc)[0]["outcome"], "completed");
    let markdown = sandbox.run(&["export", &id_of(&dir), "--format", "markdown"]);
    assert_exit(&markdown, 0);
    let text = String::from_utf8(markdown.stdout).unwrap();
    assert!(text.contains("## Log integrity"), "{text}");
    assert!(text.contains("| yes |"), "{text}");
}

#[test]
fn an_unreadable_log_is_reported_on_stderr_and_in_integrity_and_the_rest_exported() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["fine"]);
    assert_exit(&sandbox.run(&["run", "-p", "solo", "go"]), 0);
    let dir = sandbox.root_pod().unwrap();
    // Sorts after the real segment (UUIDv7 ids start with a digit).
    std::fs::create_dir(dir.join("sessions/x.jsonl")).unwrap();
    let output = sandbox.run(&["export", &id_of(&dir)]);
    assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not read"), "{}", describe(&output));
    assert!(stderr.contains("sessions/x.jsonl"), "{}", describe(&output));
    let doc = stdout_json(&output);
    let logs = doc["integrity"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{doc:#}");
    let bad = logs
        .iter()
        .find(|l| l["log"] == "sessions/x.jsonl")
        .unwrap();
    assert!(bad["read_error"].is_string(), "{bad:#}");
    let good = logs
        .iter()
        .find(|l| l["log"] != "sessions/x.jsonl")
        .unwrap();
    assert_eq!(good["read_error"], Value::Null);
    assert_eq!(runs(&doc)[0]["outcome"], "completed");
}

/// The tool calls started in `dir`'s logs that have not finished: `(tool, input)`.
fn tools_started_unfinished(dir: &Path) -> Vec<(String, Value)> {
    let mut open: Vec<(String, String, Value)> = Vec::new();
    for file in session_logs(dir) {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let call = entry["call_id"].as_str().unwrap_or_default().to_owned();
            match entry["kind"].as_str() {
                Some("tool_call_started") => open.push((
                    call,
                    entry["tool"].as_str().unwrap_or_default().to_owned(),
                    entry["input"].clone(),
                )),
                Some("tool_call_finished") => open.retain(|(c, _, _)| *c != call),
                _ => {}
            }
        }
    }
    open.into_iter()
        .map(|(_, tool, input)| (tool, input))
        .collect()
}

#[test]
fn sanitized_export_contains_no_prompt_output_tool_input_or_path() {
    let sandbox = Sandbox::new();
    // A parent spawns a child that completes (its output holds "pelican-") and one that holds,
    // then waits on the holder with a tool input naming "zebra-notes" and "quokka-content":
    // stopped there, that call stays in flight, so its input is in the export.
    profile(
        &sandbox,
        "parent",
        &format!(
            "[agent]\nmax_turns = 8\ntools = {PARENT_TOOLS}\n\n[spawn]\nallowed_profiles = [\"quick\", \"holder\"]\nmax_depth = 2\nmax_children = 4\n\n[session]\nrecord_event_trace = true\n"
        ),
        vec![
            tool_call_response(
                "call_q",
                "spawn_pod",
                json!({"profile": "quick", "task": "report", "name": "quick"}),
            ),
            tool_call_response(
                "call_h",
                "spawn_pod",
                json!({"profile": "holder", "task": "hold", "name": "holder"}),
            ),
            tool_call_response(
                "call_wait",
                "wait_pod",
                json!({"pod_id": "holder", "note": "see zebra-notes.txt for quokka-content"}),
            ),
            text_response(&["done"], false, None),
        ],
    );
    answering_profile(&sandbox, "quick", &["pelican-", "answer"]);
    profile(
        &sandbox,
        "holder",
        "[agent]\ntools = []\n",
        vec![text_response(&["hold ", "the ", "line"], false, Some(3))],
    );
    let mut proc = sandbox.spawn(&["run", "-p", "parent", "flamingo-prompt"], "p");
    let parent = wait_until("the parent dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    let kids = wait_until("two children", Duration::from_secs(20), || {
        let kids = sandbox.children_of(&parent);
        (kids.len() == 2).then_some(kids)
    });
    let named = |name: &str| home::named(&kids, name);
    let (quick, holder) = (named("quick"), named("holder"));
    wait_until("the quick child's answer", Duration::from_secs(15), || {
        log_kinds(&quick)
            .iter()
            .any(|k| k == "run_completed")
            .then_some(())
    });
    wait_streaming(&holder);
    wait_until(
        "the parent to wait on the holder",
        Duration::from_secs(15),
        || {
            tools_started_unfinished(&parent)
                .iter()
                .any(|(tool, _)| tool == "wait_pod")
                .then_some(())
        },
    );
    let stop = sandbox.run(&[
        "stop",
        &id_of(&parent),
        "--tree",
        "--reason",
        "walrus-reason",
    ]);
    assert_exit(&stop, 0);
    proc.wait(Duration::from_secs(20));
    let parent_id = id_of(&parent);
    let root = sandbox.root().to_str().unwrap().to_owned();
    let forbidden = [
        "flamingo-prompt",
        "quokka-content",
        "zebra-notes",
        "walrus-reason",
        "pelican-",
        root.as_str(),
    ];
    // The unsanitized export holds every one of them, so the checks below can fail.
    let plain = sandbox.run(&["export", &parent_id, "--tree"]);
    assert_exit(&plain, 0);
    let plain = String::from_utf8(plain.stdout).unwrap();
    for word in forbidden {
        assert!(
            plain.contains(word),
            "{word} missing from the plain export:\n{plain}"
        );
    }
    let doc: Value = serde_json::from_str(&plain).unwrap();
    let in_flight = &runs_of(&doc, &parent_id)[0]["tools_in_flight"];
    assert_eq!(in_flight[0]["tool"], "wait_pod", "{in_flight:#}");
    assert_eq!(runs_of(&doc, &id_of(&quick))[0]["output"], "pelican-answer");
    for format in ["json", "markdown"] {
        let out = sandbox.root().join(format!("sanitized.{format}"));
        let output = sandbox.run(&[
            "export",
            &parent_id,
            "--tree",
            "--sanitize",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_exit(&output, 0);
        assert!(output.stdout.is_empty(), "{}", describe(&output));
        let text = std::fs::read_to_string(&out).unwrap();
        for word in forbidden {
            assert!(!text.contains(word), "{word} leaked into {format}:\n{text}");
        }
        if format == "json" {
            let doc: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(doc["redaction"]["mode"], "sanitized");
            let run = runs_of(&doc, &parent_id)[0];
            assert!(
                run["input"]
                    .as_str()
                    .unwrap()
                    .starts_with("[redacted:prompt:")
            );
            assert_eq!(run["interrupt"]["action"]["kind"], "stop_tree");
            assert_eq!(run["pod_id"], json!(parent_id));
            let input = &run["tools_in_flight"][0];
            assert_eq!(input["tool"], "wait_pod");
            assert!(
                input["input"]
                    .as_str()
                    .unwrap()
                    .starts_with("[redacted:tool_input:"),
                "{input:#}"
            );
            let answer = &runs_of(&doc, &id_of(&quick))[0]["output"];
            assert!(
                answer.as_str().unwrap().starts_with("[redacted:output:"),
                "{answer}"
            );
            assert!(doc["redaction"]["replaced"]["path"].as_u64().unwrap() >= 1);
        }
    }
}

#[test]
fn export_refuses_to_write_a_configured_key_value() {
    let sandbox = Sandbox::new();
    let key = "sk-export-test-0123456789abcdef";
    answering_profile(&sandbox, "solo", &["ok"]);
    assert_exit(
        &sandbox.run(&["run", "-p", "solo", &format!("my key is {key}")]),
        0,
    );
    let dir = sandbox.root_pod().unwrap();
    let out = sandbox.root().join("leak.json");
    let output = sandbox
        .pods()
        .env("OPENAI_API_KEY", key)
        .args(["export", &id_of(&dir), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(!stderr.contains(key), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(!out.exists(), "no partial output file");
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("leak"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Sanitized, the prompt is gone and the export goes through.
    let output = sandbox
        .pods()
        .env("OPENAI_API_KEY", key)
        .args(["export", &id_of(&dir), "--sanitize"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let doc = stdout_json(&output);
    assert!(
        doc["redaction"]["secrets_checked"]
            .as_array()
            .unwrap()
            .contains(&json!("OPENAI_API_KEY"))
    );
}

#[test]
fn upgrade_re_emits_an_older_document_in_the_current_schema() {
    let sandbox = Sandbox::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../export/tests/fixtures/documents/schema-1.json");
    let doc = export_json(&sandbox, &["--upgrade", fixture.to_str().unwrap()]);
    assert_eq!(doc["schema_version"], 4);
    assert_eq!(doc["upgraded_from"], 1);
    assert_eq!(doc["integrity"], Value::Null);
    let errored = runs(&doc)
        .into_iter()
        .find(|r| r["run_id"] == "run-old-2")
        .unwrap();
    assert_eq!(errored["phase"], Value::Null);
    assert!(
        errored["missing_provenance"]
            .as_array()
            .unwrap()
            .contains(&json!("phase"))
    );
    let bad = sandbox.root().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"format":"pods.session-export","schema_version":7}"#,
    )
    .unwrap();
    let output = sandbox.run(&["export", "--upgrade", bad.to_str().unwrap()]);
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("schema_version 7"));
}

#[test]
fn unknown_pod_and_missing_home_are_usage_errors() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.home().join("pods")).unwrap();
    let output = sandbox.run(&["export", "no-such-pod"]);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no pod matches `no-such-pod`"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(output.stdout.is_empty());
    let output = sandbox.run(&["export"]);
    assert_exit(&output, 2);
    let elsewhere = sandbox.root().join("nowhere");
    let output = sandbox.run(&["--home", elsewhere.to_str().unwrap(), "export", "x"]);
    assert_exit(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no pods directory"));
}

#[test]
fn an_unwritable_output_file_fails_naming_it_and_leaves_nothing_behind() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["ok"]);
    assert_exit(&sandbox.run(&["run", "-p", "solo", "go"]), 0);
    let dir = sandbox.root_pod().unwrap();
    let missing_dir = sandbox.root().join("no-such-dir");
    let target = missing_dir.join("out.json");
    let output = sandbox.run(&["export", &id_of(&dir), "-o", target.to_str().unwrap()]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not write"), "{stderr}");
    assert!(stderr.contains("out.json"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(!missing_dir.exists());
    // Into an existing directory it works and replaces the file whole.
    let target = sandbox.root().join("out.json");
    std::fs::write(&target, "old contents").unwrap();
    let output = sandbox.run(&["export", &id_of(&dir), "-o", target.to_str().unwrap()]);
    assert_exit(&output, 0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(doc["format"], "pods.session-export");
    let temp_files: Vec<_> = std::fs::read_dir(sandbox.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temp_files.is_empty(), "{temp_files:?}");
}

#[test]
fn watchdog_and_reload_export_their_kinds_and_origins() {
    // The idle watchdog: a stream that stalls longer than limits.watchdog_ms.
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "solo",
        "[agent]\ntools = []\n\n[limits]\nwatchdog_ms = 400\n",
        vec![text_response(&["one ", "two"], false, Some(3))],
    );
    let mut proc = sandbox.spawn(&["run", "-p", "solo", "hold on"], "dog");
    proc.wait(Duration::from_secs(15));
    let dir = sandbox.root_pod().unwrap();
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let incident = incident_of(&doc, &runs(&doc)[0]["run_id"]);
    assert_eq!(incident["chain"][2]["kind"], "watchdog", "{doc:#}");
    assert_eq!(
        incident["nearest_origin"],
        json!({"type": "watchdog", "idle_ms": 400})
    );
    assert_eq!(incident["diagnostics_complete"], true);

    // Reload over the control socket.
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox, &["one ", "two"], 3, "hold on");
    let reply = control_request(
        &dir,
        json!({"id": "req-reload", "client": {"type": "other", "name": "harness"},
               "method": "reload"}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    proc.wait(Duration::from_secs(10));
    let doc = export_json(&sandbox, &[&id_of(&dir)]);
    let incident = incident_of(&doc, &runs(&doc)[0]["run_id"]);
    assert_eq!(incident["chain"][2]["kind"], "reload", "{doc:#}");
    assert_eq!(incident["nearest_origin"]["request_id"], "req-reload");
}

#[test]
fn a_child_killed_mid_run_carries_the_loss_its_parent_recorded() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let a = home::named(&kids, "a");
    let a_pid: u32 = wait_until("a's pid", Duration::from_secs(5), || {
        pod_info(&a)["pid"].as_u64().map(|p| p as u32)
    });
    signal(a_pid, "-KILL");
    // The parent's wait_pod gets the loss and its run goes on to complete.
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        proc.output()
    );
    let doc = export_json(&sandbox, &[&id_of(&parent), "--tree"]);
    let run = runs_of(&doc, &id_of(&a))[0];
    assert_eq!(run["outcome"], "crashed", "{doc:#}");
    let evidence = &run["crash_evidence"];
    assert_eq!(evidence["owner"], "gone");
    assert_eq!(
        evidence["exit_seen_by_parent"],
        json!({"parent_pod_id": id_of(&parent), "exit_code": null, "signal": 9, "expected": false})
    );
    let incident = incident_of(&doc, &run["run_id"]);
    assert!(
        incident["summary"]
            .as_str()
            .unwrap()
            .contains("killed by signal 9")
    );
    assert_eq!(runs_of(&doc, &id_of(&parent))[0]["outcome"], "completed");
}

// ---------------------------------------------------------------------------------------------
// One answer about every run: `ls`, `show` and the export classify runs the same way

/// One session-log line of `body` (an object with its `kind`), numbered `seq`.
fn log_line(seq: u64, ts: &str, body: Value) -> String {
    let mut line = json!({"seq": seq, "ts": ts});
    line.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    format!("{line}\n")
}

/// A pod directory written by hand: `pod.json` and one segment log of `bodies`, whose
/// `segment_started` names `owner` as the owning process.
fn hand_made_pod(home: &Path, id: &str, name: &str, owner: u32, bodies: &[Value]) -> PathBuf {
    let dir = home.join("pods").join(id);
    std::fs::create_dir_all(dir.join("sessions")).unwrap();
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let info = json!({
        "id": id, "name": name, "profile": "demo", "created": now,
        "state": "running", "pid": owner,
    });
    std::fs::write(dir.join("pod.json"), info.to_string()).unwrap();
    let mut log = log_line(
        1,
        &now,
        json!({
            "kind": "segment_started", "pod_id": id, "segment_id": format!("{id}-s1"),
            "profile": "demo", "manifest_digest": "sha256:00", "pid": owner,
            "format_version": 1, "writer": "test",
        }),
    );
    for (n, body) in bodies.iter().enumerate() {
        log.push_str(&log_line(n as u64 + 2, &now, body.clone()));
    }
    std::fs::write(dir.join("sessions").join(format!("{id}-s1.jsonl")), log).unwrap();
    dir
}

fn run_started(run_id: &str) -> Value {
    json!({"kind": "run_started", "run_id": run_id, "trigger": {"type": "cli"}, "input": run_id})
}

fn phase() -> Value {
    json!({"provider_progress_seen": true, "visible_output_seen": false,
           "tool_execution": "not_started", "side_effects_started": []})
}

/// Each run's outcome by run id, from `runs` (objects with `run_id` and `outcome`).
fn outcomes(runs: &Value) -> Vec<(String, String)> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ls_show_and_the_export_give_every_run_the_same_outcome() {
    let sandbox = Sandbox::new();
    let home = sandbox.home();
    // A process that has ended owns the first pod's segment: its unfinished run crashed.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    // A live process (started before the segment below) owns the second pod's.
    // Killed and reaped when the guard drops.
    let alive = Background::adopt(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(20));
    let action = json!({
        "action_id": "a1", "kind": "stop", "started_at": "2026-01-01T00:00:00.000Z",
        "started_mono_ms": 5, "affects": ["01a00000-0000-7000-8000-0000000000a1"],
        "origin": {"type": "cli", "command": "pods stop", "request_id": "q1"},
    });
    let finished = hand_made_pod(
        &home,
        "01a00000-0000-7000-8000-0000000000a1",
        "finished",
        gone_pid,
        &[
            run_started("r-completed"),
            json!({"kind": "run_completed", "run_id": "r-completed", "turns": 1, "text": "hi",
                   "reason": "end_turn", "stop_reason": {"reason": "end_turn"}}),
            run_started("r-error"),
            json!({"kind": "run_errored", "run_id": "r-error", "phase": phase(),
                   "error": {"class": "context_length_exceeded", "retryable": false,
                             "message": "too long"}}),
            run_started("r-interrupted"),
            json!({"kind": "run_interrupted", "run_id": "r-interrupted", "reason": "stopped",
                   "action": action, "phase": phase()}),
            run_started("r-crashed"),
        ],
    );
    hand_made_pod(
        &home,
        "01a00000-0000-7000-8000-0000000000b2",
        "live",
        alive.pid(),
        &[run_started("r-running")],
    );
    let expected = [
        ("r-completed", "completed"),
        ("r-error", "provider_error"),
        ("r-interrupted", "interrupted"),
        ("r-crashed", "crashed"),
        ("r-running", "running"),
    ]
    .map(|(run, outcome)| (run.to_owned(), outcome.to_owned()));

    let mut shown = Vec::new();
    let mut exported = Vec::new();
    for name in ["finished", "live"] {
        let show = sandbox.run(&["show", name, "--json"]);
        assert_exit(&show, 0);
        shown.extend(outcomes(&stdout_json(&show)["runs"]));
        let export = sandbox.run(&["export", name]);
        assert_exit(&export, 0);
        exported.extend(outcomes(&stdout_json(&export)["pods"][0]["runs"]));
    }
    assert_eq!(shown, expected, "pods show");
    assert_eq!(exported, expected, "pods export");

    let ls = sandbox.run(&["ls", "--json"]);
    assert_exit(&ls, 0);
    let last: Vec<(String, String)> = stdout_json(&ls)
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| {
            (
                pod["last_run"]["run_id"].as_str().unwrap().to_owned(),
                pod["last_run"]["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        last,
        vec![expected[3].clone(), expected[4].clone()],
        "pods ls"
    );
    assert_eq!(
        pod_info(&finished)["state"],
        "running",
        "the record is left as it was"
    );
}
