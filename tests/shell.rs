//! Whole-system tests of the `shell` tool: real `pods` processes against the replay provider
//! over loopback, running real commands. What a command did is read back from the files it
//! wrote, the processes left (none), and the session log; its confinement (Landlock) is checked
//! where the kernel has it, and a test that cannot check it says so and why.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use support::responses::{profile, text_response, tool_call_response};
use support::{
    Sandbox, assert_exit, describe, id_of, log_entries, process_running, stdout_json, stdout_text,
};

/// The profile body every test starts from: only the `shell` tool, allowed to run without
/// asking.
const SHELL_ONLY: &str = "[agent]\ntools = [\"shell\"]\n";
const ALLOW_PROCESS: &str = "[permissions]\nprocess = \"allow\"\n";

/// Project profile `name` whose model calls `shell` once per argument object, then answers.
fn shell_profile(sandbox: &Sandbox, name: &str, agent: &str, calls: &[Value]) {
    let mut responses: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, args)| tool_call_response(&format!("c{i}"), "shell", args.clone()))
        .collect();
    responses.push(text_response(&["done"], false, None));
    profile(
        sandbox,
        name,
        &format!("{SHELL_ONLY}{agent}\n{ALLOW_PROCESS}"),
        responses,
    );
}

/// The `tool_call_finished` entries of the only pod: (outcome, output) in order.
fn finished_calls(sandbox: &Sandbox) -> Vec<(String, String)> {
    log_entries(&sandbox.only_pod())
        .into_iter()
        .filter(|e| e["kind"] == "tool_call_finished")
        .map(|e| {
            assert_eq!(e["side_effect"], "process", "{e:#}");
            (
                e["outcome"].as_str().unwrap().to_owned(),
                e["output"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A result without its first line when that line says the command was not (fully) confined.
fn without_confinement_note(output: &str) -> &str {
    match output.split_once('\n') {
        Some((first, rest))
            if first.starts_with("not confined") || first.starts_with("partly confined") =>
        {
            rest
        }
        _ => output,
    }
}

/// What `pods doctor --json` says this kernel confines.
fn confinement(sandbox: &Sandbox) -> Value {
    let doctor = sandbox.run(&["doctor", "--json"]);
    stdout_json(&doctor)["shell_confinement"].clone()
}

/// The pids of the processes in process group `group`.
fn group_members(group: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the parenthesised name: state, ppid, pgrp.
        let Some(end) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group)
            && !matches!(fields.first(), Some(&"Z" | &"X"))
        {
            members.push(pid);
        }
    }
    members
}

/// The pid a command wrote to `file` (below the working directory), once it is there.
fn pid_in(work: &Path, file: &str) -> u32 {
    support::wait_until(
        &format!("the command to write {file}"),
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(work.join(file))
                .ok()
                .and_then(|text| text.trim().parse().ok())
        },
    )
}

#[test]
fn shell_returns_output_exit_codes_and_bounded_output_and_keeps_to_the_scope() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.work().join("sub")).unwrap();
    shell_profile(
        &sandbox,
        "sh",
        "shell_output_bytes = 100\n",
        &[
            json!({"command": "echo hello; echo oops >&2; echo again"}),
            json!({"argv": ["sh", "-c", "echo failing; exit 3"]}),
            json!({"command": "seq 1 10000"}),
            json!({"argv": ["pwd"], "cwd": "sub"}),
            json!({"command": "pwd", "cwd": ".."}),
            json!({"command": "kill -KILL $$"}),
            json!({"argv": ["no-such-program-here"]}),
            json!({"command": "exit 0"}),
            json!({"command": "yes | head -c 20000000"}),
        ],
    );
    let run = sandbox.run(&["run", "-p", "sh", "run things"]);
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 9, "{calls:#?}");
    let body = |i: usize| without_confinement_note(&calls[i].1).to_owned();

    assert_eq!(calls[0].0, "ok");
    assert_eq!(body(0), "exit code 0\nhello\noops\nagain\n");

    assert_eq!(calls[1].0, "error");
    assert_eq!(body(1), "exit code 3\nfailing\n");

    // `seq 1 10000` writes 48 894 bytes: the first and last 50 are kept.
    assert_eq!(calls[2].0, "ok");
    let seq = body(2);
    assert!(seq.starts_with("exit code 0\n1\n2\n3\n"), "{seq}");
    assert!(seq.ends_with("9998\n9999\n10000\n"), "{seq}");
    assert!(
        seq.contains("[… 48794 bytes cut from the middle; 48894 bytes in total …]"),
        "{seq}"
    );
    assert!(seq.len() < 300, "{seq}");

    let sub = std::fs::canonicalize(sandbox.work().join("sub")).unwrap();
    assert_eq!(calls[3].0, "ok");
    assert_eq!(body(3), format!("exit code 0\n{}\n", sub.display()));

    assert_eq!(calls[4].0, "error");
    assert!(
        calls[4].1.contains("outside this pod's scope"),
        "{calls:#?}"
    );

    assert_eq!(calls[5].0, "error");
    assert_eq!(body(5), "killed by signal 9 (SIGKILL)\n(no output)");

    assert_eq!(calls[6].0, "error");
    assert!(
        body(6).contains("cannot run `no-such-program-here`"),
        "{calls:#?}"
    );

    assert_eq!(calls[7].0, "ok");
    assert_eq!(body(7), "exit code 0\n(no output)");

    // 20 MB of output: 100 bytes of it are kept.
    assert_eq!(calls[8].0, "ok");
    assert_eq!(
        body(8),
        format!(
            "exit code 0\n{}\n[… 19999900 bytes cut from the middle; 20000000 bytes in total …]\n{}",
            "y\n".repeat(25),
            "y\n".repeat(25)
        )
    );
}

#[test]
fn a_command_past_its_timeout_is_killed_with_its_whole_group() {
    let sandbox = Sandbox::new();
    shell_profile(
        &sandbox,
        "slow",
        "shell_timeout_ms = 60000\n",
        &[
            // Long enough for `started` to be written, however busy the machine.
            json!({"command": "sleep 300 & echo $! > sleep.pid; echo started; wait",
                   "timeout_ms": 3000}),
            // What a command leaves in the background ends with it.
            json!({"command": "sleep 300 & echo $! > background.pid; echo left"}),
        ],
    );
    let run = sandbox.run_within(&["run", "-p", "slow", "wait"], Duration::from_secs(120));
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].0, "error");
    assert_eq!(
        without_confinement_note(&calls[0].1),
        "timed out after 3000 ms: the command and every process of its group were killed\nstarted\n"
    );
    assert_eq!(calls[1].0, "ok");
    assert_eq!(without_confinement_note(&calls[1].1), "exit code 0\nleft\n");
    for file in ["sleep.pid", "background.pid"] {
        let pid = pid_in(&sandbox.work(), file);
        support::wait_until(
            &format!("the sleep of {file} to be gone"),
            Duration::from_secs(10),
            || (!process_running(pid)).then_some(()),
        );
    }
}

#[test]
fn stopping_the_pod_during_a_command_leaves_no_process_behind() {
    let sandbox = Sandbox::new();
    shell_profile(
        &sandbox,
        "sleeper",
        "",
        &[json!({"command": "echo $$ > shell.pid; sleep 300 & echo $! > sleep.pid; wait"})],
    );
    let mut run = sandbox.spawn(&["run", "-p", "sleeper", "sleep"], "run");
    let sleep = pid_in(&sandbox.work(), "sleep.pid");
    let shell = pid_in(&sandbox.work(), "shell.pid");
    assert!(process_running(sleep) && process_running(shell));
    // The command leads its own process group.
    assert!(group_members(shell).contains(&sleep), "{}", run.output());

    let stop = sandbox.run(&["stop", &id_of(&sandbox.only_pod())]);
    assert_exit(&stop, 0);
    run.wait(Duration::from_secs(60));
    support::wait_until(
        "the command's process group to be empty",
        Duration::from_secs(10),
        || group_members(shell).is_empty().then_some(()),
    );
    assert!(!process_running(sleep) && !process_running(shell));
    let entries = log_entries(&sandbox.only_pod());
    let interrupted = entries
        .iter()
        .find(|e| e["kind"] == "run_interrupted")
        .unwrap_or_else(|| panic!("no run_interrupted entry: {entries:#?}"));
    assert_eq!(interrupted["action"]["kind"], "stop", "{interrupted:#}");
}

#[test]
fn the_command_environment_has_no_key_variable_nor_a_copy_of_the_key() {
    let sandbox = Sandbox::new();
    let key = "sk-shell-test-0123456789abcdef";
    let mut responses = vec![tool_call_response("c0", "shell", json!({"command": "env"}))];
    responses.push(text_response(&["done"], false, None));
    profile(
        &sandbox,
        "envy",
        &format!("{SHELL_ONLY}\n{ALLOW_PROCESS}"),
        responses,
    );
    // The key variable is the profile's own.
    let profile_path = sandbox.work().join(".pods/profiles/envy.toml");
    let text = std::fs::read_to_string(&profile_path).unwrap();
    std::fs::write(
        &profile_path,
        text.replace(
            "[model]\n",
            "[model]\napi_key_env = \"SHELL_TEST_API_KEY\"\n",
        ),
    )
    .unwrap();
    let run = sandbox
        .pods()
        .args(["run", "-p", "envy", "show the environment"])
        .env("SHELL_TEST_API_KEY", key)
        .env("SHELL_TEST_KEY_COPY", key)
        .env("SHELL_TEST_VISIBLE", "visible-value")
        .output()
        .unwrap();
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 1, "{}", describe(&run));
    let (outcome, output) = &calls[0];
    assert_eq!(outcome, "ok");
    assert!(
        output.contains("SHELL_TEST_VISIBLE=visible-value"),
        "{output}"
    );
    // A private temporary directory, gone once the command is.
    let tmp = output
        .lines()
        .find_map(|line| line.strip_prefix("TMPDIR="))
        .unwrap_or_else(|| panic!("no TMPDIR in {output}"));
    assert!(tmp.contains("pods-shell-"), "{tmp}");
    assert!(!Path::new(tmp).exists(), "{tmp} is left behind");
    for absent in [
        "SHELL_TEST_API_KEY",
        "SHELL_TEST_KEY_COPY",
        key,
        "[redacted]",
    ] {
        assert!(!output.contains(absent), "{absent} in {output}");
    }
}

#[test]
fn landlock_refuses_a_write_outside_the_scope() {
    let sandbox = Sandbox::new();
    let confinement = confinement(&sandbox);
    if confinement["writes"] != true {
        println!("skipped: this kernel cannot confine writes with Landlock ({confinement})");
        return;
    }
    shell_profile(
        &sandbox,
        "writer",
        "",
        &[
            json!({"command": "echo in > inside.txt && echo t > \"$TMPDIR/t\" && cat \"$TMPDIR/t\""}),
            json!({"command": "echo out > ../outside.txt"}),
            json!({"command": "mkdir ../outside-dir"}),
        ],
    );
    let run = sandbox.run(&["run", "-p", "writer", "write"]);
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[0], ("ok".into(), "exit code 0\nt\n".into()));
    assert_eq!(
        std::fs::read_to_string(sandbox.work().join("inside.txt")).unwrap(),
        "in\n"
    );
    for call in &calls[1..] {
        assert_eq!(call.0, "error", "{calls:#?}");
        assert!(call.1.contains("Permission denied"), "{calls:#?}");
    }
    assert!(!sandbox.root().join("outside.txt").exists());
    assert!(!sandbox.root().join("outside-dir").exists());
}

/// Whether a connection reached `listener` (non-blocking accept).
fn connected(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        Err(error) => panic!("accept: {error}"),
    }
}

#[test]
fn tcp_is_refused_unless_the_pod_allows_the_network() {
    let sandbox = Sandbox::new();
    let confinement = confinement(&sandbox);
    if confinement["network"] != true {
        println!("skipped: this kernel cannot restrict TCP with Landlock ({confinement})");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect =
        json!({"command": format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")});
    for (name, network) in [("closed", false), ("open", true)] {
        shell_profile(
            &sandbox,
            name,
            &format!("shell_network = {network}\n"),
            std::slice::from_ref(&connect),
        );
        let run = sandbox.run(&["run", "-p", name, "--name", name, "connect"]);
        assert_exit(&run, 0);
    }
    let outputs: Vec<Value> = ["closed", "open"]
        .iter()
        .map(|name| {
            let dir = support::home::named(&sandbox.pod_dirs(), name);
            log_entries(&dir)
                .into_iter()
                .find(|e| e["kind"] == "tool_call_finished")
                .unwrap()
        })
        .collect();
    assert_eq!(outputs[0]["outcome"], "error", "{outputs:#?}");
    assert!(
        outputs[0]["output"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{outputs:#?}"
    );
    assert_eq!(outputs[1]["outcome"], "ok", "{outputs:#?}");
    assert_eq!(outputs[1]["output"], "exit code 0\nconnected\n");
    // Exactly one connection arrived: the allowed one.
    assert!(connected(&listener));
    assert!(!connected(&listener));
}

#[test]
fn doctor_says_how_far_shell_commands_are_confined_in_text_and_json() {
    let sandbox = Sandbox::new();
    let report = stdout_json(&sandbox.run(&["doctor", "--json"]));
    let confinement = &report["shell_confinement"];
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "shell confinement")
        .unwrap_or_else(|| panic!("no shell confinement check: {report:#}"))
        .clone();
    // A kernel without Landlock is reported, not a failure: commands run, unconfined.
    assert_eq!(check["ok"], true, "{check:#}");
    let detail = check["detail"].as_str().unwrap();
    match confinement["landlock_abi"].as_u64() {
        Some(abi) => {
            assert!(
                detail.starts_with(&format!("Landlock ABI {abi}:")),
                "{detail}"
            );
            assert_eq!(confinement["writes"], true);
            assert_eq!(confinement["network"], abi >= 4, "{confinement}");
            assert_eq!(confinement["signals"], abi >= 6, "{confinement}");
        }
        None => {
            assert!(detail.starts_with("not available"), "{detail}");
            assert_eq!(confinement["writes"], false);
            assert_eq!(confinement["network"], false);
        }
    }
    let text = stdout_text(&sandbox.run(&["doctor"]));
    assert!(
        text.lines()
            .any(|l| l == format!("[ok ] shell confinement: {detail}")),
        "{text}"
    );
}

#[test]
fn a_process_that_leaves_the_group_holds_the_output_only_until_the_timeout() {
    let sandbox = Sandbox::new();
    shell_profile(
        &sandbox,
        "escaper",
        "",
        &[
            // The pid file is written from the new session: the command ends after it began.
            json!({"command": "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & \
                               while [ ! -s escaped.pid ]; do sleep 0.01; done; echo hi",
                 "timeout_ms": 3000}),
        ],
    );
    let run = sandbox.run_within(&["run", "-p", "escaper", "escape"], Duration::from_secs(60));
    let escaped = pid_in(&sandbox.work(), "escaped.pid");
    // Its own session: the kill of the command's group does not reach it (documented).
    let still_running = process_running(escaped);
    if still_running {
        support::signal(escaped, "-KILL");
    }
    assert_exit(&run, 0);
    assert!(still_running);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].0, "ok");
    assert_eq!(
        without_confinement_note(&calls[0].1),
        "exit code 0\nhi\n\n[output cut at the timeout: a process that left the command's \
         process group still holds it open, and was not killed]"
    );
}

#[test]
fn sandbox_exec_needs_a_command_and_says_which_one_it_could_not_run() {
    let sandbox = Sandbox::new();
    let missing = sandbox.run(&["sandbox-exec", "--no-network"]);
    assert_exit(&missing, 2);
    let unknown = sandbox.run(&["sandbox-exec", "--", "no-such-program-here", "x"]);
    assert_exit(&unknown, 1);
    assert!(
        support::stderr_text(&unknown).contains("cannot run `no-such-program-here`"),
        "{}",
        describe(&unknown)
    );
    let ran = sandbox.run(&[
        "sandbox-exec",
        "--write",
        "/dev/null",
        "--",
        "echo",
        "confined",
    ]);
    assert_exit(&ran, 0);
    assert_eq!(stdout_text(&ran), "confined\n");
}

#[test]
fn a_pods_executable_that_cannot_start_is_a_tool_error_not_a_crash() {
    let sandbox = Sandbox::new();
    shell_profile(&sandbox, "lost", "", &[json!({"command": "echo never"})]);
    let run = sandbox
        .pods()
        .args(["run", "-p", "lost", "go"])
        .env("PODS_CHILD_EXE", sandbox.root().join("no-such-pods"))
        .output()
        .unwrap();
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].0, "error");
    assert!(
        calls[0].1.starts_with("cannot start the command: "),
        "{calls:#?}"
    );
}
