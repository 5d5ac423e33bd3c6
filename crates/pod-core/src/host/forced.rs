//! Endings the pod task does not cooperate in: it failed (panicked, or ended without
//! reporting), or a second signal arrived while the pod was ending and the host stops waiting.
//! The host records in the task's place what the task could not.

use std::time::Duration;

use super::host_loop::{HostLoop, record};
use super::pod_task::{Ended, TaskCtx};
use crate::control::PodEvent;
use crate::error_chain;
use crate::home::PodDir;
use crate::lifecycle::new_action;
use crate::record::{
    LifecycleAction, LifecycleKind, LogBody, Origin, PodState, RunInterrupted, SegmentClosed,
};
use crate::session_log::SessionLog;

/// How long a forced end (second signal) waits for the pod task to close its segment itself
/// before the host records the end in its place.
const FORCE_GRACE: Duration = Duration::from_millis(1000);
/// After [`FORCE_GRACE`], how long the host waits for the cancelled pod task to be dropped.
const ABORT_GRACE: Duration = Duration::from_millis(200);

impl HostLoop {
    /// A second signal while the pod is ending: record it, give the pod task [`FORCE_GRACE`]
    /// to close its segment, and otherwise record the active run's interruption (by the action
    /// that governs it) and the segment's close in its place. Returns the recorded action.
    pub(super) async fn force_end(&mut self, signal: &'static str) -> LifecycleAction {
        let action = new_action(
            LifecycleKind::Shutdown,
            self.ctx.affects(LifecycleKind::Shutdown),
            Origin::Signal {
                signal: signal.to_owned(),
            },
        );
        let run_id = if self.active.is_running() {
            self.ctx.progress.run_id()
        } else {
            None
        };
        self.record(&action, run_id.clone());
        // The governing action stays the one that reached the run first (equally near).
        let governing = self.control.governing().unwrap_or_else(|| action.clone());
        self.control.interrupt(action.clone());
        self.server.publish(PodEvent::Exiting {
            reason: format!("{signal} again while ending; not waiting for the pod"),
            action: Some(action.clone()),
        });
        drop(self.jobs.take());
        tracing::warn!(
            signal,
            "second signal while ending: not waiting for the pod"
        );
        if tokio::time::timeout(FORCE_GRACE, &mut self.closed)
            .await
            .is_ok()
        {
            // The pod task closed its segment itself; everything it did is recorded.
            return action;
        }
        if let Some(task) = self.task.as_mut() {
            task.abort();
            let _ = tokio::time::timeout(ABORT_GRACE, task).await;
        }
        let mut run_ended = false;
        while let Ok(ended) = self.done.try_recv() {
            run_ended |= matches!(ended, Ended::Run(_) | Ended::Faulted { .. });
        }
        if let Some(run_id) = run_id.filter(|_| !run_ended) {
            let interrupted = LogBody::RunInterrupted(RunInterrupted {
                run_id,
                reason: crate::lifecycle::interrupt_reason(governing.kind).to_owned(),
                action: Some(governing),
                phase: self.ctx.progress.phase(),
            });
            if let Err(error) = self.log.append(interrupted) {
                tracing::error!(error = %error_chain(&error), "cannot record the run's interruption");
            }
        }
        close_in_place(&self.log, &self.ctx.dir, "interrupted", PodState::Stopped);
        action
    }
}

/// Close the segment and update `pod.json` for a pod task that could not.
pub(super) fn close_in_place(log: &SessionLog, dir: &PodDir, reason: &str, state: PodState) {
    if let Err(error) = log.append(LogBody::SegmentClosed(SegmentClosed {
        reason: reason.to_owned(),
    })) {
        tracing::error!(error = %error_chain(&error), "cannot close the session segment");
    }
    if let Err(error) = dir.update_info(|info| {
        info.state = state;
        info.pid = None;
    }) {
        tracing::error!(error = %error_chain(&error), "cannot update pod.json");
    }
}

/// Record that the pod task failed: a `shutdown` action with a `runtime` origin naming the
/// failure and, when a run was active and had started, its `run_interrupted` entry embedding
/// the action with the phase the host saw. Returns the action.
pub(super) fn record_task_failure(
    log: &SessionLog,
    ctx: &TaskCtx,
    detail: &str,
    run_active: bool,
) -> LifecycleAction {
    let action = new_action(
        LifecycleKind::Shutdown,
        ctx.affects(LifecycleKind::Shutdown),
        Origin::Runtime {
            detail: detail.to_owned(),
        },
    );
    let run_id = if run_active {
        ctx.progress.run_id()
    } else {
        None
    };
    record(log, &action, run_id.clone());
    if let Some(run_id) = run_id {
        let interrupted = LogBody::RunInterrupted(RunInterrupted {
            run_id,
            reason: "pod failed".to_owned(),
            action: Some(action.clone()),
            phase: ctx.progress.phase(),
        });
        if let Err(error) = log.append(interrupted) {
            tracing::error!(error = %error_chain(&error), "cannot record the run's interruption");
        }
    }
    action
}
