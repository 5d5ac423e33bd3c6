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

use support::responses::{cassette, profile_in, text_response, tool_call_response};
use support::{Sandbox, assert_exit, describe, id_of, log_entries, walk};

/// Replace what profile `name` in `dir` replays from now on (the manifest names the cassette
/// file, not its content).
fn recast(sandbox: &Sandbox, dir: &str, name: &str, responses: Vec<Value>) {
    sandbox.write(&format!("{dir}/{name}.json"), &cassette(responses));
}

/// The `tool_call_finished` entries of `pod` for `tool`.
fn tool_results(pod: &Path, tool: &str) -> Vec<Value> {
    log_entries(pod)
        .into_iter()
        .filter(|e| e["kind"] == "tool_call_finished" && e["tool"] == tool)
        .collect()
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
    let pod = sandbox.only_pod();
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
fn an_edited_manifest_makes_resume_and_serve_refuse_naming_the_file() {
    let sandbox = Sandbox::new();
    profile_in(
        &sandbox,
        "work/.pods/profiles",
        "plain",
        "",
        vec![text_response(&["ready"], false, None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "plain", "hello"]), 0);
    let pod = sandbox.only_pod();
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
    assert!(
        stderr.contains("restore the file"),
        "{}",
        describe(&refused)
    );
    assert_eq!(log_entries(&pod).len(), segments_before, "nothing ran");
    // Served as a child (how a parent relaunches one), the same refusal.
    let served = sandbox
        .pods()
        .args(["serve", "--pod-dir"])
        .arg(&pod)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_exit(&served, 2);
    assert!(
        String::from_utf8_lossy(&served.stderr).contains(&manifest.display().to_string()),
        "{}",
        describe(&served)
    );
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
    let pod = sandbox.only_pod();
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
fn a_pod_that_never_recorded_its_working_directory_resumes_and_records_it() {
    let sandbox = Sandbox::new();
    profile_in(
        &sandbox,
        "work/.pods/profiles",
        "old",
        "",
        vec![text_response(&["ready"], false, None)],
    );
    assert_exit(&sandbox.run(&["run", "-p", "old", "hello"]), 0);
    let pod = sandbox.only_pod();
    // As written by a version before the working directory was recorded.
    let mut info: Value =
        serde_json::from_slice(&std::fs::read(pod.join("pod.json")).unwrap()).unwrap();
    info.as_object_mut().unwrap().remove("work_dir");
    std::fs::write(pod.join("pod.json"), info.to_string()).unwrap();
    let resumed = sandbox.run(&["resume", &id_of(&pod), "again"]);
    assert_exit(&resumed, 0);
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("did not record its working directory"),
        "{}",
        describe(&resumed)
    );
    let info: Value =
        serde_json::from_slice(&std::fs::read(pod.join("pod.json")).unwrap()).unwrap();
    assert_eq!(
        info["work_dir"].as_str().unwrap(),
        sandbox.work().display().to_string()
    );
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
    let parent = sandbox.only_pod();
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
    let kid = sandbox
        .pod_dirs()
        .into_iter()
        .find(|p| *p != parent)
        .unwrap();
    let info: Value =
        serde_json::from_slice(&std::fs::read(kid.join("pod.json")).unwrap()).unwrap();
    assert_eq!(info["parent_id"], id_of(&parent));
    assert_eq!(
        info["work_dir"].as_str().unwrap(),
        sandbox.work().display().to_string(),
        "children work in their parent's directory"
    );
}

// ---------------------------------------------------------------------------------------------
// The configured key never reaches a file or an export

const KEY_VAR: &str = "TEST_PROVIDER_KEY";

/// Run a traced (raw frames too) pod whose model echoes `key` in its text (whole, and split
/// across deltas), in tool arguments, and reads it back from a file.
fn run_echoing(sandbox: &Sandbox, key: &str) -> std::process::Output {
    sandbox.write("work/.env", &format!("{KEY_VAR}={key}\n"));
    let (head, tail) = key.split_at(key.len() / 2);
    profile_in(
        sandbox,
        "work/.pods/profiles",
        "echo",
        "[session]\nrecord_event_trace = true\ntrace_raw_sse = true\n",
        vec![
            tool_call_response("c1", "read_file", json!({"path": ".env"})),
            tool_call_response(
                "c2",
                "write_file",
                json!({"path": "copy.txt", "content": format!("key={key}")}),
            ),
            text_response(
                &["whole ", key, " and split ", head, tail, " done"],
                false,
                None,
            ),
        ],
    );
    let profile = sandbox.work().join(".pods/profiles/echo.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace(
            "[model]\n",
            &format!("[model]\napi_key_env = \"{KEY_VAR}\"\n"),
        ),
    )
    .unwrap();
    sandbox
        .pods()
        .env(KEY_VAR, key)
        .args(["run", "-p", "echo", "echo your key"])
        .output()
        .unwrap()
}

fn assert_nowhere(sandbox: &Sandbox, key: &str) -> usize {
    let files = walk(&sandbox.home());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key),
            "the key is in {}",
            path.display()
        );
    }
    files.len()
}

#[test]
fn an_echoed_key_reaches_no_file_and_no_export_even_from_a_shell_without_it() {
    for key in [
        "sk-live-7c1e9a3f5b2d4e6a8c0b1d3f5a7c9e1b",
        "pk7c1e9a3f5b2d4e6a8c0b1d3f5a7c9e1b",
    ] {
        let sandbox = Sandbox::new();
        let run = run_echoing(&sandbox, key);
        assert_exit(&run, 0);
        // Not on the terminal either: the text that splits the key across deltas included.
        for stream in [&run.stdout, &run.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(key),
                "{}",
                describe(&run)
            );
        }
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("[redacted]"),
            "{}",
            describe(&run)
        );
        let pod = sandbox.only_pod();
        // The tool read the key and wrote it out: both were scrubbed before anyone saw them.
        let read = &tool_results(&pod, "read_file")[0];
        assert_eq!(read["outcome"], "ok");
        assert_eq!(read["output"], format!("{KEY_VAR}=[redacted]\n"));
        assert_eq!(
            std::fs::read_to_string(sandbox.work().join("copy.txt")).unwrap(),
            "key=[redacted]"
        );
        let text: Vec<Value> = log_entries(&pod)
            .into_iter()
            .filter(|e| e["kind"] == "assistant_message")
            .collect();
        assert!(
            text.iter()
                .any(|e| e.to_string().contains("whole [redacted]")),
            "{text:#?}"
        );
        // Resumed, the provider rejects the key and quotes it back in its error.
        recast(
            &sandbox,
            "work/.pods/profiles",
            "echo",
            vec![json!({
                "status": 401,
                "headers": {"content-type": "application/json"},
                "body": json!({"error": {"message": format!("Incorrect API key provided: {key}."),
                                         "type": "invalid_request_error", "code": "invalid_api_key"}})
                    .to_string(),
            })],
        );
        let failed = sandbox
            .pods()
            .env(KEY_VAR, key)
            .args(["resume", &id_of(&pod), "again"])
            .output()
            .unwrap();
        assert_exit(&failed, 1);
        assert!(!String::from_utf8_lossy(&failed.stderr).contains(key));
        assert!(!String::from_utf8_lossy(&failed.stdout).contains(key));
        let scanned = assert_nowhere(&sandbox, key);
        assert!(
            scanned >= 8,
            "pod.json, manifest, provenance, keys, two logs and traces: {scanned}"
        );
        // The pod keeps what recognises the key, privately, and not the key.
        let keys = pod.join("keys.json");
        assert_eq!(
            std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Exported from a shell without the variable, in every format.
        let id = id_of(&pod);
        for args in [
            vec!["export", id.as_str()],
            vec!["export", id.as_str(), "--format", "markdown"],
            vec!["export", id.as_str(), "--sanitize"],
            vec!["export", id.as_str(), "--sanitize", "--format", "markdown"],
        ] {
            let export = sandbox
                .pods()
                .env_remove(KEY_VAR)
                .args(&args)
                .output()
                .unwrap();
            assert_exit(&export, 0);
            assert!(!String::from_utf8_lossy(&export.stdout).contains(key));
        }

        // A log written by something that did not scrub (an older writer): the check finds the
        // key from the pod's print alone and refuses, naming the variable, writing nothing.
        let log = std::fs::read_dir(pod.join("sessions"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| !p.to_string_lossy().ends_with(".trace.jsonl"))
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, text.replace("[redacted]", key)).unwrap();
        let out = sandbox.root().join("leak.json");
        let export = sandbox
            .pods()
            .env_remove(KEY_VAR)
            .args(["export", &id, "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert_exit(&export, 1);
        let stderr = String::from_utf8_lossy(&export.stderr);
        assert!(stderr.contains(KEY_VAR), "{}", describe(&export));
        assert!(!stderr.contains(key));
        assert!(!out.exists(), "nothing is written");
        // Every other format is either refused the same way or does not hold the key.
        for args in [
            vec!["export", id.as_str(), "--format", "markdown"],
            vec!["export", id.as_str(), "--sanitize"],
            vec!["export", id.as_str(), "--sanitize", "--format", "markdown"],
        ] {
            let export = sandbox
                .pods()
                .env_remove(KEY_VAR)
                .args(&args)
                .output()
                .unwrap();
            match export.status.code() {
                Some(0) => assert!(!String::from_utf8_lossy(&export.stdout).contains(key)),
                _ => {
                    assert_exit(&export, 1);
                    assert!(export.stdout.is_empty());
                    assert!(String::from_utf8_lossy(&export.stderr).contains(KEY_VAR));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Readers refuse what is not a regular file and bound what they hold

/// A finished pod with a trace, and the path of its (only) segment log.
fn finished_pod(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    profile_in(
        sandbox,
        "work/.pods/profiles",
        "plain",
        "[session]\nrecord_event_trace = true\n",
        vec![text_response(&["fine"], false, None)],
    );
    assert_exit(
        &sandbox.run(&["run", "-p", "plain", "--name", "p", "hello"]),
        0,
    );
    let pod = sandbox.only_pod();
    let log = std::fs::read_dir(pod.join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with(".trace.jsonl"))
        .unwrap();
    (pod, log)
}

/// Every reader of a pod's files, pointed at pod `id`.
fn readers(id: &str) -> Vec<Vec<String>> {
    [
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["show", id],
        vec!["show", id, "--json"],
        vec!["trace", id],
        vec!["export", id],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_owned).collect())
    .collect()
}

#[test]
fn readers_refuse_a_fifo_or_a_device_in_a_pod_directory_naming_it() {
    let sandbox = Sandbox::new();
    let (pod, log) = finished_pod(&sandbox);
    let trace = PathBuf::from(log.to_string_lossy().replace(".jsonl", ".trace.jsonl"));
    for (what, make) in [
        (
            "fifo",
            Box::new(|p: &Path| {
                let status = std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .unwrap();
                assert!(status.success());
            }) as Box<dyn Fn(&Path)>,
        ),
        (
            "device",
            Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ),
    ] {
        for victim in [
            &log,
            &trace,
            &pod.join("pod.json"),
            &pod.join("manifest.toml"),
        ] {
            let saved = std::fs::read(victim).unwrap();
            std::fs::remove_file(victim).unwrap();
            make(victim);
            for args in readers(&id_of(&pod)) {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                // A safety deadline, not a timing assertion: a reader that blocks fails here.
                let out = sandbox.run_within(&args, std::time::Duration::from_secs(60));
                let all = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let name = victim.file_name().unwrap().to_string_lossy();
                // Each reader either names the refused file or never needed it.
                let needed = match args[0] {
                    "trace" => victim == &trace,
                    "ls" => victim == &log || victim.ends_with("pod.json"),
                    // The export records that a sidecar exists; it does not read it.
                    "export" => victim != &trace,
                    _ => true,
                };
                if needed {
                    assert!(
                        all.contains(name.as_ref()) && !all.contains("panicked"),
                        "{what} at {name}: `pods {}` does not name it\n{}",
                        args.join(" "),
                        describe(&out)
                    );
                }
            }
            std::fs::remove_file(victim).unwrap();
            std::fs::write(victim, saved).unwrap();
        }
    }
}

#[test]
fn a_huge_seq_on_disk_is_reported_not_a_panic() {
    let sandbox = Sandbox::new();
    let (pod, log) = finished_pod(&sandbox);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("\"seq\":2", &format!("\"seq\":{}", u64::MAX), 1);
    assert!(lines[1].contains(&u64::MAX.to_string()));
    std::fs::write(&log, format!("{}\n", lines.join("\n"))).unwrap();
    for args in readers(&id_of(&pod)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run_within(&args, std::time::Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}", describe(&out));
        assert_ne!(out.status.code(), Some(101), "{}", describe(&out));
    }
    let show = sandbox.run(&["show", "p"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&show.stdout),
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(all.contains("largest possible seq"), "{}", describe(&show));
    let export = sandbox.run(&["export", "p"]);
    assert_exit(&export, 0);
    let doc: Value = serde_json::from_slice(&export.stdout).unwrap();
    assert!(
        doc.to_string().contains(&u64::MAX.to_string()),
        "the gap is in the export's integrity"
    );
}

// ---------------------------------------------------------------------------------------------
// Files are private

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_home_its_directories_and_exports_are_private_to_the_user() {
    let sandbox = Sandbox::new();
    // An existing home made by an older version (or by hand) with the usual 0755.
    std::fs::set_permissions(sandbox.home(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (pod, _) = finished_pod(&sandbox);
    assert_eq!(mode(&sandbox.home()), 0o700);
    assert_eq!(mode(&sandbox.home().join("pods")), 0o700);
    assert_eq!(mode(&pod), 0o700);
    assert_eq!(mode(&pod.join("sessions")), 0o700);
    assert_eq!(mode(&pod.join("pod.json")), 0o600);
    for file in walk(&pod.join("sessions")) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let out = sandbox.root().join("export.json");
    let export = sandbox
        .pods()
        .args(["export", "p", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_exit(&export, 0);
    assert_eq!(mode(&out), 0o600);
}
