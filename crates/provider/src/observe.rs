//! The observation tap: transport milestones, retries and (on request) raw SSE frames.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, ProviderError};
use crate::scheme::WireScheme;

/// Watches one stream. Every method has a no-op default; implement what you need.
/// Normalized events are not passed here: the caller already receives them from the stream.
pub trait StreamObserver: Send + Sync {
    /// A request body was built for `info.attempt`.
    fn on_request_built(&self, _info: &RequestInfo) {}
    /// A transport milestone of attempt `attempt` (1-based).
    fn on_milestone(&self, _attempt: u32, _milestone: &Milestone) {}
    /// Attempt `attempt` failed with `cause`; the next one starts after `delay`.
    fn on_retry_scheduled(&self, _attempt: u32, _delay: Duration, _cause: &ProviderError) {}
    /// Whether [`StreamObserver::on_raw_frame`] should be called. Asked once per attempt, so the
    /// normal path builds no owned frames.
    fn wants_raw_frames(&self) -> bool {
        false
    }
    /// One SSE frame as framed from the wire, before the adapter reads it.
    fn on_raw_frame(&self, _attempt: u32, _frame: &RawFrame) {}
    /// Every event decoded from the last network read has been handed out, and the stream is
    /// about to wait for the next read: the moment to pass on what was gathered per read (one
    /// terminal write, one trace batch) rather than per event.
    fn on_read_drained(&self) {}
}

/// What was sent, without content or headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInfo {
    pub attempt: u32,
    pub scheme: WireScheme,
    /// The request URL without its query string.
    pub url: String,
    pub body_bytes: usize,
    pub message_count: usize,
    pub tool_count: usize,
}

/// A point in the life of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "milestone", rename_all = "snake_case")]
pub enum Milestone {
    RequestSent,
    HeadersReceived {
        status: u16,
    },
    FirstByte,
    FirstEvent,
    /// The attempt failed before its stream started (connect error or non-success status).
    OpenError {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        class: ErrorClass,
    },
    IdleTimeout,
    /// The attempt's stream ended; `outcome` is the terminal event kind (`completed`,
    /// `incomplete`, `error`) or the error class that ended it.
    StreamEnd {
        outcome: String,
    },
}

/// One SSE frame: event name (empty when the frame had none), data lines joined by `\n`, last id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawFrame {
    pub event: String,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
