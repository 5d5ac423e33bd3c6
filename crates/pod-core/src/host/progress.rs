//! What the host knows of the active run's progress: when it last moved (for the idle
//! watchdog) and how far it got (for recording its end when the pod task cannot).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use pod_home::locked;

use crate::control::PodEvent;
use crate::lifecycle::mono_ms;
use crate::record::{RunPhase, SideEffectClass, ToolExecutionPhase};
use crate::runtime::{Pod, RunObserver};

/// When the active run last showed progress, for the idle watchdog, and where it was as far as
/// the host saw (for recording its end when the pod task cannot).
#[derive(Default)]
pub(super) struct Progress {
    /// The active run's id, once it is recorded as started.
    run_id: std::sync::Mutex<Option<String>>,
    last_ms: AtomicU64,
    /// Tool calls executing; a run inside a tool call is not idle.
    in_tool: AtomicU32,
    phase: std::sync::Mutex<RunPhase>,
    /// Visible text is recorded in `phase` already: later deltas need not take its lock.
    text_recorded: AtomicBool,
    /// Deltas arrived since the watchdog clock was last moved: it moves once per network read.
    moved_since_touch: AtomicBool,
    /// Side-effect class of each tool the pod offers.
    tools: std::sync::Mutex<HashMap<String, SideEffectClass>>,
}

impl Progress {
    pub(super) fn run_id(&self) -> Option<String> {
        locked(&self.run_id).clone()
    }

    pub(super) fn set_run_id(&self, run_id: Option<String>) {
        *locked(&self.run_id) = run_id;
    }

    pub(super) fn set_tools(&self, pod: &Pod) {
        *locked(&self.tools) = tool_classes(pod);
    }

    pub(super) fn touch(&self) {
        self.last_ms.store(mono_ms(), Ordering::Relaxed);
    }

    /// Milliseconds without progress; 0 while a tool call executes.
    pub(super) fn idle_ms(&self) -> u64 {
        if self.in_tool.load(Ordering::Relaxed) > 0 {
            return 0;
        }
        mono_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed))
    }

    pub(super) fn phase(&self) -> RunPhase {
        locked(&self.phase).clone()
    }

    fn update_phase(&self, change: impl FnOnce(&mut RunPhase)) {
        change(&mut locked(&self.phase));
    }

    /// A new run: nothing seen yet.
    fn reset_phase(&self) {
        self.update_phase(|phase| *phase = RunPhase::default());
        self.text_recorded.store(false, Ordering::Relaxed);
    }

    /// A text delta arrived. Called per delta, so it takes no lock and reads no clock once the
    /// run's first visible text is recorded; the watchdog clock moves when the read is drained
    /// ([`Progress::read_drained`]).
    fn text_delta(&self, visible: bool) {
        self.moved_since_touch.store(true, Ordering::Relaxed);
        if visible && self.text_recorded.load(Ordering::Relaxed) {
            return;
        }
        self.update_phase(|phase| {
            phase.provider_progress_seen = true;
            phase.visible_output_seen |= visible;
        });
        if visible {
            self.text_recorded.store(true, Ordering::Relaxed);
        }
    }

    /// A network read is drained: the deltas it carried are progress.
    fn read_drained(&self) {
        if self.moved_since_touch.swap(false, Ordering::Relaxed) {
            self.touch();
        }
    }

    fn tool_started(&self, tool: &str) {
        let class = locked(&self.tools).get(tool).copied();
        self.update_phase(|phase| {
            phase.provider_progress_seen = true;
            phase.tool_execution = ToolExecutionPhase::Started;
            if let Some(class) = class
                && !phase.side_effects_started.contains(&class)
            {
                phase.side_effects_started.push(class);
            }
        });
    }
}

/// Forwards to the presenting observer, records progress for the watchdog, and tells control
/// subscribers when the run starts and each turn ends.
pub(super) struct Watched {
    pub(super) inner: Arc<dyn RunObserver>,
    pub(super) progress: Arc<Progress>,
    pub(super) events: tokio::sync::broadcast::Sender<PodEvent>,
    pub(super) request_id: Option<String>,
}

impl RunObserver for Watched {
    fn on_run_started(&self, run_id: &str) {
        self.progress.reset_phase();
        self.progress.set_run_id(Some(run_id.to_owned()));
        let _ = self.events.send(PodEvent::RunStarted {
            run_id: run_id.to_owned(),
            request_id: self.request_id.clone(),
        });
        self.inner.on_run_started(run_id);
    }

    fn on_turn_end(&self, run_id: &str, turn: u32) {
        self.progress.touch();
        self.progress
            .update_phase(|phase| phase.provider_progress_seen = true);
        let _ = self.events.send(PodEvent::TurnEnded {
            run_id: run_id.to_owned(),
            turn,
        });
        self.inner.on_turn_end(run_id, turn);
    }

    fn on_first_event(&self) {
        self.progress.touch();
        self.inner.on_first_event();
    }

    fn on_text(&self, text: &str) {
        self.progress.text_delta(!text.is_empty());
        self.inner.on_text(text);
    }

    fn on_read_drained(&self) {
        self.progress.read_drained();
        self.inner.on_read_drained();
    }

    fn on_reasoning(&self, text: &str) {
        self.progress.touch();
        self.progress
            .update_phase(|phase| phase.provider_progress_seen = true);
        self.inner.on_reasoning(text);
    }

    fn on_request_finished(&self, turn: u32, usage: Option<&pod_provider::event::Usage>) {
        self.progress.touch();
        self.inner.on_request_finished(turn, usage);
    }

    fn on_tool_call(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        input: &serde_json::Value,
    ) {
        self.progress.in_tool.fetch_add(1, Ordering::Relaxed);
        self.progress.touch();
        self.progress.tool_started(tool);
        self.inner.on_tool_call(call_id, tool, side_effect, input);
    }

    fn on_tool_result(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        outcome: crate::record::ToolOutcome,
        output: &str,
    ) {
        let before =
            self.progress
                .in_tool
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.progress
                .update_phase(|phase| phase.tool_execution = ToolExecutionPhase::Completed);
        }
        self.progress.touch();
        self.inner
            .on_tool_result(call_id, tool, side_effect, outcome, output);
    }

    /// Never started: progress, but no tool phase and no side effect.
    fn on_tool_rejected(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        raw_input: &serde_json::Value,
        error: &str,
    ) {
        self.progress.touch();
        self.inner
            .on_tool_rejected(call_id, tool, side_effect, raw_input, error);
    }

    /// Waiting for a person or the parent is not idleness, like time inside a tool call.
    fn on_approval_pending(&self, call_id: &str, tool: &str) {
        self.progress.in_tool.fetch_add(1, Ordering::Relaxed);
        self.inner.on_approval_pending(call_id, tool);
    }

    fn on_tool_decision(
        &self,
        call_id: &str,
        tool: &str,
        verdict: &crate::approval::Verdict,
        waited: bool,
    ) {
        if waited {
            let _ = self
                .progress
                .in_tool
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        self.progress.touch();
        self.inner.on_tool_decision(call_id, tool, verdict, waited);
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &pod_provider::ProviderError) {
        self.progress.touch();
        self.inner.on_retry(attempt, delay, cause);
    }
}

/// The tool names of `pod` with their side-effect classes.
fn tool_classes(pod: &Pod) -> HashMap<String, SideEffectClass> {
    pod.tools()
        .names()
        .into_iter()
        .filter_map(|name| {
            pod.tools()
                .get(name)
                .map(|tool| (name.to_owned(), tool.side_effect()))
        })
        .collect()
}

/// The idle watchdog: it ticks at a quarter of `limits.watchdog_ms` (at least every 10 ms) and
/// ends a run that showed no progress for that long. `0` turns it off.
pub(super) struct Watchdog {
    idle_limit_ms: u64,
    ticks: tokio::time::Interval,
}

impl Watchdog {
    pub(super) fn new(idle_limit_ms: u64) -> Watchdog {
        let mut ticks = tokio::time::interval(Duration::from_millis((idle_limit_ms / 4).max(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog {
            idle_limit_ms,
            ticks,
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.idle_limit_ms > 0
    }

    pub(super) fn idle_limit_ms(&self) -> u64 {
        self.idle_limit_ms
    }

    pub(super) async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    /// Whether the run of `progress` has been idle for the limit.
    pub(super) fn expired(&self, progress: &Progress) -> bool {
        progress.idle_ms() >= self.idle_limit_ms
    }
}
