//! Whole-system tests of `pods log`: a real tree (a parent that reads a file and spawns two
//! children, one of which fails) run by the real binary over the replay provider, read back as
//! text, as JSON, and as a tree.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};

use support::cassettes::{sse, stream};
use support::responses::{
    answering_profile, profile, text_events, text_response, tool_call_response,
};
use support::{Sandbox, assert_exit, describe, id_of, pod_info, stdout_json};

const TOOLS: &str = r#"["read_file", "spawn_pod", "wait_pod"]"#;
const THOUGHT: &str = "Both children answered; sum up.";
/// A prompt with a terminal escape: `log` shows it escaped.
const PROMPT: &str = "delegate\u{1b}[2J the review";

/// The parent's last answer, with a reasoning summary before its text.
fn answer_with_reasoning() -> Value {
    let mut events = text_events(&["One ", "child ", "failed."], false);
    events.insert(
        1,
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
               "output_index": 0, "summary_index": 0, "delta": THOUGHT}),
    );
    stream(sse(&events))
}

struct Tree {
    sandbox: Sandbox,
    parent: String,
    good: String,
    bad: String,
}

fn pod_named(sandbox: &Sandbox, name: &str) -> String {
    let found: Vec<PathBuf> = sandbox
        .pod_dirs()
        .into_iter()
        .filter(|dir| pod_info(dir)["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one pod named {name}");
    id_of(&found[0])
}

fn tree() -> Tree {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "line one\nline two\n");
    profile(
        &sandbox,
        "parent",
        &format!(
            "[agent]\nmax_turns = 8\ntools = {TOOLS}\n\n[spawn]\nallowed_profiles = [\"good\", \"bad\"]\n"
        ),
        vec![
            tool_call_response("call_read", "read_file", json!({"path": "notes.txt"})),
            tool_call_response(
                "call_good",
                "spawn_pod",
                json!({"profile": "good", "task": "say hello", "name": "good-kid"}),
            ),
            tool_call_response(
                "call_bad",
                "spawn_pod",
                json!({"profile": "bad", "task": "read everything", "name": "bad-kid"}),
            ),
            tool_call_response("call_wait_good", "wait_pod", json!({"pod_id": "good-kid"})),
            tool_call_response("call_wait_bad", "wait_pod", json!({"pod_id": "bad-kid"})),
            answer_with_reasoning(),
        ],
    );
    answering_profile(&sandbox, "good", &["hello ", "from ", "good"]);
    profile(
        &sandbox,
        "bad",
        "[agent]\ntools = []\n",
        vec![text_response(&["reading ", "it ", "all"], true, None)],
    );
    let output = sandbox.run(&["run", "-p", "parent", "--name", "boss", PROMPT]);
    assert_exit(&output, 0);
    let parent = pod_named(&sandbox, "boss");
    let good = pod_named(&sandbox, "good-kid");
    let bad = pod_named(&sandbox, "bad-kid");
    Tree {
        sandbox,
        parent,
        good,
        bad,
    }
}

fn text_of(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.run(args);
    assert_exit(&output, 0);
    assert!(
        !output.stdout.contains(&0x1b),
        "control characters are escaped\n{}",
        describe(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `needles` appear in `text` in this order.
#[track_caller]
fn in_order(text: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let at = text[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` (in order) not in:\n{text}"));
        from += at + needle.len();
    }
}

#[test]
fn log_tells_the_conversation_run_by_run() {
    let t = tree();
    let text = text_of(&t.sandbox, &["log", "boss"]);
    let spawned_good = format!("child spawned: {} (profile good, by call_good)", t.good);
    let spawned_bad = format!("child spawned: {} (profile bad, by call_bad)", t.bad);
    in_order(
        &text,
        &[
            &format!("=== pod boss ({}), profile parent", t.parent),
            "user: delegate\\u{1b}[2J the review",
            "tool read_file path=\"notes.txt\" (call_read): ok",
            "  | line one",
            "  | line two",
            "tool spawn_pod",
            &spawned_good,
            &spawned_bad,
            "tool wait_pod pod_id=\"bad-kid\" (call_wait_bad): ok",
            &format!(
                "reasoning: {} characters (--reasoning shows it)",
                THOUGHT.len()
            ),
            "assistant: One child failed.",
            "end: completed (end_turn): the model ended its turn",
            "usage: ",
        ],
    );
    assert!(!text.contains(THOUGHT), "reasoning is collapsed:\n{text}");
    assert!(
        !text.contains("=== pod good-kid"),
        "no children without --tree"
    );

    let full = text_of(&t.sandbox, &["log", "boss", "--reasoning"]);
    assert!(full.contains(&format!("reasoning: {THOUGHT}")), "{full}");

    let failed = text_of(&t.sandbox, &["log", "bad-kid"]);
    in_order(
        &failed,
        &[
            &format!("child of {}", t.parent),
            "user: read everything",
            "end: provider_error",
            "error: context_length_exceeded",
            ": ",
        ],
    );
    let json = stdout_json(&t.sandbox.run(&["log", "bad-kid", "--json"]));
    let message = json["pods"][0]["runs"][0]["error"]["message"]
        .as_str()
        .unwrap();
    assert!(!message.is_empty());
    assert!(
        failed.contains(message),
        "the error's message is shown:\n{failed}"
    );
}

#[test]
fn log_json_has_every_item_in_order() {
    let t = tree();
    let output = t.sandbox.run(&["log", &t.parent, "--json"]);
    assert_exit(&output, 0);
    let doc = stdout_json(&output);
    assert_eq!(doc["version"], 2);
    let pods = doc["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["pod_id"], t.parent.as_str());
    assert_eq!(pods[0]["depth"], 0);
    let runs = pods[0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["input"], PROMPT);
    assert_eq!(run["trigger"], "cli");
    assert_eq!(run["outcome"], "completed");
    assert_eq!(run["stop_reason"], "end_turn");
    assert!(
        run["usage"]["requests_recorded"].as_u64().unwrap() >= 6,
        "{run:#}"
    );
    let items = run["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "assistant",
            "tool_call",
            "assistant",
            "tool_call",
            "child_spawned",
            "assistant",
            "tool_call",
            "child_spawned",
            "assistant",
            "tool_call",
            "assistant",
            "tool_call",
            "assistant",
            "child_exited",
            "child_exited",
        ],
        "{items:#?}"
    );
    let read = items.iter().find(|i| i["tool"] == "read_file").unwrap();
    assert_eq!(read["arguments"], json!({"path": "notes.txt"}));
    assert_eq!(read["outcome"], "ok");
    assert_eq!(read["side_effect"], "read_only");
    assert!(
        read["result"]
            .as_str()
            .unwrap()
            .contains("line one\nline two"),
        "{read:#}"
    );
    assert_eq!(
        read["result_chars"].as_u64().unwrap() as usize,
        read["result"].as_str().unwrap().chars().count()
    );
    let spawned: Vec<&str> = items
        .iter()
        .filter(|i| i["kind"] == "child_spawned")
        .map(|i| i["child_pod_id"].as_str().unwrap())
        .collect();
    assert_eq!(spawned, [t.good.as_str(), t.bad.as_str()]);
    // Each spawn follows the tool call that made it.
    let spawn_at = items
        .iter()
        .position(|i| i["call_id"] == "call_good" && i["kind"] == "tool_call")
        .unwrap();
    assert_eq!(items[spawn_at + 1]["kind"], "child_spawned");
    assert_eq!(items[spawn_at + 1]["call_id"], "call_good");
    let last = items.iter().rfind(|i| i["kind"] == "assistant").unwrap();
    assert_eq!(last["kind"], "assistant");
    assert_eq!(last["reasoning"], THOUGHT, "JSON keeps the reasoning whole");
    assert_eq!(last["text"], "One child failed.");
}

#[test]
fn log_tree_puts_children_after_their_parent_in_spawn_order() {
    let t = tree();
    let doc = stdout_json(&t.sandbox.run(&["log", "boss", "--tree", "--json"]));
    let pods = doc["pods"].as_array().unwrap();
    let ids: Vec<&str> = pods.iter().map(|p| p["pod_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [t.parent.as_str(), t.good.as_str(), t.bad.as_str()]);
    let depths: Vec<u64> = pods.iter().map(|p| p["depth"].as_u64().unwrap()).collect();
    assert_eq!(depths, [0, 1, 1]);
    assert_eq!(pods[1]["runs"][0]["trigger"], "parent_pod");
    assert_eq!(pods[1]["runs"][0]["outcome"], "completed");
    let failed = &pods[2]["runs"][0];
    assert_eq!(failed["outcome"], "provider_error");
    assert_eq!(failed["error"]["class"], "context_length_exceeded");
    assert!(failed.get("stop_reason").is_none(), "{failed:#}");

    let text = text_of(&t.sandbox, &["log", "boss", "--tree"]);
    in_order(
        &text,
        &[
            "=== pod boss",
            "end: completed",
            "=== pod good-kid",
            "user: say hello",
            "assistant: hello from good",
            "=== pod bad-kid",
            "error: context_length_exceeded",
        ],
    );
}

#[test]
fn log_of_an_unknown_pod_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["log", "nobody"]);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nobody") && stderr.contains("pods ls"),
        "{stderr}"
    );
}

#[test]
fn the_markdown_export_has_the_transcript_and_sanitize_keeps_only_counts() {
    let t = tree();
    let output = t
        .sandbox
        .run(&["export", "boss", "--tree", "--format", "markdown"]);
    assert_exit(&output, 0);
    let text = String::from_utf8(output.stdout).unwrap();
    let message = stdout_json(&t.sandbox.run(&["log", "bad-kid", "--json"]))["pods"][0]["runs"][0]
        ["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    in_order(
        &text,
        &[
            "### boss",
            "#### Transcript",
            "> **User:**",
            "> delegate\\u{1b}[2J the review",
            "Tool `read_file` {\"path\":\"notes.txt\"}: ok",
            "    line one",
            &format!("Child spawned: `{}` (profile good).", t.good),
            &format!("Child spawned: `{}` (profile bad).", t.bad),
            &format!("_Reasoning: {} characters", THOUGHT.len()),
            "> One child failed.",
            "End: completed (end_turn)",
            "### good-kid",
            "#### Transcript",
            "> hello from good",
            "### bad-kid",
            // The runs table states the failed run's message, and so does the transcript.
            &format!("context_length_exceeded (context_length_exceeded): {message}"),
            "#### Transcript",
            &format!("End: provider_error; error context_length_exceeded: {message}"),
        ],
    );
    assert!(!text.contains('\u{1b}'), "control characters are escaped");
    assert!(!text.contains(THOUGHT), "reasoning is collapsed");

    let sanitized = t.sandbox.run(&[
        "export",
        "boss",
        "--tree",
        "--format",
        "markdown",
        "--sanitize",
    ]);
    assert_exit(&sanitized, 0);
    let text = String::from_utf8(sanitized.stdout).unwrap();
    assert!(!text.contains("#### Transcript"), "{text}");
    for needle in [
        "delegate",
        "line one",
        "hello from good",
        "One child failed",
        &message,
    ] {
        assert!(
            !text.contains(needle),
            "`{needle}` is left out under --sanitize:\n{text}"
        );
    }
    in_order(
        &text,
        &[
            "Transcript left out (sanitized): 1 run(s), 6 assistant message(s), 5 tool call(s), 2 child pod(s) spawned.",
            "Transcript left out (sanitized): 1 run(s), 1 assistant message(s), 0 tool call(s), 0 child pod(s) spawned.",
            "context_length_exceeded (context_length_exceeded): [redacted:error_message:",
            "Transcript left out (sanitized): 1 run(s), 1 assistant message(s)",
        ],
    );
}
