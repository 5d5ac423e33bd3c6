//! Trace entries as the hot path produces them, before the writer numbers them; the line
//! format itself is `pod_protocol::trace`.

use std::sync::Arc;
use std::time::SystemTime;

use pod_protocol::event::StreamEvent;
use pod_provider::RawFrames;

pub use pod_protocol::trace::{
    Marker, RawResponseHead, RawSseFrame, TRACE_FORMAT_VERSION, TraceBody, TraceEntry,
};

/// An entry as produced on the hot path, before the writer numbers it.
#[derive(Debug, Clone)]
pub struct PendingEntry {
    pub at: SystemTime,
    /// Shared, so tagging every stream event with its run costs no allocation.
    pub run_id: Option<Arc<str>>,
    pub turn: Option<u32>,
    pub attempt: Option<u32>,
    pub body: TraceBody,
}

/// Entries of one request attempt of a run, queued as one piece: they share the run, turn and
/// attempt, so the hot path tags none of them one by one. The text of text deltas is gathered
/// in one buffer: each delta's own string is freed where it was made (freeing it on the writer
/// thread costs both threads more than the copy). Raw SSE frames are kept there the same way.
#[derive(Debug, Clone)]
pub struct RequestEntries {
    pub run_id: Arc<str>,
    pub turn: u32,
    pub attempt: u32,
    entries: Vec<(SystemTime, RequestEntry)>,
    /// The texts of the text deltas and raw frames, one after another.
    texts: String,
}

/// One entry of [`RequestEntries`].
#[derive(Debug, Clone)]
pub(crate) enum RequestEntry {
    /// A text delta whose text ends at this offset of `texts` (and starts where the previous
    /// one ended).
    TextDelta { choice: u32, text_end: usize },
    /// A raw SSE frame whose event name (empty when it had none) and data are the next texts
    /// in `texts`, ending at these offsets; only the data up to `kept_end` (the frame bound,
    /// on a character boundary) is written.
    RawSse {
        event_end: usize,
        kept_end: usize,
        data_end: usize,
    },
    /// Any other entry: boxed, as they are few and a text delta or raw frame is small.
    Body(Box<TraceBody>),
}

impl RequestEntries {
    pub fn new(run_id: Arc<str>, turn: u32, attempt: u32) -> RequestEntries {
        RequestEntries {
            run_id,
            turn,
            attempt,
            entries: Vec::new(),
            texts: String::new(),
        }
    }

    /// Add the entry `body` produced at `at`.
    pub fn push(&mut self, at: SystemTime, body: TraceBody) {
        let entry = match body {
            TraceBody::Stream {
                event: StreamEvent::TextDelta(delta),
            } => {
                self.texts.push_str(&delta.text);
                RequestEntry::TextDelta {
                    choice: delta.choice,
                    text_end: self.texts.len(),
                }
            }
            body => RequestEntry::Body(Box::new(body)),
        };
        self.entries.push((at, entry));
    }

    /// Add the raw SSE frames of one network read, received at `at`, each frame's data cut to
    /// at most `max_bytes` (on a character boundary) as [`RawSseFrame::bounded`] does. Their
    /// texts are copied in one piece.
    pub fn push_raw_frames(&mut self, at: SystemTime, frames: &RawFrames, max_bytes: usize) {
        let base = self.texts.len();
        self.texts.push_str(frames.text());
        self.entries.reserve(frames.len());
        for ends in frames.ends() {
            let event_end = base + ends.event;
            let data_end = base + ends.data;
            let data = self.texts.get(event_end..data_end).unwrap_or_default();
            let kept = pod_protocol::text::cut_at_char_boundary(data, max_bytes).len();
            let entry = RequestEntry::RawSse {
                event_end,
                kept_end: event_end + kept,
                data_end,
            };
            self.entries.push((at, entry));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Take the entries out (as a batch of this request), leaving the buffers of `spare` (a
    /// batch the writer is done with) in their place, or room for as many.
    pub(crate) fn take(&mut self, spare: Option<RequestEntries>) -> RequestEntries {
        let (entries, texts) = match spare {
            Some(spare) => (spare.entries, spare.texts),
            None => (
                Vec::with_capacity(self.entries.len()),
                String::with_capacity(self.texts.len()),
            ),
        };
        RequestEntries {
            run_id: self.run_id.clone(),
            turn: self.turn,
            attempt: self.attempt,
            entries: std::mem::replace(&mut self.entries, entries),
            texts: std::mem::replace(&mut self.texts, texts),
        }
    }

    /// The bytes its buffers hold room for.
    pub(crate) fn room_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(SystemTime, RequestEntry)>()
            + self.texts.capacity()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.texts.clear();
    }

    /// Each entry's time and body, a text delta's body as its choice and text.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SystemTime, EntryBody<'_>)> {
        let mut text_start = 0;
        self.entries.iter().map(move |(at, entry)| {
            let body = match entry {
                RequestEntry::TextDelta { choice, text_end } => {
                    let text = self.texts.get(text_start..*text_end).unwrap_or_default();
                    text_start = *text_end;
                    EntryBody::TextDelta {
                        choice: *choice,
                        text,
                    }
                }
                RequestEntry::RawSse {
                    event_end,
                    kept_end,
                    data_end,
                } => {
                    let text =
                        |from: usize, to: usize| self.texts.get(from..to).unwrap_or_default();
                    let event = text(text_start, *event_end);
                    let data = text(*event_end, *kept_end);
                    text_start = *data_end;
                    EntryBody::RawSse {
                        event: (!event.is_empty()).then_some(event),
                        data,
                        original_len: data_end - event_end,
                    }
                }
                RequestEntry::Body(body) => EntryBody::Body(body),
            };
            (*at, body)
        })
    }
}

/// The body of an entry to encode.
pub(crate) enum EntryBody<'a> {
    TextDelta {
        choice: u32,
        text: &'a str,
    },
    /// A raw SSE frame, its data already cut (`original_len` says whether).
    RawSse {
        event: Option<&'a str>,
        data: &'a str,
        original_len: usize,
    },
    Body(&'a TraceBody),
}

impl PendingEntry {
    pub fn now(body: TraceBody) -> PendingEntry {
        PendingEntry::at(SystemTime::now(), body)
    }

    /// An entry produced at `at`.
    pub fn at(at: SystemTime, body: TraceBody) -> PendingEntry {
        PendingEntry {
            at,
            run_id: None,
            turn: None,
            attempt: None,
            body,
        }
    }

    pub fn run(mut self, run_id: impl Into<Arc<str>>) -> PendingEntry {
        self.run_id = Some(run_id.into());
        self
    }

    pub fn request(mut self, turn: u32, attempt: u32) -> PendingEntry {
        self.turn = Some(turn);
        self.attempt = Some(attempt);
        self
    }

    #[cfg(test)]
    pub(crate) fn into_entry(self, seq: u64, ts: String) -> TraceEntry {
        TraceEntry {
            seq,
            ts,
            run_id: self.run_id.map(|id| id.to_string()),
            turn: self.turn,
            attempt: self.attempt,
            body: self.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_json_shape_is_flat_with_kind_and_marker_tags() {
        let entry = PendingEntry::now(TraceBody::Lifecycle(Marker::StreamEnd {
            outcome: "completed".into(),
        }))
        .run("r1")
        .request(2, 1)
        .into_entry(7, "2026-01-01T00:00:00.000Z".into());
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["kind"], "lifecycle");
        assert_eq!(json["marker"], "stream_end");
        assert_eq!(json["outcome"], "completed");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["turn"], 2);
        let back: TraceEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
