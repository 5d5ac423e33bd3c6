//! The adapter boundary: one module per wire scheme. An adapter knows how to build a request
//! (URL, headers, JSON body) and hands out a [`Decoder`] that turns SSE frames into normalized
//! events with per-stream state. Transport (HTTP, framing, timeouts, retries) lives in
//! [`crate::Client`] and knows nothing about any scheme.

pub mod anthropic;
pub mod chat;
pub mod gemini;
mod lenient;
pub mod responses;

use serde_json::Value;

use crate::error::{ErrorClass, ProviderError};
use crate::event::{StreamEvent, UNHANDLED_PREVIEW_BYTES, Unhandled};
use crate::redact::preview;
use crate::request::ModelRequest;
use crate::scheme::WireScheme;
use crate::secret::ApiKey;
use crate::sse::Frame;

/// How one wire scheme builds requests and reads streams.
pub trait Adapter: Send + Sync {
    fn scheme(&self) -> WireScheme;
    /// The request URL for this base URL and model (e.g. `{base}/responses`; Gemini names the
    /// model in the path).
    fn url(&self, base_url: &str, model: &str) -> String;
    /// Auth and protocol headers. Values containing the key are marked sensitive by the client.
    fn headers(&self, api_key: Option<&ApiKey>) -> Vec<(&'static str, String)>;
    /// The JSON request body (always with streaming on).
    fn body(&self, request: &ModelRequest) -> Value;
    /// Fresh per-stream decoding state.
    fn decoder(&self) -> Box<dyn Decoder>;
}

/// Per-stream decoding state of one scheme.
pub trait Decoder: Send {
    /// Turn one SSE frame into zero or more events, appended to `out`. A terminal event
    /// (`completed`, `incomplete`, `error`) is the last thing a decoder ever emits.
    fn frame(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>);
    /// The byte stream ended. Emit the terminal event if the scheme allows ending here,
    /// otherwise a `stream_closed_before_completion` error. Not called after a terminal event.
    fn end(&mut self, out: &mut Vec<StreamEvent>);
}

/// The adapter of `scheme`.
pub fn adapter_for(scheme: WireScheme) -> &'static dyn Adapter {
    match scheme {
        WireScheme::OpenaiResponses => &responses::Responses,
        WireScheme::OpenaiChat => &chat::Chat,
        WireScheme::AnthropicMessages => &anthropic::Anthropic,
        WireScheme::Gemini => &gemini::Gemini,
    }
}

/// Whether `event` ends a stream.
pub fn is_terminal(event: &StreamEvent) -> bool {
    matches!(
        event,
        StreamEvent::Completed(_) | StreamEvent::Incomplete(_) | StreamEvent::Error(_)
    )
}

pub(crate) fn unhandled(event: &str, data: &str) -> StreamEvent {
    StreamEvent::Unhandled(Unhandled {
        event: event.to_string(),
        preview: preview(data, UNHANDLED_PREVIEW_BYTES),
        original_len: data.len(),
    })
}

/// A frame the typed reader rejected: valid JSON of an unexpected shape is `unhandled` (named
/// by its `type`, else the SSE event name); anything else is a `malformed_stream` error.
pub(crate) fn not_understood(frame: &Frame<'_>, err: &serde_json::Error) -> StreamEvent {
    match serde_json::from_str::<Value>(frame.data) {
        Ok(v) => {
            let name = v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or(if frame.event.is_empty() {
                    "data"
                } else {
                    frame.event
                });
            unhandled(name, frame.data)
        }
        Err(_) => malformed(frame.event, err),
    }
}

pub(crate) fn malformed(event: &str, err: &serde_json::Error) -> StreamEvent {
    let name = if event.is_empty() { "data" } else { event };
    let mut e = ProviderError::new(
        ErrorClass::MalformedStream,
        format!("SSE event `{name}` does not carry valid JSON: {err}"),
    );
    // A cut or garbled frame is usually transient; the client only retries before output.
    e.retryable = true;
    StreamEvent::Error(e)
}

pub(crate) fn closed_early(what: &str) -> StreamEvent {
    StreamEvent::Error(ProviderError::new(
        ErrorClass::StreamClosedBeforeCompletion,
        format!("the stream ended before {what}"),
    ))
}

pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
