//! `pods run --json`: the run as JSON Lines events on stdout (docs/RUN-JSON.md).

use std::time::Duration;

use serde_json::Value;

use pod_core::RunObserver;
use pod_core::record::{SideEffectClass, ToolOutcome};
use pod_core::run_events::{self, RunEvent};
use pod_provider::ProviderError;

use crate::failure::out;

/// `pods run --json`: every event a line on stdout (docs/RUN-JSON.md). Text and reasoning
/// deltas are buffered and written as one line per batch: whatever arrived until the provider
/// client waits on the network, a tool call starts, or the model request ends.
#[derive(Default)]
pub(super) struct JsonLines {
    state: std::sync::Mutex<JsonState>,
}

#[derive(Default)]
pub(super) struct JsonState {
    /// Deltas not written yet: reasoning (`true`) or text (`false`), and their text.
    pending: Option<(bool, String)>,
    pub(super) saw_reasoning: bool,
    /// `run_ended` is written: the stream is complete (the session log has anything later).
    pub(super) ended: bool,
}

impl JsonLines {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, JsonState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write `event` after any pending deltas. Writing under the lock keeps the lines of
    /// concurrent callers (child supervision, the run) whole and in order.
    pub(super) fn emit(&self, event: RunEvent) {
        let mut state = self.lock();
        Self::flush_locked(&mut state);
        Self::write(&state, &event);
    }

    pub(super) fn flush(&self) {
        Self::flush_locked(&mut self.lock());
    }

    fn flush_locked(state: &mut JsonState) {
        if let Some((reasoning, text)) = state.pending.take() {
            // Scrubbed per batch, so a key split across deltas is still caught.
            let text = pod_trace::scrub::scrub(&text).into_owned();
            let event = if reasoning {
                RunEvent::Reasoning { text }
            } else {
                RunEvent::Text { text }
            };
            Self::write(state, &event);
        }
    }

    fn write(state: &JsonState, event: &RunEvent) {
        if state.ended {
            return;
        }
        match serde_json::to_string(event) {
            Ok(mut line) => {
                line.push('\n');
                out::stdout(&line);
            }
            Err(error) => {
                out::stderr(&format!(
                    "error: cannot write a {} event as JSON: {error}\n",
                    event.kind()
                ));
            }
        }
    }

    fn delta(&self, reasoning: bool, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.saw_reasoning |= reasoning;
        if state.pending.as_ref().is_some_and(|(r, _)| *r != reasoning) {
            Self::flush_locked(&mut state);
        }
        state
            .pending
            .get_or_insert_with(|| (reasoning, String::new()))
            .1
            .push_str(text);
    }
}

impl RunObserver for JsonLines {
    fn on_run_started(&self, run_id: &str) {
        self.emit(RunEvent::RunStarted {
            run_id: run_id.to_owned(),
        });
    }

    fn on_text(&self, text: &str) {
        self.delta(false, text);
    }

    fn on_reasoning(&self, text: &str) {
        self.delta(true, text);
    }

    fn on_read_drained(&self) {
        self.flush();
    }

    fn on_turn_end(&self, _run_id: &str, _turn: u32) {
        self.flush();
    }

    fn on_request_finished(&self, turn: u32, usage: Option<&pod_provider::event::Usage>) {
        self.emit(RunEvent::Usage {
            turn,
            input_tokens: usage.and_then(|u| u.input_tokens),
            output_tokens: usage.and_then(|u| u.output_tokens),
            cached_input_tokens: usage.and_then(|u| u.cached_input_tokens),
            reasoning_tokens: usage.and_then(|u| u.reasoning_tokens),
        });
    }

    fn on_tool_call(&self, call_id: &str, tool: &str, side_effect: SideEffectClass, input: &Value) {
        // The arguments as the model sent them, minus any key it echoes.
        let text = pod_trace::scrub::scrub(&input.to_string()).into_owned();
        let input = serde_json::from_str(&text).unwrap_or(Value::String(text));
        self.emit(RunEvent::ToolCallStarted {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            side_effect,
            input,
        });
    }

    fn on_tool_decision(
        &self,
        call_id: &str,
        tool: &str,
        verdict: &pod_core::approval::Verdict,
        _waited: bool,
    ) {
        if pod_core::record::decision_is_notable(verdict.decision, verdict.source) {
            self.emit(RunEvent::ToolDecision {
                call_id: call_id.to_owned(),
                tool: tool.to_owned(),
                decision: verdict.decision,
                source: verdict.source,
                detail: pod_trace::scrub::scrub(&verdict.detail).into_owned(),
            });
        }
    }

    fn on_tool_result(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        outcome: ToolOutcome,
        output: &str,
    ) {
        let (preview, cut) = run_events::preview(output, run_events::TOOL_PREVIEW_MAX_BYTES);
        self.emit(RunEvent::ToolCallFinished {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            side_effect,
            outcome,
            output_bytes: output.len() as u64,
            preview: pod_trace::scrub::scrub(&preview).into_owned(),
            preview_truncated: cut,
        });
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.emit(RunEvent::RetryScheduled {
            attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            class: cause.class.as_str().to_owned(),
            message: pod_trace::scrub::scrub(&cause.message).into_owned(),
        });
    }

    fn on_child_spawned(&self, child: &pod_core::record::ChildSpawned) {
        self.emit(RunEvent::ChildSpawned {
            call_id: child.call_id.clone(),
            child_pod_id: child.child_pod_id.clone(),
            profile: child.profile.clone(),
        });
    }

    fn on_child_exited(&self, child: &pod_core::record::ChildExited) {
        self.emit(RunEvent::ChildExited {
            child_pod_id: child.child_pod_id.clone(),
            exit_code: child.exit_code,
            signal: child.signal,
            expected: child.expected,
        });
    }
}
