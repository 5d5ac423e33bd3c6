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
//!
//! The line reader and the `kind` prefilter are in `lines`; the lenient reading of terminal
//! entries is in `terminal`.

mod lines;
mod terminal;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufReader;
use std::path::Path;

use memchr::memmem;
use serde_json::Value;
use serde_json::value::RawValue;

use pod_protocol::record::{
    ChildExited, Decision, DecisionSource, LifecycleActionRecorded, LogBody, LogEntry, RunTrigger,
    SegmentStarted, SideEffectClass,
};

use pod_protocol::report::UsageTotals;

use crate::document::{LogIntegrity, SeqGap, ToolCallDoc, ToolDecisionDoc, UnreadableEntry};

use lines::{Line, find_kind, read_line, trim_line};
pub(crate) use terminal::{PhaseLite, Terminal};

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
    /// Approval decisions other than the config's `allow`.
    pub decisions: Vec<ToolDecisionDoc>,
    /// Usage over the run's `provider_request_finished` entries.
    pub usage: UsageTotals,
    /// Unhandled stream events by name, over the same entries.
    pub unhandled: BTreeMap<String, u64>,
    pub in_flight: Vec<ToolCallDoc>,
    pub side_effects: Vec<SideEffectClass>,
    pub actions_seen: Vec<String>,
}

use pod_protocol::borrowed::{
    AssistantLite, RequestLite, RunCompletedLite, RunStartedLite, SeqOnly, ToolFinishedLite,
    ToolStartedLite,
};
/// Longest kind-like name (class, phase, side-effect class) kept as written.
const NAME_MAX: usize = 64;

/// Kinds of `LogBody` this build understands, as serde names them.
const KNOWN_KINDS: &[&str] = <LogBody as strum::VariantNames>::VARIANTS;

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
    let file = match pod_home::files::open_regular(path) {
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

/// Up to this many runs held, a run is found by looking through them; more are indexed by id.
/// A log's runs are nearly always held one or two at a time, and hashing ids then costs more.
const RUNS_SEARCHED: usize = 8;

#[derive(Default)]
struct ScanState {
    /// Run id to its place in the order of first entries (counted from the segment's start),
    /// while more than [`RUNS_SEARCHED`] runs are held.
    index: Option<HashMap<String, usize>>,
    /// Runs handed out (or made ready) so far: the place of `runs[0]`.
    base: usize,
}

impl RunAcc {
    /// Has a terminal entry, readable or not: nothing later in the log changes its summary.
    pub(crate) fn is_final(&self) -> bool {
        self.terminal.is_some() || self.unreadable_terminal.is_some()
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
        // Most entries belong to the latest run: no need to hash its id. (A run id is at most
        // once in `runs`, so this is the run the index would give.)
        if self.runs.back().is_some_and(|run| run.run_id == run_id) {
            let last = self.runs.len() - 1;
            return &mut self.runs[last];
        }
        let held = match &state.index {
            Some(index) => index.get(run_id).map(|i| *i - state.base),
            None => self.runs.iter().position(|run| run.run_id == run_id),
        };
        let i = match held {
            Some(i) => i,
            None => {
                // A new run: the final runs before it are done.
                while self.runs.front().is_some_and(RunAcc::is_final) {
                    if let Some(run) = self.runs.pop_front() {
                        if let Some(index) = &mut state.index {
                            index.remove(&run.run_id);
                        }
                        state.base += 1;
                        self.ready.push(run);
                    }
                }
                self.runs.push_back(RunAcc {
                    run_id: run_id.to_owned(),
                    ..RunAcc::default()
                });
                let place = state.base + self.runs.len() - 1;
                if self.runs.len() <= RUNS_SEARCHED {
                    state.index = None;
                } else if let Some(index) = &mut state.index {
                    index.insert(run_id.to_owned(), place);
                } else {
                    let held = (state.base..).zip(&self.runs);
                    let index = held.map(|(place, run)| (run.run_id.clone(), place));
                    state.index = Some(index.collect());
                }
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
        let json = Line::new(line);
        let kind: &str = &kind;
        match kind {
            "assistant_message" => {
                let Ok(m) = json.parse::<AssistantLite>() else {
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
                let Ok(m) = json.parse::<ToolFinishedLite>() else {
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
                let Ok(m) = json.parse::<RequestLite>() else {
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
                let Ok(m) = json.parse::<RunStartedLite>() else {
                    return false;
                };
                let Ok(trigger) = m.trigger() else {
                    return false;
                };
                self.note_entry(m.seq, kind, Some(&m.ts));
                let run = self.run_mut(state, &m.run_id);
                run.seen_run_started = true;
                run.started_at = Some(m.ts.into_owned());
                run.trigger = Some(trigger);
                run.request_id = m.request_id;
                run.input = Some(preview(&m.input));
                true
            }
            "run_completed" => {
                let Ok(m) = json.parse::<RunCompletedLite>() else {
                    return false;
                };
                let Ok(stop_reason) = m.stop_reason() else {
                    return false;
                };
                self.note_entry(m.seq, kind, Some(&m.ts));
                let run = self.run_mut(state, &m.run_id);
                run.ended_at = Some(m.ts.into_owned());
                run.terminal = Some(Terminal::Completed {
                    text: preview(&m.text),
                    stop_reason,
                });
                true
            }
            "tool_call_started" => {
                let Ok(m) = json.parse::<ToolStartedLite>() else {
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
                    side_effect: m.side_effect.as_str().to_owned(),
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
                let Ok(entry) = json.parse::<LogEntry>() else {
                    return false;
                };
                self.handle_entry(state, entry);
                true
            }
            other => {
                // A kind from a newer writer: counted, its sequence number still checked.
                let Ok(s) = json.parse::<SeqOnly>() else {
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

    fn handle_entry(&mut self, state: &mut ScanState, entry: LogEntry) {
        let LogEntry { seq, ts, body } = entry;
        let kind = body.kind();
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
            // The config's plain `allow` is the rule, not news: only the rest is listed.
            LogBody::ToolDecision(d)
                if d.source != DecisionSource::Config || d.decision != Decision::Allowed =>
            {
                self.run_mut(state, &d.run_id)
                    .decisions
                    .push(ToolDecisionDoc {
                        call_id: d.call_id,
                        tool: d.tool,
                        side_effect: d.side_effect.as_str().to_owned(),
                        decision: d.decision.as_str().to_owned(),
                        source: d.source.as_str().to_owned(),
                        detail: preview(&d.detail),
                    });
            }
            LogBody::SegmentClosed(c) => self.closed = Some(preview(&c.reason)),
            LogBody::ChildExited(c) => self.child_exits.push(c),
            // Child bookkeeping carries nothing the summaries need; assistant, request, tool and
            // terminal (errored, interrupted) entries take their own paths in `handle_line`.
            _ => {}
        }
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
    // No more bytes than that: no more characters either, nothing to count.
    if text.len() <= PREVIEW_CHARS {
        return text.to_owned();
    }
    match text.char_indices().nth(PREVIEW_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… [{} bytes in all]", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod lite_tests;
#[cfg(test)]
mod tests;
