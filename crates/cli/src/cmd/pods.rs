use std::io::Write;

use crate::failure::{CmdResult, Exit, Failure, error_text, out};
use crate::global::GlobalArgs;
use clap::Args;
use pod_core::printable;

/// List the pods in this home as a tree: children indented under their parent, each with id,
/// name, profile, state and the outcome of its last run. A pod whose process is gone while its
/// `pod.json` says running shows as `crashed`. A completed run whose answer was cut short shows
/// as `completed (max_tokens, truncated)` (or its other stop reason).
///
/// Names are not unique: where a command takes a name in place of an id, the newest pod with
/// that name is meant (`pods ls` shows the ids of older ones). Names longer than 40 and
/// profiles longer than 24 characters end in `…` in the table (`--json` has them whole).
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print one JSON array instead of a table: each pod with `parent_id`, `state`, `last_run`
    /// (outcome, `stop_reason`, `stop_statement`, `truncated`, `usage`, `unhandled_events`, …)
    /// and `truncated` (whether its last run's answer is cut short; `null` when unknown).
    #[arg(long)]
    pub json: bool,
}

/// Show one pod: identity, manifest summary, session segments (with log problems such as a torn
/// last line), and every run with its outcome, stop reason, token usage and any stream events
/// the adapters could not map.
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
///
/// Exits 0 when the pod stopped, 1 when it is not running (nothing to stop) or did not exit in
/// time, 2 for an unknown pod.
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
                    "truncated": s.last_run().and_then(|r| r.stop.as_ref()).and_then(|st| st.truncated),
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
    let ids: Vec<&str> = summaries.iter().map(|s| s.info.id.as_str()).collect();
    // Roots: no parent, or a parent that is not in this home.
    let roots: Vec<&pod_core::PodSummary> = summaries
        .iter()
        .filter(|s| {
            s.info
                .parent_id
                .as_deref()
                .is_none_or(|p| !ids.contains(&p))
        })
        .collect();
    let mut rows = Vec::new();
    for root in roots {
        tree_rows(&mut rows, &summaries, root, 0);
    }
    let mut out = std::io::stdout().lock();
    for line in table(&rows) {
        let _ = writeln!(out, "{line}");
    }
    Ok(Exit::Success)
}

/// The widest a NAME and a PROFILE cell get; longer ones end in `…`. Ids are never cut.
const NAME_WIDTH: usize = 40;
const PROFILE_WIDTH: usize = 24;

/// One row of the `ls` table, its cells already printable.
struct Row {
    id: String,
    name: String,
    profile: String,
    state: String,
    last: String,
}

fn tree_rows(
    rows: &mut Vec<Row>,
    all: &[pod_core::PodSummary],
    pod: &pod_core::PodSummary,
    depth: usize,
) {
    let last = pod.last_run().map_or_else(|| "-".to_owned(), run_words);
    rows.push(Row {
        id: format!("{}{}", "  ".repeat(depth), printable(&pod.info.id)),
        name: cut(&pod.info.name, NAME_WIDTH),
        profile: cut(&pod.info.profile, PROFILE_WIDTH),
        state: pod.shown_state(),
        last: printable(&last).into_owned(),
    });
    for child in all
        .iter()
        .filter(|c| c.info.parent_id.as_deref() == Some(pod.info.id.as_str()))
    {
        tree_rows(rows, all, child, depth + 1);
    }
}

/// `text` as printable, cut to at most `width` characters, the last one `…` when it was cut.
/// An escaped control character (`\u{1b}`) is kept whole or left out whole.
fn cut(text: &str, width: usize) -> String {
    let shown = printable(text);
    if shown.chars().count() <= width {
        return shown.into_owned();
    }
    let mut kept = String::new();
    let mut used = 0;
    for c in text.chars() {
        let piece = printable(c.encode_utf8(&mut [0; 4])).into_owned();
        let len = piece.chars().count();
        if used + len > width.saturating_sub(1) {
            break;
        }
        used += len;
        kept.push_str(&piece);
    }
    kept.push('…');
    kept
}

/// The table's lines: each column as wide as its widest cell (names and profiles are cut
/// first), so every column starts at the same character on every line.
fn table(rows: &[Row]) -> Vec<String> {
    let width = |header: &str, cell: fn(&Row) -> &str| {
        rows.iter()
            .map(|r| cell(r).chars().count())
            .chain([header.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths = [
        width("ID", |r| &r.id),
        width("NAME", |r| &r.name),
        width("PROFILE", |r| &r.profile),
        width("STATE", |r| &r.state),
    ];
    let line = |cells: [&str; 5]| {
        let mut line = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(w - cell.chars().count() + 1));
        }
        line.push_str(cells[4]);
        line
    };
    let mut lines = vec![line(["ID", "NAME", "PROFILE", "STATE", "LAST RUN"])];
    lines.extend(
        rows.iter()
            .map(|r| line([&r.id, &r.name, &r.profile, &r.state, &r.last])),
    );
    lines
}

/// A run's outcome in a few words: `completed`, `completed (max_tokens, truncated)`,
/// `completed (stop reason unknown)`, `provider_error (rate_limited)`, `interrupted (stopped)`,
/// `crashed`.
fn run_words(run: &pod_core::RunSummary) -> String {
    if let Some(class) = &run.error_class {
        return format!("{} ({class})", run.outcome);
    }
    match (&run.stop, &run.reason) {
        (Some(stop), reason) => {
            let turns = reason.as_deref().filter(|r| *r == "max_turns");
            match (stop.truncated, turns) {
                (Some(true), _) => format!("{} ({}, truncated)", run.outcome, stop.stop_reason),
                (None, _) => format!("{} (stop reason unknown)", run.outcome),
                (Some(false), Some(turns)) => format!("{} ({turns})", run.outcome),
                (Some(false), None) => run.outcome.to_string(),
            }
        }
        (None, Some(reason)) => format!("{} ({reason})", run.outcome),
        (None, None) => run.outcome.to_string(),
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
    let _ = writeln!(
        out,
        "pod      {} ({})",
        printable(&info.name),
        printable(&info.id)
    );
    let _ = writeln!(out, "profile  {}", printable(&info.profile));
    if let Some(parent) = &info.parent_id {
        let _ = writeln!(out, "parent   {}", printable(parent));
    }
    let _ = writeln!(
        out,
        "state    {}{}",
        summary.shown_state(),
        info.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    );
    let _ = writeln!(out, "created  {}", printable(&info.created));
    let _ = writeln!(out, "dir      {}", printable(&summary.dir));
    match &manifest {
        Ok(resolved) => {
            let m = &resolved.manifest;
            let _ = writeln!(
                out,
                "model    {} {}{}",
                m.model.scheme.as_str(),
                printable(&m.model.model),
                m.model
                    .cassette
                    .as_deref()
                    .map(|c| format!(" (cassette {})", printable(c)))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "tools    {}", printable(&m.agent.tools.join(", ")));
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
            let _ = writeln!(
                out,
                "manifest unreadable: {}",
                printable(&error_text(error))
            );
        }
    }
    let traced = summary.segments.iter().any(|s| s.trace.is_some());
    for segment in &summary.segments {
        let _ = writeln!(out, "segment  {}", printable(&segment.segment_id));
        let _ = writeln!(out, "  log    {}", printable(&segment.log));
        if let Some(trace) = &segment.trace {
            let _ = writeln!(out, "  trace  {}", printable(trace));
        }
        for problem in &segment.problems {
            let _ = writeln!(out, "  !! {}", printable(problem));
        }
    }
    for run in &summary.runs {
        let mut rejected = String::new();
        if run.tool_calls_rejected > 0 {
            rejected = format!(" ({} rejected)", run.tool_calls_rejected);
        }
        let _ = writeln!(
            out,
            "run      {} {}, {} tool call(s){rejected}, started {}: {:?}",
            printable(&run.run_id),
            printable(&run_words(run)),
            run.tool_calls,
            printable(&run.started),
            run.input
        );
        if let Some(stop) = &run.stop {
            let _ = writeln!(
                out,
                "  stop   {}{}: {}",
                stop.stop_reason,
                if stop.truncated == Some(true) {
                    " (truncated)"
                } else {
                    ""
                },
                printable(&stop.stop_statement)
            );
        }
        if run.usage.requests_recorded > 0 {
            let _ = writeln!(out, "  usage  {}", run.usage.describe());
        } else if run.provider_requests > 0 {
            let _ = writeln!(out, "  usage  unknown (the log records no request's end)");
        }
        if !run.unhandled_events.is_empty() {
            let names: Vec<String> = run
                .unhandled_events
                .iter()
                .map(|(event, n)| format!("{} ×{n}", printable(event)))
                .collect();
            let _ = writeln!(
                out,
                "  !! {} unhandled stream event(s): {}",
                run.unhandled_events.values().sum::<u64>(),
                names.join(", ")
            );
            if traced {
                let _ = writeln!(out, "     their contents are in the trace (`pods trace`)");
            } else {
                let _ = writeln!(
                    out,
                    "     tracing was off: only the counts were kept; {}",
                    pod_core::summary::UNHANDLED_TRACE_HINT
                );
            }
        }
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
        // Not a usage error: the command was right, the pod just has nothing to stop.
        Err(pod_core::children::ChildError::NotRunning { .. }) => {
            let state = pod_core::summarize(&dir)
                .map(|s| s.shown_state())
                .unwrap_or_else(|_| "unknown".into());
            return Err(Failure::run_failed(format!(
                "pod {} is not running (state {state}): there is nothing to stop",
                dir.id()
            ))
            .with_hint(format!("`pods show {}` tells how it ended", dir.id())));
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

/// Remove a pod's directory (its pod.json, manifest, session logs and traces) from the home.
/// A pod that may be running is never removed: stop it first. A pod with children is removed
/// only with `--tree`, which removes its descendants too (all or nothing).
///
/// Exits 0 when removed, 1 when a pod to remove is running, 2 for an unknown pod or a pod with
/// children without `--tree`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// Also remove every descendant of the pod.
    #[arg(long)]
    pub tree: bool,
    /// Print the removed pods as a JSON array (`id`, `name`, `state`) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Remove finished pod trees from the home: a tree (a root pod and its descendants) goes as a
/// whole, and only when none of its pods may be running. Without options every finished tree
/// is removed; `--older-than` and `--keep` narrow that. Each removed pod is listed (with
/// `--dry-run`: each pod that would be), then each kept one with the reason.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove only trees whose root was created longer ago than this (e.g. `7d`, `12h`, `30m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Keep the N newest trees whatever their age.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep: usize,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print `{"dry_run", "removed", "kept"}` as JSON on stdout (each pod with `id`, `name`,
    /// `state`, and for kept ones `reason`).
    #[arg(long)]
    pub json: bool,
}

pub fn rm(global: &GlobalArgs, args: RmArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let removed = home.remove(&dir, args.tree).map_err(|error| match error {
        pod_core::RemoveError::Running { .. } => Failure::run_failed(error),
        pod_core::RemoveError::HasChildren { .. } => Failure::usage(error),
        pod_core::RemoveError::Home(error) => Failure::run_failed(error),
    })?;
    if args.json {
        print_json(&serde_json::to_value(&removed).map_err(Failure::run_failed)?);
    }
    for pod in &removed {
        out::stderr(&format!("removed {}\n", pod_words(pod)));
    }
    Ok(Exit::Success)
}

pub fn prune(global: &GlobalArgs, args: PruneArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let rule = pod_core::PruneRule {
        older_than: args.older_than,
        keep: args.keep,
    };
    let plan = if args.dry_run {
        home.plan_prune(rule)
    } else {
        home.prune(rule)
    }
    .map_err(Failure::run_failed)?;
    if args.json {
        print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "removed": plan.remove,
            "kept": plan.keep,
        }));
        return Ok(Exit::Success);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = std::io::stdout().lock();
    for pod in &plan.remove {
        let _ = writeln!(out, "{verb} {}", pod_words(pod));
    }
    for pod in &plan.keep {
        let _ = writeln!(
            out,
            "kept {}: {}",
            pod_words(pod),
            printable(pod.reason.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(
        out,
        "{verb} {} pod(s), kept {}{}",
        plan.remove.len(),
        plan.keep.len(),
        if args.dry_run {
            " (dry run: nothing was removed)"
        } else {
            ""
        }
    );
    Ok(Exit::Success)
}

/// `ID (NAME, STATE)` for what rm and prune report.
fn pod_words(pod: &pod_core::PodRef) -> String {
    format!(
        "{} ({}, {})",
        printable(&pod.id),
        printable(pod.name.as_deref().unwrap_or("name unknown")),
        pod.state
    )
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_short_text_and_escapes_whole() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("exactly10!", 10), "exactly10!");
        assert_eq!(cut("abcdefghijk", 5), "abcd…");
        // `\u{1b}` is six characters: it does not fit in what is left, so it goes whole.
        assert_eq!(cut("ab\u{1b}cdefgh", 6), "ab…");
        assert_eq!(cut("ab\u{1b}cdefgh", 9), "ab\\u{1b}…");
    }
}
