//! Trace entries as the hot path produces them, before the writer numbers them; the line
//! format itself is `pod_protocol::trace`.

use std::sync::Arc;
use std::time::SystemTime;

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
/// attempt, so the hot path tags none of them one by one.
#[derive(Debug, Clone)]
pub struct RequestEntries {
    pub run_id: Arc<str>,
    pub turn: u32,
    pub attempt: u32,
    /// Each entry's time and body, in order.
    pub entries: Vec<(SystemTime, TraceBody)>,
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
