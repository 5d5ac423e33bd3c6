//! Trace entry types: one JSON line of a trace sidecar.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use pod_provider::{ErrorClass, ProviderError, StreamEvent, WireScheme};

/// Version of the trace format written by this build.
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// One line of a trace sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// Line number in the sidecar, from 1, without gaps (lost entries are counted by `shed`
    /// markers, not by gaps).
    pub seq: u64,
    /// When the entry was produced (not when it was written), RFC 3339 with milliseconds, UTC.
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Model request number within the run, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// Attempt number of that request, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(flatten)]
    pub body: TraceBody,
}

/// What a trace entry records; the `kind` tag in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TraceBody {
    /// A point in the life of a run or request.
    Lifecycle(Marker),
    /// One normalized provider stream event, as the runtime received it.
    Stream { event: StreamEvent },
    /// One raw SSE frame (only with `session.trace_raw_sse`), bounded.
    RawSse(RawSseFrame),
    /// A provider response head (only with `session.trace_raw_sse`), before the attempt's raw
    /// frames: enough, with them, to serve the response again (`pods provider cassette`).
    RawResponse(RawResponseHead),
    /// The writer's queue was full and `count` entries were lost before this point.
    Shed { count: u64 },
}

/// Lifecycle markers; the `marker` tag in JSON. None of them carries prompt text, API keys,
/// auth headers or URL query strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "marker", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Marker {
    /// The trace sidecar was opened for a segment.
    TraceStarted {
        segment_id: String,
        pod_id: String,
        format_version: u32,
    },
    RunStarted,
    /// A model request body was built: sizes and counts only, never content. `endpoint` has no
    /// query string or credentials.
    RequestBuilt {
        endpoint: String,
        body_bytes: usize,
        messages: usize,
        tools: usize,
    },
    /// The HTTP request was sent.
    StreamOpenStart,
    StreamOpenOk {
        http_status: u16,
    },
    /// The attempt failed before its stream started (connect error or non-success status).
    StreamOpenError {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        class: ErrorClass,
    },
    FirstByte,
    /// The first stream event of an attempt arrived.
    FirstEvent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_ms: Option<u64>,
    },
    RetryScheduled {
        delay_ms: u64,
        cause: ProviderError,
    },
    IdleTimeout,
    /// The stream of one attempt ended; `outcome` is `completed`, `incomplete` or an error class.
    StreamEnd {
        outcome: String,
    },
    /// The run ended; `outcome` is `completed`, `errored`, `interrupted` or `failed`.
    RunEnd {
        outcome: String,
    },
    /// A provider milestone this build has no dedicated marker for, by name.
    Other {
        name: String,
        detail: String,
    },
}

impl Marker {
    pub fn name(&self) -> &str {
        match self {
            Marker::TraceStarted { .. } => "trace_started",
            Marker::RunStarted => "run_started",
            Marker::RequestBuilt { .. } => "request_built",
            Marker::StreamOpenStart => "stream_open_start",
            Marker::StreamOpenOk { .. } => "stream_open_ok",
            Marker::StreamOpenError { .. } => "stream_open_error",
            Marker::FirstByte => "first_byte",
            Marker::FirstEvent { .. } => "first_event",
            Marker::RetryScheduled { .. } => "retry_scheduled",
            Marker::IdleTimeout => "idle_timeout",
            Marker::StreamEnd { .. } => "stream_end",
            Marker::RunEnd { .. } => "run_end",
            Marker::Other { name, .. } => name,
        }
    }
}

/// One raw SSE frame, cut to at most `session.trace_max_frame_bytes` of data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawSseFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub data: String,
    /// Length of the whole data in bytes.
    pub original_len: usize,
    pub truncated: bool,
}

impl RawSseFrame {
    /// Keep at most `max_bytes` of `data`, cut on a character boundary.
    pub fn bounded(event: Option<String>, data: &str, max_bytes: usize) -> RawSseFrame {
        let original_len = data.len();
        let mut end = original_len.min(max_bytes);
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        RawSseFrame {
            event,
            data: data[..end].to_owned(),
            original_len,
            truncated: end < original_len,
        }
    }
}

/// A response head: status, headers without cookies or anything that authenticates, and the
/// body of a response that is not a stream (an HTTP error), cut like a raw frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawResponseHead {
    pub scheme: WireScheme,
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl RawResponseHead {
    /// Keep at most `max_bytes` of `body`, cut on a character boundary.
    pub fn bounded(
        scheme: WireScheme,
        status: u16,
        headers: Vec<(String, String)>,
        body: Option<&str>,
        max_bytes: usize,
    ) -> RawResponseHead {
        let (body, truncated) = match body {
            Some(b) => {
                let cut = RawSseFrame::bounded(None, b, max_bytes);
                (Some(cut.data), cut.truncated)
            }
            None => (None, false),
        };
        RawResponseHead {
            scheme,
            status,
            headers,
            body,
            truncated,
        }
    }
}

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

impl PendingEntry {
    pub fn now(body: TraceBody) -> PendingEntry {
        PendingEntry {
            at: SystemTime::now(),
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

/// A URL reduced to what a trace may hold: scheme, host, port and path; no credentials, no
/// query string, no fragment.
pub fn redact_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..host_end];
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{}://{}{}", &url[..scheme_end], host, &rest[host_end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_drops_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:sk-secret@api.example.com:8443/v1/responses?key=sk-secret#x"),
            "https://api.example.com:8443/v1/responses"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:1234/v1"),
            "http://127.0.0.1:1234/v1"
        );
    }

    #[test]
    fn raw_frame_is_cut_on_a_char_boundary() {
        let frame = RawSseFrame::bounded(None, "aé€b", 3);
        assert_eq!(frame.data, "aé");
        assert_eq!(frame.original_len, "aé€b".len());
        assert!(frame.truncated);
        let whole = RawSseFrame::bounded(Some("x".into()), "abc", 10);
        assert_eq!(whole.data, "abc");
        assert!(!whole.truncated);
    }

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
