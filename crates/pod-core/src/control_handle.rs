//! [`RunControl`]: how other tasks (Ctrl-C handler, control socket, parent pod) interrupt the
//! active run with a lifecycle action.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::lifecycle::{ActionResolver, Offered};
use crate::record::LifecycleAction;
use pod_home::locked;

/// A cloneable handle to interrupt a pod's runs. Overlapping actions resolve to the nearest one
/// ([`ActionResolver`]). An action offered while no run is active interrupts the next run as
/// soon as it starts; the runtime clears the action when a run ends, whatever its outcome, so an
/// action that came too late to interrupt a run does not leak into the next one.
#[derive(Debug, Clone)]
pub struct RunControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    resolver: Mutex<ActionResolver>,
    signal: watch::Sender<bool>,
    /// An action is offered and not yet taken: read per stream event, so without a lock.
    offered: AtomicBool,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl::new()
    }
}

impl RunControl {
    pub fn new() -> RunControl {
        RunControl {
            inner: Arc::new(Inner {
                resolver: Mutex::new(ActionResolver::new()),
                signal: watch::channel(false).0,
                offered: AtomicBool::new(false),
            }),
        }
    }

    /// Interrupt the active (or next) run with `action`.
    pub fn interrupt(&self, action: LifecycleAction) -> Offered {
        // Flag and signal change under the lock `take` clears them under, so neither ever
        // outlives the action it announces.
        let mut resolver = locked(&self.inner.resolver);
        let offered = resolver.offer(action);
        self.inner.offered.store(true, Ordering::Release);
        self.inner.signal.send_replace(true);
        offered
    }

    /// Whether an action is waiting to interrupt the run ([`RunControl::governing`] says
    /// which); cheap enough to ask per stream event.
    pub fn is_interrupted(&self) -> bool {
        self.inner.offered.load(Ordering::Acquire)
    }

    /// The action that governs the interruption, if any.
    pub fn governing(&self) -> Option<LifecycleAction> {
        locked(&self.inner.resolver).governing().cloned()
    }

    /// Resolves once an action has been offered.
    pub async fn interrupted(&self) {
        let mut rx = self.inner.signal.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|interrupted| *interrupted).await;
    }

    /// Take the governing action and re-arm (called once the interrupted run is recorded).
    pub(crate) fn take(&self) -> Option<LifecycleAction> {
        let mut resolver = locked(&self.inner.resolver);
        let taken = resolver.take();
        self.inner.offered.store(false, Ordering::Release);
        self.inner.signal.send_replace(false);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{new_action, unknown_origin};
    use crate::record::LifecycleKind;

    #[test]
    fn the_flag_and_the_signal_follow_the_action_in_and_out() {
        let control = RunControl::new();
        assert!(!control.is_interrupted());
        let action = new_action(
            LifecycleKind::Stop,
            vec!["p".into()],
            unknown_origin(["test"]),
        );
        control.interrupt(action.clone());
        assert!(control.is_interrupted());
        assert!(*control.inner.signal.borrow());
        assert_eq!(control.take().map(|a| a.action_id), Some(action.action_id));
        assert!(!control.is_interrupted());
        assert!(
            !*control.inner.signal.borrow(),
            "no signal without an action"
        );
        assert!(control.governing().is_none());
    }
}
