//! Whole-system tests of MCP servers as tool sources: real `pods` processes start real MCP
//! servers over stdio — `mcp-server-time` from PyPI (installed by `.ci/run` into a virtualenv and
//! found through `PODS_TEST_MCP_TIME`) and a small scripted server in `tests/fixtures/mcp` — and
//! the replay provider calls their tools as `mcp__NAME__TOOL`. What happened is read back from
//! the session logs, the servers' stderr files and `/proc`: no server process outlives its pod.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use support::live::start_solo;
use support::responses::{profile, text_response, tool_call_response};
use support::{
    Sandbox, assert_exit, describe, id_of, log_entries, of_kind, process_running, stderr_text,
    stdout_json, wait_until,
};

/// The `mcp-server-time` executable, or `None` (saying why the test skips) when
/// `PODS_TEST_MCP_TIME` is not set.
fn time_server() -> Option<String> {
    match std::env::var("PODS_TEST_MCP_TIME") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!(
                "skipped: PODS_TEST_MCP_TIME is not set; `.ci/run` installs mcp-server-time from PyPI into target/ci-venv and sets it to target/ci-venv/bin/mcp-server-time"
            );
            None
        }
    }
}

/// `[mcp.servers.time]` running `mcp-server-time` at `command` in UTC.
fn time_section(command: &str) -> String {
    format!(
        "[mcp.servers.time]\ncommand = {}\nargs = [\"--local-timezone\", \"UTC\"]\nside_effect = \"read_only\"\n",
        json!(command)
    )
}

/// The Python interpreter itself (`python3` on `PATH` may be a wrapper script that sets
/// variables of its own, which would blur what the server was given).
fn python() -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `[mcp.servers.NAME]` running the scripted server with `flags`, then `extra` keys.
fn scripted_section(name: &str, flags: &[&str], extra: &str) -> String {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mcp/scripted_server.py");
    let mut args = vec![json!(script.to_str().unwrap())];
    args.extend(flags.iter().map(|flag| json!(flag)));
    format!(
        "[mcp.servers.{name}]\ncommand = {}\nargs = {}\nside_effect = \"read_only\"\n{extra}\n",
        json!(python()),
        Value::Array(args)
    )
}

/// The MCP tools a rejected call's error lists as available (`… available: a, b, …`).
fn offered_mcp_tools(error: &str) -> Vec<&str> {
    let available = error.split_once("available: ").map_or("", |(_, list)| list);
    available
        .split(", ")
        .filter(|tool| tool.starts_with("mcp__"))
        .collect()
}

/// The `tool_call_finished` entries of pod `dir`, in order.
fn finished_calls(dir: &Path) -> Vec<Value> {
    of_kind(&log_entries(dir), "tool_call_finished")
        .into_iter()
        .cloned()
        .collect()
}

/// The (outcome, output) of each finished call.
fn outcomes(calls: &[Value]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            (
                c["outcome"].as_str().unwrap().to_owned(),
                c["output"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Server `name`'s stderr file in pod `dir`.
fn stderr_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("mcp-{name}.stderr.log"))
}

/// The pids of the processes pods started for server `name` of pod `dir`, from the `[pods …]`
/// lines of its stderr file.
fn server_pids(dir: &Path, name: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(stderr_file(dir, name)).unwrap();
    text.lines()
        .filter(|line| line.starts_with("[pods "))
        .filter_map(|line| line.split_once("(pid ")?.1.strip_suffix(')')?.parse().ok())
        .collect()
}

/// Wait until no process works in the sandbox any more (pods and the servers they started
/// work in its `work` directory), then check the servers' own pids too.
#[track_caller]
fn assert_nothing_left(sandbox: &Sandbox, pids: &[u32]) {
    let root = sandbox.root().to_owned();
    wait_until(
        "the sandbox's processes to end",
        Duration::from_secs(15),
        || processes_working_in(&root).is_empty().then_some(()),
    );
    for pid in pids {
        assert!(
            !process_running(*pid),
            "server process {pid} is still running"
        );
    }
}

/// Running processes whose working directory is below `root`.
fn processes_working_in(root: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(root))
                && process_running(*pid)
        })
        .collect()
}

#[test]
fn a_pod_calls_the_time_server_and_the_answer_reaches_the_model() {
    let Some(time) = time_server() else { return };
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "timer",
        &format!("[agent]\ntools = []\n\n{}", time_section(&time)),
        vec![
            tool_call_response(
                "c1",
                "mcp__time__get_current_time",
                json!({"timezone": "UTC"}),
            ),
            text_response(&["It ", "is ", "now."], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "timer", "what time is it?"]);
    assert_exit(&run, 0);
    let dir = sandbox.only_pod();
    let entries = log_entries(&dir);
    let started = of_kind(&entries, "tool_call_started");
    assert_eq!(started.len(), 1, "{entries:#?}");
    assert_eq!(started[0]["tool"], "mcp__time__get_current_time");
    assert_eq!(started[0]["side_effect"], "read_only");
    let calls = finished_calls(&dir);
    assert_eq!(calls[0]["outcome"], "ok", "{calls:#?}");
    let answer: Value = serde_json::from_str(calls[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(answer["timezone"], "UTC", "{answer}");
    assert!(
        answer["datetime"].as_str().unwrap().ends_with("+00:00"),
        "{answer}"
    );
    // The tool result went back to the model, which answered with its next turn.
    assert_eq!(of_kind(&entries, "run_completed")[0]["text"], "It is now.");

    let stderr = stderr_file(&dir, "time");
    assert_eq!(
        std::fs::metadata(&stderr).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let notes = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        notes.contains("stopped with the pod: it exited with status 0"),
        "{notes}"
    );
    let pids = server_pids(&dir, "time");
    assert_eq!(pids.len(), 1, "{notes}");
    assert_nothing_left(&sandbox, &pids);
}

#[test]
fn a_child_inherits_the_time_server_and_calls_it() {
    let Some(time) = time_server() else { return };
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "parent",
        &format!(
            "[agent]\nmax_turns = 4\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"child\"]\n\n{}",
            time_section(&time)
        ),
        vec![
            tool_call_response(
                "call_spawn",
                "spawn_pod",
                json!({"profile": "child", "task": "what time is it?", "name": "kid"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["The ", "child ", "knows."], false, None),
        ],
    );
    profile(
        &sandbox,
        "child",
        "[agent]\ntools = []\n",
        vec![
            tool_call_response(
                "c1",
                "mcp__time__get_current_time",
                json!({"timezone": "UTC"}),
            ),
            text_response(&["It ", "is ", "now."], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "parent", "ask the child"]);
    assert_exit(&run, 0);
    let parent = sandbox.root_pod().unwrap();
    let kids = sandbox.children_of(&parent);
    assert_eq!(kids.len(), 1, "{}", describe(&run));
    let kid = &kids[0];

    // The child's manifest has the parent's server, and says where it came from.
    let provenance: Value =
        serde_json::from_str(&std::fs::read_to_string(kid.join("provenance.json")).unwrap())
            .unwrap();
    let inherited: Vec<&String> = provenance
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, source)| key.starts_with("mcp.servers") && source["kind"] == "parent")
        .map(|(key, _)| key)
        .collect();
    assert!(!inherited.is_empty(), "{provenance:#}");

    let calls = finished_calls(kid);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["tool"], "mcp__time__get_current_time");
    assert_eq!(calls[0]["outcome"], "ok", "{calls:#?}");
    assert!(
        calls[0]["output"]
            .as_str()
            .unwrap()
            .contains("\"timezone\": \"UTC\"")
    );
    let waited = finished_calls(&parent)
        .into_iter()
        .find(|c| c["tool"] == "wait_pod")
        .unwrap();
    assert!(
        waited["output"].as_str().unwrap().contains("It is now."),
        "{waited:#}"
    );

    // Each pod ran its own server, and both are gone.
    let mut pids = server_pids(&parent, "time");
    pids.extend(server_pids(kid, "time"));
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_nothing_left(&sandbox, &pids);
}

#[test]
fn a_server_that_exits_mid_call_is_a_tool_error_and_the_next_call_starts_it_again() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "flaky",
        &format!(
            "[agent]\ntools = []\n\n{}",
            scripted_section("flaky", &[], "")
        ),
        vec![
            tool_call_response("c1", "mcp__flaky__crash", json!({})),
            tool_call_response("c2", "mcp__flaky__echo", json!({"text": "again"})),
            text_response(&["recovered"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "flaky", "crash it"]);
    assert_exit(&run, 0);
    let dir = sandbox.only_pod();
    let calls = outcomes(&finished_calls(&dir));
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let (outcome, error) = &calls[0];
    assert_eq!(outcome, "error");
    for part in [
        "MCP server `flaky` exited with status 3 during the call to `crash`",
        "the next call to one of its tools starts it again",
        &stderr_file(&dir, "flaky").display().to_string(),
        "crashing as asked",
    ] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    assert_eq!(calls[1], ("ok".to_owned(), "echo: again".to_owned()));
    let entries = log_entries(&dir);
    assert_eq!(of_kind(&entries, "run_completed")[0]["text"], "recovered");

    let pids = server_pids(&dir, "flaky");
    assert_eq!(pids.len(), 2, "started, then started again");
    assert_nothing_left(&sandbox, &pids);
}

#[test]
fn a_missing_command_is_reported_and_the_pod_runs_without_its_tools() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "ghostly",
        "[agent]\ntools = []\n\n[mcp.servers.ghost]\ncommand = \"no-such-mcp-server\"\n",
        vec![
            tool_call_response("c1", "mcp__ghost__haunt", json!({})),
            text_response(&["no ", "ghost"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "ghostly", "haunt"]);
    assert_exit(&run, 0);
    let stderr = stderr_text(&run);
    assert!(
        stderr.contains("MCP server `ghost` did not start, so its tools are not offered: command `no-such-mcp-server` was not found on PATH (`mcp.servers.ghost.command`); install it or give its path"),
        "{stderr}"
    );
    let dir = sandbox.only_pod();
    let calls = outcomes(&finished_calls(&dir));
    assert_eq!(calls[0].0, "rejected");
    assert!(
        calls[0].1.starts_with("unknown tool `mcp__ghost__haunt`"),
        "{}",
        calls[0].1
    );
    let notes = std::fs::read_to_string(stderr_file(&dir, "ghost")).unwrap();
    assert!(
        notes.contains("did not start: command `no-such-mcp-server` was not found"),
        "{notes}"
    );
}

#[test]
fn the_allow_list_hides_the_other_tools_and_names_what_the_server_lacks() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "picky",
        &format!(
            "[agent]\ntools = []\n\n{}",
            scripted_section("picky", &[], "tools = [\"echo\", \"nope\"]")
        ),
        vec![
            tool_call_response("c1", "mcp__picky__env", json!({})),
            tool_call_response("c2", "mcp__picky__echo", json!({"text": "allowed"})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "picky", "look around"]);
    assert_exit(&run, 0);
    assert!(
        stderr_text(&run).contains("`mcp.servers.picky.tools` names `nope`, which the server does not offer (it offers: echo, env, crash, stall)"),
        "{}",
        describe(&run)
    );
    let calls = outcomes(&finished_calls(&sandbox.only_pod()));
    let (outcome, error) = &calls[0];
    assert_eq!(outcome, "rejected");
    assert_eq!(offered_mcp_tools(error), ["mcp__picky__echo"], "{error}");
    assert_eq!(calls[1], ("ok".to_owned(), "echo: allowed".to_owned()));
}

#[test]
fn two_servers_whose_tool_names_read_the_same_offer_it_once_and_say_so() {
    let sandbox = Sandbox::new();
    // `my.srv` and `my_srv` both become `mcp__my_srv__…`: a provider refuses a request naming a
    // tool twice.
    let first = scripted_section("\"my.srv\"", &[], "tools = [\"echo\"]");
    let second = scripted_section("my_srv", &[], "tools = [\"echo\"]");
    profile(
        &sandbox,
        "twins",
        &format!("[agent]\ntools = []\n\n{first}\n{second}"),
        vec![
            tool_call_response("c1", "mcp__none", json!({})),
            tool_call_response("c2", "mcp__my_srv__echo", json!({"text": "once"})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "twins", "look around"]);
    assert_exit(&run, 0);
    assert!(
        stderr_text(&run).contains("MCP server `my_srv` offers `mcp__my_srv__echo`, a tool name another server's tool already has"),
        "{}",
        describe(&run)
    );
    let calls = outcomes(&finished_calls(&sandbox.only_pod()));
    assert_eq!(calls[0].0, "rejected");
    assert_eq!(
        offered_mcp_tools(&calls[0].1),
        ["mcp__my_srv__echo"],
        "{}",
        calls[0].1
    );
    assert_eq!(calls[1], ("ok".to_owned(), "echo: once".to_owned()));
}

#[test]
fn a_server_gets_only_the_variables_its_env_names_and_never_the_key_unlisted() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "envy",
        &format!(
            "api_key_env = \"MCP_TEST_KEY\"\n\n[agent]\ntools = []\n\n{}",
            scripted_section(
                "envy",
                &[],
                "env = [\"MCP_TEST_VISIBLE\", \"MCP_TEST_UNSET\"]"
            )
        ),
        vec![
            tool_call_response("c1", "mcp__envy__env", json!({})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox
        .pods()
        .args(["run", "-p", "envy", "show the environment"])
        .env("MCP_TEST_VISIBLE", "yes")
        .env("MCP_TEST_HIDDEN", "no")
        .env("MCP_TEST_KEY", "sk-test-0123456789abcdef0123456789")
        .output()
        .unwrap();
    assert_exit(&run, 0);
    let calls = outcomes(&finished_calls(&sandbox.only_pod()));
    assert_eq!(calls[0].0, "ok", "{calls:?}");
    let names: Vec<&str> = calls[0].1.split(' ').collect();
    assert!(names.contains(&"MCP_TEST_VISIBLE"), "{names:?}");
    for absent in [
        "MCP_TEST_HIDDEN",
        "MCP_TEST_KEY",
        "MCP_TEST_UNSET",
        "PATH",
        "HOME",
        "PODS_HOME",
    ] {
        assert!(
            !names.contains(&absent),
            "{absent} reached the server: {names:?}"
        );
    }
}

#[test]
fn startup_and_call_timeouts_are_clear_errors_and_the_pod_goes_on() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "patient",
        &format!(
            "[agent]\ntools = []\n\n{}\n{}",
            scripted_section("mute", &["--silent"], "startup_timeout_ms = 300"),
            scripted_section("slow", &[], "call_timeout_ms = 300")
        ),
        vec![
            tool_call_response("c1", "mcp__slow__stall", json!({})),
            tool_call_response("c2", "mcp__slow__echo", json!({"text": "still here"})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "patient", "wait for it"]);
    assert_exit(&run, 0);
    assert!(
        stderr_text(&run).contains("MCP server `mute` did not start, so its tools are not offered: the MCP handshake and tool list took longer than 300 ms (`mcp.servers.mute.startup_timeout_ms`); it did not exit and was killed"),
        "{}",
        describe(&run)
    );
    let dir = sandbox.only_pod();
    let calls = outcomes(&finished_calls(&dir));
    assert_eq!(calls[0].0, "error");
    assert!(
        calls[0].1.starts_with("MCP server `slow` did not answer the call to `stall` within 300 ms (`mcp.servers.slow.call_timeout_ms`); the call was cancelled and the server left running"),
        "{}",
        calls[0].1
    );
    assert_eq!(calls[1], ("ok".to_owned(), "echo: still here".to_owned()));
    let mut pids = server_pids(&dir, "mute");
    pids.extend(server_pids(&dir, "slow"));
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_nothing_left(&sandbox, &pids);
}

#[test]
fn a_server_that_ignores_its_closed_stdin_is_killed_when_the_pod_ends() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "stubborn",
        &format!(
            "[agent]\ntools = []\n\n[limits]\nshutdown_grace_ms = 300\n\n{}",
            scripted_section("mule", &["--stubborn"], "")
        ),
        vec![
            tool_call_response("c1", "mcp__mule__echo", json!({"text": "hi"})),
            text_response(&["done"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "stubborn", "say hi"]);
    assert_exit(&run, 0);
    let dir = sandbox.only_pod();
    let notes = std::fs::read_to_string(stderr_file(&dir, "mule")).unwrap();
    assert!(
        notes.contains("stopped with the pod: it did not exit and was killed"),
        "{notes}"
    );
    assert_nothing_left(&sandbox, &server_pids(&dir, "mule"));
}

#[test]
fn pods_stop_ends_the_servers_of_a_running_pod() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "solo",
        &format!(
            "[agent]\ntools = []\n\n{}",
            scripted_section("held", &[], "")
        ),
        vec![text_response(
            &["one ", "two ", "three ", "four"],
            false,
            Some((3, 60_000)),
        )],
    );
    let (mut proc, dir) = start_solo(&sandbox, "hold on");
    let pids = server_pids(&dir, "held");
    assert_eq!(pids.len(), 1);
    assert!(
        process_running(pids[0]),
        "the server runs while the pod does"
    );
    let stop = sandbox.run(&["stop", &id_of(&dir)]);
    assert_exit(&stop, 0);
    proc.wait(Duration::from_secs(20));
    let notes = std::fs::read_to_string(stderr_file(&dir, "held")).unwrap();
    assert!(
        notes.contains("stopped with the pod: it exited with status 0"),
        "{notes}"
    );
    assert_nothing_left(&sandbox, &pids);
}

#[test]
fn doctor_checks_the_command_of_each_mcp_server() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "good",
        &format!(
            "[agent]\ntools = []\n\n{}",
            scripted_section("script", &[], "")
        ),
        vec![],
    );
    profile(
        &sandbox,
        "bad",
        "[agent]\ntools = []\n\n[mcp.servers.ghost]\ncommand = \"no-such-mcp-server\"\n",
        vec![],
    );
    let doctor = sandbox.run(&["doctor", "-p", "good", "-p", "bad", "--json"]);
    assert_exit(&doctor, 2);
    let report = stdout_json(&doctor);
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
            .clone()
    };
    let script = check("mcp server script");
    assert_eq!(script["ok"], true, "{script}");
    assert!(
        script["detail"]
            .as_str()
            .unwrap()
            .contains("python3 (used by good)"),
        "{script}"
    );
    let ghost = check("mcp server ghost");
    assert_eq!(ghost["ok"], false);
    assert_eq!(
        ghost["detail"],
        "command `no-such-mcp-server` was not found on PATH (`mcp.servers.ghost.command`): profile(s) bad would run without its tools; install it or give its path"
    );

    let text = sandbox.run(&["doctor", "-p", "bad"]);
    assert_exit(&text, 2);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("[BAD] mcp server ghost: command `no-such-mcp-server` was not found on PATH"),
        "{}",
        describe(&text)
    );
}
