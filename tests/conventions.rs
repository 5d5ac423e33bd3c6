//! Whole-system tests of the command-line conventions: shell completions and the man page from
//! the clap definitions, `rm` and `prune` (which never touch a running pod), the `ls` table's
//! columns, and `trace` text for people.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::cassettes::{sse, stream};
use support::responses::{holder_profile, profile, text_events, tool_call_response};
use support::{Sandbox, assert_exit, describe, id_of, stdout_json, stdout_text, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// The visible subcommands `pods --help` lists.
fn subcommands(sandbox: &Sandbox) -> Vec<String> {
    let help = sandbox.run(&["--help"]);
    assert_exit(&help, 0);
    let text = stdout_text(&help);
    let list = text.split("Commands:").nth(1).unwrap();
    list.lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues deeper in; only command lines start at two spaces.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completions_parse_and_every_shell_gets_a_script() {
    let sandbox = Sandbox::new();
    let bash = sandbox.run(&["completions", "bash"]);
    assert_exit(&bash, 0);
    let script = sandbox.write("pods.bash", &stdout_text(&bash));
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", describe(&check));
    for command in subcommands(&sandbox) {
        assert!(
            stdout_text(&bash).contains(&command),
            "bash completes {command}"
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = sandbox.run(&["completions", shell]);
        assert_exit(&output, 0);
        assert!(
            stdout_text(&output).contains("prune"),
            "{shell}: {}",
            describe(&output)
        );
    }
    let unknown = sandbox.run(&["completions", "tcsh"]);
    assert_exit(&unknown, 2);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("bash"));
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["man"]);
    assert_exit(&output, 0);
    let page = stdout_text(&output);
    assert!(page.contains(".TH pods 1"), "{page}");
    assert!(page.contains(".SH COMMANDS"), "{page}");
    let commands = subcommands(&sandbox);
    assert!(commands.len() >= 12, "{commands:?}");
    for command in &commands {
        assert!(
            page.contains(&format!(".SS \"pods {command}\"")),
            "no section for {command}"
        );
    }
    // Nested commands too, with their options.
    assert!(page.contains(".SS \"pods profile explain\""), "{page}");
    assert!(page.contains("\\-\\-older\\-than"), "{page}");
    // No line of text reads as a roff request by accident.
    for line in page.lines().filter(|l| l.starts_with('.')) {
        let request = line[1..].split_whitespace().next().unwrap_or("");
        assert!(
            [
                "TH", "SH", "SS", "TP", "PP", "B", "br", "ie", "el", "RS", "RE", "IP", "TQ"
            ]
            .contains(&request),
            "unexpected roff request: {line}"
        );
    }
}

/// The pod directories of the home, by id.
fn pod_ids(sandbox: &Sandbox) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(sandbox.home().join("pods"))
        .map(|l| {
            l.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `pod.json` of pod `id`, or `null` while it is not written yet (a pod being created has its
/// directory before its `pod.json`): for probes that poll.
fn pod_json_so_far(sandbox: &Sandbox, id: &str) -> Value {
    let path = sandbox.home().join("pods").join(id).join("pod.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

fn pod_json(sandbox: &Sandbox, id: &str) -> Value {
    let path = sandbox.home().join("pods").join(id).join("pod.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids_in(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn prune_removes_finished_trees_and_never_a_running_pod() {
    let sandbox = Sandbox::new();
    for _ in 0..2 {
        assert_exit(
            &sandbox.run_within(&["run", "-p", "demo", "look around"], LIMIT),
            0,
        );
    }
    let finished = pod_ids(&sandbox);
    assert_eq!(finished.len(), 4, "two demo parents and their children");
    holder_profile(&sandbox);
    let mut holder = sandbox.spawn(&["run", "-p", "holder", "hold"], "holder");
    let running = wait_until("the holder pod to run", LIMIT, || {
        pod_ids(&sandbox).into_iter().find(|id| {
            !finished.contains(id) && pod_json_so_far(&sandbox, id)["state"] == "running"
        })
    });

    let dry = sandbox.run(&["prune", "--dry-run", "--json"]);
    assert_exit(&dry, 0);
    let plan = stdout_json(&dry);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(ids_in(&plan["removed"]), finished, "{plan:#}");
    assert_eq!(ids_in(&plan["kept"]), vec![running.clone()], "{plan:#}");
    assert!(
        plan["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("running"),
        "{plan:#}"
    );
    assert_eq!(pod_ids(&sandbox).len(), 5, "a dry run removes nothing");
    let dry_text = sandbox.run(&["prune", "--dry-run"]);
    assert!(
        stdout_text(&dry_text).contains("would remove 4 pod(s), kept 1"),
        "{}",
        describe(&dry_text)
    );

    let pruned = sandbox.run(&["prune"]);
    assert_exit(&pruned, 0);
    let text = stdout_text(&pruned);
    for id in &finished {
        assert!(text.contains(&format!("removed {id}")), "{text}");
    }
    assert!(text.contains(&format!("kept {running}")), "{text}");
    assert_eq!(pod_ids(&sandbox), vec![running.clone()]);
    assert!(
        support::process_running(holder.pid()),
        "the running pod is untouched"
    );

    // `rm` refuses it too, and removes nothing.
    let refused = sandbox.run(&["rm", &running]);
    assert_exit(&refused, 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is running"),
        "{}",
        describe(&refused)
    );
    assert_eq!(pod_ids(&sandbox), vec![running.clone()]);

    // Once stopped, it goes.
    assert_exit(&sandbox.run_within(&["stop", &running], LIMIT), 0);
    holder.finish(LIMIT);
    let removed = sandbox.run(&["rm", &running, "--json"]);
    assert_exit(&removed, 0);
    assert_eq!(ids_in(&stdout_json(&removed)), vec![running]);
    assert!(pod_ids(&sandbox).is_empty());
}

#[test]
fn prune_keep_and_older_than_spare_the_newest_trees() {
    let sandbox = Sandbox::new();
    for _ in 0..2 {
        assert_exit(
            &sandbox.run_within(&["run", "-p", "demo", "look around"], LIMIT),
            0,
        );
    }
    let all = pod_ids(&sandbox);
    let young = sandbox.run(&["prune", "--older-than", "1h", "--json"]);
    assert_exit(&young, 0);
    assert_eq!(stdout_json(&young)["removed"], json!([]));
    assert_eq!(pod_ids(&sandbox), all);

    let kept = sandbox.run(&["prune", "--keep", "1", "--json"]);
    assert_exit(&kept, 0);
    // Ids are time-ordered: the first two are the older tree.
    assert_eq!(ids_in(&stdout_json(&kept)["removed"]), all[..2].to_vec());
    assert_eq!(pod_ids(&sandbox), all[2..].to_vec());

    // A pod whose state cannot be read may be running: it stays, with the reason.
    let broken = "01a00000-0000-7000-8000-000000000001";
    sandbox.write(&format!("home/pods/{broken}/pod.json"), "{not json");
    let plan = stdout_json(&sandbox.run(&["prune", "--json"]));
    assert_eq!(ids_in(&plan["kept"]), vec![broken.to_owned()], "{plan:#}");
    assert!(
        plan["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pod.json unreadable"),
        "{plan:#}"
    );
    assert_eq!(pod_ids(&sandbox), vec![broken.to_owned()]);
    let refused = sandbox.run(&["rm", broken]);
    assert_exit(&refused, 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pod.json"),
        "{}",
        describe(&refused)
    );

    let bad = sandbox.run(&["prune", "--older-than", "soon"]);
    assert_exit(&bad, 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--older-than"));
}

#[test]
fn rm_removes_a_tree_only_with_tree() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run_within(&["run", "-p", "demo", "look around"], LIMIT),
        0,
    );
    let all = pod_ids(&sandbox);
    let parent = all
        .iter()
        .find(|id| pod_json(&sandbox, id)["parent_id"].is_null())
        .unwrap()
        .clone();
    let refused = sandbox.run(&["rm", &parent]);
    assert_exit(&refused, 2);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--tree"),
        "{}",
        describe(&refused)
    );
    assert_eq!(pod_ids(&sandbox), all);
    let removed = sandbox.run(&["rm", &parent, "--tree", "--json"]);
    assert_exit(&removed, 0);
    assert_eq!(ids_in(&stdout_json(&removed)), all);
    assert!(pod_ids(&sandbox).is_empty());
    let unknown = sandbox.run(&["rm", "no-such-pod"]);
    assert_exit(&unknown, 2);
}

#[test]
fn ls_keeps_its_columns_aligned_with_a_long_name() {
    let sandbox = Sandbox::new();
    let long = "n".repeat(100);
    assert_exit(
        &sandbox.run_within(
            &["run", "-p", "demo", "--name", &long, "look around"],
            LIMIT,
        ),
        0,
    );
    let output = sandbox.run(&["ls"]);
    assert_exit(&output, 0);
    let text = stdout_text(&output);
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: String = lines[0].iter().collect();
    for column in ["NAME", "PROFILE", "STATE", "LAST RUN"] {
        let at = header.find(column).unwrap();
        for line in &lines[1..] {
            assert!(
                line[at - 1] == ' ' && line[at] != ' ',
                "column {column} starts at {at} on every line:\n{text}"
            );
        }
    }
    assert!(text.contains(&format!("{}… ", "n".repeat(39))), "{text}");
    assert!(!text.contains(&long), "{text}");
    // The whole name stays in the JSON.
    let json = stdout_json(&sandbox.run(&["ls", "--json"]));
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == long.as_str())
    );
}

#[test]
fn trace_text_is_lines_for_people_even_with_raw_frames() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "hello\n");
    profile(
        &sandbox,
        "solo",
        "[agent]\ntools = [\"read_file\"]\n\n[session]\nrecord_event_trace = true\ntrace_raw_sse = true\n",
        vec![
            tool_call_response("call_1", "read_file", json!({"path": "notes.txt"})),
            stream(sse(&text_events(&["it ", "says ", "hello"], false))),
        ],
    );
    assert_exit(
        &sandbox.run_within(&["run", "-p", "solo", "read it"], LIMIT),
        0,
    );
    let pod = id_of(&sandbox.only_pod());
    for args in [vec!["trace", &pod], vec!["trace", &pod, "--follow"]] {
        let output = sandbox.run_within(&args, LIMIT);
        assert_exit(&output, 0);
        let text = stdout_text(&output);
        assert!(
            text.contains("raw_sse response.output_text.delta"),
            "{text}"
        );
        assert!(
            text.contains("tool_call_end #0 path=\"notes.txt\""),
            "{text}"
        );
        assert!(
            text.contains("usage") || text.contains("completed (end_turn)"),
            "{text}"
        );
        for line in text.lines() {
            assert!(
                !line.contains("{\"")
                    && !line.contains("{\\\"")
                    && !line.trim_start().starts_with('{'),
                "JSON in the text output: {line}"
            );
        }
    }
    // `--json` is where the entries are, whole.
    let json = sandbox.run_within(&["trace", &pod, "--json"], LIMIT);
    assert_exit(&json, 0);
    let entries = support::stdout_json_lines(&json);
    assert!(entries.iter().any(|e| e["kind"] == "raw_sse"));
}

#[test]
fn trace_follow_prints_lines_for_people_until_the_pod_stops() {
    let sandbox = Sandbox::new();
    profile(
        &sandbox,
        "holder",
        "[agent]\ntools = []\n\n[session]\nrecord_event_trace = true\ntrace_raw_sse = true\n",
        vec![support::responses::text_response(
            &["hold ", "the ", "line ", "please"],
            false,
            Some((3, 60_000)),
        )],
    );
    let _holder = sandbox.spawn(&["run", "-p", "holder", "hold"], "holder");
    let pod = wait_until("the holder pod to stream", LIMIT, || {
        let id = pod_ids(&sandbox).pop()?;
        let trace = std::fs::read_dir(sandbox.home().join("pods").join(&id).join("sessions"))
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".trace.jsonl"))?;
        let text = std::fs::read_to_string(trace.path()).ok()?;
        text.contains("\"raw_sse\"").then_some(id)
    });
    let mut follow = sandbox.spawn(&["trace", &pod, "--follow"], "follow");
    assert_exit(&sandbox.run_within(&["stop", &pod], LIMIT), 0);
    let output = follow.finish(LIMIT);
    assert_exit(&output, 0);
    let text = stdout_text(&output);
    // What the stop wrote after the stall, rendered as it came.
    assert!(text.contains("run_end interrupted"), "{text}");
    assert!(text.contains("raw_sse response.created"), "{text}");
    for line in text.lines() {
        assert!(
            !line.contains("{\"") && !line.contains("{\\\"") && !line.trim_start().starts_with('{'),
            "JSON in the text output: {line}"
        );
    }
}
