//! Reading sidecars back: a streaming reader that tolerates a torn last line, and the views
//! `pods trace` and export build on (coalesced timeline, failed requests).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use pod_provider::StreamEvent;

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
    pub fn open(path: &Path) -> Result<TraceReader, TraceError> {
        let file = File::open(path).map_err(|source| TraceError::Read {
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
        match self.lines.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                let terminated = buf.last() == Some(&b'\n');
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
