//! What `pods ls` and `pods show` present: a pod's identity, liveness and its runs, read from
//! its directory.

use std::collections::BTreeMap;

use serde::Serialize;

use pod_protocol::ErrorClass;
use pod_protocol::record::{LogBody, PodInfo, PodState, ToolOutcome};
pub use pod_protocol::report::{StopFacts, UsageTotals};

use crate::error::HomeError;
use crate::layout::PodDir;
use crate::liveness::process_alive;
use crate::log_read::{LogProblem, read_segment};
use crate::runs::{RunOutcome, SegmentRuns};

/// The hint given wherever unhandled stream events are counted but their contents were not kept.
pub const UNHANDLED_TRACE_HINT: &str = "turn on session.record_event_trace (e.g. `--set session.record_event_trace=true`) to keep their contents in the trace";

/// The state to show for a pod whose `pod.json` says `state` with `pid`: a `running` pod whose
/// process is gone is `crashed`.
pub fn shown_state(state: PodState, pid: Option<u32>) -> String {
    if state == PodState::Running && !pid.is_some_and(process_alive) {
        return "crashed".into();
    }
    state.as_str().to_owned()
}

/// One run as read back from a session log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub segment_id: String,
    pub started: String,
    pub input: String,
    /// `completed`, `provider_error`, `interrupted`, `crashed` or `running` (see
    /// [`RunOutcome`]).
    pub outcome: RunOutcome,
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
            (state, _) => state.as_str().to_owned(),
        }
    }
}

/// Read a pod's summary from its directory.
pub fn summarize(dir: &PodDir) -> Result<PodSummary, HomeError> {
    let info = dir.read_info()?;
    let process_alive =
        (info.state == PodState::Running).then(|| info.pid.is_some_and(process_alive));
    let mut segments = Vec::new();
    let mut runs: Vec<RunSummary> = Vec::new();
    let files = dir.segments()?;
    let last = files.len().saturating_sub(1);
    for (number, segment) in files.into_iter().enumerate() {
        let read = read_segment(&segment.log)?;
        let first_run = runs.len();
        let mut segment_runs = SegmentRuns::new(number < last);
        for entry in read.entries {
            segment_runs.observe(&entry.ts, &entry.body);
            let current = runs.last_mut();
            match entry.body {
                LogBody::RunStarted(run) => runs.push(RunSummary {
                    run_id: run.run_id,
                    segment_id: segment.segment_id.clone(),
                    started: entry.ts,
                    input: run.input,
                    // Decided below, with the segment read.
                    outcome: RunOutcome::Running,
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
                        run.outcome = RunOutcome::Completed;
                        run.reason = Some(done.reason);
                        run.stop = Some(StopFacts::of(done.stop_reason.as_ref()));
                    }
                }
                LogBody::RunErrored(failed) => {
                    if let Some(run) = current.filter(|r| r.run_id == failed.run_id) {
                        run.outcome = RunOutcome::ProviderError;
                        run.error_class = Some(failed.error.class);
                    }
                }
                LogBody::RunInterrupted(stopped) => {
                    if let Some(run) = current.filter(|r| r.run_id == stopped.run_id) {
                        run.outcome = RunOutcome::Interrupted;
                        run.reason = Some(stopped.reason);
                    }
                }
                _ => {}
            }
        }
        for run in &mut runs[first_run..] {
            if let Some(outcome) = segment_runs.unfinished(&run.run_id, info.pid) {
                run.outcome = outcome;
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
