//! Streaming scan of one session-log segment into per-run accumulators.
//!
//! Memory stays bounded by the runs not yet final and their in-flight tool calls, not by the
//! log size or the number of runs: a run is handed to the caller (and forgotten) once it has a
//! terminal entry, every run that started before it is final too, and a later run has started
//! (entries of a run that come after that are taken for a run of their own, with no
//! `run_started`; no writer writes entries for a run after its terminal one). The rest are
//! held until the end of the log, where what they need from the whole log is known. Lines
//! are read into one reused buffer, the top-level `kind` is found by walking the start of
//! the line (a full parse only when that cannot tell), and the bulky kinds (assistant messages,
//! tool outputs) are parsed into small borrowed shapes that skip their text. Only the rare
//! entries that carry facts (run boundaries, lifecycle actions, segment markers) are parsed into
//! the full record types — except terminal entries (`run_errored`, `run_interrupted`), which are
//! read into lenient local shapes so that a field an older writer left out is reported missing
//! instead of making the whole entry unreadable.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;

use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use pod_core::record::{
    ChildExited, LifecycleAction, LifecycleActionRecorded, LogBody, LogEntry, RunTrigger,
    SegmentStarted, SideEffectClass,
};

use pod_core::UsageTotals;
use pod_core::record::StopReason;

use crate::document::{LogIntegrity, SeqGap, ToolCallDoc, UnreadableEntry};

/// Longest line kept; longer ones are counted as unparseable without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Gap and bad-line lists keep this many entries (the counts are exact).
const LIST_CAP: usize = 100;
/// Characters of a prompt, final text, other free text or tool input kept in the document.
pub(crate) const PREVIEW_CHARS: usize = 2000;

/// Everything the export needs from one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub segment_id: String,
    pub log_rel: String,
    pub started: Option<(SegmentStarted, String)>,
    pub closed: Option<String>,
    /// Runs not handed out yet, in order of their first entry. At the end of the scan: the
    /// runs without a terminal entry and those after them.
    pub runs: VecDeque<RunAcc>,
    /// Runs that became final, not handed out yet.
    ready: Vec<RunAcc>,
    /// Lifecycle actions recorded in this segment, with the entry timestamp.
    pub actions: Vec<LifecycleActionRecorded>,
    /// `child_exited` entries: how this pod's children ended, as the parent saw it.
    pub child_exits: Vec<ChildExited>,
    pub last_seq: Option<u64>,
    pub last_kind: Option<String>,
    pub last_ts: Option<String>,
    pub integrity: LogIntegrity,
}

/// How a run ended, as written. Every fact of a terminal entry is optional here: what the entry
/// lacks is in [`RunAcc::terminal_missing`].
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

/// One run as accumulated from its entries.
#[derive(Debug, Default)]
pub(crate) struct RunAcc {
    pub run_id: String,
    pub started_at: Option<String>,
    pub trigger: Option<RunTrigger>,
    pub request_id: Option<String>,
    pub input: Option<String>,
    pub seen_run_started: bool,
    pub ended_at: Option<String>,
    pub terminal: Option<Terminal>,
    /// Keys the terminal entry lacked (older writers), as `missing_provenance` facts.
    pub terminal_missing: Vec<String>,
    /// A terminal-kind line of this run that could not be read at all.
    pub unreadable_terminal: Option<UnreadableEntry>,
    pub provider_requests: u64,
    /// `provider_request_started` entries of first attempts: the model requests themselves.
    pub first_attempts: u64,
    pub model: Option<String>,
    pub assistant_messages: u64,
    pub visible_text: bool,
    /// A provider request started after the last assistant message: its stream may have shown
    /// output the log never received.
    pub request_open: bool,
    pub tools_started: u64,
    pub tools_finished: u64,
    /// Tool calls answered with `rejected` (they never ran).
    pub tools_rejected: u64,
    /// Usage over the run's `provider_request_finished` entries.
    pub usage: UsageTotals,
    /// Unhandled stream events by name, over the same entries.
    pub unhandled: BTreeMap<String, u64>,
    pub in_flight: Vec<ToolCallDoc>,
    pub side_effects: Vec<SideEffectClass>,
    pub actions_seen: Vec<String>,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

#[derive(Deserialize)]
struct AssistantLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    /// Skipped without unescaping; emptiness is read from the raw line.
    #[allow(dead_code)]
    text: IgnoredAny,
}

#[derive(Deserialize)]
struct ToolFinishedLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[allow(dead_code)]
    output: IgnoredAny,
    #[serde(default, borrow)]
    outcome: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RequestLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    attempt: Option<u32>,
}

/// `run_started`: the fields of [`pod_core::record::RunStarted`], strings borrowed.
#[derive(Deserialize)]
struct RunStartedLite<'a> {
    seq: u64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    trigger: RunTrigger,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(borrow)]
    input: Cow<'a, str>,
}

/// `run_completed`: the fields of [`pod_core::record::RunCompleted`], strings borrowed.
#[derive(Deserialize)]
struct RunCompletedLite<'a> {
    seq: u64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[allow(dead_code)]
    turns: u32,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)]
    reason: Cow<'a, str>,
    #[serde(default)]
    stop_reason: Option<StopReason>,
}

#[derive(Deserialize)]
struct ToolStartedLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    call_id: String,
    tool: String,
    side_effect: SideEffectClass,
    #[serde(borrow)]
    input: &'a RawValue,
}

/// A terminal entry with every field optional. Sub-objects are kept as JSON values and read field
/// by field, so a missing or mistyped field is reported, never defaulted.
#[derive(Deserialize)]
struct TerminalLite {
    #[serde(default)]
    seq: Option<Value>,
    #[serde(default)]
    ts: Option<Value>,
    #[serde(default)]
    run_id: Option<Value>,
    #[serde(default)]
    reason: Option<Value>,
    #[serde(default)]
    action: Option<Value>,
    #[serde(default)]
    phase: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// Longest kind-like name (class, phase, side-effect class) kept as written.
const NAME_MAX: usize = 64;

/// Kinds of `LogBody` this build understands.
const KNOWN_KINDS: &[&str] = &[
    "segment_started",
    "run_started",
    "provider_request_started",
    "provider_request_finished",
    "assistant_message",
    "tool_call_started",
    "tool_call_finished",
    "lifecycle_action",
    "child_spawned",
    "child_exited",
    "run_completed",
    "run_errored",
    "run_interrupted",
    "segment_closed",
];

/// A [`LogIntegrity`] with nothing read yet.
pub(crate) fn empty_integrity(pod_id: &str, log: String, trace_sidecar: bool) -> LogIntegrity {
    LogIntegrity {
        pod_id: pod_id.to_owned(),
        log,
        read_error: None,
        bytes: 0,
        lines: 0,
        entries: 0,
        torn_final_line: false,
        sequence_gaps: Vec::new(),
        sequence_gap_count: 0,
        unparseable_count: 0,
        unparseable_lines: Vec::new(),
        unknown_kinds: BTreeMap::new(),
        trace_sidecar,
    }
}

/// Scan one segment log. `log_rel` is the path relative to the pod directory. A log that cannot
/// be opened or read to its end is not an error: the scan holds what was read before, and
/// `integrity.read_error` says why it stopped.
///
/// `on_run` gets each run as soon as it is final, with the scan so far; an error from it stops
/// the scan. With `probe`, the scan stops at the first `segment_started` entry: enough to tell
/// whether the log is a segment at all (see [`SegmentScan::is_a_segment`]).
pub(crate) fn scan_segment<E>(
    pod_id: &str,
    path: &Path,
    log_rel: String,
    segment_id: String,
    trace_sidecar: bool,
    probe: bool,
    on_run: &mut dyn FnMut(&SegmentScan, RunAcc) -> Result<(), E>,
) -> Result<SegmentScan, E> {
    let mut scan = SegmentScan {
        segment_id,
        log_rel: log_rel.clone(),
        started: None,
        closed: None,
        runs: VecDeque::new(),
        ready: Vec::new(),
        actions: Vec::new(),
        child_exits: Vec::new(),
        last_seq: None,
        last_kind: None,
        last_ts: None,
        integrity: empty_integrity(pod_id, log_rel, trace_sidecar),
    };
    // Anything but a regular file (a FIFO, a device) would block or never end.
    let file = match pod_core::home::open_regular(path) {
        Ok(file) => file,
        Err(error) => {
            scan.integrity.read_error = Some(format!("could not open the log: {error}"));
            return Ok(scan);
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut state = ScanState::default();
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let read = match read_line(&mut reader, &mut line) {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(error) => {
                scan.integrity.read_error = Some(format!(
                    "reading stopped at line {}: {error}",
                    scan.integrity.lines + 1
                ));
                break;
            }
        };
        scan.integrity.bytes += read.bytes;
        scan.integrity.lines += 1;
        let line_no = scan.integrity.lines;
        if read.oversized {
            scan.mark_unparseable(line_no);
            continue;
        }
        let body = trim_line(&line);
        if body.is_empty() {
            continue;
        }
        let parsed = scan.handle_line(&mut state, body, line_no, !read.terminated);
        if !parsed {
            if !read.terminated {
                // A final line without its newline that does not parse: the writer was cut off.
                scan.integrity.torn_final_line = true;
            } else {
                scan.mark_unparseable(line_no);
            }
        }
        if probe && scan.started.is_some() {
            return Ok(scan);
        }
        if !scan.ready.is_empty() {
            let mut ready = std::mem::take(&mut scan.ready);
            for run in ready.drain(..) {
                on_run(&scan, run)?;
            }
            scan.ready = ready;
        }
    }
    Ok(scan)
}

#[derive(Default)]
struct ScanState {
    /// Run id to its place in the order of first entries (counted from the segment's start).
    index: HashMap<String, usize>,
    /// Runs handed out (or made ready) so far: the place of `runs[0]`.
    base: usize,
}

impl RunAcc {
    /// Has a terminal entry, readable or not: nothing later in the log changes its summary.
    pub(crate) fn is_final(&self) -> bool {
        self.terminal.is_some() || self.unreadable_terminal.is_some()
    }
}

/// Read one line into `buf` (without keeping more than [`MAX_LINE_BYTES`]); `None` at EOF.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<pod_core::home::LineRead>> {
    pod_core::home::read_line_bounded(reader, buf, MAX_LINE_BYTES)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

/// The entry's own (top-level) `kind`. The line's structure is walked up to that key, so a
/// `"kind"` nested in a value is never taken for it; the writer puts `kind` third, so the walk
/// is short. When the walk cannot tell (the kind has escapes, or the line breaks before it), the
/// whole line is parsed.
fn find_kind(line: &[u8]) -> Option<Cow<'_, str>> {
    match walk_top_level(line, b"kind") {
        Walk::Found(kind) => std::str::from_utf8(kind).ok().map(Cow::Borrowed),
        Walk::Absent => None,
        Walk::Unsure => serde_json::from_slice::<KindOnly>(line)
            .ok()
            .map(|k| Cow::Owned(k.kind)),
    }
}

impl SegmentScan {
    fn mark_unparseable(&mut self, line_no: u64) {
        self.integrity.unparseable_count += 1;
        if self.integrity.unparseable_lines.len() < LIST_CAP {
            self.integrity.unparseable_lines.push(line_no);
        }
    }

    fn note_seq(&mut self, seq: u64) {
        // No entry follows `u64::MAX` without a gap.
        if let Some(prev) = self.last_seq
            && prev.checked_add(1) != Some(seq)
        {
            self.integrity.sequence_gap_count += 1;
            if self.integrity.sequence_gaps.len() < LIST_CAP {
                self.integrity.sequence_gaps.push(SeqGap {
                    after: prev,
                    next: seq,
                });
            }
        }
        self.last_seq = Some(seq);
        self.integrity.entries += 1;
    }

    fn run_mut(&mut self, state: &mut ScanState, run_id: &str) -> &mut RunAcc {
        let i = match state.index.get(run_id) {
            Some(i) => *i - state.base,
            None => {
                // A new run: the final runs before it are done.
                while self.runs.front().is_some_and(RunAcc::is_final) {
                    if let Some(run) = self.runs.pop_front() {
                        state.index.remove(&run.run_id);
                        state.base += 1;
                        self.ready.push(run);
                    }
                }
                self.runs.push_back(RunAcc {
                    run_id: run_id.to_owned(),
                    ..RunAcc::default()
                });
                state
                    .index
                    .insert(run_id.to_owned(), state.base + self.runs.len() - 1);
                self.runs.len() - 1
            }
        };
        &mut self.runs[i]
    }

    /// Whether this log counts as a later segment of its pod (a later owner): it was read to
    /// its end, or at least showed its `segment_started`. An unopenable file named like a log
    /// may be no segment at all.
    pub(crate) fn is_a_segment(&self) -> bool {
        self.integrity.read_error.is_none() || self.started.is_some()
    }

    /// Handle one non-empty line; false when it is not a valid entry. `torn`: the line is the
    /// last one and has no newline.
    fn handle_line(
        &mut self,
        state: &mut ScanState,
        line: &[u8],
        line_no: u64,
        torn: bool,
    ) -> bool {
        let Some(kind) = find_kind(line) else {
            return false;
        };
        let kind: &str = &kind;
        match kind {
            "assistant_message" => {
                let Ok(m) = serde_json::from_slice::<AssistantLite>(line) else {
                    return false;
                };
                // `"text":""` with unescaped quotes can only be the key itself: string
                // contents have their quotes escaped.
                static EMPTY_TEXT: std::sync::LazyLock<memmem::Finder<'static>> =
                    std::sync::LazyLock::new(|| memmem::Finder::new(b"\"text\":\"\""));
                let empty = EMPTY_TEXT.find(line).is_some();
                self.note_entry(m.seq, kind, None);
                let run = self.run_mut(state, &m.run_id);
                run.assistant_messages += 1;
                run.request_open = false;
                run.visible_text |= !empty;
                true
            }
            "tool_call_finished" => {
                let Ok(m) = serde_json::from_slice::<ToolFinishedLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, None);
                let run = self.run_mut(state, &m.run_id);
                // A rejected call never started: it is neither finished nor in flight.
                if m.outcome.as_deref() == Some("rejected") {
                    run.tools_rejected += 1;
                } else {
                    run.tools_finished += 1;
                    run.in_flight.retain(|c| c.call_id != m.call_id);
                }
                true
            }
            "provider_request_started" => {
                let Ok(m) = serde_json::from_slice::<RequestLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, None);
                let run = self.run_mut(state, &m.run_id);
                run.provider_requests += 1;
                if m.attempt.is_none_or(|a| a <= 1) {
                    run.first_attempts += 1;
                }
                run.request_open = true;
                if run.model.as_deref() != Some(&*m.model) {
                    run.model = Some(preview(&m.model));
                }
                true
            }
            // The two run boundaries are on every run: read into borrowed shapes that hold the
            // same fields with the same types as the record types, so a line is valid exactly
            // when the full parse would accept it.
            "run_started" => {
                let Ok(m) = serde_json::from_slice::<RunStartedLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, Some(&m.ts));
                let run = self.run_mut(state, &m.run_id);
                run.seen_run_started = true;
                run.started_at = Some(m.ts.into_owned());
                run.trigger = Some(m.trigger);
                run.request_id = m.request_id;
                run.input = Some(preview(&m.input));
                true
            }
            "run_completed" => {
                let Ok(m) = serde_json::from_slice::<RunCompletedLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, Some(&m.ts));
                let run = self.run_mut(state, &m.run_id);
                run.ended_at = Some(m.ts.into_owned());
                run.terminal = Some(Terminal::Completed {
                    text: preview(&m.text),
                    stop_reason: m.stop_reason,
                });
                true
            }
            "tool_call_started" => {
                let Ok(m) = serde_json::from_slice::<ToolStartedLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, None);
                let run = self.run_mut(state, &m.run_id);
                run.tools_started += 1;
                if !run.side_effects.contains(&m.side_effect) {
                    run.side_effects.push(m.side_effect);
                }
                let (input, input_bytes, input_truncated) = tool_input(m.input);
                run.in_flight.push(ToolCallDoc {
                    call_id: m.call_id,
                    tool: m.tool,
                    side_effect: side_effect_name(m.side_effect).to_owned(),
                    input,
                    input_bytes,
                    input_truncated,
                });
                true
            }
            "run_errored" | "run_interrupted" => {
                let kind = kind.to_owned();
                self.handle_terminal(state, line, &kind, line_no, torn)
            }
            // Not a kind name: a damaged line, not a kind from a newer writer.
            other if other.len() > NAME_MAX => false,
            k if KNOWN_KINDS.contains(&k) => {
                let Ok(entry) = serde_json::from_slice::<LogEntry>(line) else {
                    return false;
                };
                self.handle_entry(state, entry);
                true
            }
            other => {
                // A kind from a newer writer: counted, its sequence number still checked.
                let Ok(s) = serde_json::from_slice::<SeqOnly>(line) else {
                    return false;
                };
                let other = other.to_owned();
                self.note_entry(s.seq, &other, None);
                *self.integrity.unknown_kinds.entry(other).or_insert(0) += 1;
                true
            }
        }
    }

    fn note_entry(&mut self, seq: u64, kind: &str, ts: Option<&str>) {
        self.note_seq(seq);
        // Both change on most lines: their buffers are reused.
        match &mut self.last_kind {
            Some(last) if last == kind => {}
            Some(last) => {
                last.clear();
                last.push_str(kind);
            }
            None => self.last_kind = Some(kind.to_owned()),
        }
        if let Some(ts) = ts {
            match &mut self.last_ts {
                Some(last) => {
                    last.clear();
                    last.push_str(ts);
                }
                None => self.last_ts = Some(ts.to_owned()),
            }
        }
    }

    /// Read a terminal entry leniently: every absent or unreadable fact goes to the run's
    /// `terminal_missing`. A line that is not JSON at all is still attributed to its run when the
    /// run id can be found in it, so the run shows an unreadable terminal entry instead of none.
    fn handle_terminal(
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

    fn handle_entry(&mut self, state: &mut ScanState, entry: LogEntry) {
        let LogEntry { seq, ts, body } = entry;
        let kind = kind_name(&body);
        self.note_entry(seq, kind, Some(&ts));
        match body {
            LogBody::SegmentStarted(mut s) => {
                s.writer = preview(&s.writer);
                self.started = Some((s, ts));
            }
            LogBody::RunStarted(r) => {
                let run = self.run_mut(state, &r.run_id);
                run.seen_run_started = true;
                run.started_at = Some(ts);
                run.trigger = Some(r.trigger);
                run.request_id = r.request_id;
                run.input = Some(preview(&r.input));
            }
            LogBody::LifecycleAction(a) => {
                if let Some(run_id) = &a.active_run_id {
                    let id = a.action.action_id.clone();
                    self.run_mut(state, run_id).actions_seen.push(id);
                }
                self.actions.push(a);
            }
            LogBody::RunCompleted(c) => {
                let run = self.run_mut(state, &c.run_id);
                run.ended_at = Some(ts);
                run.terminal = Some(Terminal::Completed {
                    text: preview(&c.text),
                    stop_reason: c.stop_reason,
                });
            }
            LogBody::ProviderRequestFinished(f) => {
                let run = self.run_mut(state, &f.run_id);
                run.usage.add(f.usage.as_ref());
                for (event, count) in f.unhandled {
                    // A name longer than a name is cut (the count is kept).
                    let event = match event.char_indices().nth(NAME_MAX) {
                        Some((cut, _)) => format!("{}…", &event[..cut]),
                        None => event,
                    };
                    let total = run.unhandled.entry(event).or_insert(0);
                    *total = total.saturating_add(count);
                }
            }
            LogBody::SegmentClosed(c) => self.closed = Some(preview(&c.reason)),
            LogBody::ChildExited(c) => self.child_exits.push(c),
            // Child bookkeeping carries nothing the summaries need; assistant, request, tool and
            // terminal (errored, interrupted) entries take their own paths in `handle_line`.
            _ => {}
        }
    }
}

fn kind_name(body: &LogBody) -> &'static str {
    match body {
        LogBody::SegmentStarted(_) => "segment_started",
        LogBody::RunStarted(_) => "run_started",
        LogBody::ProviderRequestStarted(_) => "provider_request_started",
        LogBody::ProviderRequestFinished(_) => "provider_request_finished",
        LogBody::AssistantMessage(_) => "assistant_message",
        LogBody::ToolCallStarted(_) => "tool_call_started",
        LogBody::ToolCallFinished(_) => "tool_call_finished",
        LogBody::LifecycleAction(_) => "lifecycle_action",
        LogBody::ChildSpawned(_) => "child_spawned",
        LogBody::ChildExited(_) => "child_exited",
        LogBody::RunCompleted(_) => "run_completed",
        LogBody::RunErrored(_) => "run_errored",
        LogBody::RunInterrupted(_) => "run_interrupted",
        LogBody::SegmentClosed(_) => "segment_closed",
        _ => "unknown",
    }
}

pub(crate) fn side_effect_name(class: SideEffectClass) -> &'static str {
    match class {
        SideEffectClass::ReadOnly => "read_only",
        SideEffectClass::LocalWrite => "local_write",
        SideEffectClass::Process => "process",
        SideEffectClass::Spawn => "spawn",
    }
}

/// A tool input for the document: whole when its JSON text is at most [`PREVIEW_CHARS`]
/// characters, else the first [`PREVIEW_CHARS`] characters of that text as a string. Also the
/// length of the text in bytes, and whether it was cut.
pub(crate) fn tool_input(raw: &RawValue) -> (Value, u64, bool) {
    let text = raw.get();
    let bytes = text.len() as u64;
    match text.char_indices().nth(PREVIEW_CHARS) {
        None => match serde_json::from_str(text) {
            Ok(value) => (value, bytes, false),
            Err(_) => (Value::String(text.to_owned()), bytes, false),
        },
        Some((cut, _)) => (Value::String(format!("{}…", &text[..cut])), bytes, true),
    }
}

/// The first [`PREVIEW_CHARS`] characters, with a marker when cut.
pub(crate) fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… [{} bytes in all]", &text[..cut], text.len()),
    }
}

/// The `phase` object of a terminal entry, field by field.
fn read_phase(phase: Option<&Value>, missing: &mut Vec<String>) -> PhaseLite {
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
fn read_error(error: &serde_json::Map<String, Value>, missing: &mut Vec<String>) -> ErrorLite {
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

/// The string value of the top-level `key` of the JSON object in `line`, found by walking the
/// line's structure (nesting and strings) without parsing it, so it also works on a damaged or
/// torn line up to the damage. `None` when the key is not found before the line ends or breaks,
/// when its value is not a string, or when that string has escapes.
pub(crate) fn top_level_str<'a>(line: &'a [u8], key: &str) -> Option<&'a str> {
    match walk_top_level(line, key.as_bytes()) {
        Walk::Found(value) => std::str::from_utf8(value).ok(),
        Walk::Absent | Walk::Unsure => None,
    }
}

/// What [`walk_top_level`] found.
#[derive(Debug, PartialEq, Eq)]
enum Walk<'a> {
    /// The key's string value (raw bytes, no escapes).
    Found(&'a [u8]),
    /// The whole line was walked: it is an object without that key as a string.
    Absent,
    /// The line is damaged or the value has escapes: only a full parse can tell.
    Unsure,
}

fn walk_top_level<'a>(line: &'a [u8], key: &[u8]) -> Walk<'a> {
    let mut i = 0;
    let mut depth = 0usize;
    // At depth 1: the next string is a key.
    let mut at_key = false;
    // At depth 1: the last key was `key` and its value comes next.
    let mut want_value = false;
    while i < line.len() {
        match line[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b':' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                let end = loop {
                    match memchr::memchr2(b'"', b'\\', &line[j..]) {
                        None => return Walk::Unsure,
                        Some(k) if line[j + k] == b'\\' => {
                            escaped = true;
                            j += k + 2;
                            if j > line.len() {
                                return Walk::Unsure;
                            }
                        }
                        Some(k) => break j + k,
                    }
                };
                let text = &line[start..end];
                if depth == 1 && at_key {
                    at_key = false;
                    want_value = !escaped && text == key;
                } else if depth == 1 && want_value {
                    return if escaped {
                        Walk::Unsure
                    } else {
                        Walk::Found(text)
                    };
                }
                i = end + 1;
            }
            c @ (b'{' | b'[') => {
                if depth == 0 && c != b'{' {
                    return Walk::Absent;
                }
                if depth == 1 && want_value {
                    return Walk::Absent;
                }
                depth += 1;
                at_key = depth == 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Walk::Unsure;
                }
                depth -= 1;
                if depth == 0 {
                    return Walk::Absent;
                }
                i += 1;
            }
            b',' => {
                if depth == 1 {
                    if want_value {
                        return Walk::Unsure;
                    }
                    at_key = true;
                }
                i += 1;
            }
            _ => {
                if depth == 0 {
                    return Walk::Absent;
                }
                if depth == 1 && want_value {
                    // A number, `true`, `false` or `null`: not a string.
                    return Walk::Absent;
                }
                i += 1;
            }
        }
    }
    Walk::Unsure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_finds_only_top_level_keys() {
        let line = br#"{"seq":1,"input":{"kind":"nested"},"kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
        let line = br#"{"a":["kind","x"],"b":"kind","kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
        let line = br#"{"text":"he said "kind":"x"","kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
    }

    #[test]
    fn walk_says_absent_only_when_the_whole_object_was_seen() {
        assert_eq!(
            walk_top_level(br#"{"x":{"kind":"nested"}}"#, b"kind"),
            Walk::Absent
        );
        assert_eq!(walk_top_level(br#"{"kind":3}"#, b"kind"), Walk::Absent);
        assert_eq!(walk_top_level(br#"["kind"]"#, b"kind"), Walk::Absent);
        // Cut off before the key, or the value has an escape: only a parse can tell.
        assert_eq!(
            walk_top_level(br#"{"seq":1,"ts":"2026"#, b"kind"),
            Walk::Unsure
        );
        assert_eq!(
            walk_top_level(br#"{"kind":"run\u005fstarted"}"#, b"kind"),
            Walk::Unsure
        );
        // Cut off after it: still found.
        assert_eq!(
            walk_top_level(
                br#"{"seq":9,"kind":"run_errored","run_id":"r1","err"#,
                b"run_id"
            ),
            Walk::Found(b"r1")
        );
    }

    fn entry(seq: u64, body: pod_core::record::LogBody) -> String {
        let entry = LogEntry {
            seq,
            ts: "2026-11-23T01:02:03.456Z".into(),
            body,
        };
        serde_json::to_string(&entry).unwrap() + "\n"
    }

    fn started(run_id: &str) -> pod_core::record::LogBody {
        pod_core::record::LogBody::RunStarted(pod_core::record::RunStarted {
            run_id: run_id.into(),
            trigger: RunTrigger::Cli,
            request_id: None,
            input: "hi".into(),
        })
    }

    fn completed(run_id: &str) -> pod_core::record::LogBody {
        pod_core::record::LogBody::RunCompleted(pod_core::record::RunCompleted {
            run_id: run_id.into(),
            turns: 1,
            text: "done".into(),
            reason: "end_turn".into(),
            stop_reason: Some(pod_core::record::StopReason::EndTurn),
        })
    }

    /// Scan `log`; returns the runs in the order handed out, each with the number of lines read
    /// when it was, and the runs left open at the end.
    fn scan_text(log: &str) -> (Vec<(String, u64)>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, log).unwrap();
        let mut handed = Vec::new();
        let scan = scan_segment::<()>(
            "p",
            &path,
            "s".into(),
            "s".into(),
            false,
            false,
            &mut |seg, run| {
                handed.push((run.run_id, seg.integrity.lines));
                Ok(())
            },
        )
        .unwrap();
        (handed, scan.runs.into_iter().map(|r| r.run_id).collect())
    }

    #[test]
    fn a_final_run_is_handed_out_when_the_next_one_starts_not_at_the_end() {
        let log = [
            entry(1, started("r1")),
            entry(2, completed("r1")),
            entry(3, started("r2")),
            entry(4, completed("r2")),
            entry(5, started("r3")),
            entry(6, completed("r3")),
        ]
        .concat();
        let (handed, open) = scan_text(&log);
        assert_eq!(handed, vec![("r1".to_owned(), 3), ("r2".to_owned(), 5)]);
        // The last one is final too, but its log might still say more about it.
        assert_eq!(open, vec!["r3".to_owned()]);
    }

    #[test]
    fn an_open_run_holds_back_the_runs_after_it_so_the_order_is_kept() {
        let log = [
            entry(1, started("r1")),
            entry(2, started("r2")),
            entry(3, completed("r2")),
            entry(4, started("r3")),
            entry(5, completed("r1")),
            entry(6, started("r4")),
            entry(7, started("r5")),
        ]
        .concat();
        let (handed, open) = scan_text(&log);
        let order: Vec<&str> = handed.iter().map(|(id, _)| id.as_str()).collect();
        // r1 ends at line 5; r2 and r3 wait behind it and then go in their order.
        assert_eq!(order, ["r1", "r2"]);
        assert_eq!(handed[0].1, 6);
        assert_eq!(open, ["r3", "r4", "r5"]);
    }

    #[test]
    fn a_probe_stops_at_segment_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let seg = pod_core::record::LogBody::SegmentStarted(SegmentStarted {
            pod_id: "p".into(),
            segment_id: "s".into(),
            profile: "coder".into(),
            manifest_digest: "sha256:00".into(),
            pid: 1,
            format_version: pod_core::record::LOG_FORMAT_VERSION,
            writer: "test".into(),
        });
        std::fs::write(&path, [entry(1, seg), entry(2, started("r1"))].concat()).unwrap();
        let scan = scan_segment::<()>(
            "p",
            &path,
            "s".into(),
            "s".into(),
            false,
            true,
            &mut |_, _| Ok(()),
        )
        .unwrap();
        assert!(scan.started.is_some());
        assert_eq!(scan.integrity.lines, 1);
        assert!(scan.is_a_segment());
    }

    #[test]
    fn find_kind_falls_back_to_a_full_parse() {
        assert_eq!(
            find_kind(br#"{"kind":"run\u005fstarted"}"#).as_deref(),
            Some("run_started")
        );
        assert_eq!(find_kind(br#"{"x":{"kind":"nested"}}"#), None);
        assert_eq!(find_kind(b"not json"), None);
    }
}
