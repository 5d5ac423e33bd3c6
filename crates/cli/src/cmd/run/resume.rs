//! `pods resume`: a new run of an existing pod, in a new session segment.

use clap::Args;

use pod_core::launch::{Launch, PodSource};
use pod_core::{PodDir, PodHome};

use super::prompt::{check_prompt, read_stdin_prompt};
use super::{
    MANIFEST_EDITED_HINT, Presenter, current_dir, existing_pod_children, finish_runtime,
    foreground, pod_work_dir, profile_failure, runtime,
};
use crate::failure::{CmdResult, Failure, out};
use crate::global::GlobalArgs;

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
    /// Decide the tool calls `[permissions]` says to ask about without a prompt (see `pods run
    /// --help`) [default: ask at the terminal; without one, deny].
    #[arg(long, value_enum, value_name = "WHICH")]
    pub approve: Option<super::ApproveArg>,
}

const CONTINUE_PROMPT: &str = "Continue where you left off.";

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
    let children = existing_pod_children(global, &work_dir, &resolved, home, presenter.observer())?;
    let launch = Launch {
        pod: PodSource::Existing(dir),
        resolved,
        work_dir,
        children,
        for_parent: false,
        approver: super::approve::approver(args.approve),
        traceparent: super::trace_context::traceparent_from_env(),
    };
    let runtime = runtime()?;
    let result = runtime.block_on(foreground(launch, prompt, &presenter));
    finish_runtime(runtime);
    result
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
