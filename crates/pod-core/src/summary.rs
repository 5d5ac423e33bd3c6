//! What `pods ls` and `pods show` present: a pod's identity, liveness and its runs, read from
//! its directory.

use std::collections::BTreeMap;

use serde::Serialize;

use pod_provider::ErrorClass;

use crate::error::CoreError;
use crate::home::PodDir;
use crate::record::{LogBody, PodInfo, PodState, ToolOutcome};
use crate::session_log::{LogProblem, read_segment};

/// The hint given wherever unhandled stream events are counted but their contents were not kept.
pub const UNHANDLED_TRACE_HINT: &str = "turn on session.record_event_trace (e.g. `--set session.record_event_trace=true`) to keep their contents in the trace";

pub use pod_protocol::report::{StopFacts, UsageTotals};

pub use pod_protocol::text::printable;

/// Whether process `pid` is alive: it exists and is not a zombie. The one check `ls`, `show`
/// and the export's pod state share.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// The state to show for a pod whose `pod.json` says `state` with `pid`: a `running` pod whose
/// process is gone is `crashed`.
pub fn shown_state(state: PodState, pid: Option<u32>) -> String {
    if state == PodState::Running && !pid.is_some_and(process_alive) {
        return "crashed".into();
    }
    state_name(state)
}

fn state_name(state: PodState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// One run as read back from a session log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub segment_id: String,
    pub started: String,
    pub input: String,
    /// `completed`, `errored`, `interrupted`, or `unfinished` (no terminal entry).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// Completion reason (`end_turn`, `max_turns`, …) or interruption reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For completed runs: why the model stopped (flattened: `stop_reason`, `stop_raw`,
    /// `truncated`, `stop_statement`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopFacts>,
    /// Tool calls that started (rejected calls are not counted).
    pub tool_calls: u32,
    /// Tool calls that never ran (unknown tool, arguments that are not valid JSON).
    pub tool_calls_rejected: u32,
    /// Model requests started (retries included).
    pub provider_requests: u32,
    pub usage: UsageTotals,
    /// Stream events the adapters could not map, by name, over the requests whose end was
    /// recorded.
    pub unhandled_events: BTreeMap<String, u64>,
}

/// One segment's file paths and the problems its log has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentSummary {
    pub segment_id: String,
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub problems: Vec<String>,
}

/// A pod as `ls` and `show` present it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodSummary {
    #[serde(flatten)]
    pub info: PodInfo,
    pub dir: String,
    /// For a pod whose `pod.json` says `running`: whether its process still exists. A dead one
    /// means the pod crashed (its last run has no terminal entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_alive: Option<bool>,
    pub segments: Vec<SegmentSummary>,
    pub runs: Vec<RunSummary>,
}

impl PodSummary {
    pub fn last_run(&self) -> Option<&RunSummary> {
        self.runs.last()
    }

    /// The state to show: `pod.json`'s, except a `running` pod without a live process shows as
    /// `crashed`.
    pub fn shown_state(&self) -> String {
        match (self.info.state, self.process_alive) {
            (PodState::Running, Some(false)) => "crashed".into(),
            (state, _) => state_name(state),
        }
    }
}

/// Read a pod's summary from its directory.
pub fn summarize(dir: &PodDir) -> Result<PodSummary, CoreError> {
    let info = dir.read_info()?;
    let process_alive =
        (info.state == PodState::Running).then(|| info.pid.is_some_and(process_alive));
    let mut segments = Vec::new();
    let mut runs: Vec<RunSummary> = Vec::new();
    for segment in dir.segments()? {
        let read = read_segment(&segment.log)?;
        for entry in read.entries {
            let current = runs.last_mut();
            match entry.body {
                LogBody::RunStarted(run) => runs.push(RunSummary {
                    run_id: run.run_id,
                    segment_id: segment.segment_id.clone(),
                    started: entry.ts,
                    input: run.input,
                    outcome: "unfinished".into(),
                    error_class: None,
                    reason: None,
                    stop: None,
                    tool_calls: 0,
                    tool_calls_rejected: 0,
                    provider_requests: 0,
                    usage: UsageTotals::default(),
                    unhandled_events: BTreeMap::new(),
                }),
                LogBody::ProviderRequestStarted(_) => {
                    if let Some(run) = current {
                        run.provider_requests += 1;
                    }
                }
                LogBody::ProviderRequestFinished(finished) => {
                    if let Some(run) = current.filter(|r| r.run_id == finished.run_id) {
                        run.usage.add(finished.usage.as_ref());
                        for (event, count) in finished.unhandled {
                            *run.unhandled_events.entry(event).or_insert(0) += count;
                        }
                    }
                }
                LogBody::ToolCallStarted(_) => {
                    if let Some(run) = current {
                        run.tool_calls += 1;
                    }
                }
                LogBody::ToolCallFinished(finished)
                    if finished.outcome == ToolOutcome::Rejected =>
                {
                    if let Some(run) = current {
                        run.tool_calls_rejected += 1;
                    }
                }
                LogBody::RunCompleted(done) => {
                    if let Some(run) = current.filter(|r| r.run_id == done.run_id) {
                        run.outcome = "completed".into();
                        run.reason = Some(done.reason);
                        run.stop = Some(StopFacts::of(done.stop_reason.as_ref()));
                    }
                }
                LogBody::RunErrored(failed) => {
                    if let Some(run) = current.filter(|r| r.run_id == failed.run_id) {
                        run.outcome = "errored".into();
                        run.error_class = Some(failed.error.class);
                    }
                }
                LogBody::RunInterrupted(stopped) => {
                    if let Some(run) = current.filter(|r| r.run_id == stopped.run_id) {
                        run.outcome = "interrupted".into();
                        run.reason = Some(stopped.reason);
                    }
                }
                _ => {}
            }
        }
        segments.push(SegmentSummary {
            segment_id: segment.segment_id,
            log: segment.log.display().to_string(),
            trace: segment.trace.map(|t| t.display().to_string()),
            problems: read.problems.iter().map(LogProblem::to_string).collect(),
        });
    }
    Ok(PodSummary {
        info,
        dir: dir.path().display().to_string(),
        process_alive,
        segments,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_every_control_character_and_keeps_the_rest() {
        assert!(matches!(
            printable("plain name ü"),
            Cow::Borrowed("plain name ü")
        ));
        assert_eq!(
            printable("a\u{1b}[2Jb\u{7}c\u{9b}d\ne\u{7f}"),
            "a\\u{1b}[2Jb\\u{7}c\\u{9b}d\\u{a}e\\u{7f}"
        );
    }

    #[test]
    fn usage_totals_sum_what_was_reported_and_count_what_was_not() {
        let mut totals = UsageTotals::default();
        totals.add(Some(&Usage {
            input_tokens: Some(100),
            output_tokens: Some(10),
            cached_input_tokens: Some(80),
            reasoning_tokens: None,
        }));
        totals.add(None);
        totals.add(Some(&Usage {
            input_tokens: Some(26),
            output_tokens: Some(2),
            cached_input_tokens: None,
            reasoning_tokens: None,
        }));
        assert_eq!(totals.input_tokens, Some(126));
        assert_eq!(totals.cached_input_tokens, Some(80));
        assert_eq!(
            totals.reasoning_tokens, None,
            "never reported: unknown, not 0"
        );
        assert_eq!(totals.requests_recorded, 3);
        assert_eq!(totals.requests_with_usage, 2);
        assert!(
            totals.describe().ends_with("; 1 reported no usage"),
            "{}",
            totals.describe()
        );
    }
}
