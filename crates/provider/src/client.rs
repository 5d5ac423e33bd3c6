//! Transport: HTTP, SSE framing, timeouts, retries and observation. Knows no wire scheme; the
//! [`Adapter`] gives it the URL, headers and body, and decodes the frames.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::{Instant, timeout_at};

use crate::adapter::{Adapter, adapter_for, is_terminal};
use crate::classify;
use crate::config::ClientConfig;
use crate::decode::StreamDecoder;
use crate::error::{ErrorClass, ProviderError};
use crate::event::StreamEvent;
use crate::observe::{
    Milestone, RawFrames, RawResponse, RequestInfo, StreamObserver, replayable_headers,
};
use crate::redact::{FrameScrub, StreamKey, StreamScrubber, scrub};
use crate::request::ModelRequest;
use crate::safe_url::DisplaySafeUrl;
use crate::secret::ApiKey;

/// The most of an error response body that is read for classification.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How the message of an error starts when the connection broke mid-body (as opposed to a body
/// that ended cleanly but early): what a cassette rebuilt from a trace replays as a disconnect.
pub const BROKE_OFF: &str = "the response stream broke off before it completed";

/// A provider client for one scheme and endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    adapter: &'static dyn Adapter,
    /// Adapter headers, built once, with secret values marked sensitive.
    headers: HeaderMap,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Check the configuration and build the HTTP client.
    pub fn new(config: ClientConfig) -> Result<Client, ProviderError> {
        let adapter = adapter_for(config.scheme);
        // Any model name will do to check the base URL.
        let url = adapter.url(config.base_url.expose(), "model");
        match reqwest::Url::parse(&url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(ProviderError::new(
                    ErrorClass::InvalidRequest,
                    format!(
                        "base URL `{}` is not an http(s) URL; set model.base_url to e.g. `{}`",
                        config.base_url,
                        config.scheme.default_base_url()
                    ),
                ));
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in adapter.headers(config.api_key.as_ref()) {
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                ProviderError::new(
                    ErrorClass::Auth,
                    format!("the value for header `{name}` (API key) contains characters not allowed in an HTTP header"),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| classify::transport("building the HTTP client", &e))?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                adapter,
                headers,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Send `request` and stream the normalized events. The stream ends with exactly one
    /// terminal event (`completed`, `incomplete` or `error`). Failed attempts are retried inside
    /// the stream while no output event has been yielded.
    ///
    /// Must be polled inside a tokio runtime.
    pub fn stream(
        &self,
        request: &ModelRequest,
        observer: Option<Arc<dyn StreamObserver>>,
    ) -> EventStream {
        let adapter = self.inner.adapter;
        let url =
            DisplaySafeUrl::new(adapter.url(self.inner.config.base_url.expose(), &request.model));
        let body = serde_json::to_vec(&adapter.body(request)).map(Bytes::from);
        let mut driver = Driver {
            inner: self.inner.clone(),
            url,
            body: Bytes::new(),
            message_count: request.messages.len(),
            tool_count: request.tools.len(),
            raw: observer
                .as_ref()
                .is_some_and(|o| o.wants_raw_frames())
                .then(|| FrameScrub::new(self.inner.config.api_key.as_ref().map(ApiKey::expose))),
            observer,
            attempt: 0,
            first_start: None,
            output_seen: false,
            finished: false,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            live: None,
            released: VecDeque::new(),
            scrubber: StreamScrubber::new(self.inner.config.api_key.as_ref().map(ApiKey::expose)),
        };
        match body {
            Ok(b) => driver.body = b,
            Err(e) => driver
                .pending
                .push_back(StreamEvent::Error(ProviderError::new(
                    ErrorClass::InvalidRequest,
                    format!("cannot serialize the request body: {e}"),
                ))),
        }
        // Boxed: `unfold` moves its state in and out for every event, and a driver is large.
        let stream = futures_util::stream::unfold(Box::new(driver), |mut d| async move {
            d.next().await.map(|ev| (ev, d))
        });
        EventStream {
            inner: Box::pin(stream),
        }
    }
}

/// The normalized events of one model call. Ends with exactly one terminal event.
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = StreamEvent> + Send>>,
}

impl EventStream {
    /// The next event, or `None` after the terminal event (for callers without `StreamExt`).
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        self.inner.next().await
    }

    /// A stream over already-known events (tests and tools).
    pub fn from_events(events: Vec<StreamEvent>) -> EventStream {
        EventStream {
            inner: Box::pin(futures_util::stream::iter(events)),
        }
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One attempt whose response headers said success.
struct Live {
    body: ByteStream,
    decoder: StreamDecoder,
    first_event_deadline: Instant,
    /// When the decoder last produced an event; keep-alives never move it.
    last_event: Instant,
    /// Sending the request plus `max_response_time`, when that is set.
    response_deadline: Option<Instant>,
    /// Body bytes received so far.
    bytes: u64,
    got_byte: bool,
    got_event: bool,
}

struct Driver {
    inner: Arc<Inner>,
    /// Logs, observers and errors see it without userinfo, query or fragment.
    url: DisplaySafeUrl,
    body: Bytes,
    message_count: usize,
    tool_count: usize,
    observer: Option<Arc<dyn StreamObserver>>,
    /// With raw capture on (the observer wants raw frames): what strips the key from them.
    raw: Option<FrameScrub>,
    attempt: u32,
    first_start: Option<Instant>,
    output_seen: bool,
    finished: bool,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    live: Option<Live>,
    /// Strips the key from model output, even split across deltas.
    scrubber: StreamScrubber,
    released: VecDeque<StreamEvent>,
}

impl Driver {
    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            // Already scrubbed: text the scrubber held back and has now released.
            if let Some(ev) = self.released.pop_front() {
                return Some(ev);
            }
            if let Some(ev) = self.pending.pop_front() {
                // Strip the key before anything (caller, observer, retry log) sees provider
                // text that is passed on as it came: error messages, unhandled previews.
                let ev = match (ev, &self.inner.config.api_key) {
                    (StreamEvent::Error(e), Some(k)) => {
                        StreamEvent::Error(e.redact_secret(k.expose()))
                    }
                    (StreamEvent::Unhandled(mut u), key) => {
                        let secret = key.as_ref().map(ApiKey::expose);
                        if let std::borrow::Cow::Owned(clean) = scrub(&u.preview, secret) {
                            u.preview = clean;
                        }
                        StreamEvent::Unhandled(u)
                    }
                    (ev, _) => ev,
                };
                if !is_terminal(&ev) {
                    self.output_seen |= ev.is_output();
                    match self.scrub_output(ev) {
                        Some(ev) => return Some(ev),
                        None => continue,
                    }
                }
                // What the scrubber held back goes out before the end.
                let held = self.scrubber.flush();
                if !held.is_empty() {
                    self.pending.push_front(ev);
                    self.released
                        .extend(held.into_iter().map(|(key, text)| held_delta(key, text)));
                    continue;
                }
                tracing::debug!(
                    attempt = self.attempt,
                    outcome = ev.kind(),
                    "provider stream ended"
                );
                self.milestone(&Milestone::StreamEnd {
                    outcome: match &ev {
                        StreamEvent::Error(e) => e.class.as_str().to_string(),
                        other => other.kind().to_string(),
                    },
                });
                self.live = None;
                self.pending.clear();
                if let StreamEvent::Error(e) = &ev
                    && let Some(delay) = self.retry_delay(e)
                {
                    tracing::info!(
                        attempt = self.attempt,
                        delay_ms = delay.as_millis() as u64,
                        class = %e.class,
                        "provider request failed; retrying"
                    );
                    if let Some(o) = &self.observer {
                        o.on_retry_scheduled(self.attempt, delay, e);
                    }
                    tokio::time::sleep(delay).await;
                    continue;
                }
                self.finished = true;
                return Some(ev);
            }
            if self.finished {
                return None;
            }
            if self.live.is_none() {
                self.open().await;
            } else {
                self.read().await;
            }
        }
    }

    /// The key's value removed from model output; `None` when all of a delta is held back as
    /// the possible start of the key. A call's end first releases what its deltas held back.
    fn scrub_output(&mut self, ev: StreamEvent) -> Option<StreamEvent> {
        if !self.scrubber.is_active() {
            return Some(ev);
        }
        let s = &mut self.scrubber;
        match ev {
            StreamEvent::TextDelta(mut d) => {
                d.text = s.push(StreamKey::Text(d.choice), std::mem::take(&mut d.text));
                (!d.text.is_empty()).then_some(StreamEvent::TextDelta(d))
            }
            StreamEvent::ReasoningDelta(mut d) if !d.text.is_empty() => {
                d.text = s.push(
                    StreamKey::Reasoning(d.choice, d.kind),
                    std::mem::take(&mut d.text),
                );
                (!d.text.is_empty() || d.signature.is_some())
                    .then_some(StreamEvent::ReasoningDelta(d))
            }
            StreamEvent::ToolCallDelta(mut d) => {
                d.arguments = s.push(
                    StreamKey::Arguments(d.choice, d.index),
                    std::mem::take(&mut d.arguments),
                );
                (!d.arguments.is_empty()).then_some(StreamEvent::ToolCallDelta(d))
            }
            StreamEvent::ToolCallEnd(mut end) => {
                let key = StreamKey::Arguments(end.choice, end.index);
                end.arguments = s.scrub_whole(std::mem::take(&mut end.arguments));
                match s.take(key) {
                    Some(held) => {
                        self.pending.push_front(StreamEvent::ToolCallEnd(end));
                        Some(held_delta(key, held))
                    }
                    None => Some(StreamEvent::ToolCallEnd(end)),
                }
            }
            ev => Some(ev),
        }
    }

    /// Hand the response head (and a non-stream body) to an observer that wants raw frames.
    fn raw_response(
        &self,
        status: u16,
        headers: Option<Vec<(String, String)>>,
        body: Option<&[u8]>,
    ) {
        let (Some(o), Some(headers)) = (&self.observer, headers) else {
            return;
        };
        let secret = self.inner.config.api_key.as_ref().map(ApiKey::expose);
        o.on_raw_response(
            self.attempt,
            &RawResponse {
                scheme: self.inner.config.scheme,
                status,
                headers,
                body: body.map(|b| scrub(&String::from_utf8_lossy(b), secret).into_owned()),
            },
        );
    }

    fn milestone(&self, m: &Milestone) {
        if let Some(o) = &self.observer {
            o.on_milestone(self.attempt, m);
        }
    }

    /// How long to wait before the next attempt, or `None` when this error ends the stream.
    fn retry_delay(&self, e: &ProviderError) -> Option<Duration> {
        let policy = &self.inner.config.retry;
        if !e.retryable || self.output_seen || self.attempt >= policy.max_attempts {
            return None;
        }
        let delay = policy.delay(self.attempt, e.retry_after_ms);
        let elapsed = self.first_start.map(|s| s.elapsed()).unwrap_or_default();
        elapsed
            .checked_add(delay)
            .is_some_and(|t| t <= policy.budget)
            .then_some(delay)
    }

    async fn open(&mut self) {
        self.attempt += 1;
        let started = Instant::now();
        self.first_start.get_or_insert(started);
        if let Some(o) = &self.observer {
            o.on_request_built(&RequestInfo {
                attempt: self.attempt,
                scheme: self.inner.config.scheme,
                url: self.url.to_string(),
                body_bytes: self.body.len(),
                message_count: self.message_count,
                tool_count: self.tool_count,
            });
        }
        let send = self
            .inner
            .http
            .post(self.url.expose())
            .headers(self.inner.headers.clone())
            .body(self.body.clone())
            .send();
        tracing::debug!(attempt = self.attempt, url = %self.url, bytes = self.body.len(), "provider request sent");
        self.milestone(&Milestone::RequestSent);
        let first_event_timeout = self.inner.config.first_event_timeout;
        let deadline = deadline_after(started, first_event_timeout);
        let response_deadline = self
            .inner
            .config
            .max_response_time
            .map(|t| deadline_after(started, t));
        let response = match timeout_at(earliest(deadline, response_deadline), send).await {
            Err(_) => {
                let e = if response_deadline.is_some_and(|d| d <= deadline) {
                    response_timed_out(self.inner.config.max_response_time)
                } else {
                    first_event_timed_out(first_event_timeout)
                };
                self.milestone(&Milestone::OpenError {
                    status: None,
                    class: e.class,
                });
                self.pending.push_back(StreamEvent::Error(e));
                return;
            }
            Ok(Err(err)) => {
                let e = classify::transport(
                    &format!("sending the request to {}", self.url),
                    &err.without_url(),
                );
                self.milestone(&Milestone::OpenError {
                    status: None,
                    class: e.class,
                });
                self.pending.push_back(StreamEvent::Error(e));
                return;
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        self.milestone(&Milestone::HeadersReceived { status });
        let raw_head = self.raw.is_some().then(|| {
            replayable_headers(
                response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            )
        });
        if !response.status().is_success() {
            let headers = response.headers().clone();
            let body = read_bounded(response, deadline).await;
            self.raw_response(status, raw_head, Some(&body));
            let e = classify::from_http(status, &headers, &body);
            self.milestone(&Milestone::OpenError {
                status: Some(status),
                class: e.class,
            });
            self.pending.push_back(StreamEvent::Error(e));
            return;
        }
        // A success status with a JSON body is not a stream: some gateways report errors so.
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
        if is_json {
            let headers = response.headers().clone();
            let body = read_bounded(response, deadline).await;
            self.raw_response(status, raw_head, Some(&body));
            let mut e = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if v.get("error").is_some() => classify::from_http(status, &headers, &body),
                _ => ProviderError::new(
                    ErrorClass::MalformedStream,
                    format!(
                        "expected an event stream but got an application/json body of {} bytes",
                        body.len()
                    ),
                ),
            };
            if e.class == ErrorClass::InvalidRequest && e.code.is_none() {
                e.class = ErrorClass::MalformedStream;
                e.retryable = false;
            }
            self.milestone(&Milestone::OpenError {
                status: Some(status),
                class: e.class,
            });
            self.pending.push_back(StreamEvent::Error(e));
            return;
        }
        self.raw_response(status, raw_head, None);
        self.live = Some(Live {
            body: Box::pin(response.bytes_stream()),
            decoder: StreamDecoder::new(
                self.inner.config.scheme,
                self.inner.config.max_event_bytes,
            ),
            first_event_deadline: deadline,
            last_event: deadline,
            response_deadline,
            bytes: 0,
            got_byte: false,
            got_event: false,
        });
    }

    async fn read(&mut self) {
        // Everything decoded so far has been handed out.
        if let Some(o) = &self.observer {
            o.on_read_drained();
        }
        let Some(live) = self.live.as_mut() else {
            return;
        };
        // Measured from the last decoded event, not the last chunk: a provider (or proxy) that
        // only sends comments, blank lines or pings is stalled all the same.
        let idle = self.inner.config.idle_timeout;
        let event_deadline = if live.got_event {
            deadline_after(live.last_event, idle)
        } else {
            live.first_event_deadline
        };
        let next = timeout_at(
            earliest(event_deadline, live.response_deadline),
            live.body.next(),
        )
        .await;
        let max_bytes = self.inner.config.max_response_bytes;
        let max_time = self.inner.config.max_response_time;
        let scratch = &mut self.scratch;
        let attempt = self.attempt;
        // A read's frames are handed on together, once its events are decoded.
        let read_len = match &next {
            Ok(Some(Ok(chunk))) => chunk.len(),
            _ => 0,
        };
        let mut frames = self
            .raw
            .is_some()
            .then(|| RawFrames::with_capacity(read_len));
        // Whether the decoder produced events: a timeout or a broken read is not an event.
        let mut decoded = false;
        match next {
            Err(_) if live.response_deadline.is_some_and(|d| d <= Instant::now()) => {
                scratch.push(StreamEvent::Error(response_timed_out(max_time)));
            }
            Err(_) => {
                let e = if live.got_event {
                    ProviderError::new(
                        ErrorClass::IdleTimeout,
                        format!(
                            "no event from the provider for {} (keep-alives do not count)",
                            fmt_duration(idle)
                        ),
                    )
                } else {
                    first_event_timed_out(self.inner.config.first_event_timeout)
                };
                scratch.push(StreamEvent::Error(e));
                if let Some(o) = &self.observer {
                    o.on_milestone(attempt, &Milestone::IdleTimeout);
                }
            }
            Ok(Some(Ok(chunk))) if live.bytes.saturating_add(chunk.len() as u64) > max_bytes => {
                // The bytes past the bound are not decoded: nothing beyond it reaches anyone.
                scratch.push(StreamEvent::Error(ProviderError::new(
                    ErrorClass::ResponseTooLarge,
                    format!(
                        "the response passed the {max_bytes}-byte limit (limits.max_response_bytes) after {} bytes",
                        live.bytes
                    ),
                )));
            }
            Ok(Some(Ok(chunk))) => {
                live.bytes += chunk.len() as u64;
                if !live.got_byte {
                    live.got_byte = true;
                    if let Some(o) = &self.observer {
                        o.on_milestone(attempt, &Milestone::FirstByte);
                    }
                }
                live.decoder.push(&chunk, scratch, frames.as_mut());
                decoded = carries_something(scratch);
            }
            Ok(Some(Err(err))) => {
                // Whatever the HTTP framing, a body that breaks off is a stream that ended early.
                let mut e = classify::transport(BROKE_OFF, &err.without_url());
                e.class = ErrorClass::StreamClosedBeforeCompletion;
                e.retryable = e.class.is_retryable();
                scratch.push(StreamEvent::Error(e));
            }
            Ok(None) => {
                live.decoder.finish(scratch, frames.as_mut());
                decoded = carries_something(scratch);
            }
        }
        if let Some(mut frames) = frames
            && !frames.is_empty()
            && let Some(o) = &self.observer
            && let Some(scrub) = &self.raw
        {
            if scrub.finds_in(frames.text()) {
                frames = frames.scrubbed(scrub);
            }
            o.on_raw_frames(attempt, frames);
        }
        if decoded {
            live.last_event = Instant::now();
            if !live.got_event {
                live.got_event = true;
                if let Some(o) = &self.observer {
                    o.on_milestone(attempt, &Milestone::FirstEvent);
                }
            }
        }
        self.pending.extend(scratch.drain(..));
    }
}

/// `start + d`, or a deadline decades away when a configured timeout is too large to add.
fn deadline_after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(start)
}

/// Whether new events show the response moving: anything but usage reports, which some servers
/// repeat with nothing else (they would hold off the idle timeout forever).
fn carries_something(events: &[StreamEvent]) -> bool {
    events.iter().any(|e| !matches!(e, StreamEvent::Usage(_)))
}

/// A delta carrying text the scrubber held back.
fn held_delta(key: StreamKey, text: String) -> StreamEvent {
    use crate::event::{ReasoningDelta, TextDelta, ToolCallDelta};
    match key {
        StreamKey::Text(choice) => StreamEvent::TextDelta(TextDelta { choice, text }),
        StreamKey::Reasoning(choice, kind) => StreamEvent::ReasoningDelta(ReasoningDelta {
            choice,
            kind,
            text,
            signature: None,
        }),
        StreamKey::Arguments(choice, index) => StreamEvent::ToolCallDelta(ToolCallDelta {
            choice,
            index,
            arguments: text,
        }),
    }
}

/// The earlier of `a` and `b` (when there is a `b`).
fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

fn response_timed_out(t: Option<Duration>) -> ProviderError {
    ProviderError::new(
        ErrorClass::ResponseTimeout,
        format!(
            "the response streamed for longer than {} (limits.max_response_ms)",
            fmt_duration(t.unwrap_or_default())
        ),
    )
}

fn first_event_timed_out(t: Duration) -> ProviderError {
    ProviderError::new(
        ErrorClass::IdleTimeout,
        format!(
            "no event from the provider within {} of sending the request",
            fmt_duration(t)
        ),
    )
}

fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 10_000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

async fn read_bounded(response: reqwest::Response, deadline: Instant) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Ok(Some(Ok(chunk))) = timeout_at(deadline, stream.next()).await {
        let room = MAX_ERROR_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    body
}
