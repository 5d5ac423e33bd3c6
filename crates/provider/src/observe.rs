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
    /// Whether [`StreamObserver::on_raw_frames`] should be called. Asked once per attempt, so the
    /// normal path builds no owned frames.
    fn wants_raw_frames(&self) -> bool {
        false
    }
    /// The SSE frames of one network read as framed from the wire (the key scrubbed), before
    /// the events decoded from them are handed out; the observer owns them.
    fn on_raw_frames(&self, _attempt: u32, _frames: RawFrames) {}
    /// The response head of attempt `attempt`, and for a response that is not a stream (an
    /// error status, a JSON body) its body. Only called when raw frames are wanted.
    fn on_raw_response(&self, _attempt: u32, _response: &RawResponse) {}
    /// Every event decoded from the last network read has been handed out, and the stream is
    /// about to wait for the next read: the moment to pass on what was gathered per read (one
    /// terminal write, one trace batch) rather than per event.
    fn on_read_drained(&self) {}
}

/// A response as received, enough to serve it again: status, headers without anything that
/// authenticates (see [`replayable_headers`]), and the body of a non-stream response (the API
/// key scrubbed). A stream's body is its raw frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawResponse {
    pub scheme: WireScheme,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The headers of a response worth serving again: no cookies, nothing naming a key, token,
/// secret or auth, no framing headers (the body is served de-chunked and decoded), no `date`.
pub fn replayable_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(String, String)> {
    const FRAMING: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "cookie",
        "set-cookie",
        // When it was served, not what: a replay has its own.
        "date",
    ];
    headers
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let secretish = ["key", "token", "secret", "auth", "cookie", "session"]
                .iter()
                .any(|w| name.contains(w));
            if secretish || FRAMING.contains(&name.as_str()) {
                return None;
            }
            Some((name, String::from_utf8_lossy(value).into_owned()))
        })
        .collect()
}

/// What was sent, without content or headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInfo {
    pub attempt: u32,
    pub scheme: WireScheme,
    /// The request URL as [`DisplaySafeUrl`](crate::DisplaySafeUrl) shows it: without
    /// userinfo, query string or fragment.
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

/// One SSE frame: its event name (empty when the frame had none) and its data lines joined by
/// `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub event: &'a str,
    pub data: &'a str,
}

/// The SSE frames of one network read, as framed from the wire, their texts one after another
/// in one buffer: a read's hundreds of frames cost no allocation each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFrames {
    text: String,
    ends: Vec<FrameEnds>,
}

/// Where a frame's event name and data end in [`RawFrames::text`]: the event starts where the
/// frame before ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEnds {
    pub event: usize,
    pub data: usize,
}

impl RawFrames {
    /// Room for about `bytes` of frames.
    pub fn with_capacity(bytes: usize) -> RawFrames {
        RawFrames {
            text: String::with_capacity(bytes),
            // A frame takes at least a few dozen bytes of the wire.
            ends: Vec::with_capacity(bytes / 32),
        }
    }

    pub fn push(&mut self, frame: RawFrame<'_>) {
        self.text.push_str(frame.event);
        let event = self.text.len();
        self.text.push_str(frame.data);
        let data = self.text.len();
        self.ends.push(FrameEnds { event, data });
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every frame's text, one after another.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where each frame ends in [`RawFrames::text`].
    pub fn ends(&self) -> &[FrameEnds] {
        &self.ends
    }

    pub fn iter(&self) -> impl Iterator<Item = RawFrame<'_>> {
        let mut start = 0;
        self.ends.iter().map(move |ends| {
            let text = |from: usize, to: usize| self.text.get(from..to).unwrap_or_default();
            let frame = RawFrame {
                event: text(start, ends.event),
                data: text(ends.event, ends.data),
            };
            start = ends.data;
            frame
        })
    }

    /// The same frames with the key and bearer tokens stripped from every text.
    pub(crate) fn scrubbed(&self, scrub: &crate::redact::FrameScrub) -> RawFrames {
        let mut out = RawFrames::with_capacity(self.text.len());
        for frame in self.iter() {
            out.push(RawFrame {
                event: &scrub.scrub(frame.event),
                data: &scrub.scrub(frame.data),
            });
        }
        out
    }
}
