//! Lifecycle actions: building them (id, clocks, affected pods, origin), cascading them down the
//! pod tree, and deciding which of several overlapping actions a pod's interrupted run reports.
//!
//! The record shapes live in [`crate::record`]; this module only constructs and compares them.
//!
//! **Nearest action.** While a run is being interrupted, more actions may reach the same pod
//! (a `pods stop` racing a parent's `stop_tree`, a signal racing a watchdog). The run reports the
//! *nearest* one: an action addressed to this pod directly (no `caused_by`) is nearer than one
//! cascaded from an ancestor; between two equally near actions the one that reached the pod
//! first wins. Later actions are not lost: each is still recorded as a `lifecycle_action` entry.

use std::sync::OnceLock;
use std::time::Instant;

use crate::record::{LifecycleAction, LifecycleKind, Origin};

static PROCESS_CLOCK: OnceLock<Instant> = OnceLock::new();

/// Start this process's monotonic clock (idempotent). The runtime calls it at startup so
/// `started_mono_ms` counts from process start rather than from the first action.
pub fn start_process_clock() {
    PROCESS_CLOCK.get_or_init(Instant::now);
}

/// Milliseconds since [`start_process_clock`] (or since the first call, if it was never called).
pub fn mono_ms() -> u64 {
    let start = PROCESS_CLOCK.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub use pod_home::now_rfc3339;

/// A fresh UUIDv7 as text (action ids, request ids).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Build a new lifecycle action starting now.
pub fn new_action(kind: LifecycleKind, affects: Vec<String>, origin: Origin) -> LifecycleAction {
    LifecycleAction {
        action_id: new_id(),
        kind,
        started_at: now_rfc3339(),
        started_mono_ms: mono_ms(),
        affects,
        origin,
        reason: None,
        caused_by: None,
    }
}

/// An origin whose facts are missing, naming each missing fact. Never guess instead.
pub fn unknown_origin<I, S>(missing: I) -> Origin
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Origin::Unknown {
        missing: missing.into_iter().map(Into::into).collect(),
    }
}

/// The kind a child's action takes when its parent's action of `parent_kind` cascades to it;
/// `None` for kinds that stay with the one pod.
pub fn cascade_kind(parent_kind: LifecycleKind) -> Option<LifecycleKind> {
    match parent_kind {
        LifecycleKind::StopTree => Some(LifecycleKind::StopTree),
        LifecycleKind::Shutdown => Some(LifecycleKind::Shutdown),
        LifecycleKind::ParentExit => Some(LifecycleKind::ParentExit),
        LifecycleKind::Cancel
        | LifecycleKind::Stop
        | LifecycleKind::Reload
        | LifecycleKind::Watchdog
        | LifecycleKind::Kill => None,
    }
}

/// Whether the pod process ends after this action (as opposed to only its current run).
pub fn ends_pod(kind: LifecycleKind) -> bool {
    match kind {
        LifecycleKind::Stop
        | LifecycleKind::StopTree
        | LifecycleKind::Shutdown
        | LifecycleKind::ParentExit
        | LifecycleKind::Watchdog
        | LifecycleKind::Kill => true,
        LifecycleKind::Cancel | LifecycleKind::Reload => false,
    }
}

/// Short plain reason for a `run_interrupted` entry.
pub fn interrupt_reason(kind: LifecycleKind) -> &'static str {
    match kind {
        LifecycleKind::Cancel => "cancelled",
        LifecycleKind::Stop => "stopped",
        LifecycleKind::StopTree => "tree stopped",
        LifecycleKind::Shutdown => "shut down",
        LifecycleKind::ParentExit => "parent exited",
        LifecycleKind::Reload => "reloaded",
        LifecycleKind::Watchdog => "idle timeout",
        LifecycleKind::Kill => "killed by its parent",
    }
}

/// Distance of an action from the pod it reached: 0 when addressed to the pod, 1 when cascaded.
fn distance(action: &LifecycleAction) -> u8 {
    u8::from(action.caused_by.is_some())
}

/// Per-pod resolution of overlapping actions (see the module docs for "nearest").
#[derive(Debug, Default)]
pub struct ActionResolver {
    governing: Option<LifecycleAction>,
}

/// What [`ActionResolver::offer`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The action is now the one the run reports.
    Governs,
    /// An equally near or nearer action arrived earlier and keeps governing.
    Superseded,
}

impl ActionResolver {
    pub fn new() -> Self {
        ActionResolver::default()
    }

    /// Offer an action that just reached the pod.
    pub fn offer(&mut self, action: LifecycleAction) -> Offered {
        match &self.governing {
            Some(current) if distance(current) <= distance(&action) => Offered::Superseded,
            _ => {
                self.governing = Some(action);
                Offered::Governs
            }
        }
    }

    /// The action the interrupted run reports, if any reached the pod.
    pub fn governing(&self) -> Option<&LifecycleAction> {
        self.governing.as_ref()
    }

    /// Forget the governing action (the run it applied to has ended).
    pub fn take(&mut self) -> Option<LifecycleAction> {
        self.governing.take()
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
