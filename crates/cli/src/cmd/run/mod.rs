//! `pods run` and `pods resume`: run a pod in the foreground (`pods serve` hosts a child pod
//! for its parent). The pod is launched and hosted by [`pod_core::launch`]; this module reads
//! the arguments and presents the run.

mod approve;
mod json;
mod outcome;
mod presenter;
mod prompt;
mod resume;
mod serve;
mod terminal;
mod trace_context;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use pod_core::launch::{ChildSetup, Launch, LaunchError, PodSource};
use pod_core::record::RunTrigger;
use pod_core::run_events::{self, RunEvent};
use pod_core::{CoreError, PodDir, PodHome, RunInput, RunObserver};
use pod_profile::{Catalog, Discovery, Overrides, ResolvedManifest};

use crate::failure::{CmdResult, Failure, out};
use crate::global::GlobalArgs;
use outcome::{RunEnd, conclude};
use presenter::Presenter;
use prompt::{check_prompt, read_stdin_prompt};

pub use approve::ApproveArg;
pub use resume::{ResumeArgs, resume};
pub use serve::{ServeArgs, serve};

/// Run a pod in the foreground: resolve the profile, create the pod directory (manifest.toml,
/// provenance.json, pod.json), stream the model's text to stdout and show tool calls on stderr.
///
/// Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed) stops the pod and its children
/// cleanly (recorded as `run_interrupted` with a `shutdown` action whose origin is the signal;
/// children that do not end within `limits.shutdown_grace_ms` are killed) and exits 130; so does
/// `pods stop POD` from another terminal (origin `cli`). A provider failure exits 1 and names the error class and
/// the trace sidecar. Try it offline: `pods run -p demo "look around"`.
#[derive(Debug, Args)]
#[command(after_help = RUN_HELP)]
pub struct RunArgs {
    /// Profile to run (see `pods profile list`).
    #[arg(short = 'p', long, value_name = "PROFILE", default_value = "default")]
    pub profile: String,
    /// Override one manifest key, e.g. `--set session.record_event_trace=true` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// A name for the pod (default: PROFILE-<id tail>); `pods ls` shows it and other commands
    /// accept it in place of the id. Names need not be unique: a name stands for the newest pod
    /// that has it.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The model for this run: sets model.model over every other layer (provenance
    /// `command_line` in provenance.json).
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Write the run as JSON Lines events on stdout instead of text (docs/RUN-JSON.md).
    #[arg(long)]
    pub json: bool,
    /// Decide the tool calls `[permissions]` says to ask about without a prompt, for this pod
    /// and the children below it [default: ask at the terminal; without one, deny].
    #[arg(long, value_enum, value_name = "WHICH")]
    pub approve: Option<ApproveArg>,
    /// What to ask the pod; `-` reads it from stdin, as does leaving it out when stdin is not a
    /// terminal (`echo task | pods run -p demo`).
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
}

const RUN_HELP: &str = "\
The pod directory (pod.json, manifest.toml, provenance.json, sessions/) is created under --home.
The model's text streams to stdout; the pod id, tool calls, retries and errors go to stderr.
With --json, stdout carries only JSON Lines events (pod_started … run_ended, whose exit_code is
the process's; see docs/RUN-JSON.md) and stderr keeps the messages for people.

The prompt is the argument, or stdin with `-` or when no argument is given and stdin is not a
terminal. An empty or whitespace-only prompt is refused (exit 2).

Tool calls: `[permissions]` allows, denies or asks per side-effect class and tool (defaults:
read_only, local_write and spawn allow; process, network and unknown ask). An ask is put to you on
this terminal (allow once, allow for this pod, deny), also for the children below this pod; with
--approve, or without a terminal, nobody is asked: --approve decides, or the call is denied and the
model is told why. Every decision is a `tool_decision` entry in the log (`pods log`).

At the end, stderr shows the run's token usage, and any stream events the provider adapter could
not map (counted in the session log; their contents only in a trace).

Exit codes: 0 the run completed with a clean finish (the model ended its turn); 1 it failed (the
provider error class and the trace sidecar are named) or its answer is incomplete: cut at the
output-token limit, withheld by a content filter, refused, or stopped for another reason the
provider gave (recorded as `run_completed` with that `stop_reason`; stderr names it); 2 usage or
configuration (e.g. a missing API key variable); 130 interrupted (Ctrl-C).

Examples:
  pods run -p demo \"look around\"         offline, no network, no API key
  echo \"look around\" | pods run -p demo --json
  pods run -p coder -m gpt-5-mini \"fix the tests\"
  pods run -p coder --set session.record_event_trace=true \"fix the tests\"
  pods trace <pod> --errors                what led to a failed request";

pub fn run(global: &GlobalArgs, args: RunArgs) -> CmdResult {
    let prompt = match args.prompt.as_deref() {
        Some("-") => read_stdin_prompt()?,
        Some(text) => text.to_owned(),
        None if std::io::stdin().is_terminal() => {
            return Err(Failure::usage("no prompt given").with_hint(
                "give it as an argument (`pods run -p demo \"look around\"`), or pipe it on stdin",
            ));
        }
        None => read_stdin_prompt()?,
    };
    check_prompt(&prompt)?;
    let home = PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let cwd = current_dir()?;
    let catalog = Catalog::discover(&Discovery {
        cwd: cwd.clone(),
        user_config_dir: Discovery::user_config_dir_from_env(),
        profile_dirs: global.profile_dirs.clone(),
    })
    .map_err(profile_failure)?;
    let overrides = Overrides {
        sets: args.sets.clone(),
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("PODS_"))
            .collect(),
        model: args.model.clone(),
    };
    let resolved = catalog
        .resolve(&args.profile, &overrides)
        .map_err(profile_failure)?;
    let launcher = child_launcher(global)?;
    let presenter = Presenter::new(args.json);
    let children = ChildSetup {
        catalog,
        resolved: resolved.clone(),
        home: home.clone(),
        launcher,
        observer: presenter.observer(),
    };
    let launch = Launch {
        pod: PodSource::New {
            home,
            name: args.name,
            profile: args.profile,
        },
        resolved,
        work_dir: cwd,
        children: Some(children),
        for_parent: false,
        approver: approve::approver(args.approve),
        traceparent: trace_context::traceparent_from_env(),
    };
    let runtime = runtime()?;
    let result = runtime.block_on(foreground(launch, prompt, &presenter));
    finish_runtime(runtime);
    result
}

/// Drop the async runtime without waiting for blocking work that may never end (a read or a
/// write stuck on a pipe, a file system that does not answer): everything the command records
/// is written before `block_on` returns.
fn finish_runtime(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_background();
}

const MANIFEST_EDITED_HINT: &str = "restore the file, or start a new pod with `pods run` to run with other settings (an edit takes effect only through `reload` while the pod runs)";

/// The working directory recorded in `pod.json`. A pod written before it was recorded gets
/// this process's directory, recorded now (and said so), so every later run uses the same one.
fn pod_work_dir(dir: &PodDir, recorded: Option<&std::path::Path>) -> Result<PathBuf, Failure> {
    let work_dir = match recorded {
        Some(path) => path.to_owned(),
        None => {
            let cwd = current_dir()?;
            dir.update_info(|info| info.work_dir = Some(cwd.clone()))
                .map_err(Failure::run_failed)?;
            out::stderr(&format!(
                "pod {} did not record its working directory; it is {} from now on\n",
                dir.id(),
                cwd.display()
            ));
            cwd
        }
    };
    if !work_dir.is_dir() {
        return Err(Failure::usage(format!(
            "the working directory of pod {} ({}) is not a directory any more",
            dir.id(),
            work_dir.display()
        ))
        .with_hint("restore it, or start a new pod with `pods run`"));
    }
    Ok(work_dir)
}

fn current_dir() -> Result<PathBuf, Failure> {
    std::env::current_dir()
        .map_err(|e| Failure::usage(format!("cannot read the working directory: {e}")))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::run_failed(format!("cannot start the async runtime: {e}")))
}

fn profile_failure(error: pod_profile::ProfileError) -> Failure {
    let hint = error.hint();
    let failure = Failure::usage(error);
    match hint {
        Some(hint) => failure.with_hint(hint),
        None => failure,
    }
}

/// What an existing pod needs for children, when its manifest allows any: the profiles as seen
/// from its working directory, and this executable to launch them.
fn existing_pod_children(
    global: &GlobalArgs,
    work_dir: &std::path::Path,
    resolved: &ResolvedManifest,
    home: PodHome,
    observer: Arc<dyn RunObserver>,
) -> Result<Option<ChildSetup>, Failure> {
    if resolved.manifest.spawn.allowed_profiles.is_empty() {
        return Ok(None);
    }
    let catalog = Catalog::discover(&Discovery {
        cwd: work_dir.to_owned(),
        user_config_dir: Discovery::user_config_dir_from_env(),
        profile_dirs: global.profile_dirs.clone(),
    })
    .map_err(profile_failure)?;
    Ok(Some(ChildSetup {
        catalog,
        resolved: resolved.clone(),
        home,
        launcher: child_launcher(global)?,
        observer,
    }))
}

/// Launch the pod, run one prompt in it in the foreground, and turn the outcome into an exit
/// code.
async fn foreground(launch: Launch, prompt: String, presenter: &Presenter) -> CmdResult {
    let resumed = matches!(launch.pod, PodSource::Existing(_));
    let key_var = pod_core::api_key_var(&launch.resolved.manifest);
    // The pod is hosted: its control socket serves `pods stop` and the like while the run goes
    // on, SIGINT/SIGTERM/SIGHUP stop it and its children (origin `signal`), and children it spawned
    // are stopped when it ends.
    let launched = launch
        .start()
        .await
        .map_err(|error| launch_failure(error, key_var))?;
    let info = launched.info().clone();
    let pod_id = info.id.clone();
    out::stderr(&format!(
        "pod {} ({pod_id})\n",
        pod_core::printable(&info.name)
    ));
    presenter.pod_started(RunEvent::PodStarted {
        format: run_events::RUN_EVENTS_FORMAT.to_owned(),
        version: run_events::RUN_EVENTS_VERSION,
        pod_id: pod_id.clone(),
        name: info.name,
        profile: info.profile,
        parent_id: info.parent_id,
        resumed,
    });
    let log_path = launched.log_path().to_owned();
    let input = RunInput {
        text: prompt,
        trigger: RunTrigger::Cli,
        request_id: Some(pod_core::new_id()),
    };
    let mut ended = RunEnd::default();
    let result = conclude(
        launched.run_once(input, presenter.observer()).await,
        presenter,
        &pod_id,
        &log_path,
        &mut ended,
    );
    presenter.ended(ended, &result);
    result
}

/// A launch that failed: a model that cannot be used as configured is a usage error (naming
/// `key_var`, the API key variable, when the key is missing), anything later a failed run
/// (naming a pod directory left behind).
fn launch_failure(error: LaunchError, key_var: Option<String>) -> Failure {
    match error {
        LaunchError::Connect(error) => match &error {
            CoreError::Config { message, .. } if message.starts_with("no API key") => {
                let var = key_var.unwrap_or_default();
                Failure::usage(error).with_hint(format!(
                    "export {var}=… or set model.api_key_env to the variable holding your key; `pods run -p demo …` works without one"
                ))
            }
            _ => Failure::usage(error),
        },
        LaunchError::Start { error, leftover } => {
            let failure = Failure::run_failed(error);
            match leftover {
                None => failure,
                Some(leftover) => failure.with_hint(format!(
                    "the pod directory {} could not be removed ({}); remove it by hand",
                    leftover.dir.display(),
                    leftover.error
                )),
            }
        }
    }
}

/// The launcher for this process's children: the same `pods` executable (or `PODS_CHILD_EXE`),
/// handed the same `--profile-dir`s.
fn child_launcher(global: &GlobalArgs) -> Result<pod_core::children::Launcher, Failure> {
    let launcher = pod_core::children::Launcher::from_env().map_err(Failure::run_failed)?;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for dir in &global.profile_dirs {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        args.push("--profile-dir".into());
        args.push(dir.into_os_string());
    }
    Ok(launcher.with_global_args(args))
}
