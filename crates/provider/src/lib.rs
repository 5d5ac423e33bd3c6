//! Streaming from LLM providers: one normalized event stream whatever the wire scheme.
//!
//! This crate owns the HTTP + SSE client ([`Client`]), the per-scheme adapters
//! ([`adapter`]: OpenAI Responses, OpenAI Chat Completions, Anthropic Messages, Gemini), the
//! normalized [`StreamEvent`], the error taxonomy ([`ProviderError`], [`ErrorClass`]), the retry
//! policy, the observation tap ([`StreamObserver`]) and the [`ReplayServer`] that serves recorded
//! responses over loopback. It leaves manifests, session logs, traces and the agent loop to other
//! crates: callers build a [`ModelRequest`], read the stream, and decide what to do with it.
//!
//! ```no_run
//! # async fn demo() {
//! use futures_util::StreamExt;
//! use pod_provider::{Client, ClientConfig, Message, ModelRequest, StreamEvent, WireScheme};
//!
//! let scheme = WireScheme::OpenaiResponses;
//! let config = ClientConfig::new(scheme)
//!     .with_api_key(pod_provider::ApiKey::from_env(scheme.default_api_key_env()));
//! let client = Client::new(config).expect("valid config");
//! let request = ModelRequest {
//!     model: "gpt-4o".into(),
//!     messages: vec![Message::User { text: "Hi".into() }],
//!     ..ModelRequest::default()
//! };
//! let mut events = client.stream(&request, None);
//! while let Some(event) = events.next().await {
//!     if let StreamEvent::TextDelta(d) = &event {
//!         print!("{}", d.text);
//!     }
//! }
//! # }
//! ```
//!
//! # The stream
//!
//! Every stream ends with exactly one terminal event — `completed` or `error` — and nothing
//! after it. (`incomplete` is a legacy terminal event no adapter produces any more; it stays
//! readable in old traces.) Failed attempts (HTTP errors, transport errors, retryable error events)
//! are retried inside the stream, with exponential backoff and full jitter or the provider's
//! `Retry-After` / `retry-after-ms`, but only while no output event
//! ([`StreamEvent::is_output`]) has been yielded; a `started` event may therefore appear once per
//! attempt. What an adapter does not understand becomes `unhandled`; framing anomalies are
//! marked with `unhandled` events named `sse.invalid_utf8` (bytes replaced by U+FFFD) and
//! `sse.unterminated_event` (a final event without its blank line, still processed).
//!
//! Stop reasons: every normal end is `completed` with a normalized [`event::StopReason`]:
//! `end_turn`, `tool_calls`, `max_tokens` (Chat `length`, Anthropic `max_tokens`, Responses
//! incomplete for `max_output_tokens`, Gemini `MAX_TOKENS`), `refusal`, `content_filter` (Chat
//! `content_filter`, Responses incomplete for `content_filter`, Gemini `SAFETY`, `RECITATION`,
//! `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY` and a blocked prompt), `incomplete` with the provider's reason (Responses
//! incomplete for another reason, Anthropic `pause_turn`) and `other` with the raw wording. In
//! multi-choice Chat streams every delta carries its `choice`; the terminal `completed` reports
//! choice 0.
//!
//! Usage: [`event::Usage`] means the same on every scheme; `input_tokens` is the whole prompt,
//! cached part included (Anthropic's own `input_tokens` excludes it and is normalized), and
//! `output_tokens` everything generated, reasoning included (Gemini's `candidatesTokenCount`
//! excludes its `thoughtsTokenCount`; the two are added).
//!
//! # Requests, adapters, observation
//!
//! A [`ModelRequest`] (instructions, [`Message`]s, [`ToolSpec`]s, limits) is provider-neutral;
//! each scheme's [`adapter::Adapter`] turns it into its wire body and headers and hands out an
//! [`adapter::Decoder`] that maps SSE frames to events with per-stream state. Adding a scheme
//! means one more adapter module; the transport ([`Client`]: HTTP, framing, timeouts,
//! retries) does not change. [`StreamDecoder`] runs framing + decoding without transport, for
//! tools and tests.
//!
//! A [`StreamObserver`] sees what the events do not show: each request built
//! ([`RequestInfo`]: attempt, URL without query, sizes, never content or headers), transport
//! [`Milestone`]s, scheduled retries, and — only if it asks via `wants_raw_frames` — every raw
//! SSE frame. Without an observer nothing is built for it.
//!
//! The idle timeout runs from the last decoded event, the first-event timeout from sending the
//! request: keep-alives (SSE comments, blank lines, empty `data:` lines, Anthropic `ping`, Chat
//! chunks with empty `choices` and nothing else) satisfy neither, nor do usage-only reports.
//! URLs in logs, observer data, errors and `Debug` output are shown through [`DisplaySafeUrl`],
//! so they never carry userinfo, a query string or a fragment.
//!
//! The API key is an [`ApiKey`]: it prints as `[redacted]`, is sent as a sensitive header, and
//! is stripped (with `Bearer …` and `sk-…` patterns) from every error message. Its value is also
//! replaced by `[redacted]` in model output — text, reasoning and tool-call arguments — even when
//! it arrives split across deltas: each stream holds back only a tail that could be the start of
//! the key and releases it when the next delta (or the end of the stream) shows it is not.
//!
//! Bounds: a response ends as `response_too_large` once its body passes
//! [`ClientConfig::max_response_bytes`] (128 MiB by default) and as `response_timeout` once it has
//! streamed for [`ClientConfig::max_response_time`] (off by default); neither is retried.
//!
//! # Cassettes and captures
//!
//! The formats the [`ReplayServer`] serves — cassettes (JSON, with fault knobs), HTTP captures
//! as `curl -i` writes them, and bare SSE bodies — are described in one place:
//! `crates/provider/CAPTURES.md`. [`load_replay_file`] tells them apart by content.
//!
//! # Framing
//!
//! [`sse::Framer`] is a small memchr-based framer that is linear in bytes whatever the network
//! chunking. eventsource-stream re-scans an incomplete line on every chunk, so a long event in
//! small chunks costs quadratic time; `benches/stream.rs` measures both (on the 51 MB Responses
//! stream: framing alone 0.02 s here against 0.7 s with 64 KiB chunks and 2.3 s with 1 KiB
//! chunks for eventsource-stream).

pub mod adapter;
mod classify;
mod client;
mod config;
mod decode;
pub mod error;
mod observe;
mod redact;
pub mod replay;
mod request;
mod safe_url;
mod secret;
pub mod sse;

pub use classify::{classify, from_error_json, from_http, retry_after_ms};
pub use client::{BROKE_OFF, Client, EventStream};
pub use config::{ClientConfig, RetryPolicy};
pub use decode::{StreamDecoder, decode_body};
pub use error::{ErrorClass, ProviderError, ReplayError};
pub use observe::{
    Milestone, RawFrame, RawFrames, RawResponse, RequestInfo, StreamObserver, replayable_headers,
};
/// The normalized stream event (its format is `pod_protocol::event`).
pub use pod_protocol::event;
use pod_protocol::scheme;
pub use pod_protocol::{StreamEvent, WireScheme};
pub use replay::{
    CASSETTE_VERSION, Cassette, CassetteResponse, HttpCapture, KeepaliveAfterEvents,
    PauseAfterEvents, ReceivedRequest, ReplayFile, ReplayServer, load_replay_file,
    parse_http_capture, sse_body,
};
pub use request::{Message, ModelRequest, ToolCall, ToolSpec};
pub use safe_url::DisplaySafeUrl;
pub use secret::ApiKey;
