//! `pods run` and `pods resume`: run a pod in the foreground. (`pods serve`, below, runs a child
//! pod for its parent.)

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use pod_core::host::HostAbort;
use pod_core::record::{Origin, RunTrigger, SideEffectClass, ToolOutcome};
use pod_core::run_events::{self, RunEvent};
use pod_core::{
    CoreError, ModelConnection, Pod, PodDir, PodHome, PodOptions, RunControl, RunInput,
    RunObserver, RunOutcome,
};
use pod_profile::{Catalog, Discovery, Overrides, ResolvedManifest};
use pod_provider::ProviderError;

use crate::failure::{CmdResult, Exit, Failure, out};
use crate::global::GlobalArgs;

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
    /// What to ask the pod; `-` reads it from stdin, as does leaving it out when stdin is not a
    /// terminal (`echo task | pods run -p demo`).
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
}

/// Start a new run in an existing pod, in a new session segment, with the manifest stored in
/// its directory. The conversation so far (from the pod's session logs) is sent along.
///
/// It is the same pod: it runs in the working directory recorded when it was created (its
/// scope resolves there, wherever this command runs), offers the same tools (child tools
/// included), and refuses (exit 2) a manifest.toml edited since the pod last ran.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`). With --last, leave it out: the only
    /// argument is then the prompt.
    #[arg(value_name = "POD")]
    pub pod: Option<String>,
    /// What to ask next; `-` reads it from stdin [default: ask the pod to continue where it
    /// stopped].
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
    /// Resume the most recent top-level pod created from the current directory.
    #[arg(long)]
    pub last: bool,
    /// Write the run as JSON Lines events on stdout instead of text (docs/RUN-JSON.md).
    #[arg(long)]
    pub json: bool,
}

const RUN_HELP: &str = "\
The pod directory (pod.json, manifest.toml, provenance.json, sessions/) is created under --home.
The model's text streams to stdout; the pod id, tool calls, retries and errors go to stderr.
With --json, stdout carries only JSON Lines events (pod_started … run_ended, whose exit_code is
the process's; see docs/RUN-JSON.md) and stderr keeps the messages for people.

The prompt is the argument, or stdin with `-` or when no argument is given and stdin is not a
terminal. An empty or whitespace-only prompt is refused (exit 2).

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

const CONTINUE_PROMPT: &str = "Continue where you left off.";

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
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let model = connect(&resolved, &cwd).await?;
        let dir = home
            .create_pod(args.name.as_deref(), &args.profile, None)
            .map_err(Failure::run_failed)?;
        if let Err(error) = pod_profile::write_manifest_files(dir.path(), &resolved) {
            return Err(roll_back(dir.path(), Failure::run_failed(error)));
        }
        let children = pod_core::host::ChildSetup {
            catalog,
            resolved: resolved.clone(),
            home,
            launcher,
            observer: presenter.observer(),
        };
        let children = Some(children);
        let launch = Launch {
            dir,
            resolved,
            model,
            cwd,
            children,
            new_pod: NewPod::Created,
        };
        foreground(launch, prompt, &presenter).await
    });
    finish_runtime(runtime);
    result
}

/// Whether `foreground` runs a pod this command just created (removed again when it cannot
/// start) or an existing one (`pods resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewPod {
    Created,
    Existing,
}

/// Remove the directory of a pod this command created but could not start, so no half-made pod
/// (state `created` forever) is left in the home: nothing ran in it, and the error says why.
fn roll_back(dir: &std::path::Path, failure: Failure) -> Failure {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => failure,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => failure,
        Err(error) => failure.with_hint(format!(
            "the pod directory {} could not be removed ({error}); remove it by hand",
            dir.display()
        )),
    }
}

/// Drop the async runtime without waiting for blocking work that may never end (a read or a
/// write stuck on a pipe, a file system that does not answer): everything the command records
/// is written before `block_on` returns.
fn finish_runtime(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_background();
}

pub fn resume(global: &GlobalArgs, args: ResumeArgs) -> CmdResult {
    // With --last the one positional argument is the prompt.
    let (pod, prompt) = match (args.last, args.pod, args.prompt) {
        (true, _, Some(_)) => {
            return Err(Failure::usage("--last takes the place of POD")
                .with_hint("give only the prompt: `pods resume --last \"what next\"`"));
        }
        (true, prompt, None) => (None, prompt),
        (false, Some(pod), prompt) => (Some(pod), prompt),
        (false, None, _) => {
            return Err(Failure::usage("no pod given")
                .with_hint("name the pod (`pods ls` lists them), or use --last"));
        }
    };
    let prompt = match prompt.as_deref() {
        Some("-") => Some(read_stdin_prompt()?),
        other => other.map(str::to_owned),
    };
    if let Some(prompt) = &prompt {
        check_prompt(prompt)?;
    }
    let home = PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = match &pod {
        Some(pod) => home
            .find(pod)
            .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?,
        None => last_pod_here(&home, &current_dir()?)?,
    };
    let info = dir.read_info().map_err(Failure::run_failed)?;
    if let Some(pid) = info
        .pid
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        return Err(
            Failure::usage(format!("pod {} is still running (pid {pid})", dir.id()))
                .with_hint("wait for it, or stop it with `pods stop`"),
        );
    }
    let resolved = pod_profile::read_manifest_files(dir.path()).map_err(profile_failure)?;
    pod_core::vouch_manifest(&dir, &resolved.manifest)
        .map_err(|e| Failure::usage(e).with_hint(MANIFEST_EDITED_HINT))?;
    let work_dir = pod_work_dir(&dir, info.work_dir.as_deref())?;
    let prompt = prompt.unwrap_or_else(|| CONTINUE_PROMPT.to_owned());
    let presenter = Presenter::new(args.json);
    // The same pod: its scope resolves against its own working directory, and it gets its
    // child tools back when its manifest allows children.
    let children = if resolved.manifest.spawn.allowed_profiles.is_empty() {
        None
    } else {
        let catalog = Catalog::discover(&Discovery {
            cwd: work_dir.clone(),
            user_config_dir: Discovery::user_config_dir_from_env(),
            profile_dirs: global.profile_dirs.clone(),
        })
        .map_err(profile_failure)?;
        Some(pod_core::host::ChildSetup {
            catalog,
            resolved: resolved.clone(),
            home,
            launcher: child_launcher(global)?,
            observer: presenter.observer(),
        })
    };
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let model = connect(&resolved, &work_dir).await?;
        let launch = Launch {
            dir,
            resolved,
            model,
            cwd: work_dir,
            children,
            new_pod: NewPod::Existing,
        };
        foreground(launch, prompt, &presenter).await
    });
    finish_runtime(runtime);
    result
}

/// The most prompt text read from stdin.
const STDIN_PROMPT_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The prompt piped on stdin, all of it.
fn read_stdin_prompt() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(STDIN_PROMPT_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::usage(format!("cannot read the prompt from stdin: {e}")))?;
    if bytes.len() as u64 > STDIN_PROMPT_MAX_BYTES {
        return Err(Failure::usage(format!(
            "the prompt on stdin is longer than {} MiB",
            STDIN_PROMPT_MAX_BYTES / (1024 * 1024)
        ))
        .with_hint(
            "put the material in a file in the working directory and ask the pod to read it",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| Failure::usage(format!("the prompt on stdin is not UTF-8 text: {e}")))
}

/// Refuse a prompt with nothing to ask.
fn check_prompt(prompt: &str) -> Result<(), Failure> {
    if prompt.trim().is_empty() {
        return Err(Failure::usage("the prompt is empty")
            .with_hint("say what the pod should do, as an argument or on stdin"));
    }
    Ok(())
}

/// The most recent top-level pod whose recorded working directory is `cwd`.
fn last_pod_here(home: &PodHome, cwd: &std::path::Path) -> Result<PodDir, Failure> {
    let mut best: Option<((String, String), PodDir)> = None;
    let mut unreadable = 0;
    for dir in home.pod_dirs().map_err(Failure::usage)? {
        let Ok(info) = dir.read_info() else {
            unreadable += 1;
            continue;
        };
        if info.parent_id.is_some() || info.work_dir.as_deref() != Some(cwd) {
            continue;
        }
        // Ids are time-ordered (UUIDv7): they break a tie of creation times.
        let key = (info.created, info.id);
        if best.as_ref().is_none_or(|(best, _)| key > *best) {
            best = Some((key, dir));
        }
    }
    if unreadable > 0 {
        out::stderr(&format!(
            "note: {unreadable} pod(s) whose pod.json cannot be read were not considered\n"
        ));
    }
    best.map(|(_, dir)| dir).ok_or_else(|| {
        Failure::usage(format!("no pod was created from {}", cwd.display())).with_hint(
            "`pods ls` lists the pods in this home; `pods resume POD` resumes one by id or name",
        )
    })
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

async fn connect(
    resolved: &ResolvedManifest,
    cwd: &std::path::Path,
) -> Result<ModelConnection, Failure> {
    ModelConnection::connect(&resolved.manifest, cwd)
        .await
        .map_err(|error| match &error {
            CoreError::Config { message, .. } if message.starts_with("no API key") => {
                let var = pod_core::api_key_var(&resolved.manifest).unwrap_or_default();
                Failure::usage(error).with_hint(format!(
                    "export {var}=… or set model.api_key_env to the variable holding your key; `pods run -p demo …` works without one"
                ))
            }
            _ => Failure::usage(error),
        })
}

/// A pod ready to run in the foreground: its directory and manifest, its model, the directory
/// it works in, and what it needs for children.
struct Launch {
    dir: PodDir,
    resolved: ResolvedManifest,
    model: ModelConnection,
    cwd: PathBuf,
    children: Option<pod_core::host::ChildSetup>,
    new_pod: NewPod,
}

/// Run one prompt in `dir` in the foreground and turn the outcome into an exit code.
async fn foreground(launch: Launch, prompt: String, presenter: &Presenter) -> CmdResult {
    let Launch {
        dir,
        resolved,
        model,
        cwd,
        children,
        new_pod,
    } = launch;
    pod_core::lifecycle::start_process_clock();
    let control = RunControl::new();
    let pod_id = dir.id().to_owned();
    let dir_path = dir.path().to_owned();
    let not_started = |failure: Failure| match new_pod {
        NewPod::Created => roll_back(&dir_path, failure),
        NewPod::Existing => failure,
    };
    let mut pod = match Pod::start(
        dir,
        resolved.manifest,
        PodOptions {
            work_dir: cwd.clone(),
            model,
            control: control.clone(),
        },
    ) {
        Ok(pod) => pod,
        Err(error) => return Err(not_started(Failure::run_failed(error))),
    };

    // The pod is hosted: its control socket serves `pods stop` and the like while the run goes
    // on, SIGINT/SIGTERM/SIGHUP stop it and its children (origin `signal`), and children it spawned
    // are stopped when it ends.
    let children = children.and_then(|setup| pod_core::host::attach_children(&mut pod, setup));
    let server = match pod_core::control::ControlServer::bind(pod.dir().path()).await {
        Ok(server) => server,
        Err(error) => {
            if let Err(close) = pod.close("failed").await {
                tracing::warn!(error = %crate::failure::error_text(&close), "cannot close the segment");
            }
            return Err(not_started(Failure::run_failed(error)));
        }
    };
    let info = pod.dir().read_info().map_err(Failure::run_failed)?;
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
        resumed: new_pod == NewPod::Existing,
    });
    let log_path = pod.log().path().to_owned();
    let host = pod_core::host::Host::new(
        pod,
        server,
        children,
        pod_core::host::HostOptions {
            watch_parent: false,
            handle_signals: true,
            work_dir: Some(cwd),
        },
    );
    let input = RunInput {
        text: prompt,
        trigger: RunTrigger::Cli,
        request_id: Some(pod_core::new_id()),
    };
    let mut ended = RunEnd::default();
    let result = conclude(
        host.run_once(input, presenter.observer()).await,
        presenter,
        &pod_id,
        &log_path,
        &mut ended,
    );
    presenter.ended(ended, &result);
    result
}

/// What `run_ended` says, gathered while the outcome becomes an exit code.
struct RunEnd {
    run_id: Option<String>,
    outcome: &'static str,
    stop_reason: Option<String>,
    truncated: bool,
    turns: Option<u32>,
    error: Option<run_events::RunEventError>,
    usage: Option<pod_core::UsageTotals>,
}

impl Default for RunEnd {
    fn default() -> Self {
        RunEnd {
            run_id: None,
            outcome: "failed",
            stop_reason: None,
            truncated: false,
            turns: None,
            error: None,
            usage: None,
        }
    }
}

/// Present how hosting the run ended and turn it into an exit code; fill `ended` on the way.
fn conclude(
    end: Result<pod_core::host::HostEnd, CoreError>,
    presenter: &Presenter,
    pod_id: &str,
    log_path: &std::path::Path,
    ended: &mut RunEnd,
) -> CmdResult {
    let end = match end {
        Ok(end) => end,
        Err(error) => {
            presenter.finish();
            ended.error = Some(run_events::RunEventError {
                class: "pod_failed".into(),
                code: None,
                message: crate::failure::error_text(&error),
            });
            return Err(Failure::run_failed(error));
        }
    };
    match end.abort {
        Some(HostAbort::Forced { action }) => {
            // The pod may be stuck writing to the terminal: write nothing more to stdout.
            presenter.abandon();
            ended.outcome = "interrupted";
            out::stderr(&format!(
                "stopped without waiting for the pod to end ({} while it was ending); what could be recorded is in {}\n",
                origin_text(&action.origin),
                log_path.display()
            ));
            return Ok(Exit::Interrupted);
        }
        Some(HostAbort::TaskFailed { detail }) => {
            presenter.finish();
            ended.error = Some(run_events::RunEventError {
                class: "pod_failed".into(),
                code: None,
                message: detail.clone(),
            });
            return Err(Failure::run_failed(PodFailed(detail)).with_hint(format!(
                "the run's record is in {}; `pods show {pod_id}` shows it",
                log_path.display()
            )));
        }
        None => presenter.finish(),
    }
    let Some(report) = end.first_run else {
        return Err(Failure::run_failed("the run did not take place"));
    };
    ended.run_id = Some(report.run_id.clone());
    ended.outcome = report.outcome.label();
    ended.usage = Some(report.requests.usage.clone());
    if let Some(problem) = &report.trace_problem {
        out::stderr(&format!("warning: trace sidecar: {problem}\n"));
    }
    report_requests(&report, pod_id);
    match report.outcome {
        RunOutcome::Completed {
            reason,
            turns,
            stop_reason,
            text,
        } => {
            ended.stop_reason = Some(stop_reason.name().to_owned());
            ended.truncated = stop_reason.is_truncated();
            ended.turns = Some(turns);
            if text.is_empty() {
                out::stderr(if presenter.saw_reasoning() {
                    "note: the answer is all reasoning and no text (the reasoning is in the session log)\n"
                } else {
                    "note: the answer has no text\n"
                });
            }
            if stop_reason.is_truncated() {
                let failure = Failure::run_failed(Truncated {
                    statement: stop_reason.statement(),
                    name: stop_reason.name(),
                    turns,
                });
                return Err(match stop_reason {
                    pod_provider::event::StopReason::MaxTokens => failure.with_hint(format!(
                        "raise model.max_output_tokens (e.g. `--set model.max_output_tokens=…`), or `pods resume {pod_id}` to ask for the rest"
                    )),
                    _ => failure.with_hint(format!(
                        "the run is recorded as completed with stop reason {}; `pods show {pod_id}` shows it",
                        stop_reason.name()
                    )),
                });
            }
            if reason == "max_turns" {
                out::stderr(&format!("run ended: {reason} after {turns} turn(s)\n"));
            }
            Ok(Exit::Success)
        }
        RunOutcome::Errored { error, .. } => {
            ended.error = Some(run_events::RunEventError {
                class: error.class.as_str().to_owned(),
                code: error.code.clone(),
                message: pod_trace::scrub::scrub(&error.message).into_owned(),
            });
            Err(run_error(pod_id, error, report.trace_path))
        }
        RunOutcome::Interrupted { action, .. } => {
            out::stderr(&format!(
                "run interrupted: {} ({}); recorded in {}\n",
                pod_core::lifecycle::interrupt_reason(action.kind),
                origin_text(&action.origin),
                report.log_path.display()
            ));
            Ok(Exit::Interrupted)
        }
    }
}

/// Token usage and unhandled stream events of the run, on stderr.
fn report_requests(report: &pod_core::RunReport, pod_id: &str) {
    if report.requests.usage.requests_recorded > 0 {
        out::stderr(&format!("usage: {}\n", report.requests.usage.describe()));
    }
    if !report.requests.unhandled.is_empty() {
        let names: Vec<String> = report
            .requests
            .unhandled
            .iter()
            .map(|(event, n)| format!("{} ×{n}", pod_core::printable(event)))
            .collect();
        let total: u64 = report.requests.unhandled.values().sum();
        match &report.trace_path {
            Some(trace) => out::stderr(&format!(
                "warning: {total} stream event(s) the provider adapter could not map: {}; they are in {}\n",
                names.join(", "),
                trace.display()
            )),
            None => out::stderr(&format!(
                "warning: {total} stream event(s) the provider adapter could not map: {}; only their counts were recorded (`pods show {pod_id}`); {}\n",
                names.join(", "),
                pod_core::summary::UNHANDLED_TRACE_HINT
            )),
        };
    }
}

/// A run that completed with an answer that is not a clean finish.
#[derive(Debug, thiserror::Error)]
#[error("the answer is incomplete: {statement} (stop reason {name}, after {turns} turn(s))")]
struct Truncated {
    statement: String,
    name: &'static str,
    turns: u32,
}

/// The signal name, or the origin's type (`cli`, `parent_pod`, …).
fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Signal { signal } => signal.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// The pod task failed (e.g. panicked); its record says how far the run got.
#[derive(Debug, thiserror::Error)]
#[error("the pod failed: {0}")]
struct PodFailed(String);

fn run_error(pod_id: &str, error: ProviderError, trace: Option<PathBuf>) -> Failure {
    let class = error.class;
    let failure = Failure::run_failed(RunFailed { class, error });
    match trace {
        Some(path) => failure.with_hint(format!(
            "the trace is in {}; `pods trace {pod_id} --errors` shows what led to the error",
            path.display()
        )),
        None => failure.with_hint(format!(
            "tracing was off; rerun with `--set session.record_event_trace=true` to record the stream (`pods show {pod_id}` shows the run)"
        )),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the run failed: provider error {class}")]
struct RunFailed {
    class: pod_provider::ErrorClass,
    #[source]
    error: ProviderError,
}

/// Streams text to stdout; spinner, tool calls and retries to stderr. Writes go through
/// [`out`], so a closed stdout or stderr never stops the run.
///
/// Text is gathered and written once per network read (when the stream says the read is
/// drained), not once per delta: it still appears as it arrives, at a write per read. Whatever
/// is gathered goes out before anything is written to stderr, so the two stay in order.
struct Terminal {
    /// Text not yet written to stdout.
    text: std::sync::Mutex<String>,
    waiting: Arc<AtomicBool>,
    spinner: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    wrote_text: AtomicBool,
    ends_with_newline: AtomicBool,
    saw_reasoning: AtomicBool,
}

impl Terminal {
    fn new() -> Terminal {
        Terminal {
            text: std::sync::Mutex::new(String::new()),
            waiting: Arc::new(AtomicBool::new(true)),
            spinner: std::sync::Mutex::new(None),
            wrote_text: AtomicBool::new(false),
            ends_with_newline: AtomicBool::new(true),
            saw_reasoning: AtomicBool::new(false),
        }
    }

    /// Show a spinner on a terminal's stderr until the model's first event.
    fn start_spinner(&self) {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let waiting = self.waiting.clone();
            std::thread::spawn(move || {
                let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                let mut i = 0;
                while waiting.load(Ordering::Relaxed) {
                    if !out::stderr(&format!(
                        "\r{} waiting for the model…",
                        frames[i % frames.len()]
                    )) {
                        return;
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(80));
                }
                out::stderr("\r\x1b[2K");
            })
        });
        if let Ok(mut slot) = self.spinner.lock() {
            *slot = spinner;
        }
    }

    fn stop_spinner(&self) {
        self.waiting.store(false, Ordering::Relaxed);
        if let Ok(mut spinner) = self.spinner.lock()
            && let Some(handle) = spinner.take()
        {
            let _ = handle.join();
        }
    }

    /// Whether any reasoning streamed during the run.
    fn saw_reasoning(&self) -> bool {
        self.saw_reasoning.load(Ordering::Relaxed)
    }

    /// Write the gathered text to stdout.
    fn flush_text(&self) {
        if let Ok(mut text) = self.text.lock()
            && !text.is_empty()
        {
            // A closed stdout (e.g. `| head`) must not stop the run; the log keeps the text.
            out::stdout(&pod_trace::scrub::scrub(&text));
            text.clear();
        }
    }

    /// End the streamed text with a newline.
    fn finish(&self) {
        self.stop_spinner();
        self.flush_text();
        if self.wrote_text.load(Ordering::Relaxed)
            && !self.ends_with_newline.load(Ordering::Relaxed)
        {
            out::stdout("\n");
        }
    }

    /// Stop presenting without waiting for anything (the spinner thread ends by itself).
    fn abandon(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    fn break_line(&self) {
        self.flush_text();
        if !self.ends_with_newline.swap(true, Ordering::Relaxed) {
            out::stdout("\n");
        }
    }
}

impl RunObserver for Terminal {
    fn on_first_event(&self) {
        self.stop_spinner();
    }

    fn on_text(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.stop_spinner();
        let gathered = match self.text.lock() {
            Ok(mut gathered) => {
                gathered.push_str(text);
                gathered.len()
            }
            Err(_) => 0,
        };
        self.wrote_text.store(true, Ordering::Relaxed);
        self.ends_with_newline
            .store(text.ends_with('\n'), Ordering::Relaxed);
        // A stream that never reports a drained read still writes in bounded pieces.
        if gathered >= TEXT_FLUSH_BYTES {
            self.flush_text();
        }
    }

    fn on_read_drained(&self) {
        self.flush_text();
    }

    fn on_turn_end(&self, _run_id: &str, _turn: u32) {
        self.flush_text();
    }

    fn on_reasoning(&self, text: &str) {
        if !text.is_empty() {
            self.saw_reasoning.store(true, Ordering::Relaxed);
        }
    }

    fn on_tool_call(
        &self,
        _call_id: &str,
        tool: &str,
        _side_effect: SideEffectClass,
        input: &Value,
    ) {
        self.stop_spinner();
        self.break_line();
        // The arguments as the model sent them: a key it echoes is not printed.
        let input = pod_trace::scrub::scrub(&input.to_string()).into_owned();
        out::stderr(&format!(
            "→ {} {}\n",
            pod_core::printable(tool),
            pod_core::printable(&bounded(&input, 200))
        ));
    }

    fn on_tool_result(
        &self,
        _call_id: &str,
        tool: &str,
        _side_effect: SideEffectClass,
        outcome: ToolOutcome,
        output: &str,
    ) {
        self.flush_text();
        let tool = pod_core::printable(tool);
        let lines = output.lines().count();
        if outcome == ToolOutcome::Ok {
            out::stderr(&format!(
                "← {tool}: ok ({} bytes, {lines} lines)\n",
                output.len()
            ));
        } else {
            let first = output.lines().next().unwrap_or("");
            let first = pod_trace::scrub::scrub(first);
            out::stderr(&format!(
                "← {tool}: error: {}\n",
                pod_core::printable(&bounded(&first, 500))
            ));
        }
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.flush_text();
        out::stderr(&format!(
            "attempt {attempt} failed ({}); retrying in {} ms\n",
            cause.class,
            delay.as_millis()
        ));
    }
}

/// How a foreground run is shown: text for people, or JSON Lines events for programs.
enum Presenter {
    Terminal(Arc<Terminal>),
    Json(Arc<JsonLines>),
}

impl Presenter {
    fn new(json: bool) -> Presenter {
        if json {
            Presenter::Json(Arc::new(JsonLines::default()))
        } else {
            Presenter::Terminal(Arc::new(Terminal::new()))
        }
    }

    fn observer(&self) -> Arc<dyn RunObserver> {
        match self {
            Presenter::Terminal(terminal) => terminal.clone(),
            Presenter::Json(json) => json.clone(),
        }
    }

    /// The pod is hosted and its run about to start.
    fn pod_started(&self, event: RunEvent) {
        match self {
            Presenter::Terminal(terminal) => terminal.start_spinner(),
            Presenter::Json(json) => json.emit(event),
        }
    }

    fn finish(&self) {
        match self {
            Presenter::Terminal(terminal) => terminal.finish(),
            Presenter::Json(json) => json.flush(),
        }
    }

    fn abandon(&self) {
        match self {
            Presenter::Terminal(terminal) => terminal.abandon(),
            Presenter::Json(json) => json.flush(),
        }
    }

    fn saw_reasoning(&self) -> bool {
        match self {
            Presenter::Terminal(terminal) => terminal.saw_reasoning(),
            Presenter::Json(json) => json.lock().saw_reasoning,
        }
    }

    /// The command is done with `result`: `run_ended`, the stream's last line.
    fn ended(&self, end: RunEnd, result: &CmdResult) {
        let Presenter::Json(json) = self else {
            return;
        };
        let exit = match result {
            Ok(exit) => *exit,
            Err(failure) => failure.exit,
        };
        json.emit(RunEvent::RunEnded {
            run_id: end.run_id,
            outcome: end.outcome.to_owned(),
            stop_reason: end.stop_reason,
            truncated: end.truncated,
            turns: end.turns,
            error: end.error,
            usage: end.usage,
            exit_code: exit as i32,
        });
        json.lock().ended = true;
    }
}

/// `pods run --json`: every event a line on stdout (docs/RUN-JSON.md). Text and reasoning
/// deltas are buffered and written as one line per batch: whatever arrived until the provider
/// client waits on the network, a tool call starts, or the model request ends.
#[derive(Default)]
struct JsonLines {
    state: std::sync::Mutex<JsonState>,
}

#[derive(Default)]
struct JsonState {
    /// Deltas not written yet: reasoning (`true`) or text (`false`), and their text.
    pending: Option<(bool, String)>,
    saw_reasoning: bool,
    /// `run_ended` is written: the stream is complete (the session log has anything later).
    ended: bool,
}

impl JsonLines {
    fn lock(&self) -> std::sync::MutexGuard<'_, JsonState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write `event` after any pending deltas. Writing under the lock keeps the lines of
    /// concurrent callers (child supervision, the run) whole and in order.
    fn emit(&self, event: RunEvent) {
        let mut state = self.lock();
        Self::flush_locked(&mut state);
        Self::write(&state, &event);
    }

    fn flush(&self) {
        Self::flush_locked(&mut self.lock());
    }

    fn flush_locked(state: &mut JsonState) {
        if let Some((reasoning, text)) = state.pending.take() {
            // Scrubbed per batch, so a key split across deltas is still caught.
            let text = pod_trace::scrub::scrub(&text).into_owned();
            let event = if reasoning {
                RunEvent::Reasoning { text }
            } else {
                RunEvent::Text { text }
            };
            Self::write(state, &event);
        }
    }

    fn write(state: &JsonState, event: &RunEvent) {
        if state.ended {
            return;
        }
        match serde_json::to_string(event) {
            Ok(mut line) => {
                line.push('\n');
                out::stdout(&line);
            }
            Err(error) => {
                out::stderr(&format!(
                    "error: cannot write a {} event as JSON: {error}\n",
                    event.kind()
                ));
            }
        }
    }

    fn delta(&self, reasoning: bool, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.saw_reasoning |= reasoning;
        if state.pending.as_ref().is_some_and(|(r, _)| *r != reasoning) {
            Self::flush_locked(&mut state);
        }
        state
            .pending
            .get_or_insert_with(|| (reasoning, String::new()))
            .1
            .push_str(text);
    }
}

impl RunObserver for JsonLines {
    fn on_run_started(&self, run_id: &str) {
        self.emit(RunEvent::RunStarted {
            run_id: run_id.to_owned(),
        });
    }

    fn on_text(&self, text: &str) {
        self.delta(false, text);
    }

    fn on_reasoning(&self, text: &str) {
        self.delta(true, text);
    }

    fn on_read_drained(&self) {
        self.flush();
    }

    fn on_turn_end(&self, _run_id: &str, _turn: u32) {
        self.flush();
    }

    fn on_request_finished(&self, turn: u32, usage: Option<&pod_provider::event::Usage>) {
        self.emit(RunEvent::Usage {
            turn,
            input_tokens: usage.and_then(|u| u.input_tokens),
            output_tokens: usage.and_then(|u| u.output_tokens),
            cached_input_tokens: usage.and_then(|u| u.cached_input_tokens),
            reasoning_tokens: usage.and_then(|u| u.reasoning_tokens),
        });
    }

    fn on_tool_call(&self, call_id: &str, tool: &str, side_effect: SideEffectClass, input: &Value) {
        // The arguments as the model sent them, minus any key it echoes.
        let text = pod_trace::scrub::scrub(&input.to_string()).into_owned();
        let input = serde_json::from_str(&text).unwrap_or(Value::String(text));
        self.emit(RunEvent::ToolCallStarted {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            side_effect,
            input,
        });
    }

    fn on_tool_result(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        outcome: ToolOutcome,
        output: &str,
    ) {
        let (preview, cut) = run_events::preview(output, run_events::TOOL_PREVIEW_MAX_BYTES);
        self.emit(RunEvent::ToolCallFinished {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            side_effect,
            outcome,
            output_bytes: output.len() as u64,
            preview: pod_trace::scrub::scrub(&preview).into_owned(),
            preview_truncated: cut,
        });
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.emit(RunEvent::RetryScheduled {
            attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            class: cause.class.as_str().to_owned(),
            message: pod_trace::scrub::scrub(&cause.message).into_owned(),
        });
    }

    fn on_child_spawned(&self, child: &pod_core::record::ChildSpawned) {
        self.emit(RunEvent::ChildSpawned {
            call_id: child.call_id.clone(),
            child_pod_id: child.child_pod_id.clone(),
            profile: child.profile.clone(),
        });
    }

    fn on_child_exited(&self, child: &pod_core::record::ChildExited) {
        self.emit(RunEvent::ChildExited {
            child_pod_id: child.child_pod_id.clone(),
            exit_code: child.exit_code,
            signal: child.signal,
            expected: child.expected,
        });
    }
}
/// The most text [`Terminal`] gathers before writing it out, drained read or not: more than one
/// network read decodes to (the client reads at most a few hundred KB at a time).
const TEXT_FLUSH_BYTES: usize = 1 << 20;

/// `text` cut to at most `max` bytes (on a character boundary), with `…` when cut.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Serve one pod from a directory its parent wrote (manifest.toml, provenance.json, pod.json):
/// bind its control socket, print a readiness line on stdout, run the tasks it is sent, and stop
/// when told to, on SIGTERM/SIGINT/SIGHUP, or when the parent closes this process's stdin.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The pod directory to serve.
    #[arg(long, value_name = "DIR")]
    pub pod_dir: PathBuf,
}

pub fn serve(global: &GlobalArgs, args: ServeArgs) -> CmdResult {
    pod_core::lifecycle::start_process_clock();
    let dir = PodDir::open(&args.pod_dir);
    let info = dir.read_info().map_err(Failure::usage)?;
    let resolved = pod_profile::read_manifest_files(dir.path()).map_err(profile_failure)?;
    pod_core::vouch_manifest(&dir, &resolved.manifest)
        .map_err(|e| Failure::usage(e).with_hint(MANIFEST_EDITED_HINT))?;
    let cwd = pod_work_dir(&dir, info.work_dir.as_deref())?;
    // The pod dir is `<home>/pods/<id>`; children go next to it.
    let home = args
        .pod_dir
        .parent()
        .and_then(std::path::Path::parent)
        .map(PodHome::at)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{} is not inside a pods home",
                args.pod_dir.display()
            ))
        })?;
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let model = connect(&resolved, &cwd).await?;
        let mut pod = Pod::start(
            dir.clone(),
            resolved.manifest.clone(),
            PodOptions {
                work_dir: cwd.clone(),
                model,
                control: RunControl::new(),
            },
        )
        .map_err(Failure::run_failed)?;
        let children = if resolved.manifest.spawn.allowed_profiles.is_empty() {
            None
        } else {
            let catalog = Catalog::discover(&Discovery {
                cwd: cwd.clone(),
                user_config_dir: Discovery::user_config_dir_from_env(),
                profile_dirs: global.profile_dirs.clone(),
            })
            .map_err(profile_failure)?;
            let launcher = child_launcher(global)?;
            let setup = pod_core::host::ChildSetup {
                catalog,
                resolved: resolved.clone(),
                home,
                launcher,
                // A served pod's parent hears of its children through the control socket.
                observer: Arc::new(pod_core::Quiet),
            };
            pod_core::host::attach_children(&mut pod, setup)
        };
        let server = match pod_core::control::ControlServer::bind(dir.path()).await {
            Ok(server) => server,
            Err(error) => {
                let _ = pod.close("failed").await;
                return Err(Failure::run_failed(error));
            }
        };
        let ready = pod_core::supervisor::ReadyLine::render(&info.id);
        {
            let mut stdout = std::io::stdout().lock();
            let written = stdout
                .write_all(ready.as_bytes())
                .and_then(|()| stdout.flush());
            if let Err(error) = written {
                return Err(Failure::run_failed(format!(
                    "cannot report readiness on stdout: {error}"
                )));
            }
        }
        let host = pod_core::host::Host::new(
            pod,
            server,
            children,
            pod_core::host::HostOptions {
                watch_parent: true,
                handle_signals: true,
                work_dir: Some(cwd.clone()),
            },
        );
        let end = host.serve().await.map_err(Failure::run_failed)?;
        tracing::debug!(action = ?end.action.as_ref().map(|a| a.kind), "pod served");
        match end.abort {
            Some(HostAbort::TaskFailed { detail }) => Err(Failure::run_failed(PodFailed(detail))),
            Some(HostAbort::Forced { .. }) => Ok(Exit::Interrupted),
            None => Ok(Exit::Success),
        }
    });
    finish_runtime(runtime);
    result
}

/// The launcher for this process's children: the same `pods` executable (or `PODS_CHILD_EXE`),
/// handed the same `--profile-dir`s.
pub(crate) fn child_launcher(
    global: &GlobalArgs,
) -> Result<pod_core::supervisor::Launcher, Failure> {
    let launcher = pod_core::supervisor::Launcher::from_env().map_err(Failure::run_failed)?;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for dir in &global.profile_dirs {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        args.push("--profile-dir".into());
        args.push(dir.into_os_string());
    }
    Ok(launcher.with_global_args(args))
}
