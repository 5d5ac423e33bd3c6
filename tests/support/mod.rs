//! Shared helpers for whole-system tests: a sandbox per test (its own pods home, config dir and
//! working directory) and a way to run the real `pods` binary inside it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `pods` binary built for this test run.
pub fn pods_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pods"))
}

/// An isolated environment for one test; everything is removed when it is dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("pods-test-")
            .tempdir()
            .expect("create sandbox dir");
        for sub in ["home", "config", "work"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create sandbox subdir");
        }
        Sandbox { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `PODS_HOME` for commands run in this sandbox.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// `XDG_CONFIG_HOME` for commands run in this sandbox (user profiles live in
    /// `config/pods/profiles`).
    pub fn config(&self) -> PathBuf {
        self.root().join("config")
    }

    /// The working directory commands run in (project profiles live in `work/.pods/profiles`).
    pub fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    /// Write a file below the sandbox root, creating parent directories.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A `pods` command confined to this sandbox: its own home, config dir and working dir, and
    /// no `PODS_*` variables inherited from the environment running the tests.
    pub fn pods(&self) -> Command {
        let mut cmd = Command::new(pods_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PODS_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("PODS_HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .current_dir(self.work());
        cmd
    }

    /// Run `pods ARGS…` and capture its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.pods().args(args).output().expect("spawn pods")
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// Exit code, stdout and stderr of a finished command, rendered for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Assert the command exited with `code`, showing its output otherwise.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit code\n{}",
        describe(output)
    );
}

/// Parse stdout as one JSON document.
#[track_caller]
pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", describe(output)))
}

/// Parse stdout as JSON Lines.
#[track_caller]
pub fn stdout_json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line is not JSON: {e}: {line}\n{}", describe(output)))
        })
        .collect()
}

/// A `pods` process started in the background, its stdout and stderr going to files in the
/// sandbox. It is killed and reaped when dropped, so a failing test leaves nothing running.
pub struct Background {
    child: Option<std::process::Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process not finished").id()
    }

    /// Wait for the process to end and return what it did. After `limit` (a safety deadline,
    /// not a timing assertion) the process is killed and the test fails.
    #[track_caller]
    pub fn finish(&mut self, limit: std::time::Duration) -> Output {
        let deadline = std::time::Instant::now() + limit;
        let child = self.child.as_mut().expect("process not finished");
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pods did not end within {limit:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    std::fs::read_to_string(&self.out).unwrap_or_default(),
                    std::fs::read_to_string(&self.err).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        self.child = None;
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sandbox {
    /// Start `pods ARGS…` in the background; `tag` names its output files.
    pub fn spawn(&self, args: &[&str], tag: &str) -> Background {
        let out = self.root().join(format!("{tag}.out"));
        let err = self.root().join(format!("{tag}.err"));
        let child = self
            .pods()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("create stdout file"))
            .stderr(std::fs::File::create(&err).expect("create stderr file"))
            .spawn()
            .expect("spawn pods");
        Background {
            child: Some(child),
            out,
            err,
        }
    }

    /// Run `pods ARGS…` to its end, failing (and killing it) if it takes longer than `limit`.
    #[track_caller]
    pub fn run_within(&self, args: &[&str], limit: std::time::Duration) -> Output {
        let tag = format!(
            "run-{}",
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.spawn(args, &tag).finish(limit)
    }
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether process `pid` exists and has not ended: a zombie (ended, not yet reaped by whoever
/// inherited it) counts as ended.
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Every JSON line of `path` (unparseable lines are skipped).
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Builders for OpenAI Responses cassettes served by the replay provider.
pub mod responses {
    use serde_json::{Value, json};

    use super::Sandbox;

    /// An SSE body with one named event per value (its `type`).
    pub fn sse(events: &[Value]) -> String {
        events
            .iter()
            .map(|e| {
                let name = e["type"].as_str().expect("event has a type");
                format!("event: {name}\ndata: {e}\n\n")
            })
            .collect()
    }

    pub fn response_shell(status: &str) -> Value {
        json!({"id": "resp_test", "object": "response", "created_at": 1767225600,
               "status": status, "error": null, "model": "test-replay", "output": []})
    }

    /// The events of a streamed text answer; `fail` ends it with `response.failed` (context
    /// length) instead of `response.completed`.
    pub fn text_events(words: &[&str], fail: bool) -> Vec<Value> {
        let mut events = vec![
            json!({"type": "response.created", "response": response_shell("in_progress")}),
            json!({"type": "response.output_item.added", "output_index": 0,
                   "item": {"id": "msg_1", "type": "message", "role": "assistant",
                            "status": "in_progress", "content": []}}),
        ];
        for word in words {
            events.push(
                json!({"type": "response.output_text.delta", "item_id": "msg_1",
                               "output_index": 0, "content_index": 0, "delta": word}),
            );
        }
        if fail {
            let mut failed = response_shell("failed");
            failed["error"] = json!({"code": "context_length_exceeded",
                "message": "Your input exceeds the context window of this model."});
            events.push(json!({"type": "response.failed", "response": failed}));
        } else {
            events.push(
                json!({"type": "response.completed", "response": response_shell("completed")}),
            );
        }
        events
    }

    /// A streamed text answer the provider cut at the output-token limit
    /// (`response.incomplete` with `max_output_tokens`).
    pub fn truncated_text_response(words: &[&str]) -> Value {
        let mut events = text_events(words, false);
        let mut shell = response_shell("incomplete");
        shell["incomplete_details"] = json!({"reason": "max_output_tokens"});
        if let Some(last) = events.last_mut() {
            *last = json!({"type": "response.incomplete", "response": shell});
        }
        stream(sse(&events))
    }

    /// One `200 text/event-stream` cassette response with `body`.
    pub fn stream(body: String) -> Value {
        json!({"status": 200, "headers": {"content-type": "text/event-stream"}, "body": body})
    }

    /// A streamed text answer; `pause` is `(after_events, ms)` for the replay server's
    /// `pause_after_events` knob.
    pub fn text_response(words: &[&str], fail: bool, pause: Option<(usize, u64)>) -> Value {
        let mut response = stream(sse(&text_events(words, fail)));
        if let Some((after, ms)) = pause {
            response["pause_after_events"] = json!({"events": after, "ms": ms});
        }
        response
    }

    /// A model turn that calls `tool` with `args`.
    pub fn tool_call_response(call_id: &str, tool: &str, args: Value) -> Value {
        let args = args.to_string();
        let item = json!({"type": "function_call", "id": format!("fc_{call_id}"),
                          "call_id": call_id, "name": tool, "arguments": "",
                          "status": "in_progress"});
        let mut done = item.clone();
        done["arguments"] = json!(args);
        done["status"] = json!("completed");
        let events = vec![
            json!({"type": "response.created", "response": response_shell("in_progress")}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
            json!({"type": "response.function_call_arguments.delta",
                   "item_id": format!("fc_{call_id}"), "output_index": 0, "delta": args}),
            json!({"type": "response.function_call_arguments.done",
                   "item_id": format!("fc_{call_id}"), "output_index": 0, "arguments": args}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": done}),
            json!({"type": "response.completed", "response": response_shell("completed")}),
        ];
        stream(sse(&events))
    }

    /// The responses of a parent that spawns two `holder` children named `a` and `b`, waits on
    /// `a`, then answers.
    pub fn spawn_two_holders() -> Vec<Value> {
        vec![
            tool_call_response(
                "call_a",
                "spawn_pod",
                json!({"profile": "holder", "task": "hold a", "name": "a"}),
            ),
            tool_call_response(
                "call_b",
                "spawn_pod",
                json!({"profile": "holder", "task": "hold b", "name": "b"}),
            ),
            tool_call_response("call_wait", "wait_pod", json!({"pod_id": "a"})),
            text_response(&["done"], false, None),
        ]
    }

    /// Project profile `holder`: a child whose stream pauses (for a minute, longer than any
    /// test waits) after three events, so it is mid-run until something interrupts it.
    pub fn holder_profile(sandbox: &Sandbox) {
        profile(
            sandbox,
            "holder",
            "[agent]\ntools = []\n",
            vec![text_response(
                &["hold ", "the ", "line ", "please"],
                false,
                Some((3, 60_000)),
            )],
        );
    }

    pub fn cassette(responses: Vec<Value>) -> String {
        json!({"scheme": "openai-responses", "responses": responses}).to_string()
    }

    /// Write project profile `name` (a replay model serving `responses`) with `body` after its
    /// `[model]` section.
    pub fn profile(sandbox: &Sandbox, name: &str, body: &str, responses: Vec<Value>) {
        sandbox.write(
            &format!("work/.pods/profiles/{name}.json"),
            &cassette(responses),
        );
        let text = format!(
            "[model]\nscheme = \"replay\"\nmodel = \"test-replay\"\ncassette = \"{name}.json\"\n\n{body}"
        );
        sandbox.write(&format!("work/.pods/profiles/{name}.toml"), &text);
    }
}
