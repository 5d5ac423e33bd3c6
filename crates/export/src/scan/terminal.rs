//! Terminal entries (`run_errored`, `run_interrupted`) read leniently: every field is
//! optional, so a field an older writer left out is reported missing instead of making the
//! whole entry unreadable.

use serde::Deserialize;
use serde_json::Value;

use pod_protocol::record::{LifecycleAction, StopReason};

use crate::document::UnreadableEntry;

use super::lines::top_level_str;
use super::{NAME_MAX, ScanState, SegmentScan, preview};

/// How a run ended, as written. Every fact of a terminal entry is optional here: what the entry
/// lacks is in [`super::RunAcc::terminal_missing`].
#[derive(Debug)]
pub(crate) enum Terminal {
    Completed {
        text: String,
        /// `None` when the entry predates stop reasons.
        stop_reason: Option<StopReason>,
    },
    Errored {
        /// `None` when the entry has no `error` object.
        error: Option<ErrorLite>,
        phase: PhaseLite,
    },
    Interrupted {
        reason: Option<String>,
        /// `None` when the entry records no action or an action this build cannot read.
        action: Option<LifecycleAction>,
        phase: PhaseLite,
    },
}

/// The structured provider error of a `run_errored` entry, each field as found.
#[derive(Debug, Default)]
pub(crate) struct ErrorLite {
    pub class: Option<String>,
    pub code: Option<String>,
    pub http_status: Option<u16>,
    pub provider_request_id: Option<String>,
    pub retryable: Option<bool>,
    pub message: Option<String>,
}

/// The `phase` of a terminal entry, each field as found (`None`: absent or unreadable).
#[derive(Debug, Default)]
pub(crate) struct PhaseLite {
    pub provider_progress_seen: Option<bool>,
    pub visible_output_seen: Option<bool>,
    pub tool_execution: Option<String>,
    pub side_effects_started: Option<Vec<String>>,
}

/// A terminal entry with every field optional. Sub-objects are kept as JSON values and read field
/// by field, so a missing or mistyped field is reported, never defaulted.
#[derive(Deserialize)]
pub(super) struct TerminalLite {
    #[serde(default)]
    pub(super) seq: Option<Value>,
    #[serde(default)]
    pub(super) ts: Option<Value>,
    #[serde(default)]
    pub(super) run_id: Option<Value>,
    #[serde(default)]
    pub(super) reason: Option<Value>,
    #[serde(default)]
    pub(super) action: Option<Value>,
    #[serde(default)]
    pub(super) phase: Option<Value>,
    #[serde(default)]
    pub(super) error: Option<Value>,
}

impl SegmentScan {
    /// Read a terminal entry leniently: every absent or unreadable fact goes to the run's
    /// `terminal_missing`. A line that is not JSON at all is still attributed to its run when the
    /// run id can be found in it, so the run shows an unreadable terminal entry instead of none.
    pub(super) fn handle_terminal(
        &mut self,
        state: &mut ScanState,
        line: &[u8],
        kind: &str,
        line_no: u64,
        torn: bool,
    ) -> bool {
        let lite = match serde_json::from_slice::<TerminalLite>(line) {
            Ok(lite) => lite,
            Err(error) => {
                if let Some(run_id) = top_level_str(line, "run_id") {
                    let run_id = run_id.to_owned();
                    let run = self.run_mut(state, &run_id);
                    run.unreadable_terminal.get_or_insert(UnreadableEntry {
                        line: line_no,
                        kind: kind.to_owned(),
                        torn,
                        error: parse_error_words(&error),
                    });
                }
                return false;
            }
        };
        let Some(Value::String(run_id)) = lite.run_id else {
            return false;
        };
        let ts = match lite.ts {
            Some(Value::String(ts)) => Some(ts),
            _ => None,
        };
        match lite.seq.as_ref().and_then(Value::as_u64) {
            Some(seq) => self.note_entry(seq, kind, ts.as_deref()),
            None => {
                // Counted, but a missing sequence number cannot be checked for gaps.
                self.integrity.entries += 1;
                self.last_kind = Some(kind.to_owned());
                if let Some(ts) = &ts {
                    self.last_ts = Some(ts.clone());
                }
            }
        }
        let mut missing = Vec::new();
        let phase = read_phase(lite.phase.as_ref(), &mut missing);
        let terminal = if kind == "run_errored" {
            let error = match lite.error {
                Some(Value::Object(error)) => Some(read_error(&error, &mut missing)),
                _ => {
                    missing.push("error".to_owned());
                    None
                }
            };
            Terminal::Errored { error, phase }
        } else {
            let reason = match lite.reason {
                Some(Value::String(r)) => Some(preview(&r)),
                _ => {
                    missing.push("interrupt.reason".to_owned());
                    None
                }
            };
            // An absent action is reported by the summary (`interrupt.action`); one that is
            // present but unreadable is the same unknown.
            let action = lite
                .action
                .and_then(|a| serde_json::from_value::<LifecycleAction>(a).ok());
            Terminal::Interrupted {
                reason,
                action,
                phase,
            }
        };
        let run = self.run_mut(state, &run_id);
        run.ended_at = ts;
        run.terminal = Some(terminal);
        run.terminal_missing = missing;
        true
    }
}

/// The `phase` object of a terminal entry, field by field.
pub(super) fn read_phase(phase: Option<&Value>, missing: &mut Vec<String>) -> PhaseLite {
    let empty = serde_json::Map::new();
    let phase = match phase {
        Some(Value::Object(p)) => p,
        _ => &empty,
    };
    let mut flag = |key: &str| match phase.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => {
            missing.push(format!("phase.{key}"));
            None
        }
    };
    let provider_progress_seen = flag("provider_progress_seen");
    let visible_output_seen = flag("visible_output_seen");
    let tool_execution = match phase.get("tool_execution").and_then(name) {
        Some(t) => Some(t),
        None => {
            missing.push("phase.tool_execution".to_owned());
            None
        }
    };
    let side_effects_started = match phase.get("side_effects_started") {
        Some(Value::Array(items)) => items.iter().map(name).collect::<Option<Vec<_>>>(),
        _ => None,
    };
    if side_effects_started.is_none() {
        missing.push("phase.side_effects_started".to_owned());
    }
    PhaseLite {
        provider_progress_seen,
        visible_output_seen,
        tool_execution,
        side_effects_started,
    }
}

/// The `error` object of a `run_errored` entry. `code`, `http_status` and
/// `provider_request_id` are omitted by every writer when there is none, so their absence is
/// not a missing fact; `class`, `retryable` and `message` are always written.
pub(super) fn read_error(
    error: &serde_json::Map<String, Value>,
    missing: &mut Vec<String>,
) -> ErrorLite {
    let text = |key: &str| error.get(key).and_then(Value::as_str).map(preview);
    let class = error.get("class").and_then(name);
    if class.is_none() {
        missing.push("error.class".to_owned());
    }
    let retryable = error.get("retryable").and_then(Value::as_bool);
    if retryable.is_none() {
        missing.push("error.retryable".to_owned());
    }
    let message = text("message");
    if message.is_none() {
        missing.push("error.message".to_owned());
    }
    ErrorLite {
        class,
        code: error.get("code").and_then(name),
        http_status: error
            .get("http_status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        provider_request_id: text("provider_request_id"),
        retryable,
        message,
    }
}

/// A short name-like string (a class or a kind), as written; longer values are not names.
fn name(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|s| s.len() <= NAME_MAX)
        .map(str::to_owned)
}

/// Why a line is not JSON, without quoting any of it.
fn parse_error_words(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "the line ends before the entry does",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "a field has the wrong type",
        serde_json::error::Category::Io => "read error",
    };
    format!("{what} (column {})", error.column())
}
