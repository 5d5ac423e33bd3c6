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
