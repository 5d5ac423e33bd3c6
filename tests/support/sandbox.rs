//! A sandbox per test and `pods` commands confined to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::home;

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

    /// The pod directories of this sandbox's home (see [`home::pod_dirs`]).
    pub fn pod_dirs(&self) -> Vec<PathBuf> {
        home::pod_dirs(&self.home())
    }

    /// The one pod directory of this sandbox's home (see [`home::only_pod`]).
    #[track_caller]
    pub fn only_pod(&self) -> PathBuf {
        home::only_pod(&self.home())
    }

    /// The pod of this sandbox's home that has no parent, once its `pod.json` exists.
    pub fn root_pod(&self) -> Option<PathBuf> {
        home::root_pod(&self.home())
    }

    /// The pods of this sandbox's home whose parent is `parent`.
    pub fn children_of(&self, parent: &Path) -> Vec<PathBuf> {
        home::children_of(&self.home(), parent)
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}
