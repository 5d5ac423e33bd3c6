//! `pods log`: a pod's conversation, run by run (read by `pod_home::conversation`).

use std::io::Write;

use clap::Args;
use pod_core::conversation::{Conversation, Item, LOG_SHAPE_VERSION, RunTranscript};
use pod_core::printable;

use crate::failure::{CmdResult, Exit, Failure};
use crate::global::GlobalArgs;

/// Print what a pod and its model said, run by run, from its session log: the input, the
/// assistant's text, its reasoning (one line with its size unless `--reasoning`), each tool
/// call with its arguments and the start of its result, the child pods it spawned (with their
/// ids), and how the run ended: stop reason, or the error's class and message, and token usage.
/// Control characters are shown escaped (`\u{1b}`).
///
/// With `--json`: one document `{"version": 2, "pods": [...]}`, each pod with its runs and
/// their items in order (the shape is described in docs/LOG.md).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// Include the pod's descendants, each after its parent, children in the order they were
    /// spawned.
    #[arg(long)]
    pub tree: bool,
    /// Show the model's reasoning in full instead of one line with its size.
    #[arg(long)]
    pub reasoning: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Tool-result lines shown in text; the rest is counted (`--json` has up to
/// `RESULT_MAX_CHARS`).
const RESULT_LINES: usize = 8;

pub fn run(global: &GlobalArgs, args: LogArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let pods = if args.tree {
        pod_core::conversation::read_conversation_tree(&home, &dir)
    } else {
        pod_core::conversation::read_conversation(&dir).map(|c| vec![c])
    }
    .map_err(Failure::run_failed)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let document = serde_json::json!({"version": LOG_SHAPE_VERSION, "pods": pods});
        let text = serde_json::to_string_pretty(&document).map_err(Failure::run_failed)?;
        let _ = writeln!(out, "{text}");
        return Ok(Exit::Success);
    }
    for (index, pod) in pods.iter().enumerate() {
        if index > 0 {
            let _ = writeln!(out);
        }
        write_pod(&mut out, pod, args.reasoning);
    }
    let _ = out.flush();
    Ok(Exit::Success)
}

fn write_pod(out: &mut impl Write, pod: &Conversation, reasoning: bool) {
    let parent = pod
        .parent_id
        .as_deref()
        .map(|p| format!(", child of {}", printable(p)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "=== pod {} ({}), profile {}{parent}",
        printable(&pod.name),
        printable(&pod.pod_id),
        printable(&pod.profile)
    );
    for problem in &pod.problems {
        let _ = writeln!(out, "!! {}", printable(problem));
    }
    if pod.runs.is_empty() {
        let _ = writeln!(out, "(no runs)");
    }
    for run in &pod.runs {
        write_run(out, run, reasoning);
    }
}

/// `text` with every line after the first indented by `indent`, control characters escaped.
fn block(text: &str, indent: &str) -> String {
    text.lines()
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

fn write_run(out: &mut impl Write, run: &RunTranscript, reasoning: bool) {
    let _ = writeln!(
        out,
        "--- run {} ({}, {})",
        printable(&run.run_id),
        run.trigger,
        printable(&run.started)
    );
    let _ = writeln!(out, "user: {}", block(&run.input, "      "));
    for item in &run.items {
        match item {
            Item::Assistant {
                text,
                reasoning: thought,
                ..
            } => {
                if !thought.is_empty() {
                    if reasoning {
                        let _ = writeln!(out, "reasoning: {}", block(thought, "           "));
                    } else {
                        let _ = writeln!(
                            out,
                            "reasoning: {} characters (--reasoning shows it)",
                            thought.chars().count()
                        );
                    }
                }
                if !text.is_empty() {
                    let _ = writeln!(out, "assistant: {}", block(text, "           "));
                }
            }
            Item::ToolCall {
                call_id,
                tool,
                arguments,
                outcome,
                result,
                result_chars,
                decision,
                ..
            } => {
                let outcome = outcome
                    .map(|o| {
                        serde_json::to_value(o)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .unwrap_or_else(|| "no result recorded".into());
                let words = super::trace::arguments_words(&arguments.to_string());
                let _ = writeln!(
                    out,
                    "tool {} {} ({}): {outcome}",
                    printable(tool),
                    printable(&words),
                    printable(call_id)
                );
                if let Some(decision) = decision.as_ref().filter(|d| d.notable()) {
                    let _ = writeln!(out, "  approval: {}", printable(&decision.describe()));
                }
                let lines: Vec<&str> = result.lines().collect();
                for line in lines.iter().take(RESULT_LINES) {
                    let _ = writeln!(out, "  | {}", printable(line));
                }
                let shown: usize = lines
                    .iter()
                    .take(RESULT_LINES)
                    .map(|l| l.chars().count() + 1)
                    .sum();
                if shown < *result_chars {
                    let _ = writeln!(
                        out,
                        "  | … ({result_chars} characters in all; `--json` has more)"
                    );
                }
            }
            Item::ChildSpawned {
                child_pod_id,
                profile,
                call_id,
            } => {
                let _ = writeln!(
                    out,
                    "child spawned: {} (profile {}, by {})",
                    printable(child_pod_id),
                    printable(profile),
                    printable(call_id)
                );
            }
            Item::ChildExited {
                child_pod_id,
                exit_code,
                signal,
                expected,
            } => {
                let how = match (exit_code, signal) {
                    (Some(code), _) => format!("exit code {code}"),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "no exit status".into(),
                };
                let _ = writeln!(
                    out,
                    "child exited: {} ({how}{})",
                    printable(child_pod_id),
                    if *expected { "" } else { ", unexpected" }
                );
            }
        }
    }
    let mut end = format!("end: {}", run.outcome);
    if let Some(stop) = &run.stop {
        end.push_str(&format!(
            " ({}{}): {}",
            stop.stop_reason,
            if stop.truncated == Some(true) {
                ", truncated"
            } else {
                ""
            },
            stop.stop_statement
        ));
        if run.reason.as_deref() == Some("max_turns") {
            end.push_str("; the turn budget ran out");
        }
    } else if let Some(reason) = &run.reason {
        end.push_str(&format!(" ({reason})"));
    }
    let _ = writeln!(out, "{}", printable(&end));
    if let Some(error) = &run.error {
        let _ = writeln!(
            out,
            "error: {}{}{}: {}",
            error.class,
            error
                .code
                .as_deref()
                .map(|c| format!(" code={}", printable(c)))
                .unwrap_or_default(),
            error
                .http_status
                .map(|s| format!(" HTTP {s}"))
                .unwrap_or_default(),
            block(&error.message, "       ")
        );
    }
    let _ = writeln!(out, "usage: {}", run.usage.describe());
}
