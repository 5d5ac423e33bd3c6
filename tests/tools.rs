//! Whole-system tests of the builtin tools a model edits and searches code with: `edit_file`
//! (an exact replacement, refused when the text is missing or not unique) and `search` (a
//! regular expression over the scope, respecting `.gitignore`). Real `pods` processes against
//! the replay provider over loopback; what the tools did is read back from the files and the
//! session log.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use support::responses::{profile, text_response, tool_call_response};
use support::{Sandbox, assert_exit, log_entries};

/// The `tool_call_finished` entries of the only pod, in order.
fn finished_calls(sandbox: &Sandbox) -> Vec<Value> {
    log_entries(&sandbox.only_pod())
        .into_iter()
        .filter(|e| e["kind"] == "tool_call_finished")
        .collect()
}

#[test]
fn edit_file_replaces_unique_text_and_refuses_missing_or_ambiguous_text() {
    let sandbox = Sandbox::new();
    sandbox.write("work/src/lib.rs", "fn one() {}\nfn two() {}\nfn two() {}\n");
    profile(
        &sandbox,
        "editor",
        "[agent]\ntools = [\"edit_file\"]\n",
        vec![
            tool_call_response(
                "c1",
                "edit_file",
                json!({"path": "src/lib.rs", "old_text": "fn one()", "new_text": "fn first()"}),
            ),
            tool_call_response(
                "c2",
                "edit_file",
                json!({"path": "src/lib.rs", "old_text": "fn three()", "new_text": "x"}),
            ),
            tool_call_response(
                "c3",
                "edit_file",
                json!({"path": "src/lib.rs", "old_text": "fn two()", "new_text": "fn second()"}),
            ),
            tool_call_response(
                "c4",
                "edit_file",
                json!({"path": "src/lib.rs", "old_text": "fn two()", "new_text": "fn second()",
                       "replace_all": true}),
            ),
            text_response(&["edited"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "editor", "rename the functions"]);
    assert_exit(&run, 0);
    assert_eq!(
        std::fs::read_to_string(sandbox.work().join("src/lib.rs")).unwrap(),
        "fn first() {}\nfn second() {}\nfn second() {}\n"
    );
    let calls = finished_calls(&sandbox);
    let outcomes: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c["outcome"].as_str().unwrap(),
                c["output"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 4, "{calls:#?}");
    assert_eq!(
        outcomes[0],
        ("ok", "replaced 1 occurrence in src/lib.rs (38 bytes now)")
    );
    assert_eq!(outcomes[1].0, "error");
    assert!(outcomes[1].1.contains("was not found"), "{}", outcomes[1].1);
    assert_eq!(outcomes[2].0, "error");
    assert!(
        outcomes[2].1.contains("occurs 2 times"),
        "{}",
        outcomes[2].1
    );
    assert_eq!(outcomes[3].0, "ok");
    assert!(
        outcomes[3].1.starts_with("replaced 2 occurrences"),
        "{}",
        outcomes[3].1
    );
    assert!(calls.iter().all(|c| c["side_effect"] == "local_write"));
}

#[test]
fn search_finds_lines_in_scope_and_skips_what_gitignore_excludes() {
    let sandbox = Sandbox::new();
    sandbox.write("work/.gitignore", "build/\n*.log\n");
    sandbox.write("work/src/main.rs", "fn main() {\n    launch_rocket();\n}\n");
    sandbox.write("work/build/gen.rs", "launch_rocket(); // generated\n");
    sandbox.write("work/run.log", "launch_rocket failed\n");
    profile(
        &sandbox,
        "finder",
        "[agent]\ntools = [\"search\"]\n",
        vec![
            tool_call_response("c1", "search", json!({"pattern": "launch_\\w+"})),
            tool_call_response("c2", "search", json!({"pattern": "(unclosed"})),
            text_response(&["found"], false, None),
        ],
    );
    let run = sandbox.run(&["run", "-p", "finder", "where is the launch"]);
    assert_exit(&run, 0);
    let calls = finished_calls(&sandbox);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[0]["side_effect"], "read_only");
    assert_eq!(calls[0]["output"], "src/main.rs:2:     launch_rocket();");
    assert_eq!(calls[1]["outcome"], "error");
    assert!(
        calls[1]["output"]
            .as_str()
            .unwrap()
            .contains("not a valid regular expression")
    );
}
