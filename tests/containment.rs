//! Whole-system tests: a pod cannot widen its own powers. Its tools never reach the pods home
//! or the profile directories, whatever its scope says; it runs only with a manifest it can
//! vouch for; `resume` is the same pod (same working directory, same tools); the configured key
//! never reaches a file or an export; readers refuse what is not a regular file; what it writes
//! is private to the user. Real `pods` processes against the replay provider over loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use support::responses::{cassette, text_response, tool_call_response};
use support::{Sandbox, assert_exit, describe, read_json_lines};

/// Write profile `name` into `dir` (a profile directory below the sandbox root), replaying
/// `responses`, with `body` after its `[model]` section.
fn profile_in(sandbox: &Sandbox, dir: &str, name: &str, body: &str, responses: Vec<Value>) {
    sandbox.write(&format!("{dir}/{name}.json"), &cassette(responses));
    sandbox.write(
        &format!("{dir}/{name}.toml"),
        &format!(
            "[model]\nscheme = \"replay\"\nmodel = \"test-replay\"\ncassette = \"{name}.json\"\n\n{body}"
        ),
    );
}

/// Replace what profile `name` in `dir` replays from now on (the manifest names the cassette
/// file, not its content).
fn recast(sandbox: &Sandbox, dir: &str, name: &str, responses: Vec<Value>) {
    sandbox.write(&format!("{dir}/{name}.json"), &cassette(responses));
}

fn pods_dirs(sandbox: &Sandbox) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(sandbox.home().join("pods"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn only_pod(sandbox: &Sandbox) -> PathBuf {
    let dirs = pods_dirs(sandbox);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn id_of(pod: &Path) -> String {
    pod.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every session log entry of `pod`, oldest segment first.
fn log_entries(pod: &Path) -> Vec<Value> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(pod.join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".jsonl") && !name.ends_with(".trace.jsonl")
        })
        .collect();
    logs.sort();
    logs.iter().flat_map(|l| read_json_lines(l)).collect()
}

/// The `tool_call_finished` entries of `pod` for `tool`.
fn tool_results(pod: &Path, tool: &str) -> Vec<Value> {
    log_entries(pod)
        .into_iter()
        .filter(|e| e["kind"] == "tool_call_finished" && e["tool"] == tool)
        .collect()
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// A pod can never widen its own scope

const USER_PROFILES: &str = "config/pods/profiles";

#[test]
fn a_pod_cannot_write_its_own_manifest_or_read_profiles_even_when_its_scope_holds_them() {
    let sandbox = Sandbox::new();
    // Started from the sandbox root, the default scope ["."] contains the home and the user
    // profile directory.
    profile_in(
        &sandbox,
        USER_PROFILES,
        "wide",
        "",
        vec![text_response(&["ready"], false, None)],
    );
    let first = sandbox
        .pods()
        .current_dir(sandbox.root())
        .args(["run", "-p", "wide", "hello"])
        .output()
        .unwrap();
    assert_exit(&first, 0);
    let pod = only_pod(&sandbox);
    let id = id_of(&pod);
    let manifest_before = std::fs::read(pod.join("manifest.toml")).unwrap();
    std::os::unix::fs::symlink(sandbox.home(), sandbox.root().join("link")).unwrap();
    let evil = "[model]\nscheme = \"replay\"\n\n[scope]\nallow = [\"/\"]\n";
    recast(
        &sandbox,
        USER_PROFILES,
        "wide",
        vec![
            tool_call_response(
                "c1",
                "write_file",
                json!({"path": format!("home/pods/{id}/manifest.toml"), "content": evil}),
            ),
            tool_call_response(
                "c2",
                "write_file",
                json!({"path": format!("link/pods/{id}/manifest.toml"), "content": evil}),
            ),
            tool_call_response(
                "c3",
                "read_file",
                json!({"path": format!("{USER_PROFILES}/wide.toml")}),
            ),
            tool_call_response(
                "c4",
                "write_file",
                json!({"path": format!("home/pods/{id}/sessions/forged.jsonl"), "content": "{}"}),
            ),
            text_response(&["tried"], false, None),
        ],
    );
    let resumed = sandbox
        .pods()
        .current_dir(sandbox.root())
        .args(["resume", &id, "widen yourself"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    assert_eq!(
        std::fs::read(pod.join("manifest.toml")).unwrap(),
        manifest_before,
        "the manifest was rewritten by the pod's own tool"
    );
    assert!(!pod.join("sessions/forged.jsonl").exists());
    let mut results = tool_results(&pod, "write_file");
    results.extend(tool_results(&pod, "read_file"));
    assert_eq!(results.len(), 4, "{results:#?}");
    for result in &results {
        assert_eq!(result["outcome"], "error", "{result}");
        let text = result["output"].as_str().unwrap();
        assert!(
            text.contains("holds pod state or profiles"),
            "the refusal says why: {text}"
        );
    }
    // The profile's text never reached the model or the log.
    assert!(
        !results
            .iter()
            .any(|r| r["output"].as_str().unwrap().contains("test-replay"))
    );
}

#[test]
fn an_edited_manifest_makes_resume_refuse_naming_the_file() {
    let sandbox = Sandbox::new();
    profile_in(
        &sandbox,
        "work/.pods/profiles",
        "plain",
        "",
        vec![text_response(&["ready"], false, None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "plain", "hello"]), 0);
    let pod = only_pod(&sandbox);
    // Reformatting is not an edit: the pod still resumes.
    let manifest = pod.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("# a comment\n{text}\n")).unwrap();
    recast(
        &sandbox,
        "work/.pods/profiles",
        "plain",
        vec![text_response(&["again"], false, None)],
    );
    assert_exit(&sandbox.run(&["resume", &id_of(&pod), "again"]), 0);
    // A changed value is.
    let widened = text.replace("[scope]\nallow = [\".\"]", "[scope]\nallow = [\"/\"]");
    assert_ne!(widened, text, "the manifest has a scope section: {text}");
    std::fs::write(&manifest, widened).unwrap();
    let segments_before = log_entries(&pod).len();
    let refused = sandbox.run(&["resume", &id_of(&pod), "go on"]);
    assert_exit(&refused, 2);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&manifest.display().to_string()),
        "{}",
        describe(&refused)
    );
    assert!(stderr.contains("restore the file"), "{}", describe(&refused));
    assert_eq!(log_entries(&pod).len(), segments_before, "nothing ran");
}

// ---------------------------------------------------------------------------------------------
// `resume` is the same pod

#[test]
fn resume_from_another_directory_keeps_the_original_working_directory_and_scope() {
    let sandbox = Sandbox::new();
    sandbox.write("work/notes.txt", "inside\n");
    sandbox.write("outside/notes.txt", "OUTSIDE SECRET\n");
    profile_in(
        &sandbox,
        "work/.pods/profiles",
        "reader",
        "",
        vec![text_response(&["ready"], false, None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "reader", "hello"]), 0);
    let pod = only_pod(&sandbox);
    let info: Value =
        serde_json::from_slice(&std::fs::read(pod.join("pod.json")).unwrap()).unwrap();
    assert_eq!(
        info["work_dir"].as_str().unwrap(),
        sandbox.work().display().to_string()
    );
    recast(
        &sandbox,
        "work/.pods/profiles",
        "reader",
        vec![
            tool_call_response("c1", "read_file", json!({"path": "notes.txt"})),
            tool_call_response("c2", "read_file", json!({"path": "outside/notes.txt"})),
            tool_call_response(
                "c3",
                "read_file",
                json!({"path": sandbox.root().join("outside/notes.txt")}),
            ),
            text_response(&["read"], false, None),
        ],
    );
    // Resumed from the directory above, whose "." would hold `outside/`.
    let resumed = sandbox
        .pods()
        .current_dir(sandbox.root())
        .args(["resume", &id_of(&pod), "read"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    let results = tool_results(&pod, "read_file");
    assert_eq!(results.len(), 3, "{results:#?}");
    assert_eq!(results[0]["outcome"], "ok");
    assert_eq!(results[0]["output"], "inside\n");
    for refused in &results[1..] {
        assert_eq!(refused["outcome"], "error", "{refused}");
    }
    assert!(
        results[2]["output"]
            .as_str()
            .unwrap()
            .contains("outside this pod's scope")
    );
    for result in &results {
        assert!(!result.to_string().contains("OUTSIDE SECRET"));
    }
}

#[test]
fn spawn_pod_works_after_resume() {
    let sandbox = Sandbox::new();
    let dir = "work/.pods/profiles";
    profile_in(
        &sandbox,
        dir,
        "parent",
        "[agent]\ntools = [\"spawn_pod\", \"wait_pod\"]\n\n[spawn]\nallowed_profiles = [\"kid\"]\n",
        vec![text_response(&["ready"], false, None)],
    );
    profile_in(
        &sandbox,
        dir,
        "kid",
        "[agent]\ntools = []\n",
        vec![text_response(&["kid ", "done"], false, None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "parent", "hello"]), 0);
    let parent = only_pod(&sandbox);
    recast(
        &sandbox,
        dir,
        "parent",
        vec![
            tool_call_response(
                "c1",
                "spawn_pod",
                json!({"profile": "kid", "task": "say done", "name": "kid"}),
            ),
            tool_call_response("c2", "wait_pod", json!({"pod_id": "kid"})),
            text_response(&["all ", "done"], false, None),
        ],
    );
    let resumed = sandbox
        .pods()
        .current_dir(sandbox.root())
        .args(["resume", &id_of(&parent), "spawn a kid"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    let spawned = tool_results(&parent, "spawn_pod");
    assert_eq!(spawned.len(), 1, "{}", describe(&resumed));
    assert_eq!(spawned[0]["outcome"], "ok", "{}", spawned[0]);
    let waited = tool_results(&parent, "wait_pod");
    assert_eq!(waited[0]["outcome"], "ok", "{}", waited[0]);
    assert!(waited[0]["output"].as_str().unwrap().contains("kid done"));
    let kid = pods_dirs(&sandbox)
        .into_iter()
        .find(|p| *p != parent)
        .unwrap();
    let info: Value = serde_json::from_slice(&std::fs::read(kid.join("pod.json")).unwrap()).unwrap();
    assert_eq!(info["parent_id"], id_of(&parent));
    assert_eq!(
        info["work_dir"].as_str().unwrap(),
        sandbox.work().display().to_string(),
        "children work in their parent's directory"
    );
}
