//! The harness shared by the whole-system tests: a sandbox per test (its own pods home, config
//! dir and working directory) running the real `pods` binary, and readers of what it leaves.
//!
//! - [`sandbox`]: the sandbox and `pods` commands confined to it;
//! - [`process`]: `pods` processes in the background, signals, polling;
//! - [`output`]: a finished command's exit code and output, for assertions;
//! - [`home`]: the pod directories of a home and their `pod.json`;
//! - [`logs`]: a pod's session logs and trace sidecars;
//! - [`control`]: a pod's control socket and the moment its run streams;
//! - [`live`]: pods and trees held mid-run in the background;
//! - [`cassettes`], [`responses`], [`chat`]: replay-provider cassettes in each wire scheme;
//! - [`replay_server`]: the replay server on loopback, for profiles that speak a real scheme;
//! - [`terminal`]: a pseudo-terminal for processes that ask the user;
//! - [`otlp`]: an OTLP/HTTP receiver on loopback that decodes what it is sent.

// Each test binary compiles the harness and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod cassettes;
pub mod chat;
pub mod control;
pub mod home;
pub mod live;
pub mod logs;
pub mod otlp;
pub mod output;
pub mod process;
pub mod replay_server;
pub mod responses;
pub mod sandbox;
pub mod terminal;

pub use home::{id_of, pod_info, walk};
pub use logs::{log_entries, of_kind, read_json_lines};
pub use output::{assert_exit, describe, stderr_text, stdout_json, stdout_json_lines, stdout_text};
pub use process::{Background, process_running, signal, wait_until};
pub use sandbox::Sandbox;
