//! Whole-system tests of the approval policy: `[permissions]` allows, denies or asks for each
//! tool call; an ask goes to the terminal of `pods run`, to `--approve`, or (from a child) up
//! the control socket to the root's terminal. Every decision is a `tool_decision` entry that
//! `pods log` and the export show. Real `pods` processes against the replay provider; the
//! terminal is a pseudo-terminal the test types into.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::responses::{profile, text_response, tool_call_response};
use support::terminal::Terminal;
use support::{Sandbox, assert_exit, describe, log_entries, of_kind};

const LIMIT: Duration = Duration::from_secs(60);

/// A profile `reader` whose model reads `notes.txt` once, then answers; `permissions` is its
/// `[permissions]` section.
fn reader(sandbox: &Sandbox, permissions: &str) {
    sandbox.write("work/notes.txt", "the notes\n");
    profile(
        sandbox,
        "reader",
        &format!("[agent]\ntools = [\"read_file\"]\n\n[permissions]\n{permissions}\n"),
        vec![
            tool_call_response("c1", "read_file", json!({"path": "notes.txt"})),
            text_response(&["done"], false, None),
        ],
    );
}

/// The one entry of `kind` in the only pod's log.
fn only(entries: &[Value], kind: &str) -> Value {
    let found = of_kind(entries, kind);
    assert_eq!(found.len(), 1, "{kind}: {entries:#?}");
    found[0].clone()
}

#[test]
fn an_ask_without_a_terminal_or_flag_is_denied_recorded_and_told_to_the_model() {
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"ask\"");
    let run = sandbox.run(&["run", "-p", "reader", "read the notes"]);
    assert_exit(&run, 0);
    let entries = log_entries(&sandbox.only_pod());
    let decision = only(&entries, "tool_decision");
    assert_eq!(decision["decision"], "denied");
    assert_eq!(decision["source"], "config");
    assert_eq!(decision["tool"], "read_file");
    assert_eq!(decision["side_effect"], "read_only");
    let detail = decision["detail"].as_str().unwrap();
    assert!(
        detail.contains("permissions.read_only = \"ask\"") && detail.contains("no terminal"),
        "{detail}"
    );
    // Never started; the model is told why in the call's result.
    assert!(of_kind(&entries, "tool_call_started").is_empty());
    let finished = only(&entries, "tool_call_finished");
    assert_eq!(finished["outcome"], "rejected");
    let told = finished["output"].as_str().unwrap();
    assert!(
        told.contains("denied") && told.contains("--approve"),
        "{told}"
    );
    assert!(!told.contains("the notes"), "the file was not read: {told}");

    // `pods log` and the export show the decision.
    let pod = support::id_of(&sandbox.only_pod());
    let log = sandbox.run(&["log", &pod]);
    assert_exit(&log, 0);
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(
        text.contains("approval: denied by config: permissions.read_only = \"ask\""),
        "{text}"
    );
    let export = sandbox.run(&["export", &pod, "--format", "json"]);
    assert_exit(&export, 0);
    let document: Value = serde_json::from_slice(&export.stdout).unwrap();
    let decisions = &document["pods"][0]["runs"][0]["tool_decisions"];
    assert_eq!(decisions[0]["decision"], "denied", "{document:#}");
    assert_eq!(decisions[0]["source"], "config");
    assert_eq!(document["pods"][0]["runs"][0]["tool_calls_rejected"], 1);
}

#[test]
fn approve_all_allows_an_ask_and_the_flag_is_recorded_as_the_source() {
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"ask\"");
    let run = sandbox.run(&["run", "-p", "reader", "--approve", "all", "read the notes"]);
    assert_exit(&run, 0);
    let entries = log_entries(&sandbox.only_pod());
    let decision = only(&entries, "tool_decision");
    assert_eq!(decision["decision"], "allowed");
    assert_eq!(decision["source"], "flag");
    assert_eq!(decision["detail"], "--approve all");
    let finished = only(&entries, "tool_call_finished");
    assert_eq!(finished["outcome"], "ok");
    assert!(finished["output"].as_str().unwrap().contains("the notes"));
}

#[test]
fn run_json_says_who_decided_an_asked_call_before_it_starts() {
    let kinds_and_decisions = |run: &std::process::Output| -> Vec<(String, Value)> {
        String::from_utf8_lossy(&run.stdout)
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|event| event["kind"].as_str().unwrap().starts_with("tool_"))
            .map(|event| (event["kind"].as_str().unwrap().to_owned(), event))
            .collect()
    };
    // Nobody to ask: denied by the configuration, and the call never runs.
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"ask\"");
    let run = sandbox.run(&["run", "-p", "reader", "--json", "read the notes"]);
    assert_exit(&run, 0);
    let events = kinds_and_decisions(&run);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["tool_decision", "tool_call_started", "tool_call_finished"],
        "{}",
        describe(&run)
    );
    let decision = &events[0].1;
    assert_eq!(decision["call_id"], "c1");
    assert_eq!(decision["tool"], "read_file");
    assert_eq!(decision["decision"], "denied");
    assert_eq!(decision["source"], "config");
    assert!(
        decision["detail"]
            .as_str()
            .unwrap()
            .contains("permissions.read_only"),
        "{decision}"
    );
    assert_eq!(events[2].1["outcome"], "rejected");

    // Allowed by the flag: said too, and the call runs.
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"ask\"");
    let run = sandbox.run(&["run", "-p", "reader", "--json", "--approve", "all", "go"]);
    assert_exit(&run, 0);
    let events = kinds_and_decisions(&run);
    assert_eq!(events[0].1["decision"], "allowed", "{}", describe(&run));
    assert_eq!(events[0].1["source"], "flag");
    assert_eq!(events[0].1["detail"], "--approve all");
    assert_eq!(events[2].1["outcome"], "ok");

    // Allowed by the configuration without asking: nothing to say.
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"allow\"");
    let run = sandbox.run(&["run", "-p", "reader", "--json", "go"]);
    assert_exit(&run, 0);
    let kinds: Vec<String> = kinds_and_decisions(&run)
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(kinds, ["tool_call_started", "tool_call_finished"]);
}

#[test]
fn approve_read_only_denies_an_ask_for_a_write_and_config_deny_beats_any_flag() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "writer",
        "[agent]\ntools = [\"write_file\", \"read_file\"]\n\n[permissions]\nlocal_write = \"ask\"\n\n[permissions.tools]\nread_file = \"deny\"\n",
        vec![
            tool_call_response(
                "c1",
                "write_file",
                json!({"path": "out.txt", "content": "x"}),
            ),
            tool_call_response("c2", "read_file", json!({"path": "out.txt"})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "writer", "--approve", "read-only", "write"]);
    assert_exit(&run, 0);
    assert!(
        !sandbox.work().join("out.txt").exists(),
        "the denied write did not happen"
    );
    let entries = log_entries(&sandbox.only_pod());
    let decisions = of_kind(&entries, "tool_decision");
    assert_eq!(decisions.len(), 2, "{decisions:#?}");
    assert_eq!(decisions[0]["tool"], "write_file");
    assert_eq!(decisions[0]["decision"], "denied");
    assert_eq!(decisions[0]["source"], "flag");
    assert!(
        decisions[0]["detail"]
            .as_str()
            .unwrap()
            .contains("local_write"),
        "{decisions:#?}"
    );
    assert_eq!(decisions[1]["tool"], "read_file");
    assert_eq!(decisions[1]["decision"], "denied");
    assert_eq!(decisions[1]["source"], "config");
    assert_eq!(
        decisions[1]["detail"],
        "permissions.tools.read_file = \"deny\""
    );
}

/// A `parent` profile that spawns a `child` and waits for it; the child reads `notes.txt` under
/// a policy that asks about reads (narrower than its parent's, so it holds).
fn delegating_tree(sandbox: &Sandbox) {
    sandbox.write("work/notes.txt", "the notes\n");
    profile(
        sandbox,
        "parent",
        "[agent]\nmax_turns = 8\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"child\"]\n",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "read the notes", "name": "kid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["the ", "child ", "read ", "them"], false, None),
        ],
    );
    // The child may only narrow its parent's permissions: asking about reads is narrower.
    profile(
        sandbox,
        "child",
        "[agent]\nmax_turns = 4\ntools = [\"read_file\"]\n\n[permissions]\nread_only = \"ask\"\n",
        vec![
            tool_call_response("c1", "read_file", json!({"path": "notes.txt"})),
            text_response(&["read"], false, None),
        ],
    );
}

#[test]
fn a_childs_ask_travels_to_the_roots_terminal_and_the_answer_comes_back() {
    let sandbox = Sandbox::new();
    delegating_tree(&sandbox);
    let mut terminal = Terminal::open();
    let mut cmd = sandbox.pods();
    cmd.args(["run", "-p", "parent", "delegate the reading"]);
    let mut parent = terminal.spawn(cmd);
    terminal.wait_for("allow once [y]", LIMIT);
    let question = terminal.shown();
    assert!(
        question.contains("pod kid wants to run read_file (read_only)")
            && question.contains("notes.txt")
            && question.contains("permissions.read_only = \"ask\""),
        "{question}"
    );
    terminal.type_line("y");
    let code = parent.wait(LIMIT);
    assert_eq!(code, Some(0), "{}", terminal.shown());

    let root = sandbox.root_pod().unwrap();
    let kids = sandbox.children_of(&root);
    assert_eq!(kids.len(), 1);
    let entries = log_entries(&kids[0]);
    let decision = only(&entries, "tool_decision");
    assert_eq!(decision["decision"], "allowed", "{decision:#}");
    assert_eq!(decision["source"], "parent");
    let detail = decision["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("parent pod {}", support::id_of(&root)))
            && detail.contains("user")
            && detail.contains("allowed once at the terminal"),
        "{detail}"
    );
    let finished = only(&entries, "tool_call_finished");
    assert_eq!(finished["outcome"], "ok", "{}", describe_entries(&entries));
    assert!(finished["output"].as_str().unwrap().contains("the notes"));
}

fn describe_entries(entries: &[Value]) -> String {
    serde_json::to_string_pretty(entries).unwrap_or_default()
}

#[test]
fn a_childs_ask_is_decided_by_the_roots_flag_when_the_root_has_no_terminal() {
    let sandbox = Sandbox::new();
    delegating_tree(&sandbox);
    let run = sandbox.run(&["run", "-p", "parent", "--approve", "never", "delegate"]);
    assert_exit(&run, 0);
    let root = sandbox.root_pod().unwrap();
    let kid = &sandbox.children_of(&root)[0];
    let decision = only(&log_entries(kid), "tool_decision");
    assert_eq!(decision["decision"], "denied", "{}", describe(&run));
    assert_eq!(decision["source"], "parent");
    assert!(
        decision["detail"]
            .as_str()
            .unwrap()
            .contains("flag: --approve never"),
        "{decision:#}"
    );
}

#[test]
fn an_interrupt_while_an_ask_waits_ends_the_run_and_records_the_call_as_never_run() {
    let sandbox = Sandbox::new();
    reader(&sandbox, "read_only = \"ask\"");
    let terminal = Terminal::open();
    let mut cmd = sandbox.pods();
    cmd.args(["run", "-p", "reader", "read the notes"]);
    let mut pod = terminal.spawn(cmd);
    terminal.wait_for("allow once [y]", LIMIT);
    support::signal(pod.pid(), "-INT");
    assert_eq!(pod.wait(LIMIT), Some(130), "{}", terminal.shown());
    let entries = log_entries(&sandbox.only_pod());
    let decision = only(&entries, "tool_decision");
    assert_eq!(decision["decision"], "denied");
    assert!(
        decision["detail"]
            .as_str()
            .unwrap()
            .contains("interrupted while the call waited for approval"),
        "{decision:#}"
    );
    assert!(of_kind(&entries, "tool_call_started").is_empty());
    let interrupted = only(&entries, "run_interrupted");
    assert_eq!(interrupted["phase"]["tool_execution"], "not_started");
}
