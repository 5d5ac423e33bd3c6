//! What `pods ls` and `pods show` present: a pod's identity, liveness and its runs, read from
//! its directory.

use serde::Serialize;

use pod_provider::ErrorClass;

use crate::error::CoreError;
use crate::home::PodDir;
use crate::record::{LogBody, PodInfo, PodState};
use crate::session_log::{LogProblem, read_segment};

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
    pub tool_calls: u32,
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
            (state, _) => serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// Read a pod's summary from its directory.
pub fn summarize(dir: &PodDir) -> Result<PodSummary, CoreError> {
    let info = dir.read_info()?;
    let process_alive = (info.state == PodState::Running).then(|| {
        info.pid
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    });
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
                    tool_calls: 0,
                }),
                LogBody::ToolCallStarted(_) => {
                    if let Some(run) = current {
                        run.tool_calls += 1;
                    }
                }
                LogBody::RunCompleted(done) => {
                    if let Some(run) = current.filter(|r| r.run_id == done.run_id) {
                        run.outcome = "completed".into();
                        run.reason = Some(done.reason);
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
