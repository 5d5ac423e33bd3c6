//! Reading sidecars back: a streaming reader that tolerates a torn last line, and the views
//! `pods trace` and export build on (coalesced timeline, failed requests).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use pod_provider::StreamEvent;

pub use pod_home::files::{
    LineRead, MAX_LINE_BYTES, file_kind, open_regular, read_line_bounded, read_regular,
};

use crate::entry::{Marker, TraceBody, TraceEntry};
use crate::error::TraceError;

/// One line of a sidecar as read back.
#[derive(Debug)]
pub enum TraceLine {
    Entry(TraceEntry),
    /// A line that is not a trace entry. `torn` is true for an unterminated last line (a write
    /// cut short), which is expected after a crash.
    Unreadable {
        line: u64,
        torn: bool,
        error: String,
    },
}

/// Streams the lines of one sidecar.
pub struct TraceReader {
    path: PathBuf,
    lines: BufReader<File>,
    line: u64,
}

impl TraceReader {
    /// Open a sidecar; anything but a regular file is refused (see [`open_regular`]).
    pub fn open(path: &Path) -> Result<TraceReader, TraceError> {
        let file = open_regular(path).map_err(|source| TraceError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(TraceReader {
            path: path.to_owned(),
            lines: BufReader::new(file),
            line: 0,
        })
    }

    /// Read a whole sidecar: its entries and its unreadable lines.
    pub fn read_all(path: &Path) -> Result<(Vec<TraceEntry>, Vec<TraceLine>), TraceError> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for line in TraceReader::open(path)? {
            match line? {
                TraceLine::Entry(entry) => entries.push(entry),
                other => problems.push(other),
            }
        }
        Ok((entries, problems))
    }
}

impl Iterator for TraceReader {
    type Item = Result<TraceLine, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match read_line_bounded(&mut self.lines, &mut buf, MAX_LINE_BYTES) {
            Ok(None) => None,
            Ok(Some(read)) => {
                self.line = self.line.saturating_add(1);
                if read.oversized {
                    return Some(Ok(TraceLine::Unreadable {
                        line: self.line,
                        torn: !read.terminated,
                        error: format!(
                            "line of {} bytes is longer than {MAX_LINE_BYTES} bytes; skipped",
                            read.bytes
                        ),
                    }));
                }
                let terminated = read.terminated;
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end();
                if text.is_empty() && terminated {
                    return self.next();
                }
                Some(Ok(match serde_json::from_str::<TraceEntry>(text) {
                    Ok(entry) if terminated => TraceLine::Entry(entry),
                    Ok(_) => TraceLine::Unreadable {
                        line: self.line,
                        torn: true,
                        error: "last line has no line end (write cut short)".into(),
                    },
                    Err(error) => TraceLine::Unreadable {
                        line: self.line,
                        torn: !terminated,
                        error: error.to_string(),
                    },
                }))
            }
            Err(source) => Some(Err(TraceError::Read {
                path: self.path.clone(),
                source,
            })),
        }
    }
}

/// One item of the readable timeline: consecutive text (or reasoning) deltas of one request are
/// coalesced into one item.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineItem {
    Entry(TraceEntry),
    Text {
        first: TraceEntry,
        text: String,
        deltas: usize,
        reasoning: bool,
    },
}

/// Coalesce consecutive text deltas (and, separately, reasoning deltas) of the same request.
pub fn timeline(entries: &[TraceEntry]) -> Vec<TimelineItem> {
    let mut items: Vec<TimelineItem> = Vec::new();
    for entry in entries {
        let (piece, is_reasoning) = match &entry.body {
            TraceBody::Stream {
                event: StreamEvent::TextDelta(delta),
            } => (delta.text.as_str(), false),
            TraceBody::Stream {
                event: StreamEvent::ReasoningDelta(delta),
            } => (delta.text.as_str(), true),
            _ => {
                items.push(TimelineItem::Entry(entry.clone()));
                continue;
            }
        };
        if let Some(TimelineItem::Text {
            first,
            text,
            deltas,
            reasoning,
        }) = items.last_mut()
            && *reasoning == is_reasoning
            && same_request(first, entry)
        {
            text.push_str(piece);
            *deltas += 1;
            continue;
        }
        items.push(TimelineItem::Text {
            first: entry.clone(),
            text: piece.to_owned(),
            deltas: 1,
            reasoning: is_reasoning,
        });
    }
    items
}

fn same_request(a: &TraceEntry, b: &TraceEntry) -> bool {
    a.run_id == b.run_id && a.turn == b.turn && a.attempt == b.attempt
}

/// A request attempt that failed, with the entries of that attempt that led up to it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRequest {
    /// The entry carrying the error (`stream` error event, `stream_open_error` or
    /// `retry_scheduled` marker).
    pub failure: TraceEntry,
    /// Earlier entries of the same run, turn and attempt, plus run-level markers of that run.
    pub leading: Vec<TraceEntry>,
}

/// Whether an entry records a failure.
pub fn is_failure(entry: &TraceEntry) -> bool {
    matches!(
        &entry.body,
        TraceBody::Stream {
            event: StreamEvent::Error(_)
        } | TraceBody::Lifecycle(Marker::StreamOpenError { .. })
            | TraceBody::Lifecycle(Marker::IdleTimeout)
            | TraceBody::Shed { .. }
    )
}

/// Every failed request attempt, each with what led up to it. A `stream_open_error` marker and
/// the `error` stream event of the same attempt are reported once (the event).
pub fn failed_requests(entries: &[TraceEntry]) -> Vec<FailedRequest> {
    let mut failures = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if !is_failure(entry) {
            continue;
        }
        let later_event_same_attempt = matches!(
            entry.body,
            TraceBody::Lifecycle(Marker::StreamOpenError { .. })
        ) && entries[index + 1..].iter().any(|later| {
            same_request(later, entry)
                && matches!(
                    later.body,
                    TraceBody::Stream {
                        event: StreamEvent::Error(_)
                    }
                )
        });
        if later_event_same_attempt {
            continue;
        }
        let leading = entries[..index]
            .iter()
            .filter(|earlier| {
                earlier.run_id == entry.run_id
                    && (same_request(earlier, entry) || earlier.attempt.is_none())
            })
            .cloned()
            .collect();
        failures.push(FailedRequest {
            failure: entry.clone(),
            leading,
        });
    }
    failures
}

/// Why a trace cannot become a cassette.
#[derive(Debug, Clone, PartialEq)]
pub enum CassetteGap {
    /// No run in the trace (or none with the id asked for).
    NoRun { wanted: Option<String> },
    /// The run's responses were not captured: the trace was recorded without
    /// `session.trace_raw_sse = true` (or by a pods that did not record response heads).
    NoRawCapture {
        run_id: String,
        frames_without_heads: bool,
    },
    /// A frame or body was cut at `session.trace_max_frame_bytes`.
    Truncated { seq: u64, original_len: usize },
    /// The writer lost entries of the run (queue full), so a response would be served short.
    Shed { seq: u64, count: u64 },
}

impl std::fmt::Display for CassetteGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CassetteGap::NoRun { wanted: Some(id) } => write!(f, "the trace has no run `{id}`"),
            CassetteGap::NoRun { wanted: None } => f.write_str("the trace records no run"),
            CassetteGap::NoRawCapture {
                run_id,
                frames_without_heads: false,
            } => write!(
                f,
                "run {run_id} was traced without raw capture: the provider responses \
                 (status, headers, raw SSE frames) are not in the trace"
            ),
            CassetteGap::NoRawCapture { run_id, .. } => write!(
                f,
                "run {run_id} has raw SSE frames but no response heads (status and headers): \
                 it was recorded by an older pods"
            ),
            CassetteGap::Truncated { seq, original_len } => write!(
                f,
                "trace entry {seq} holds a frame cut short ({original_len} bytes recorded only \
                 in part, session.trace_max_frame_bytes)"
            ),
            CassetteGap::Shed { seq, count } => write!(
                f,
                "the trace lost {count} entries at entry {seq} (writer queue full), so a \
                 response would be replayed short"
            ),
        }
    }
}

/// A cassette rebuilt from a traced run, with what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCassette {
    pub run_id: String,
    pub cassette: pod_provider::Cassette,
    /// Attempts that are not in the cassette and why (for people).
    pub notes: Vec<String>,
}

/// How long a replayed stream stalls where the recorded one hit its idle timeout: longer than
/// any timeout a pod is configured with, so the replaying client times out as the original did.
const STALL_MS: u64 = 24 * 60 * 60 * 1000;

/// Rebuild the provider responses of one run (`run`: an id or unique prefix; the last run of
/// the trace when `None`) as a cassette, in the order they were received, failed attempts
/// included: each `raw_response` head with the raw SSE frames of its attempt as the body (or
/// the recorded body of a non-stream response). An attempt that timed out idle stalls there.
pub fn cassette_from_trace(
    entries: &[TraceEntry],
    run: Option<&str>,
) -> Result<FieldCassette, CassetteGap> {
    let mut runs: Vec<&str> = Vec::new();
    for e in entries {
        if let Some(id) = e.run_id.as_deref()
            && !runs.contains(&id)
        {
            runs.push(id);
        }
    }
    let run_id = match run {
        Some(wanted) => {
            let matching: Vec<&str> = runs
                .iter()
                .copied()
                .filter(|id| *id == wanted || id.starts_with(wanted))
                .collect();
            match matching.as_slice() {
                [one] => *one,
                _ if runs.contains(&wanted) => wanted,
                _ => {
                    return Err(CassetteGap::NoRun {
                        wanted: Some(wanted.to_owned()),
                    });
                }
            }
        }
        None => *runs.last().ok_or(CassetteGap::NoRun { wanted: None })?,
    };
    struct Building {
        key: (Option<u32>, Option<u32>),
        response: pod_provider::CassetteResponse,
        body: String,
        events: usize,
    }
    let mut scheme = None;
    let mut built: Vec<Building> = Vec::new();
    let mut notes = Vec::new();
    let mut frames_without_heads = false;
    for e in entries
        .iter()
        .filter(|e| e.run_id.as_deref() == Some(run_id))
    {
        let key = (e.turn, e.attempt);
        let current = built.last_mut().filter(|b| b.key == key);
        match &e.body {
            TraceBody::RawResponse(head) => {
                if head.truncated {
                    return Err(CassetteGap::Truncated {
                        seq: e.seq,
                        original_len: head.body.as_ref().map_or(0, String::len),
                    });
                }
                scheme.get_or_insert(head.scheme);
                let mut response = pod_provider::CassetteResponse {
                    status: head.status,
                    ..Default::default()
                };
                for (name, value) in &head.headers {
                    response.headers.insert(name.clone(), value.clone());
                }
                built.push(Building {
                    key,
                    response,
                    body: head.body.clone().unwrap_or_default(),
                    events: 0,
                });
            }
            TraceBody::RawSse(frame) => {
                if frame.truncated {
                    return Err(CassetteGap::Truncated {
                        seq: e.seq,
                        original_len: frame.original_len,
                    });
                }
                let Some(b) = current else {
                    frames_without_heads = true;
                    continue;
                };
                if let Some(event) = &frame.event {
                    b.body.push_str("event: ");
                    b.body.push_str(event);
                    b.body.push('\n');
                }
                for line in frame.data.split('\n') {
                    b.body.push_str("data: ");
                    b.body.push_str(line);
                    b.body.push('\n');
                }
                b.body.push('\n');
                b.events += 1;
            }
            // A connection that broke mid-body is served as one that breaks there.
            TraceBody::Stream {
                event: StreamEvent::Error(err),
            } if err.class == pod_provider::ErrorClass::StreamClosedBeforeCompletion
                && err.message.starts_with(pod_provider::BROKE_OFF) =>
            {
                if let Some(b) = current {
                    b.response.disconnect_after_events = Some(b.events);
                }
            }
            TraceBody::Lifecycle(Marker::IdleTimeout) => {
                if let Some(b) = current {
                    b.response.pause_after_events = Some(pod_provider::PauseAfterEvents {
                        events: b.events,
                        ms: STALL_MS,
                    });
                }
            }
            TraceBody::Lifecycle(Marker::StreamOpenError {
                http_status: None,
                class,
            }) if current.is_none() => notes.push(format!(
                "turn {} attempt {} failed before any response ({}); a cassette cannot replay \
                 that, so it is left out",
                e.turn.unwrap_or(0),
                e.attempt.unwrap_or(0),
                class.as_str()
            )),
            TraceBody::Shed { count } => {
                return Err(CassetteGap::Shed {
                    seq: e.seq,
                    count: *count,
                });
            }
            _ => {}
        }
    }
    let Some(scheme) = scheme else {
        return Err(CassetteGap::NoRawCapture {
            run_id: run_id.to_owned(),
            frames_without_heads,
        });
    };
    let responses = built
        .into_iter()
        .map(|b| pod_provider::CassetteResponse {
            body: Some(b.body),
            ..b.response
        })
        .collect();
    let mut cassette = pod_provider::Cassette::new(scheme, responses);
    cassette.version = Some(pod_provider::CASSETTE_VERSION);
    Ok(FieldCassette {
        run_id: run_id.to_owned(),
        cassette,
        notes,
    })
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
