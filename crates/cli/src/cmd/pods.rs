use std::io::Write;

use crate::failure::{CmdResult, Exit, Failure, error_text, out};
use crate::global::GlobalArgs;
use clap::Args;

/// List the pods in this home as a tree: children indented under their parent, each with id,
/// name, profile, state and the outcome of its last run. A pod whose process is gone while its
/// `pod.json` says running shows as `crashed`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print one JSON array (each pod with `parent_id`, `state`, `last_run`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Show one pod: identity, manifest summary, session segments (with log problems such as a torn
/// last line), and every run with its outcome.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Stop a running pod: its active run ends with `run_interrupted` recording this command as the
/// origin (with a fresh request id), then the pod process exits. With `--tree` the pod's
/// descendants are stopped too, each linked to this one action.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// Also stop every descendant of the pod (one `stop_tree` action, cascaded).
    #[arg(long)]
    pub tree: bool,
    /// Free text recorded with the stop action.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Seconds to wait for the pod to answer, then for its process to exit after it accepted
    /// the stop.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
    /// Print the recorded action as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn ls(global: &GlobalArgs, args: LsArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let mut summaries = Vec::new();
    for dir in home.pod_dirs().map_err(Failure::run_failed)? {
        match pod_core::summarize(&dir) {
            Ok(summary) => summaries.push(summary),
            Err(error) => {
                out::stderr(&format!(
                    "warning: skipping {}: {}\n",
                    dir.path().display(),
                    error_text(&error)
                ));
            }
        }
    }
    if args.json {
        let rows: Vec<serde_json::Value> = summaries
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.info.id,
                    "name": s.info.name,
                    "profile": s.info.profile,
                    "parent_id": s.info.parent_id,
                    "state": s.shown_state(),
                    "pid": s.info.pid,
                    "created": s.info.created,
                    "dir": s.dir,
                    "last_run": s.last_run(),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(rows));
        return Ok(Exit::Success);
    }
    if summaries.is_empty() {
        out::stderr(&format!("no pods in {}\n", home.root().display()));
        return Ok(Exit::Success);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<40} {:<24} {:<10} {:<10} LAST RUN",
        "ID", "NAME", "PROFILE", "STATE"
    );
    let ids: Vec<&str> = summaries.iter().map(|s| s.info.id.as_str()).collect();
    // Roots: no parent, or a parent that is not in this home.
    let roots = summaries.iter().filter(|s| {
        s.info
            .parent_id
            .as_deref()
            .is_none_or(|p| !ids.contains(&p))
    });
    for root in roots {
        print_tree(&mut out, &summaries, root, 0);
    }
    Ok(Exit::Success)
}

fn print_tree(
    out: &mut impl Write,
    all: &[pod_core::PodSummary],
    pod: &pod_core::PodSummary,
    depth: usize,
) {
    let last = pod.last_run().map_or_else(
        || "-".to_owned(),
        |run| match (&run.error_class, &run.reason) {
            (Some(class), _) => format!("{} ({class})", run.outcome),
            (None, Some(reason)) if run.outcome != "completed" || reason != "end_turn" => {
                format!("{} ({reason})", run.outcome)
            }
            _ => run.outcome.clone(),
        },
    );
    let id = format!("{}{}", "  ".repeat(depth), pod.info.id);
    let _ = writeln!(
        out,
        "{id:<40} {:<24} {:<10} {:<10} {last}",
        pod.info.name,
        pod.info.profile,
        pod.shown_state()
    );
    for child in all
        .iter()
        .filter(|c| c.info.parent_id.as_deref() == Some(pod.info.id.as_str()))
    {
        print_tree(out, all, child, depth + 1);
    }
}

pub fn show(global: &GlobalArgs, args: ShowArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let summary = pod_core::summarize(&dir).map_err(Failure::run_failed)?;
    let manifest = pod_profile::read_manifest_files(dir.path());
    if args.json {
        let mut json = serde_json::to_value(&summary).map_err(Failure::run_failed)?;
        if let Some(object) = json.as_object_mut() {
            object.insert("shown_state".into(), summary.shown_state().into());
            object.insert(
                "manifest".into(),
                match &manifest {
                    Ok(resolved) => serde_json::to_value(&resolved.manifest).unwrap_or_default(),
                    Err(error) => serde_json::json!({"error": error_text(error)}),
                },
            );
        }
        print_json(&json);
        return Ok(Exit::Success);
    }
    let info = &summary.info;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "pod      {} ({})", info.name, info.id);
    let _ = writeln!(out, "profile  {}", info.profile);
    if let Some(parent) = &info.parent_id {
        let _ = writeln!(out, "parent   {parent}");
    }
    let _ = writeln!(
        out,
        "state    {}{}",
        summary.shown_state(),
        info.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    );
    let _ = writeln!(out, "created  {}", info.created);
    let _ = writeln!(out, "dir      {}", summary.dir);
    match &manifest {
        Ok(resolved) => {
            let m = &resolved.manifest;
            let _ = writeln!(
                out,
                "model    {} {}{}",
                m.model.scheme.as_str(),
                m.model.model,
                m.model
                    .cassette
                    .as_deref()
                    .map(|c| format!(" (cassette {c})"))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "tools    {}", m.agent.tools.join(", "));
            let _ = writeln!(
                out,
                "scope    allow {:?} deny {:?}",
                m.scope.allow, m.scope.deny
            );
            let _ = writeln!(
                out,
                "trace    {}{}",
                if m.session.record_event_trace {
                    "on"
                } else {
                    "off"
                },
                if m.session.trace_raw_sse {
                    " (with raw SSE)"
                } else {
                    ""
                }
            );
        }
        Err(error) => {
            let _ = writeln!(out, "manifest unreadable: {}", error_text(error));
        }
    }
    for segment in &summary.segments {
        let _ = writeln!(out, "segment  {}", segment.segment_id);
        let _ = writeln!(out, "  log    {}", segment.log);
        if let Some(trace) = &segment.trace {
            let _ = writeln!(out, "  trace  {trace}");
        }
        for problem in &segment.problems {
            let _ = writeln!(out, "  !! {problem}");
        }
    }
    for run in &summary.runs {
        let detail = match (&run.error_class, &run.reason) {
            (Some(class), _) => format!(" ({class})"),
            (None, Some(reason)) => format!(" ({reason})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "run      {} {}{detail}, {} tool call(s), started {}: {:?}",
            run.run_id, run.outcome, run.tool_calls, run.started, run.input
        );
    }
    Ok(Exit::Success)
}

fn print_json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    if let Ok(text) = serde_json::to_string_pretty(value) {
        let _ = writeln!(out, "{text}");
    }
}

pub fn stop(global: &GlobalArgs, args: StopArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::run_failed)?;
    let outcome = runtime.block_on(pod_core::control::stop_pod(
        dir.path(),
        &stop_command_line(&args),
        args.tree,
        args.reason.clone(),
        std::time::Duration::from_secs(args.wait),
    ));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error @ pod_core::supervisor::ChildError::NotRunning { .. }) => {
            return Err(Failure::usage(error).with_hint(format!(
                "pod {} has no live process; `pods show {}` tells how it ended",
                dir.id(),
                dir.id()
            )));
        }
        Err(error) => return Err(Failure::run_failed(error)),
    };
    if args.json {
        let json = serde_json::json!({
            "pod_id": dir.id(),
            "action": outcome.action,
            "exited": outcome.exited,
        });
        out::stdout(&format!("{json}\n"));
    }
    let kind = if args.tree { "stop_tree" } else { "stop" };
    if outcome.exited {
        out::stderr(&format!(
            "stopped pod {} ({kind} action {})\n",
            dir.id(),
            outcome.action.action_id
        ));
        Ok(Exit::Success)
    } else {
        Err(Failure::run_failed(format!(
            "pod {} accepted {kind} action {} but did not exit within {} s",
            dir.id(),
            outcome.action.action_id,
            args.wait
        )))
    }
}

/// The command line recorded as the stop's origin.
fn stop_command_line(args: &StopArgs) -> String {
    let mut line = format!("pods stop {}", args.pod);
    if args.tree {
        line.push_str(" --tree");
    }
    if let Some(reason) = &args.reason {
        line.push_str(&format!(" --reason {reason:?}"));
    }
    line
}
