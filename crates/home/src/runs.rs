//! What became of a run, decided one way for `ls`, `show`, `log` and the export, so they can
//! never disagree about a run.
//!
//! A run that wrote its terminal entry is `completed`, `provider_error` or `interrupted`. One
//! that did not is `running` while the process that owns its segment is alive, and `crashed`
//! otherwise — including when that cannot be told (`/proc` unavailable, no owner recorded),
//! with the evidence kept in the [`Liveness`].

use serde::{Deserialize, Serialize};

use pod_protocol::record::LogBody;

use crate::liveness::{Liveness, owner_liveness};

/// A run's outcome.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    ProviderError,
    Interrupted,
    /// Started, no terminal entry, owner process gone (or not known to be alive).
    Crashed,
    /// Started, no terminal entry, owner process alive.
    Running,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The outcome of a run without a terminal entry, from its segment owner's liveness.
    pub fn unfinished(owner: &Liveness) -> RunOutcome {
        match owner {
            Liveness::Alive => RunOutcome::Running,
            Liveness::Gone(_) | Liveness::Unknown(_) => RunOutcome::Crashed,
        }
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a segment's own entries say about the process that owns it, gathered while it is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentOwner {
    /// From `segment_started`.
    pub pid: Option<u32>,
    /// When `segment_started` was written.
    pub started_at: Option<String>,
    /// The `segment_closed` reason, when the segment was closed.
    pub closed: Option<String>,
    /// A later segment of the same pod exists: another process took the pod over.
    pub later_segment: bool,
}

impl SegmentOwner {
    /// Take note of one entry of the segment.
    pub fn observe(&mut self, ts: &str, body: &LogBody) {
        match body {
            LogBody::SegmentStarted(started) => {
                self.pid = Some(started.pid);
                self.started_at = Some(ts.to_owned());
            }
            LogBody::SegmentClosed(closed) => self.closed = Some(closed.reason.clone()),
            _ => {}
        }
    }

    /// Whether the owner of this segment may still be running a run it left unfinished.
    /// `pod_pid` (from `pod.json`) stands in for a segment that recorded no owner.
    pub fn liveness(&self, pod_pid: Option<u32>) -> Liveness {
        if self.later_segment {
            return Liveness::Gone(
                "a later segment of this pod was started by another process".into(),
            );
        }
        if let Some(reason) = &self.closed {
            return Liveness::Gone(format!(
                "the segment was closed ({reason}) without ending the run"
            ));
        }
        match self.pid.or(pod_pid) {
            Some(pid) => {
                let since = self
                    .started_at
                    .as_deref()
                    .and_then(|ts| humantime::parse_rfc3339_weak(ts).ok());
                owner_liveness(pid, since)
            }
            None => Liveness::Unknown("no owner pid was recorded".into()),
        }
    }
}

/// The runs of one segment as a reader goes through it: who owns the segment and which runs
/// wrote their terminal entry, so that once the segment is read the runs it left unfinished get
/// their outcome ([`SegmentRuns::unfinished`]).
#[derive(Debug, Clone, Default)]
pub struct SegmentRuns {
    owner: SegmentOwner,
    ended: Vec<String>,
}

impl SegmentRuns {
    /// A segment about to be read; `later_segment` when the pod has a newer one.
    pub fn new(later_segment: bool) -> SegmentRuns {
        SegmentRuns {
            owner: SegmentOwner {
                later_segment,
                ..SegmentOwner::default()
            },
            ended: Vec::new(),
        }
    }

    /// Take note of one entry of the segment.
    pub fn observe(&mut self, ts: &str, body: &LogBody) {
        self.owner.observe(ts, body);
        let ended = match body {
            LogBody::RunCompleted(done) => &done.run_id,
            LogBody::RunErrored(failed) => &failed.run_id,
            LogBody::RunInterrupted(stopped) => &stopped.run_id,
            _ => return,
        };
        self.ended.push(ended.clone());
    }

    /// The outcome of `run_id` if it is one of this segment's runs without a terminal entry
    /// (`pod_pid` from `pod.json` stands in for an owner the segment did not record); `None`
    /// for a run that ended.
    pub fn unfinished(&self, run_id: &str, pod_pid: Option<u32>) -> Option<RunOutcome> {
        (!self.ended.iter().any(|id| id == run_id))
            .then(|| RunOutcome::unfinished(&self.owner.liveness(pod_pid)))
    }
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
