//! How a foreground run ended, for people (stderr, hints) and as the exit code.

use std::path::PathBuf;

use serde_json::Value;

use pod_core::launch::{HostAbort, HostEnd};
use pod_core::record::Origin;
use pod_core::run_events::{self, RunEvent};
use pod_core::{CoreError, RunOutcome};
use pod_provider::ProviderError;

use super::presenter::Presenter;
use crate::failure::{CmdResult, Exit, Failure, out};

/// What `run_ended` says, gathered while the outcome becomes an exit code.
pub(super) struct RunEnd {
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

impl RunEnd {
    /// `run_ended`, the last line of `--json`, for a command ending with `exit_code`.
    pub(super) fn into_event(self, exit_code: i32) -> RunEvent {
        RunEvent::RunEnded {
            run_id: self.run_id,
            outcome: self.outcome.to_owned(),
            stop_reason: self.stop_reason,
            truncated: self.truncated,
            turns: self.turns,
            error: self.error,
            usage: self.usage,
            exit_code,
        }
    }
}

/// Present how hosting the run ended and turn it into an exit code; fill `ended` on the way.
pub(super) fn conclude(
    end: Result<HostEnd, CoreError>,
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
pub(super) struct PodFailed(pub(super) String);

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
