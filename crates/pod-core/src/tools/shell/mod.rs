//! `shell`: run a command (a `bash -c` string or an argument vector) in the pod's scope.
//!
//! The command runs in a process group of its own, with the pod's environment less its key
//! variables, stdin at `/dev/null`, a private temporary directory as `TMPDIR`, a timeout
//! (`agent.shell_timeout_ms`) and bounded output (`agent.shell_output_bytes`). On Linux it is
//! confined with Landlock by `pods sandbox-exec` ([`sandbox`]). Its whole process group is
//! killed when it times out, when it exits (whatever it left in the background), and when the
//! call is dropped because the run was interrupted or stopped.

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use pod_profile::Manifest;

use super::{Tool, ToolContext, ToolError, ToolFuture};
use crate::record::SideEffectClass;
use crate::scope::Access;

mod output;
mod process;
pub mod sandbox;

use process::Ending;
use sandbox::{Confinement, Support};

pub(super) struct Shell;

impl Tool for Shell {
    fn name(&self) -> &str {
        "shell"
    }
    fn description(&self) -> &str {
        "Run a shell command in the pod's working directory (or `cwd`, inside the pod's scope). \
         Give `command` (run by `bash -c`) or `argv` (a program and its arguments, no shell). \
         stdin is empty; stdout and stderr are captured together, in the order written (as \
         with 2>&1). Long output keeps its beginning and end and says how much was cut. The \
         result gives the exit code, the signal that killed the command, or that it timed out, \
         then the output; anything but exit code 0 is reported as an error. Processes the command leaves in \
         the background are killed when it ends. Where the system supports it, the command can \
         only write inside the pod's scope and $TMPDIR, and has no network unless the pod \
         allows it."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "command": {"type": "string", "description": "A command line for `bash -c`"},
            "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                     "description": "A program and its arguments, run without a shell (instead of `command`)"},
            "cwd": {"type": "string", "description": "Working directory, relative to the pod's (default `.`)"},
            "timeout_ms": {"type": "integer", "minimum": 1,
                           "description": "Kill the command after this many milliseconds (at most the pod's `agent.shell_timeout_ms`)"}
        }, "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::Process
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let request = Request::from_input(&input, &ctx.manifest)?;
            let cwd = ctx.scope.check(&request.cwd, Access::Read)?;
            if !cwd.is_dir() {
                return Err(ToolError(format!("`cwd` {}: not a directory", request.cwd)));
            }
            let exe = crate::children::Launcher::from_env()
                .map_err(|e| ToolError(format!("cannot find the pods executable: {e}")))?
                .exe()
                .to_owned();
            // The command's private temporary directory, removed after it.
            let tmp = tempfile::Builder::new()
                .prefix("pods-shell-")
                .tempdir()
                .map_err(|e| ToolError(format!("cannot create a temporary directory: {e}")))?;
            let network = ctx.manifest.agent.shell_network;
            let confinement = Confinement {
                write: sandbox::writable_paths(ctx.scope.allow(), tmp.path()),
                network,
            };
            let mut command = tokio::process::Command::new(exe);
            command
                .args(confinement.to_args())
                .args(&request.argv)
                .current_dir(&cwd)
                .env_clear()
                .envs(command_env(&ctx.manifest))
                .env("TMPDIR", tmp.path());
            let finished =
                process::run(command, tmp, request.timeout, request.output_bytes).await?;
            let mut text = String::new();
            if let Some(gap) = support().gaps(network) {
                text.push_str(&gap);
                text.push('\n');
            }
            text.push_str(&finished.ending.describe(request.timeout));
            text.push('\n');
            if finished.output_bytes == 0 {
                text.push_str("(no output)");
            } else {
                text.push_str(&finished.output);
            }
            if finished.held_open {
                text.push_str(
                    "\n[output cut at the timeout: a process that left the command's process group still holds it open, and was not killed]",
                );
            }
            match finished.ending {
                Ending::Exited(0) => Ok(text),
                _ => Err(ToolError(text)),
            }
        })
    }
}

/// What this kernel's Landlock enforces on a `shell` command, probed once per process.
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(Support::probe)
}

/// One call's arguments, checked.
#[derive(Debug, PartialEq)]
struct Request {
    argv: Vec<OsString>,
    cwd: String,
    timeout: Duration,
    output_bytes: usize,
}

impl Request {
    fn from_input(input: &Value, manifest: &Manifest) -> Result<Request, ToolError> {
        let argv: Vec<OsString> = match (input.get("command"), input.get("argv")) {
            (Some(Value::String(line)), None | Some(Value::Null)) if !line.trim().is_empty() => {
                vec!["bash".into(), "-c".into(), line.into()]
            }
            (Some(Value::String(_)), None | Some(Value::Null)) => {
                return Err(ToolError("`command` is empty".into()));
            }
            (None | Some(Value::Null), Some(Value::Array(items))) => {
                let argv: Option<Vec<OsString>> = items
                    .iter()
                    .map(|item| item.as_str().map(OsString::from))
                    .collect();
                match argv {
                    Some(argv) if argv.first().is_some_and(|p| !p.is_empty()) => argv,
                    Some(_) => {
                        return Err(ToolError(
                            "`argv` must start with the program to run".into(),
                        ));
                    }
                    None => return Err(ToolError("`argv` must be an array of strings".into())),
                }
            }
            (None | Some(Value::Null), None | Some(Value::Null)) => {
                return Err(ToolError(
                    "give `command` (a string for `bash -c`) or `argv` (an array of strings)"
                        .into(),
                ));
            }
            (Some(Value::String(_)), Some(_)) => {
                return Err(ToolError("give `command` or `argv`, not both".into()));
            }
            (Some(_), _) => return Err(ToolError("`command` must be a string".into())),
            (_, Some(_)) => return Err(ToolError("`argv` must be an array of strings".into())),
        };
        let cwd = match input.get("cwd") {
            None | Some(Value::Null) => ".".to_owned(),
            Some(Value::String(cwd)) => cwd.clone(),
            Some(_) => return Err(ToolError("`cwd` must be a string".into())),
        };
        let most = manifest.agent.shell_timeout_ms;
        let timeout_ms = match input.get("timeout_ms") {
            None | Some(Value::Null) => most,
            Some(value) => match value.as_u64() {
                Some(ms @ 1..) => ms.min(most),
                _ => {
                    return Err(ToolError(format!(
                        "`timeout_ms` must be a whole number of milliseconds from 1 to {most}"
                    )));
                }
            },
        };
        Ok(Request {
            argv,
            cwd,
            timeout: Duration::from_millis(timeout_ms),
            output_bytes: usize::try_from(manifest.agent.shell_output_bytes).unwrap_or(usize::MAX),
        })
    }
}

/// This process's environment less the variables that hold the pod's key.
fn command_env(manifest: &Manifest) -> Vec<(OsString, OsString)> {
    without_keys(std::env::vars_os().collect(), manifest)
}

/// `env` less the manifest's key variable, every key variable of its scheme, and any variable
/// whose value contains a key the scrubber knows (a copy under another name).
fn without_keys(env: Vec<(OsString, OsString)>, manifest: &Manifest) -> Vec<(OsString, OsString)> {
    let mut keys: Vec<String> = manifest.model.api_key_env.iter().cloned().collect();
    if let Some(scheme) = crate::model::wire_scheme(manifest.model.scheme) {
        keys.extend(scheme.api_key_envs().iter().map(|name| (*name).to_owned()));
    }
    env.into_iter()
        .filter(|(name, value)| {
            let is_key = keys.iter().any(|key| name.as_os_str() == key.as_str());
            let holds_key = matches!(
                pod_trace::scrub::scrub(&value.to_string_lossy()),
                std::borrow::Cow::Owned(_)
            );
            !is_key && !holds_key
        })
        .collect()
}

impl Ending {
    /// The first line of the result.
    fn describe(&self, timeout: Duration) -> String {
        match self {
            Ending::Exited(code) => format!("exit code {code}"),
            Ending::Signalled(signal) => format!(
                "killed by signal {signal}{}",
                signal_name(*signal).map_or(String::new(), |name| format!(" ({name})"))
            ),
            Ending::TimedOut => format!(
                "timed out after {} ms: the command and every process of its group were killed",
                timeout.as_millis()
            ),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
