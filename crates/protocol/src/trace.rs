//! Trace entry types: one JSON line of a trace sidecar.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, ProviderError};
use crate::event::StreamEvent;
use crate::scheme::WireScheme;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "marker", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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

impl TraceBody {
    /// The `kind` tag of this entry as it appears in JSON.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

impl Marker {
    /// The `marker` tag as it appears in JSON; for [`Marker::Other`], the name it carries.
    pub fn name(&self) -> &str {
        match self {
            Marker::Other { name, .. } => name,
            known => known.into(),
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
    /// [`RawSseFrame::bounded`] for data the caller owns: cut in place, never copied.
    pub fn bounded_owned(event: Option<String>, mut data: String, max_bytes: usize) -> RawSseFrame {
        let original_len = data.len();
        let kept = crate::text::cut_at_char_boundary(&data, max_bytes).len();
        data.truncate(kept);
        RawSseFrame {
            event,
            data,
            original_len,
            truncated: kept < original_len,
        }
    }

    /// Keep at most `max_bytes` of `data`, cut on a character boundary.
    pub fn bounded(event: Option<String>, data: &str, max_bytes: usize) -> RawSseFrame {
        let kept = crate::text::cut_at_char_boundary(data, max_bytes);
        RawSseFrame {
            event,
            data: kept.to_owned(),
            original_len: data.len(),
            truncated: kept.len() < data.len(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frame_is_cut_on_a_char_boundary() {
        let frame = RawSseFrame::bounded(None, "aé€b", 3);
        assert_eq!(frame.data, "aé");
        assert_eq!(frame.original_len, "aé€b".len());
        assert!(frame.truncated);
        let whole = RawSseFrame::bounded(Some("x".into()), "abc", 10);
        assert_eq!(whole.data, "abc");
        assert!(!whole.truncated);
        assert_eq!(
            RawSseFrame::bounded_owned(None, "aé€b".to_owned(), 3),
            frame,
            "owned data is cut the same way"
        );
        assert_eq!(
            RawSseFrame::bounded_owned(Some("x".into()), "abc".to_owned(), 10),
            whole
        );
    }
}
