//! Whole-system tests: child pods as real processes, the control socket, lifecycle actions with
//! their origins, cascades, rollback and loss. Providers are replayed from cassettes written
//! next to the test profiles; every pod process started here is killed and reaped by a guard.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::control::{control_request, wait_streaming};
use support::live::{start_solo, start_tree};
use support::logs::{entries_so_far, trace_logs};
use support::responses::{
    answering_profile, profile, text_response, tool_call_response, truncated_text_response,
};
use support::{
    Background, Sandbox, assert_exit, describe, home, id_of, of_kind, pod_info, signal, wait_until,
};

// ---------------------------------------------------------------------------------------------
// Cassettes (OpenAI Responses wire format, built by `support::responses`)

/// A long pause mid-stream holds a run active until a lifecycle action ends it.
const HOLD: Option<(usize, u64)> = Some((3, 60_000));

// ---------------------------------------------------------------------------------------------
// Profiles

const CHILD_TOOLS: &str = r#"["spawn_pod", "wait_pod", "send_to_pod", "stop_pod", "list_pods"]"#;

fn parent_profile(sandbox: &Sandbox, extra: &str, responses: Vec<Value>) {
    parent_profile_with_limits(sandbox, 2, 4, extra, responses);
}

/// The parent profile with its own `spawn.max_depth` and `spawn.max_children`.
fn parent_profile_with_limits(
    sandbox: &Sandbox,
    max_depth: u32,
    max_children: u32,
    extra: &str,
    responses: Vec<Value>,
) {
    let body = format!(
        "[agent]\nmax_turns = 8\ntools = {CHILD_TOOLS}\n\n[spawn]\nallowed_profiles = [\"child\", \"holder\"]\nmax_depth = {max_depth}\nmax_children = {max_children}\n\n{extra}"
    );
    profile(sandbox, "parent", &body, responses);
}

// ---------------------------------------------------------------------------------------------
// Processes and log entries

fn alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn assert_gone(pid: u32) {
    wait_until(
        &format!("process {pid} to end"),
        Duration::from_secs(10),
        || (!alive(pid)).then_some(()),
    );
}

fn child_pids(entries: &[Value]) -> Vec<u32> {
    of_kind(entries, "child_spawned")
        .iter()
        .map(|e| e["pid"].as_u64().unwrap() as u32)
        .collect()
}

/// The last run's terminal entry (`run_completed`, `run_errored` or `run_interrupted`).
fn last_terminal(entries: &[Value]) -> Option<&Value> {
    let last_run = of_kind(entries, "run_started").last()?["run_id"].clone();
    entries.iter().find(|e| {
        e["run_id"] == last_run
            && matches!(
                e["kind"].as_str(),
                Some("run_completed" | "run_errored" | "run_interrupted")
            )
    })
}
// ---------------------------------------------------------------------------------------------
// The seed scenario

fn seed_scenario(
    sandbox: &Sandbox,
    child_session: &str,
) -> (PathBuf, PathBuf, std::process::Output) {
    parent_profile(
        sandbox,
        "[session]\nrecord_event_trace = true\n",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "review everything", "name": "kid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["The ", "child ", "failed."], false, None),
        ],
    );
    profile(
        sandbox,
        "child",
        &format!("[agent]\nmax_turns = 2\ntools = []\n\n{child_session}"),
        vec![text_response(
            &["Reading ", "all ", "of ", "it"],
            true,
            None,
        )],
    );
    let output = sandbox.run(&["run", "-p", "parent", "delegate the review"]);
    let parent = sandbox
        .root_pod()
        .unwrap_or_else(|| panic!("no parent pod\n{}", describe(&output)));
    let kids = sandbox.children_of(&parent);
    assert_eq!(kids.len(), 1, "{}", describe(&output));
    (parent, kids[0].clone(), output)
}

#[test]
fn seed_scenario_child_inherits_tracing_and_parent_gets_structured_error() {
    let sandbox = Sandbox::new();
    let (parent, child, output) = seed_scenario(&sandbox, "");
    assert_exit(&output, 0);

    // The child's manifest has tracing on, inherited from the parent's profile file.
    let manifest = std::fs::read_to_string(child.join("manifest.toml")).unwrap();
    assert!(manifest.contains("record_event_trace = true"), "{manifest}");
    let provenance: Value =
        serde_json::from_str(&std::fs::read_to_string(child.join("provenance.json")).unwrap())
            .unwrap();
    let key = &provenance["session.record_event_trace"];
    assert_eq!(key["kind"], "parent", "{key}");
    assert!(
        key["detail"].as_str().unwrap().contains(&id_of(&parent)),
        "{key}"
    );
    assert!(
        key["from"]["detail"]
            .as_str()
            .unwrap()
            .contains("parent.toml"),
        "the parent's own source is named: {key}"
    );

    // The child's log has the structured error; its trace holds it and the events before it.
    let child_log = entries_so_far(&child);
    let errored = of_kind(&child_log, "run_errored");
    assert_eq!(errored.len(), 1, "{child_log:#?}");
    assert_eq!(errored[0]["error"]["class"], "context_length_exceeded");
    let child_info = pod_info(&child);
    assert_eq!(child_info["parent_id"], json!(id_of(&parent)));
    let traces = trace_logs(&child);
    assert_eq!(traces.len(), 1, "one child trace sidecar");
    let trace = std::fs::read_to_string(&traces[0]).unwrap();
    assert!(trace.contains("context_length_exceeded"), "error in trace");
    let error_at = trace.find("context_length_exceeded").unwrap();
    let delta_at = trace
        .find("Reading")
        .expect("text delta before the error in the trace");
    assert!(delta_at < error_at, "events before the error come first");

    // The parent's wait_pod got that structured error back.
    let parent_log = entries_so_far(&parent);
    let waits: Vec<&Value> = of_kind(&parent_log, "tool_call_finished")
        .into_iter()
        .filter(|e| e["tool"] == "wait_pod")
        .collect();
    assert_eq!(waits.len(), 1, "{parent_log:#?}");
    let result: Value = serde_json::from_str(waits[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(result["outcome"], "errored", "{result}");
    assert_eq!(
        result["error"]["class"], "context_length_exceeded",
        "{result}"
    );
    let spawned = of_kind(&parent_log, "child_spawned");
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0]["child_pod_id"], json!(id_of(&child)));
    assert_eq!(
        of_kind(&parent_log, "tool_call_started")[0]["side_effect"],
        "spawn"
    );
    // The parent stopped its child on exit: an expected exit, and no process left.
    let exited = of_kind(&parent_log, "child_exited");
    assert_eq!(exited.len(), 1, "{parent_log:#?}");
    assert_eq!(exited[0]["expected"], true);
    assert_gone(spawned[0]["pid"].as_u64().unwrap() as u32);
    assert!(!child.join("control.sock").exists());
}

#[test]
fn seed_scenario_child_that_switches_tracing_off_has_no_sidecar() {
    let sandbox = Sandbox::new();
    let (_parent, child, output) =
        seed_scenario(&sandbox, "[session]\nrecord_event_trace = false\n");
    assert_exit(&output, 0);
    let manifest = std::fs::read_to_string(child.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains("record_event_trace = false"),
        "{manifest}"
    );
    assert!(trace_logs(&child).is_empty(), "no child trace sidecar");
    let errored = of_kind(&entries_so_far(&child), "run_errored")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(errored[0]["error"]["class"], "context_length_exceeded");
}

// ---------------------------------------------------------------------------------------------
// Spawn refusals and rollback

fn spawn_tool_error(sandbox: &Sandbox, spawn_args: Value, extra: &str) -> (PathBuf, String) {
    parent_profile(
        sandbox,
        extra,
        vec![
            tool_call_response("call_spawn", "spawn_pod", spawn_args),
            text_response(&["ok"], false, None),
        ],
    );
    answering_profile(sandbox, "child", &["hi"]);
    let output = sandbox.run(&["run", "-p", "parent", "try to spawn"]);
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let entries = entries_so_far(&parent);
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished.len(), 1, "{entries:#?}");
    assert_eq!(finished[0]["outcome"], "error", "{:#}", finished[0]);
    assert!(of_kind(&entries, "child_spawned").is_empty());
    (parent, finished[0]["output"].as_str().unwrap().to_owned())
}

#[test]
fn scope_escalation_is_refused_and_leaves_no_child() {
    let sandbox = Sandbox::new();
    let (parent, error) = spawn_tool_error(
        &sandbox,
        json!({"profile": "child", "task": "x", "scope": {"allow": ["../outside"]}}),
        "",
    );
    assert!(
        error.contains("`../outside` is wider than the parent's scope"),
        "{error}"
    );
    assert!(sandbox.children_of(&parent).is_empty());
    assert_eq!(sandbox.pod_dirs().len(), 1, "only the parent's directory");
}

#[test]
fn scope_escalation_through_a_symlink_is_refused() {
    // `lnk` looks inside the parent's scope as written but points outside it.
    let sandbox = Sandbox::new();
    let outside = sandbox.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "s3cret").unwrap();
    std::os::unix::fs::symlink(&outside, sandbox.work().join("lnk")).unwrap();
    let (parent, error) = spawn_tool_error(
        &sandbox,
        json!({"profile": "child", "task": "x", "scope": {"allow": ["lnk"]}}),
        "",
    );
    assert!(
        error.contains("wider than the parent's") && error.contains("outside the parent's scope"),
        "{error}"
    );
    assert!(sandbox.children_of(&parent).is_empty());
    assert_eq!(sandbox.pod_dirs().len(), 1, "only the parent's directory");
}

#[test]
fn depth_limit_refuses_spawn() {
    // The same spawn succeeds with depth left (the seed scenario); here the parent has none.
    let sandbox = Sandbox::new();
    parent_profile(
        &sandbox,
        "",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "x"}),
            ),
            text_response(&["ok"], false, None),
        ],
    );
    // Lower the depth to 0 for this parent.
    let path = sandbox.root().join("work/.pods/profiles/parent.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("max_depth = 2", "max_depth = 0");
    std::fs::write(&path, text).unwrap();
    answering_profile(&sandbox, "child", &["hi"]);
    let output = sandbox.run(&["run", "-p", "parent", "try to spawn"]);
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let entries = entries_so_far(&parent);
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished[0]["outcome"], "error");
    let error = finished[0]["output"].as_str().unwrap();
    assert!(error.contains("depth"), "{error}");
    assert_eq!(sandbox.pod_dirs().len(), 1);
}

#[test]
fn child_not_in_allowed_profiles_is_refused() {
    let sandbox = Sandbox::new();
    let (_parent, error) =
        spawn_tool_error(&sandbox, json!({"profile": "stranger", "task": "x"}), "");
    assert!(error.contains("allowed_profiles"), "{error}");
    assert_eq!(sandbox.pod_dirs().len(), 1);
}

#[test]
fn spawn_rolls_back_when_the_child_never_becomes_ready() {
    let sandbox = Sandbox::new();
    let fake = sandbox.write(
        "fake-pods",
        "#!/bin/sh\necho \"child warming up slowly\" >&2\nsleep 30 </dev/null >/dev/null 2>&1 &\necho $! > \"$3/../../../grandchild.pid\"\necho $$ > \"$3/../../../fake.pid\"\nexec sleep 30\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    parent_profile(
        &sandbox,
        "[limits]\nspawn_ready_timeout_ms = 500\n",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "x"}),
            ),
            text_response(&["ok"], false, None),
        ],
    );
    answering_profile(&sandbox, "child", &["hi"]);
    let output = sandbox
        .pods()
        .env("PODS_CHILD_EXE", &fake)
        .args(["run", "-p", "parent", "spawn a slow child"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let entries = entries_so_far(&parent);
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished[0]["outcome"], "error", "{entries:#?}");
    let error = finished[0]["output"].as_str().unwrap();
    assert!(
        error.contains("did not report ready within 500 ms"),
        "{error}"
    );
    assert!(
        error.contains("child warming up slowly"),
        "stderr tail: {error}"
    );
    assert_eq!(
        sandbox.pod_dirs().len(),
        1,
        "the child's directory was removed"
    );
    assert!(of_kind(&entries, "child_spawned").is_empty());
    let pid: u32 = std::fs::read_to_string(sandbox.root().join("fake.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_gone(pid);
    // What the child started went with it: its whole process group was killed.
    let grandchild: u32 = std::fs::read_to_string(sandbox.root().join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _reap = KillOnDrop(grandchild);
    wait_until(
        &format!("process {grandchild} started by the child to end"),
        Duration::from_secs(10),
        || (!support::process_running(grandchild)).then_some(()),
    );
}

/// Kills a process not started through [`Background`] (one a child started) when dropped.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if support::process_running(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle actions interrupting a streaming run

fn holding_pod(sandbox: &Sandbox) -> (Background, PathBuf) {
    holding_pod_with(sandbox, "")
}

fn holding_pod_with(sandbox: &Sandbox, extra: &str) -> (Background, PathBuf) {
    profile(
        sandbox,
        "solo",
        &format!("[agent]\ntools = []\n\n{extra}"),
        vec![text_response(
            &["one ", "two ", "three ", "four"],
            false,
            HOLD,
        )],
    );
    start_solo(sandbox, "hold on")
}

fn interrupted(dir: &Path) -> Value {
    let entries = entries_so_far(dir);
    let terminal = last_terminal(&entries)
        .unwrap_or_else(|| panic!("no terminal entry: {entries:#?}"))
        .clone();
    assert_eq!(terminal["kind"], "run_interrupted", "{terminal:#}");
    assert_eq!(terminal["phase"]["provider_progress_seen"], true);
    terminal
}

#[test]
fn pods_stop_interrupts_with_cli_origin() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    let output = sandbox.run(&["stop", &id_of(&dir), "--reason", "enough", "--json"]);
    assert_exit(&output, 0);
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    let action = &terminal["action"];
    assert_eq!(action["kind"], "stop");
    assert_eq!(action["reason"], "enough");
    assert_eq!(action["origin"]["type"], "cli");
    assert!(
        action["origin"]["command"]
            .as_str()
            .unwrap()
            .starts_with("pods stop")
    );
    let request_id = action["origin"]["request_id"].as_str().unwrap();
    assert_eq!(uuid_version(request_id), Some(7));
    assert_eq!(printed["action"]["action_id"], action["action_id"]);
    let recorded = of_kind(&entries_so_far(&dir), "lifecycle_action")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let entry = recorded
        .iter()
        .find(|e| e["action"]["action_id"] == action["action_id"])
        .unwrap_or_else(|| panic!("{recorded:#?}"));
    assert_eq!(
        entry["active_run_id"], terminal["run_id"],
        "the action names the run it found"
    );
    assert!(!dir.join("control.sock").exists(), "socket removed on exit");
}

fn uuid_version(text: &str) -> Option<u32> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32)
        .then(|| hex[12..13].parse::<u32>().ok())
        .flatten()
}

#[test]
fn pods_stop_of_a_pod_that_is_not_running_is_a_clear_error() {
    let sandbox = Sandbox::new();
    answering_profile(&sandbox, "solo", &["hi"]);
    let run = sandbox.run(&["run", "-p", "solo", "hello"]);
    assert_exit(&run, 0);
    let dir = sandbox.root_pod().unwrap();
    let output = sandbox.run(&["stop", &id_of(&dir)]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not running"), "{stderr}");
    let missing = sandbox.run(&["stop", "no-such-pod"]);
    assert_exit(&missing, 2);
}

#[test]
fn cancel_over_the_control_socket_has_control_request_origin() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    // A subscriber hears how the run ended and that the pod exits.
    let mut events = UnixStream::connect(dir.join("control.sock")).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(
        events,
        "{}",
        json!({"id": "sub", "client": {"type": "other", "name": "watcher"}, "method": "subscribe"})
    )
    .unwrap();
    let mut events = BufReader::new(events);
    let mut line = String::new();
    events.read_line(&mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["ok"],
        true,
        "{line}"
    );
    let reply = control_request(
        &dir,
        json!({"id": "req-cancel-1", "client": {"type": "other", "name": "test-harness"},
               "method": "cancel", "params": {"reason": "changed my mind"}}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    // A cancelled `pods run` ends its one run and exits.
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "cancel");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "control_request", "request_id": "req-cancel-1", "client": "other:test-harness"})
    );
    let mut seen = Vec::new();
    for line in events.lines() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let last = event["event"] == "exiting";
        seen.push(event);
        if last {
            break;
        }
    }
    let ended = seen
        .iter()
        .find(|e| e["event"] == "run_ended")
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert_eq!(ended["run_id"], terminal["run_id"]);
    assert_eq!(ended["result"]["outcome"], "interrupted");
    assert_eq!(ended["result"]["action"]["kind"], "cancel");
    assert_eq!(seen.last().unwrap()["event"], "exiting");
}

#[test]
fn malformed_control_request_gets_an_error_reply_and_pod_keeps_running() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    let mut stream = UnixStream::connect(dir.join("control.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(stream, "{{not json").unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    reader.read_line(&mut line).unwrap();
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "bad_request");
    let status = control_request(
        &dir,
        json!({"id": "s1", "client": {"type": "cli", "command": "test"}, "method": "status"}),
    );
    assert_eq!(status["result"]["state"], "running", "{status}");
    signal(proc.pid(), "-TERM");
    proc.wait(Duration::from_secs(10));
}

#[test]
fn reload_over_the_control_socket_interrupts_with_reload_kind() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    // Change the manifest in place; reload starts a new segment with it.
    let manifest_path = dir.join("manifest.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(manifest.contains("max_turns = 16"), "{manifest}");
    std::fs::write(
        &manifest_path,
        manifest.replace("max_turns = 16", "max_turns = 3"),
    )
    .unwrap();
    let reply = control_request(
        &dir,
        json!({"id": "req-reload-1", "client": {"type": "cli", "command": "test reload"},
               "method": "reload"}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "reload");
    assert_eq!(terminal["reason"], "reloaded");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "cli", "command": "test reload", "request_id": "req-reload-1"})
    );
    let entries = entries_so_far(&dir);
    let segments = of_kind(&entries, "segment_started");
    assert_eq!(segments.len(), 2, "{entries:#?}");
    assert_ne!(
        segments[0]["manifest_digest"],
        segments[1]["manifest_digest"]
    );
    let closed = of_kind(&entries, "segment_closed");
    assert_eq!(closed[0]["reason"], "reloaded");
    // The edited value's source is unknown now, not the profile's it no longer matches.
    let provenance: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(
        provenance["agent.max_turns"]["kind"], "unknown",
        "{provenance:#}"
    );
    assert_ne!(provenance["model.scheme"]["kind"], "unknown");
}

#[test]
fn idle_watchdog_interrupts_a_stalled_stream() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod_with(&sandbox, "[limits]\nwatchdog_ms = 400\n");
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "watchdog");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "watchdog", "idle_ms": 400})
    );
}

#[test]
fn sigterm_shuts_down_with_signal_origin() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    signal(proc.pid(), "-TERM");
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "shutdown");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "signal", "signal": "SIGTERM"})
    );
}

// ---------------------------------------------------------------------------------------------
// Trees: cascades, parent exit, loss

/// A parent that spawns two holding children and then waits on the first.
fn tree(sandbox: &Sandbox) -> (Background, PathBuf, Vec<PathBuf>) {
    tree_in(sandbox, &sandbox.home(), "")
}

/// [`tree`] in the pods home `home`, with `extra` in the parent's profile.
fn tree_in(sandbox: &Sandbox, home: &Path, extra: &str) -> (Background, PathBuf, Vec<PathBuf>) {
    parent_profile(sandbox, extra, support::responses::spawn_two_holders());
    support::responses::holder_profile(sandbox);
    start_tree(sandbox, pods_in(sandbox, home), home)
}

/// A `pods` command in this sandbox using the pods home `home`.
fn pods_in(sandbox: &Sandbox, home: &Path) -> std::process::Command {
    let mut cmd = sandbox.pods();
    cmd.arg("--home").arg(home);
    cmd
}

#[test]
fn stop_tree_cascades_to_both_children_linked_to_one_action() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let output = sandbox.run(&["stop", &id_of(&parent), "--tree", "--reason", "wrap up"]);
    assert_exit(&output, 0);
    proc.wait(Duration::from_secs(20));
    let parent_log = entries_so_far(&parent);
    let parent_action = of_kind(&parent_log, "lifecycle_action")
        .into_iter()
        .find(|e| e["action"]["kind"] == "stop_tree")
        .unwrap_or_else(|| panic!("{parent_log:#?}"))["action"]
        .clone();
    assert_eq!(parent_action["origin"]["type"], "cli");
    let terminal = last_terminal(&parent_log).unwrap();
    assert_eq!(terminal["kind"], "run_interrupted");
    assert_eq!(terminal["action"]["action_id"], parent_action["action_id"]);
    for kid in &kids {
        let t = interrupted(kid);
        assert_eq!(t["action"]["kind"], "stop_tree", "{t:#}");
        assert_eq!(
            t["action"]["caused_by"]["action_id"],
            parent_action["action_id"]
        );
        assert_eq!(t["action"]["caused_by"]["pod_id"], json!(id_of(&parent)));
        assert_eq!(t["action"]["reason"], "wrap up");
        assert_eq!(
            t["action"]["origin"]["client"],
            json!(format!("parent_pod:{}", id_of(&parent)))
        );
        assert_eq!(t["action"]["origin"]["type"], "control_request");
    }
    let exited = of_kind(&parent_log, "child_exited");
    assert_eq!(exited.len(), 2, "{parent_log:#?}");
    assert!(exited.iter().all(|e| e["expected"] == true));
    for pid in child_pids(&parent_log) {
        assert_gone(pid);
    }
}

#[test]
fn sigint_to_pods_run_stops_the_tree_with_signal_origin() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    signal(proc.pid(), "-INT");
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(130),
        "{}",
        proc.output()
    );
    let parent_log = entries_so_far(&parent);
    let terminal = last_terminal(&parent_log).unwrap().clone();
    assert_eq!(terminal["action"]["kind"], "shutdown");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "signal", "signal": "SIGINT"})
    );
    for kid in &kids {
        let t = interrupted(kid);
        assert_eq!(t["action"]["kind"], "shutdown");
        assert_eq!(
            t["action"]["caused_by"]["action_id"],
            terminal["action"]["action_id"]
        );
    }
    for pid in child_pids(&parent_log) {
        assert_gone(pid);
    }
}

#[test]
fn killed_parent_makes_children_stop_with_parent_exit() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let pids = child_pids(&entries_so_far(&parent));
    signal(proc.pid(), "-KILL");
    proc.wait(Duration::from_secs(10));
    for pid in &pids {
        assert_gone(*pid);
    }
    for kid in &kids {
        let t = interrupted(kid);
        assert_eq!(t["action"]["kind"], "parent_exit", "{t:#}");
        assert_eq!(t["action"]["origin"]["type"], "runtime");
        assert!(
            t["action"].get("caused_by").is_none(),
            "the dead parent recorded no action"
        );
    }
    // The parent itself was killed: its last run has no terminal entry.
    assert!(last_terminal(&entries_so_far(&parent)).is_none());
}

#[test]
fn killed_child_leaves_crash_evidence_and_parent_records_the_loss() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    // Child "a" is the one the parent waits on.
    let a = home::named(&kids, "a");
    let a_id = id_of(&a);
    let a_pid = of_kind(&entries_so_far(&parent), "child_spawned")
        .iter()
        .find(|e| e["child_pod_id"] == json!(a_id))
        .unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    signal(a_pid, "-KILL");
    assert_gone(a_pid);
    // The parent's wait_pod returns the loss, the run goes on and completes; "b" is stopped.
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        proc.output()
    );
    let a_log = entries_so_far(&a);
    assert!(!of_kind(&a_log, "run_started").is_empty());
    assert!(
        last_terminal(&a_log).is_none(),
        "no terminal entry: {a_log:#?}"
    );
    let parent_log = entries_so_far(&parent);
    let lost = of_kind(&parent_log, "child_exited")
        .into_iter()
        .find(|e| e["child_pod_id"] == json!(a_id))
        .unwrap_or_else(|| panic!("{parent_log:#?}"))
        .clone();
    assert_eq!(lost["expected"], false);
    assert_eq!(lost["signal"], 9);
    let a_info = pod_info(&a);
    assert_eq!(a_info["state"], "failed", "{a_info}");
    assert!(a_info.get("pid").is_none(), "{a_info}");
    let wait = of_kind(&parent_log, "tool_call_finished")
        .into_iter()
        .find(|e| e["tool"] == "wait_pod")
        .unwrap()
        .clone();
    let result: Value = serde_json::from_str(wait["output"].as_str().unwrap()).unwrap();
    assert_eq!(result["outcome"], "lost", "{result}");
    for pid in child_pids(&parent_log) {
        assert_gone(pid);
    }
}

#[test]
fn send_list_and_stop_a_child_through_the_tools() {
    let sandbox = Sandbox::new();
    parent_profile(
        &sandbox,
        "",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "first task", "name": "k"}),
            ),
            tool_call_response("call_wait1", "wait_pod", json!({"pod_id": "k"})),
            tool_call_response(
                "call_send",
                "send_to_pod",
                json!({"pod_id": "k", "input": "second task"}),
            ),
            tool_call_response("call_wait2", "wait_pod", json!({"pod_id": "k"})),
            tool_call_response("call_list", "list_pods", json!({})),
            tool_call_response(
                "call_stop",
                "stop_pod",
                json!({"pod_id": "k", "reason": "no more work"}),
            ),
            text_response(&["all ", "done"], false, None),
        ],
    );
    profile(
        &sandbox,
        "child",
        "[agent]\ntools = []\n",
        vec![
            text_response(&["first ", "answer"], false, None),
            truncated_text_response(&["second ", "answer"]),
        ],
    );
    let output = sandbox.run(&["run", "-p", "parent", "use a child twice"]);
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let child = sandbox.children_of(&parent).pop().unwrap();
    let parent_log = entries_so_far(&parent);
    let outputs: Vec<(String, Value)> = of_kind(&parent_log, "tool_call_finished")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "ok", "{e:#}");
            (
                e["call_id"].as_str().unwrap().to_owned(),
                serde_json::from_str(e["output"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let by_call = |id: &str| outputs.iter().find(|(c, _)| c == id).unwrap().1.clone();
    assert_eq!(by_call("call_wait1")["outcome"], "completed");
    assert_eq!(by_call("call_wait1")["text"], "first answer");
    assert_eq!(by_call("call_wait2")["text"], "second answer");
    // The parent's model learns how each answer ended: the second one was cut.
    assert_eq!(by_call("call_wait1")["stop_reason"]["reason"], "end_turn");
    assert_eq!(by_call("call_wait1")["truncated"], false);
    assert_eq!(by_call("call_wait2")["stop_reason"]["reason"], "max_tokens");
    assert_eq!(by_call("call_wait2")["truncated"], true);
    let listed = by_call("call_list");
    assert_eq!(listed["children"][0]["pod_id"], json!(id_of(&child)));
    assert_eq!(listed["children"][0]["state"], "idle");
    assert_eq!(
        listed["children"][0]["last_run_turns_ended"], 1,
        "turn-end events reached the parent"
    );
    assert_eq!(by_call("call_stop")["exit"], "exit code 0");

    let child_log = entries_so_far(&child);
    let runs = of_kind(&child_log, "run_started");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["trigger"]["type"], "parent_pod");
    assert_eq!(runs[0]["trigger"]["tool_call_id"], "call_spawn");
    assert_eq!(runs[1]["trigger"]["tool_call_id"], "call_send");
    let stop = of_kind(&child_log, "lifecycle_action")
        .into_iter()
        .find(|e| e["action"]["kind"] == "stop")
        .unwrap_or_else(|| panic!("{child_log:#?}"))
        .clone();
    assert_eq!(
        stop["action"]["origin"],
        json!({"type": "parent_pod", "parent_pod_id": id_of(&parent), "tool_call_id": "call_stop"})
    );
    assert_eq!(stop["action"]["reason"], "no more work");
    let exited = of_kind(&parent_log, "child_exited");
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["expected"], true);
    assert_eq!(pod_info(&child)["state"], "stopped");
}

#[test]
fn serve_without_a_pod_directory_fails_naming_the_file() {
    let sandbox = Sandbox::new();
    let missing = sandbox.root().join("home/pods/nope");
    let output = sandbox.run(&["serve", "--pod-dir", missing.to_str().unwrap()]);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pod.json"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "no readiness line: {}",
        describe(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// The offline demo

#[test]
fn offline_demo_spawns_a_child_whose_failure_the_trace_explains() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_within(
        &["run", "-p", "demo", "look around"],
        Duration::from_secs(60),
    );
    assert_exit(&run, 0);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // The model's text streams to stdout; tool calls are reported on stderr.
    assert!(
        stdout.contains("Hello! I am a pod running the offline demo."),
        "{}",
        describe(&run)
    );
    assert!(
        stdout.contains("failed mid-stream with context_length_exceeded"),
        "the parent's last turn reports the child's failure\n{}",
        describe(&run)
    );
    assert!(stderr.contains("→ list_dir"), "{}", describe(&run));
    assert!(stderr.contains("→ spawn_pod"), "{}", describe(&run));
    assert!(stderr.contains("← wait_pod: ok"), "{}", describe(&run));

    // The tree: one parent, one child pointing at it.
    let listed = support::stdout_json(&sandbox.run(&["ls", "--json"]));
    let pods = listed.as_array().unwrap();
    assert_eq!(pods.len(), 2, "{listed:#}");
    let parent = pods.iter().find(|p| p["profile"] == "demo").unwrap();
    let child = pods.iter().find(|p| p["profile"] == "demo-child").unwrap();
    assert_eq!(parent["parent_id"], Value::Null);
    assert_eq!(child["parent_id"], parent["id"], "{listed:#}");
    assert_eq!(parent["last_run"]["outcome"], "completed");
    assert_eq!(child["last_run"]["outcome"], "provider_error", "{listed:#}");
    assert_eq!(child["last_run"]["error_class"], "context_length_exceeded");
    let parent_id = parent["id"].as_str().unwrap();
    let child_id = child["id"].as_str().unwrap();

    // People see the child indented under its parent.
    let human = sandbox.run(&["ls"]);
    assert_exit(&human, 0);
    let text = String::from_utf8_lossy(&human.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let parent_at = lines
        .iter()
        .position(|l| l.starts_with(parent_id))
        .unwrap_or_else(|| panic!("parent not flush left:\n{text}"));
    let child_line = lines[parent_at + 1];
    assert!(
        child_line.starts_with(&format!("  {child_id}")),
        "the child is indented right under its parent:\n{text}"
    );

    // `pods trace <child> --errors` shows the failed request and what led to it.
    let trace = sandbox.run(&["trace", child_id, "--errors"]);
    assert_exit(&trace, 0);
    let shown = String::from_utf8_lossy(&trace.stdout).into_owned();
    assert!(shown.contains("failed request"), "{shown}");
    let started_at = shown
        .find(" started response ")
        .unwrap_or_else(|| panic!("the started event is shown:\n{shown}"));
    let text_at = shown
        .find("text (")
        .unwrap_or_else(|| panic!("the text deltas are shown:\n{shown}"));
    let error_at = shown
        .find("ERROR context_length_exceeded")
        .unwrap_or_else(|| panic!("the error is shown:\n{shown}"));
    assert!(
        started_at < text_at && text_at < error_at,
        "events before the error:\n{shown}"
    );

    // The child kept its parent's tracing switch, and says where it came from.
    let child_dir = sandbox.home().join("pods").join(child_id);
    let manifest = std::fs::read_to_string(child_dir.join("manifest.toml")).unwrap();
    let session = &manifest[manifest.find("[session]").unwrap()..];
    assert!(session.contains("record_event_trace = true"), "{manifest}");
    let provenance: Value =
        serde_json::from_str(&std::fs::read_to_string(child_dir.join("provenance.json")).unwrap())
            .unwrap();
    let key = &provenance["session.record_event_trace"];
    assert_eq!(key["kind"], "parent", "{key}");
    assert!(key["detail"].as_str().unwrap().contains(parent_id), "{key}");
    assert!(
        key["from"]["detail"]
            .as_str()
            .unwrap()
            .contains("demo.toml"),
        "the parent's own source: {key}"
    );
    assert_eq!(trace_logs(&child_dir).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Spawn limits through the tree

#[test]
fn grandchild_is_refused_when_the_child_has_no_depth_left() {
    let sandbox = Sandbox::new();
    parent_profile_with_limits(
        &sandbox,
        1,
        4,
        "",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "delegate further", "name": "kid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["done"], false, None),
        ],
    );
    // The child profile asks for more depth than it can have; it is decremented regardless.
    profile(
        &sandbox,
        "child",
        "[agent]\ntools = [\"spawn_pod\"]\n\n[spawn]\nallowed_profiles = [\"grandkid\"]\nmax_depth = 5\nmax_children = 1\n",
        vec![
            tool_call_response(
                "call_grand",
                "spawn_pod",
                json!({"profile": "grandkid", "task": "x"}),
            ),
            text_response(&["could ", "not ", "delegate"], false, None),
        ],
    );
    answering_profile(&sandbox, "grandkid", &["hi"]);
    let output = sandbox.run_within(
        &["run", "-p", "parent", "delegate twice"],
        Duration::from_secs(60),
    );
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let kids = sandbox.children_of(&parent);
    assert_eq!(kids.len(), 1, "{}", describe(&output));
    let child = &kids[0];
    let manifest = std::fs::read_to_string(child.join("manifest.toml")).unwrap();
    assert!(manifest.contains("max_depth = 0"), "{manifest}");

    // The child's spawn_pod was refused, and the refusal went back to its model.
    let child_log = entries_so_far(child);
    let finished = of_kind(&child_log, "tool_call_finished");
    assert_eq!(finished.len(), 1, "{child_log:#?}");
    assert_eq!(finished[0]["call_id"], "call_grand");
    assert_eq!(finished[0]["outcome"], "error", "{:#}", finished[0]);
    let error = finished[0]["output"].as_str().unwrap();
    assert!(error.contains("spawn.max_depth is 0"), "{error}");
    assert!(of_kind(&child_log, "child_spawned").is_empty());
    assert_eq!(
        of_kind(&child_log, "provider_request_started").len(),
        2,
        "the model was asked again with the refusal: {child_log:#?}"
    );
    let terminal = last_terminal(&child_log).unwrap();
    assert_eq!(terminal["kind"], "run_completed", "{terminal:#}");
    assert_eq!(terminal["text"], "could not delegate");
    assert_eq!(sandbox.pod_dirs().len(), 2, "no grandchild directory");
}

#[test]
fn a_second_live_child_is_refused_by_max_children() {
    let sandbox = Sandbox::new();
    parent_profile_with_limits(
        &sandbox,
        2,
        1,
        "",
        vec![
            tool_call_response(
                "call_one",
                "spawn_pod",
                json!({"profile": "child", "task": "first", "name": "one"}),
            ),
            tool_call_response(
                "call_two",
                "spawn_pod",
                json!({"profile": "child", "task": "second", "name": "two"}),
            ),
            text_response(&["only ", "one"], false, None),
        ],
    );
    answering_profile(&sandbox, "child", &["hi"]);
    let output = sandbox.run_within(
        &["run", "-p", "parent", "spawn two"],
        Duration::from_secs(60),
    );
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let entries = entries_so_far(&parent);
    let finished = of_kind(&entries, "tool_call_finished");
    assert_eq!(finished.len(), 2, "{entries:#?}");
    assert_eq!(finished[0]["call_id"], "call_one");
    assert_eq!(finished[0]["outcome"], "ok", "{:#}", finished[0]);
    assert_eq!(finished[1]["call_id"], "call_two");
    assert_eq!(finished[1]["outcome"], "error", "{:#}", finished[1]);
    let error = finished[1]["output"].as_str().unwrap();
    assert!(
        error.contains("1 children are live and spawn.max_children is 1"),
        "{error}"
    );
    assert_eq!(of_kind(&entries, "child_spawned").len(), 1);
    assert_eq!(sandbox.pod_dirs().len(), 2, "no second child directory");
    let kids = sandbox.children_of(&parent);
    assert_eq!(kids.len(), 1);
    assert_eq!(pod_info(&kids[0])["name"], "one");
    for pid in child_pids(&entries) {
        assert_gone(pid);
    }
}

// ---------------------------------------------------------------------------------------------
// Overlapping actions on one pod

/// Stops a process with SIGSTOP; it is continued when this is dropped, so that it can notice
/// its parent is gone and end.
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Frozen {
        signal(pid, "-STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// The next reply on a control connection; `None` when the pod closed it first.
fn read_reply(reader: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}")))
        }
    }
}

#[test]
fn cancel_then_stop_in_quick_succession_reports_the_first_action() {
    // Both are addressed to the pod (equally near): the one that reached it first governs.
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    let mut stream = UnixStream::connect(dir.join("control.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cancel = json!({"id": "req-cancel", "client": {"type": "other", "name": "racer"},
                        "method": "cancel", "params": {"reason": "first"}});
    let stop = json!({"id": "req-stop", "client": {"type": "other", "name": "racer"},
                      "method": "stop", "params": {"reason": "second"}});
    // One write: the pod reads both requests together.
    stream
        .write_all(format!("{cancel}\n{stop}\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let first = read_reply(&mut reader).expect("a reply to the cancel");
    assert_eq!(first["ok"], true, "{first}");
    let cancel_id = first["result"]["action_id"].clone();
    // The stop is recorded as a later action, or refused, or unanswered: the pod was ending.
    let second = read_reply(&mut reader);
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    let action = &terminal["action"];
    assert!(action.is_object(), "exactly one action: {terminal:#}");
    assert_eq!(action["action_id"], cancel_id, "{terminal:#}");
    assert_eq!(action["kind"], "cancel");
    assert_eq!(action["reason"], "first");
    assert_eq!(action["origin"]["request_id"], "req-cancel");
    assert_eq!(terminal["reason"], "cancelled");
    let recorded = of_kind(&entries_so_far(&dir), "lifecycle_action")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    if let Some(second) = second.filter(|r| r["ok"] == true) {
        let stop_id = &second["result"]["action_id"];
        assert_ne!(stop_id, &cancel_id);
        assert!(
            recorded
                .iter()
                .any(|e| &e["action"]["action_id"] == stop_id),
            "the later stop is recorded, not lost: {recorded:#?}"
        );
    }
}

#[test]
fn direct_stop_of_a_child_during_the_parents_stop_tree_reports_the_nearest_action() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let parent_log = entries_so_far(&parent);
    let spawned = of_kind(&parent_log, "child_spawned");
    let pid_of = |dir: &PathBuf| {
        spawned
            .iter()
            .find(|e| e["child_pod_id"] == json!(id_of(dir)))
            .unwrap()["pid"]
            .as_u64()
            .unwrap() as u32
    };
    let (a, b) = if pod_info(&kids[0])["name"] == "a" {
        (&kids[0], &kids[1])
    } else {
        (&kids[1], &kids[0])
    };
    let a_pid = pid_of(a);
    // Hold child "a" still so that both actions are waiting for it when it goes on.
    let mut direct = UnixStream::connect(a.join("control.sock")).unwrap();
    direct
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let frozen = Frozen::new(a_pid);
    writeln!(
        direct,
        "{}",
        json!({"id": "req-direct", "client": {"type": "cli", "command": "pods stop a"},
               "method": "stop", "params": {"reason": "direct"}})
    )
    .unwrap();
    let mut stop_tree = sandbox.spawn(
        &[
            "stop",
            &id_of(&parent),
            "--tree",
            "--reason",
            "cascade",
            "--json",
        ],
        "stop-tree",
    );
    // The cascade reached "b"; the parent sent it to "a" at the same time.
    wait_until("the cascade to reach b", Duration::from_secs(20), || {
        last_terminal(&entries_so_far(b)).map(|_| ())
    });
    drop(frozen);
    let reply = read_reply(&mut BufReader::new(direct)).expect("a reply to the direct stop");
    let stopped = stop_tree.finish(Duration::from_secs(30));
    assert_exit(&stopped, 0);
    let tree_action = support::stdout_json(&stopped)["action"].clone();
    proc.wait(Duration::from_secs(30));

    let a_log = entries_so_far(a);
    let recorded = of_kind(&a_log, "lifecycle_action");
    let cascade_entry = recorded
        .iter()
        .find(|e| e["action"]["caused_by"]["action_id"] == tree_action["action_id"]);
    let terminal = interrupted(a);
    let action = &terminal["action"];
    assert!(action.is_object(), "exactly one action: {terminal:#}");
    if reply["ok"] != true {
        // "a" took the cascade first and ended before it took the direct stop: that one is
        // refused as any request to an ending pod is, and the cascade stands alone.
        assert_eq!(reply["error"]["code"], "not_running", "{reply}");
        let cascade = cascade_entry.unwrap_or_else(|| panic!("{a_log:#?}"));
        assert!(
            recorded
                .iter()
                .all(|e| e["action"].get("caused_by").is_some()),
            "only the cascade is recorded: {a_log:#?}"
        );
        assert_eq!(action["action_id"], cascade["action"]["action_id"]);
        assert_gone(a_pid);
        return;
    }
    let direct_id = reply["result"]["action_id"].clone();
    let direct_entry = recorded
        .iter()
        .find(|e| e["action"]["action_id"] == direct_id)
        .unwrap_or_else(|| panic!("{a_log:#?}"));
    assert_eq!(direct_entry["action"]["kind"], "stop");
    assert!(direct_entry["action"].get("caused_by").is_none());
    match cascade_entry {
        // The direct stop reached "a" first: it is both the nearer and the earlier one.
        None => assert_eq!(action["action_id"], direct_id, "{terminal:#}"),
        Some(cascade) if direct_entry["seq"].as_u64() < cascade["seq"].as_u64() => {
            assert_eq!(action["action_id"], direct_id, "{terminal:#}");
            assert!(action.get("caused_by").is_none(), "{terminal:#}");
            assert_eq!(action["reason"], "direct");
            assert_eq!(
                cascade["action"]["caused_by"]["pod_id"],
                json!(id_of(&parent))
            );
        }
        // The cascade came first: the direct stop still wins if it arrived before the run
        // ended, else the cascade stands.
        Some(cascade) => {
            let id = &action["action_id"];
            assert!(
                id == &direct_id || id == &cascade["action"]["action_id"],
                "{terminal:#}"
            );
        }
    }
    assert_gone(a_pid);
}

// ---------------------------------------------------------------------------------------------
// Raw SSE capture in a child

#[test]
fn child_inherits_raw_sse_capture_and_its_frame_bound() {
    let sandbox = Sandbox::new();
    parent_profile(
        &sandbox,
        "[session]\nrecord_event_trace = true\ntrace_raw_sse = true\ntrace_max_frame_bytes = 256\n",
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "say a lot", "name": "kid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["ok"], false, None),
        ],
    );
    let long = "x".repeat(1000);
    answering_profile(&sandbox, "child", &["short ", &long]);
    let output = sandbox.run_within(
        &["run", "-p", "parent", "capture frames"],
        Duration::from_secs(60),
    );
    assert_exit(&output, 0);
    let parent = sandbox.root_pod().unwrap();
    let child = sandbox.children_of(&parent).pop().unwrap();
    let manifest = std::fs::read_to_string(child.join("manifest.toml")).unwrap();
    assert!(manifest.contains("trace_raw_sse = true"), "{manifest}");
    assert!(
        manifest.contains("trace_max_frame_bytes = 256"),
        "{manifest}"
    );

    let traces = trace_logs(&child);
    assert_eq!(traces.len(), 1);
    let trace = support::read_json_lines(&traces[0]);
    let raw: Vec<&Value> = trace.iter().filter(|e| e["kind"] == "raw_sse").collect();
    let deltas: Vec<&Value> = raw
        .iter()
        .copied()
        .filter(|e| e["event"] == "response.output_text.delta")
        .collect();
    assert_eq!(deltas.len(), 2, "{raw:#?}");
    // The data line exactly as the cassette sent it.
    let sent = |word: &str| {
        json!({"type": "response.output_text.delta", "item_id": "msg_1",
               "output_index": 0, "content_index": 0, "delta": word})
        .to_string()
    };
    let short = sent("short ");
    assert!(short.len() < 256);
    assert_eq!(deltas[0]["data"], json!(short));
    assert_eq!(deltas[0]["original_len"], json!(short.len()));
    assert_eq!(deltas[0]["truncated"], false);
    let whole = sent(&long);
    let cut = deltas[1]["data"].as_str().unwrap();
    assert_eq!(cut.len(), 256, "cut at the bound: {cut}");
    assert!(whole.starts_with(cut));
    assert_eq!(deltas[1]["original_len"], json!(whole.len()));
    assert_eq!(deltas[1]["truncated"], true);
    // Only the raw copy is bounded: the normalized event and the answer are whole.
    let text = serde_json::to_string(&trace).unwrap();
    assert!(
        text.contains(&format!("\"{long}\"")),
        "normalized delta is whole"
    );
    let terminal = last_terminal(&entries_so_far(&child)).unwrap().clone();
    assert_eq!(terminal["text"], json!(format!("short {long}")));
    // The parent's own frames are captured too.
    let parent_traces = trace_logs(&parent);
    assert!(
        support::read_json_lines(&parent_traces[0])
            .iter()
            .any(|e| e["kind"] == "raw_sse")
    );
}

// ---------------------------------------------------------------------------------------------
// Control sockets from any home, checked claims, bounded shutdown

/// A pods home far longer than a socket path may be (`sun_path` holds 108 bytes; the socket in
/// the pod directory would be `<home>/pods/<36-char id>/control.sock`, 55 bytes more).
fn long_home(sandbox: &Sandbox) -> PathBuf {
    let mut home = sandbox.root().to_owned();
    for i in 0..4 {
        home.push(format!(
            "a-rather-long-directory-name-as-ci-workspaces-have-{i:04}"
        ));
    }
    home.push("home");
    std::fs::create_dir_all(&home).unwrap();
    assert!(home.as_os_str().len() > 200, "{}", home.display());
    home
}

/// Where `control.sock` in `dir` points, while the pod runs.
fn socket_target(dir: &Path) -> PathBuf {
    std::fs::read_link(dir.join("control.sock"))
        .unwrap_or_else(|e| panic!("{}: control.sock is no link: {e}", dir.display()))
}

#[test]
fn control_sockets_work_from_a_home_longer_than_the_socket_path_limit() {
    let sandbox = Sandbox::new();
    let home = long_home(&sandbox);
    // `pods doctor` checks the socket directory and the path length for this home.
    let doctor = pods_in(&sandbox, &home)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", describe(&doctor)));
    let sockets = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "control sockets")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(sockets["ok"], true, "{sockets:#}");
    assert!(
        sockets["detail"].as_str().unwrap().contains("limit 107"),
        "{sockets:#}"
    );

    // A full run in the long home.
    answering_profile(&sandbox, "solo", &["all ", "good"]);
    let run = pods_in(&sandbox, &home)
        .args(["run", "-p", "solo", "hello"])
        .output()
        .unwrap();
    assert_exit(&run, 0);
    assert!(String::from_utf8_lossy(&run.stdout).contains("all good"));
    let solo = home::root_pod(&home).unwrap();
    let solo_log = entries_so_far(&solo);
    assert_eq!(
        last_terminal(&solo_log).unwrap()["kind"],
        "run_completed",
        "{}",
        describe(&run)
    );
    assert!(
        std::fs::symlink_metadata(solo.join("control.sock")).is_err(),
        "the link is removed when the pod ends"
    );
    std::fs::remove_dir_all(&solo).unwrap();

    // A parent spawning children there, each bound where the path is short.
    let (mut proc, parent, kids) = tree_in(&sandbox, &home, "");
    for dir in kids.iter().chain([&parent]) {
        let target = socket_target(dir);
        assert!(target.as_os_str().len() <= 107, "{}", target.display());
        assert!(dir.join("control.sock").as_os_str().len() > 250);
    }
    let targets: Vec<PathBuf> = kids
        .iter()
        .chain([&parent])
        .map(|d| socket_target(d))
        .collect();
    // `pods stop` finds the parent's socket through the pod directory and stops the tree.
    let stop = pods_in(&sandbox, &home)
        .args(["stop", &id_of(&parent), "--tree"])
        .output()
        .unwrap();
    assert_exit(&stop, 0);
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(130),
        "{}",
        proc.output()
    );
    let parent_log = entries_so_far(&parent);
    let action = of_kind(&parent_log, "lifecycle_action")
        .into_iter()
        .find(|e| e["action"]["kind"] == "stop_tree")
        .unwrap_or_else(|| panic!("{parent_log:#?}"))["action"]
        .clone();
    assert_eq!(action["origin"]["type"], "cli");
    for kid in &kids {
        let t = interrupted(kid);
        assert_eq!(t["action"]["kind"], "stop_tree", "{t:#}");
        assert_eq!(t["action"]["caused_by"]["action_id"], action["action_id"]);
    }
    for pid in child_pids(&parent_log) {
        assert_gone(pid);
    }
    for target in targets {
        assert!(!target.exists(), "{} left behind", target.display());
    }
}

#[test]
fn doctor_reports_a_control_socket_directory_that_cannot_be_used() {
    let sandbox = Sandbox::new();
    let runtime = sandbox.root().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::write(runtime.join("pods"), "in the way").unwrap();
    let broken = sandbox
        .pods()
        .env("XDG_RUNTIME_DIR", &runtime)
        .arg("doctor")
        .output()
        .unwrap();
    assert_exit(&broken, 2);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("control sockets"))
        .unwrap_or_else(|| panic!("{}", describe(&broken)));
    assert!(line.starts_with("[BAD]"), "{line}");
    assert!(
        line.contains(&format!(
            "{}: it is not a directory",
            runtime.join("pods").display()
        )),
        "{line}"
    );
    // A usable runtime directory is where the sockets go.
    let private = sandbox.root().join("run-ok");
    std::fs::create_dir_all(&private).unwrap();
    let fine = sandbox
        .pods()
        .env("XDG_RUNTIME_DIR", &private)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&fine.stdout).unwrap_or_else(|e| panic!("{e}\n{}", describe(&fine)));
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "control sockets")
        .unwrap_or_else(|| panic!("{report:#}"))
        .clone();
    assert_eq!(check["ok"], true, "{check:#}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains(&private.join("pods").display().to_string()),
        "{detail}"
    );
}

#[test]
fn a_forged_parent_claim_is_recorded_as_unverified_and_the_real_cascade_is_verified() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree(&sandbox);
    let parent_id = id_of(&parent);
    let b = home::named(&kids, "b");
    // This test process claims to be b's parent, with a cascade link to a made-up action.
    let reply = control_request(
        &b,
        json!({"id": "req-forged", "method": "cancel",
               "client": {"type": "parent_pod", "pod_id": parent_id, "tool_call_id": "call_forged"},
               "params": {"reason": "forged", "caused_by": {"pod_id": parent_id, "action_id": "made-up", "kind": "stop_tree"}}}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    let recorded = wait_until("the forged action", Duration::from_secs(10), || {
        of_kind(&entries_so_far(&b), "lifecycle_action")
            .into_iter()
            .find(|e| e["action"]["reason"] == "forged")
            .cloned()
    });
    let action = &recorded["action"];
    assert_eq!(action["kind"], "cancel");
    assert!(action.get("caused_by").is_none(), "{action:#}");
    let origin = &action["origin"];
    assert_eq!(origin["type"], "unverified", "{origin:#}");
    assert_eq!(
        origin["claimed"],
        json!({"type": "parent_pod", "parent_pod_id": parent_id, "tool_call_id": "call_forged"})
    );
    assert_eq!(origin["claimed_caused_by"]["action_id"], "made-up");
    assert_eq!(origin["peer"]["pid"], json!(std::process::id()));
    let parent_pid = pod_info(&parent)["pid"].as_u64().unwrap();
    assert!(
        origin["why"]
            .as_str()
            .unwrap()
            .contains(&format!("recorded pid {parent_pid}")),
        "{origin:#}"
    );
    // b's cancelled run says so too; the export states the origin as a claim.
    wait_until("b's run to end", Duration::from_secs(10), || {
        last_terminal(&entries_so_far(&b)).cloned()
    });
    let cancelled = interrupted(&b);
    assert_eq!(cancelled["action"]["origin"]["type"], "unverified");
    let export = sandbox.run(&["export", &id_of(&b)]);
    assert_exit(&export, 0);
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(text.contains("\"unverified\""), "{text}");
    assert!(text.contains("call_forged"), "{text}");
    let markdown = sandbox.run(&["export", &id_of(&b), "--format", "markdown"]);
    assert_exit(&markdown, 0);
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(markdown.contains("unverified claim"), "{markdown}");

    // The real parent's cascade is believed.
    signal(proc.pid(), "-TERM");
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        Some(130),
        "{}",
        proc.output()
    );
    let shutdown = of_kind(&entries_so_far(&parent), "lifecycle_action")
        .into_iter()
        .find(|e| e["action"]["kind"] == "shutdown")
        .unwrap()["action"]
        .clone();
    for kid in &kids {
        let cascaded = of_kind(&entries_so_far(kid), "lifecycle_action")
            .into_iter()
            .find(|e| e["action"]["kind"] == "shutdown")
            .unwrap_or_else(|| panic!("{:#?}", entries_so_far(kid)))["action"]
            .clone();
        assert_eq!(
            cascaded["origin"],
            json!({"type": "control_request", "request_id": cascaded["origin"]["request_id"],
                   "client": format!("parent_pod:{parent_id}")}),
            "{cascaded:#}"
        );
        assert_eq!(cascaded["caused_by"]["action_id"], shutdown["action_id"]);
    }
}

#[test]
fn one_sigterm_ends_a_parent_whose_child_is_frozen_and_records_the_kill() {
    let sandbox = Sandbox::new();
    let (mut proc, parent, kids) = tree_in(
        &sandbox,
        &sandbox.home(),
        "[limits]\nshutdown_grace_ms = 1000\n",
    );
    let a = home::named(&kids, "a");
    let a_id = id_of(&a);
    let a_pid = pod_info(&a)["pid"].as_u64().unwrap() as u32;
    let _guard = KillOnDrop(a_pid);
    signal(a_pid, "-STOP");
    let sent = Instant::now();
    signal(proc.pid(), "-TERM");
    assert_eq!(
        proc.wait(Duration::from_secs(30)),
        Some(130),
        "{}",
        proc.output()
    );
    eprintln!(
        "SIGTERM to exit with a frozen child (shutdown_grace_ms = 1000): {} ms",
        sent.elapsed().as_millis()
    );
    assert_gone(a_pid);
    let parent_log = entries_so_far(&parent);
    let actions = of_kind(&parent_log, "lifecycle_action");
    let shutdown = actions
        .iter()
        .find(|e| e["action"]["kind"] == "shutdown")
        .unwrap_or_else(|| panic!("{parent_log:#?}"))["action"]
        .clone();
    assert_eq!(
        shutdown["origin"],
        json!({"type": "signal", "signal": "SIGTERM"})
    );
    let kills: Vec<&Value> = actions
        .iter()
        .filter(|e| e["action"]["kind"] == "kill")
        .map(|e| &e["action"])
        .collect();
    assert_eq!(
        kills.len(),
        1,
        "only the frozen child is killed: {parent_log:#?}"
    );
    let kill = kills[0];
    assert_eq!(kill["affects"], json!([a_id]));
    assert_eq!(kill["origin"]["type"], "runtime");
    let detail = kill["origin"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("did not answer in time (limits.shutdown_grace_ms 1000 ms)"),
        "{detail}"
    );
    assert!(detail.contains("process group was killed"), "{detail}");
    assert_eq!(kill["caused_by"]["action_id"], shutdown["action_id"]);
    assert_eq!(kill["caused_by"]["pod_id"], json!(id_of(&parent)));
    let exits = of_kind(&parent_log, "child_exited");
    let a_exit = exits
        .iter()
        .find(|e| e["child_pod_id"] == json!(a_id))
        .unwrap_or_else(|| panic!("{parent_log:#?}"));
    assert_eq!(a_exit["signal"], 9);
    assert_eq!(a_exit["expected"], true);
    // The killed child is not left looking alive.
    assert_eq!(pod_info(&a)["state"], "failed");
    assert!(pod_info(&a).get("pid").is_none());
    // Its export explains the unfinished run with what the parent recorded.
    let export = sandbox.run(&["export", &a_id]);
    assert_exit(&export, 0);
    let doc: Value = serde_json::from_slice(&export.stdout).unwrap();
    let run = doc["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(a_id))
        .and_then(|p| p["runs"].as_array())
        .and_then(|runs| runs.last())
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(run["outcome"], "crashed", "{run:#}");
    let seen = &run["crash_evidence"]["exit_seen_by_parent"];
    assert_eq!(seen["signal"], 9, "{run:#}");
    assert_eq!(seen["expected"], true);
    assert_eq!(seen["parent_pod_id"], json!(id_of(&parent)));
    // The other child answered the cascade and ended on its own.
    let b = kids.iter().find(|k| **k != a).unwrap();
    let t = interrupted(b);
    assert_eq!(t["action"]["kind"], "shutdown");
    assert_eq!(t["action"]["caused_by"]["action_id"], shutdown["action_id"]);
    // The parent's own run ended recorded, by the signal.
    let terminal = last_terminal(&parent_log).unwrap();
    assert_eq!(terminal["kind"], "run_interrupted");
    assert_eq!(terminal["action"]["action_id"], shutdown["action_id"]);
}

#[test]
fn sighup_ends_a_running_pod_like_sigterm_with_signal_origin() {
    let sandbox = Sandbox::new();
    let (mut proc, dir) = holding_pod(&sandbox);
    signal(proc.pid(), "-HUP");
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "shutdown");
    assert_eq!(
        terminal["action"]["origin"],
        json!({"type": "signal", "signal": "SIGHUP"})
    );
    let entries = entries_so_far(&dir);
    let recorded = of_kind(&entries, "lifecycle_action");
    assert!(
        recorded
            .iter()
            .any(|e| e["action"]["action_id"] == terminal["action"]["action_id"]),
        "the signal is a recorded lifecycle action"
    );
    assert_ne!(pod_info(&dir)["state"], "failed");
}

#[test]
fn a_pod_started_under_nohup_keeps_ignoring_sighup() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "solo",
        "[agent]\ntools = []\n",
        vec![text_response(
            &["one ", "two ", "three ", "four"],
            false,
            HOLD,
        )],
    );
    // `nohup pods run …`, with the sandbox's environment.
    let base = sandbox.pods();
    let mut cmd = std::process::Command::new("nohup");
    cmd.arg(base.get_program());
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(base.get_current_dir().unwrap());
    let mut proc = sandbox.spawn_command(cmd, &["run", "-p", "solo", "hold on"], "nohup");
    let dir = wait_until("the pod dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    wait_streaming(&dir);
    signal(proc.pid(), "-HUP");
    // Still serving: `pods stop` is what ends it.
    let stop = sandbox.run(&["stop", &id_of(&dir)]);
    assert_exit(&stop, 0);
    assert_eq!(
        proc.wait(Duration::from_secs(10)),
        Some(130),
        "{}",
        proc.output()
    );
    let terminal = interrupted(&dir);
    assert_eq!(terminal["action"]["kind"], "stop", "{terminal:#}");
    assert_eq!(terminal["action"]["origin"]["type"], "cli");
    let entries = entries_so_far(&dir);
    assert!(
        of_kind(&entries, "lifecycle_action")
            .iter()
            .all(|e| e["action"]["origin"]["signal"] != "SIGHUP"),
        "{entries:#?}"
    );
}

#[test]
fn a_frozen_grandchild_is_killed_by_its_parent_before_the_top_pod_kills_that_parent() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "parent",
        &format!(
            "[agent]\nmax_turns = 8\ntools = {CHILD_TOOLS}\n\n[spawn]\nallowed_profiles = [\"middle\"]\nmax_depth = 2\nmax_children = 4\n\n[limits]\nshutdown_grace_ms = 1000\n"
        ),
        vec![
            tool_call_response(
                "call_mid",
                "spawn_pod",
                json!({"profile": "middle", "task": "delegate", "name": "mid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "mid"})),
            text_response(&["done"], false, None),
        ],
    );
    profile(
        &sandbox,
        "middle",
        &format!(
            "[agent]\nmax_turns = 8\ntools = {CHILD_TOOLS}\n\n[spawn]\nallowed_profiles = [\"holder\"]\nmax_depth = 1\nmax_children = 1\n"
        ),
        vec![
            tool_call_response(
                "call_g",
                "spawn_pod",
                json!({"profile": "holder", "task": "hold", "name": "g"}),
            ),
            tool_call_response("call_wait_g", "wait_pod", json!({"pod_id": "g"})),
            text_response(&["done"], false, None),
        ],
    );
    support::responses::holder_profile(&sandbox);
    let mut proc = sandbox.spawn(&["run", "-p", "parent", "go deep"], "parent");
    let parent = wait_until("the parent dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    let mid = wait_until("the middle pod", Duration::from_secs(20), || {
        sandbox.children_of(&parent).into_iter().next()
    });
    let g = wait_until("the grandchild", Duration::from_secs(20), || {
        sandbox.children_of(&mid).into_iter().next()
    });
    wait_streaming(&g);
    let g_pid = pod_info(&g)["pid"].as_u64().unwrap() as u32;
    let _guard = KillOnDrop(g_pid);
    signal(g_pid, "-STOP");
    signal(proc.pid(), "-TERM");
    assert_eq!(
        proc.wait(Duration::from_secs(30)),
        Some(130),
        "{}",
        proc.output()
    );
    assert_gone(g_pid);
    // The middle pod answered and killed its frozen child itself; nobody killed the middle pod.
    let parent_log = entries_so_far(&parent);
    assert!(
        of_kind(&parent_log, "lifecycle_action")
            .iter()
            .all(|e| e["action"]["kind"] != "kill"),
        "{parent_log:#?}"
    );
    let mid_log = entries_so_far(&mid);
    let kill = of_kind(&mid_log, "lifecycle_action")
        .into_iter()
        .find(|e| e["action"]["kind"] == "kill")
        .unwrap_or_else(|| panic!("{mid_log:#?}"))["action"]
        .clone();
    assert_eq!(kill["affects"], json!([id_of(&g)]));
    let mid_end = interrupted(&mid);
    assert_eq!(mid_end["action"]["kind"], "shutdown");
    assert_eq!(
        kill["caused_by"]["action_id"],
        mid_end["action"]["action_id"]
    );
    let mid_exit = of_kind(&parent_log, "child_exited")
        .into_iter()
        .find(|e| e["child_pod_id"] == json!(id_of(&mid)))
        .unwrap_or_else(|| panic!("{parent_log:#?}"))
        .clone();
    assert!(mid_exit.get("signal").is_none(), "{mid_exit:#}");
}

#[test]
fn pods_stop_of_a_frozen_pod_gives_up_after_its_wait_and_says_why() {
    let sandbox = Sandbox::new();
    let (proc, dir) = holding_pod(&sandbox);
    signal(proc.pid(), "-STOP");
    let output = sandbox.run_within(
        &["stop", &id_of(&dir), "--wait", "1"],
        Duration::from_secs(30),
    );
    signal(proc.pid(), "-CONT");
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did not answer") && stderr.contains("within 1000 ms"),
        "{}",
        describe(&output)
    );
}
