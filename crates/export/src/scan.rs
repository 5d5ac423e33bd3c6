//! Streaming scan of one session-log segment into per-run accumulators.
//!
//! Memory stays bounded by the number of runs and in-flight tool calls, not by the log size:
//! lines are read into one reused buffer, the `kind` is found with a substring search, and the
//! bulky kinds (assistant messages, tool outputs) are parsed into small borrowed shapes that
//! skip their text. Only the rare entries that carry facts (run boundaries, lifecycle actions,
//! segment markers) are parsed into the full record types.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use pod_core::record::{
    ChildExited, LifecycleActionRecorded, LogBody, LogEntry, RunErrored, RunInterrupted,
    RunTrigger, SegmentStarted, SideEffectClass,
};

use crate::document::{LogIntegrity, SeqGap, ToolCallDoc};
use crate::error::ExportError;

/// Longest line kept; longer ones are counted as unparseable without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Gap and bad-line lists keep this many entries (the counts are exact).
const LIST_CAP: usize = 100;
/// Characters of a prompt or final text kept in the document.
pub(crate) const PREVIEW_CHARS: usize = 2000;

/// Everything the export needs from one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub segment_id: String,
    pub log_rel: String,
    pub started: Option<(SegmentStarted, String)>,
    pub closed: Option<String>,
    pub runs: Vec<RunAcc>,
    /// Lifecycle actions recorded in this segment, with the entry timestamp.
    pub actions: Vec<LifecycleActionRecorded>,
    /// `child_exited` entries: how this pod's children ended, as the parent saw it.
    pub child_exits: Vec<ChildExited>,
    pub last_seq: Option<u64>,
    pub last_kind: Option<String>,
    pub last_ts: Option<String>,
    pub integrity: LogIntegrity,
}

/// How a run ended, as written.
#[derive(Debug)]
pub(crate) enum Terminal {
    Completed { text: String },
    Errored(RunErrored),
    Interrupted(RunInterrupted),
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
    pub provider_requests: u64,
    pub model: Option<String>,
    pub assistant_messages: u64,
    pub visible_text: bool,
    /// A provider request started after the last assistant message: its stream may have shown
    /// output the log never received.
    pub request_open: bool,
    pub tools_started: u64,
    pub tools_finished: u64,
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
}

#[derive(Deserialize)]
struct RequestLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ToolStartedLite<'a> {
    seq: u64,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    call_id: String,
    tool: String,
    side_effect: SideEffectClass,
    input: Value,
}

/// Kinds of `LogBody` this build understands.
const KNOWN_KINDS: &[&str] = &[
    "segment_started",
    "run_started",
    "provider_request_started",
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

/// Scan one segment log. `log_rel` is the path relative to the pod directory.
pub(crate) fn scan_segment(
    pod_id: &str,
    path: &Path,
    log_rel: String,
    segment_id: String,
    trace_sidecar: bool,
) -> Result<SegmentScan, ExportError> {
    let file = File::open(path).map_err(|source| ExportError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut scan = SegmentScan {
        segment_id,
        log_rel: log_rel.clone(),
        started: None,
        closed: None,
        runs: Vec::new(),
        actions: Vec::new(),
        child_exits: Vec::new(),
        last_seq: None,
        last_kind: None,
        last_ts: None,
        integrity: LogIntegrity {
            pod_id: pod_id.to_owned(),
            log: log_rel,
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
        },
    };
    let mut state = ScanState::default();
    let finder = memmem::Finder::new(b"\"kind\":\"");
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let read = read_line(&mut reader, &mut line).map_err(|source| ExportError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let Some(read) = read else { break };
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
        let parsed = scan.handle_line(&mut state, &finder, body);
        if !parsed {
            if !read.terminated {
                // A final line without its newline that does not parse: the writer was cut off.
                scan.integrity.torn_final_line = true;
            } else {
                scan.mark_unparseable(line_no);
            }
        }
    }
    Ok(scan)
}

#[derive(Default)]
struct ScanState {
    index: HashMap<String, usize>,
}

struct LineRead {
    bytes: u64,
    terminated: bool,
    oversized: bool,
}

/// Read one line into `buf` (without keeping more than [`MAX_LINE_BYTES`]); `None` at EOF.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<LineRead>> {
    let mut read = LineRead {
        bytes: 0,
        terminated: false,
        oversized: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read.bytes > 0).then_some(read));
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if !read.oversized && buf.len() + chunk.len() <= MAX_LINE_BYTES {
            buf.extend_from_slice(chunk);
        } else {
            read.oversized = true;
            buf.clear();
        }
        let used = chunk.len();
        read.bytes += used as u64;
        reader.consume(used);
        if done {
            read.terminated = true;
            return Ok(Some(read));
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// The value of the first `"kind":"…"` in the line (kinds never contain escapes).
fn find_kind<'a>(finder: &memmem::Finder, line: &'a [u8]) -> Option<&'a str> {
    let start = finder.find(line)? + 8;
    let len = memchr::memchr(b'"', &line[start..])?;
    std::str::from_utf8(&line[start..start + len]).ok()
}

impl SegmentScan {
    fn mark_unparseable(&mut self, line_no: u64) {
        self.integrity.unparseable_count += 1;
        if self.integrity.unparseable_lines.len() < LIST_CAP {
            self.integrity.unparseable_lines.push(line_no);
        }
    }

    fn note_seq(&mut self, seq: u64) {
        if let Some(prev) = self.last_seq
            && seq != prev + 1
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
            Some(i) => *i,
            None => {
                self.runs.push(RunAcc {
                    run_id: run_id.to_owned(),
                    ..RunAcc::default()
                });
                state.index.insert(run_id.to_owned(), self.runs.len() - 1);
                self.runs.len() - 1
            }
        };
        &mut self.runs[i]
    }

    /// Handle one non-empty line; false when it is not a valid entry.
    fn handle_line(&mut self, state: &mut ScanState, finder: &memmem::Finder, line: &[u8]) -> bool {
        let Some(kind) = find_kind(finder, line) else {
            return false;
        };
        match kind {
            "assistant_message" => {
                let Ok(m) = serde_json::from_slice::<AssistantLite>(line) else {
                    return false;
                };
                // `"text":""` with unescaped quotes can only be the key itself: string
                // contents have their quotes escaped.
                let empty = memmem::find(line, b"\"text\":\"\"").is_some();
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
                run.tools_finished += 1;
                run.in_flight.retain(|c| c.call_id != m.call_id);
                true
            }
            "provider_request_started" => {
                let Ok(m) = serde_json::from_slice::<RequestLite>(line) else {
                    return false;
                };
                self.note_entry(m.seq, kind, None);
                let run = self.run_mut(state, &m.run_id);
                run.provider_requests += 1;
                run.request_open = true;
                if run.model.as_deref() != Some(&*m.model) {
                    run.model = Some(m.model.into_owned());
                }
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
                run.in_flight.push(ToolCallDoc {
                    call_id: m.call_id,
                    tool: m.tool,
                    side_effect: side_effect_name(m.side_effect).to_owned(),
                    input: m.input,
                });
                true
            }
            "run_errored" | "run_interrupted" => self.handle_terminal(state, line),
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
        if self.last_kind.as_deref() != Some(kind) {
            self.last_kind = Some(kind.to_owned());
        }
        if let Some(ts) = ts {
            self.last_ts = Some(ts.to_owned());
        }
    }

    /// Terminal entries are parsed twice (as JSON, then typed) so that keys an older writer
    /// left out are reported as missing instead of read as their serde defaults.
    fn handle_terminal(&mut self, state: &mut ScanState, line: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        let mut missing = Vec::new();
        match value.get("phase") {
            Some(phase) => {
                for key in [
                    "provider_progress_seen",
                    "visible_output_seen",
                    "tool_execution",
                    "side_effects_started",
                ] {
                    if phase.get(key).is_none() {
                        missing.push(format!("phase.{key}"));
                    }
                }
            }
            None => missing.push("phase".to_owned()),
        }
        let Ok(entry) = serde_json::from_value::<LogEntry>(value) else {
            return false;
        };
        let run_id = match &entry.body {
            LogBody::RunErrored(e) => e.run_id.clone(),
            LogBody::RunInterrupted(i) => i.run_id.clone(),
            _ => return false,
        };
        self.handle_entry(state, entry);
        self.run_mut(state, &run_id).terminal_missing = missing;
        true
    }

    fn handle_entry(&mut self, state: &mut ScanState, entry: LogEntry) {
        let LogEntry { seq, ts, body } = entry;
        let kind = kind_name(&body);
        self.note_entry(seq, kind, Some(&ts));
        match body {
            LogBody::SegmentStarted(s) => self.started = Some((s, ts)),
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
                });
            }
            LogBody::RunErrored(e) => {
                let run = self.run_mut(state, &e.run_id);
                run.ended_at = Some(ts);
                run.terminal = Some(Terminal::Errored(e));
            }
            LogBody::RunInterrupted(i) => {
                let run = self.run_mut(state, &i.run_id);
                run.ended_at = Some(ts);
                run.terminal = Some(Terminal::Interrupted(i));
            }
            LogBody::SegmentClosed(c) => self.closed = Some(c.reason),
            LogBody::ChildExited(c) => self.child_exits.push(c),
            // Child bookkeeping carries nothing the summaries need; assistant, request and tool
            // entries take the fast path in `handle_line`.
            _ => {}
        }
    }
}

fn kind_name(body: &LogBody) -> &'static str {
    match body {
        LogBody::SegmentStarted(_) => "segment_started",
        LogBody::RunStarted(_) => "run_started",
        LogBody::ProviderRequestStarted(_) => "provider_request_started",
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

/// The first [`PREVIEW_CHARS`] characters, with a marker when cut.
pub(crate) fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… [{} bytes in all]", &text[..cut], text.len()),
    }
}
