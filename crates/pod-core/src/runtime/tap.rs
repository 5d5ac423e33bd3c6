//! The stream observer of one model request, which hands the trace sidecar its entries in
//! batches, logs the retried attempts (with why the attempt before failed) and notes when the
//! current attempt's first stream event came.
//!
//! Two parties record a request's trace entries: the client's callbacks (markers, raw frames)
//! through the shared [`Tap`], and the stream loop (every normalized event) through its own
//! [`StreamTrace`]. The loop takes no lock per event: callbacks put their entries aside, and the
//! loop moves them into its batch before the event that follows them, which keeps the order they
//! happened in.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pod_provider::{
    Milestone, ProviderError, RawFrames, RawResponse, RequestInfo, StreamEvent, StreamObserver,
};
use pod_trace::{Marker, RawResponseHead, RequestEntries, TraceBody, TraceHandle};

use super::{Pod, RunObserver};
use crate::error::CoreError;
use crate::record::{LogBody, ProviderRequestStarted, RetryCause};
use crate::session_log::SessionLog;
use pod_home::locked;

/// The stream observer of one model request: trace markers, raw frames, retry notices and the
/// `provider_request_started` entries of retried attempts.
pub(super) struct Tap {
    trace: Option<TraceHandle>,
    run_id: Arc<str>,
    turn: u32,
    attempt: AtomicU32,
    raw: bool,
    max_frame: usize,
    log: SessionLog,
    /// A log write that failed inside a callback, surfaced by the run after the stream.
    log_error: Mutex<Option<CoreError>>,
    scheme_label: String,
    model: String,
    sent_at: Mutex<Option<Instant>>,
    /// Milliseconds from the current attempt's request being sent to its first stream event.
    first_event_ms: Mutex<Option<u64>>,
    /// Why the last attempt failed, for the `provider_request_started` of its retry.
    retry_cause: Mutex<Option<RetryCause>>,
    observer: Arc<dyn RunObserver>,
    /// What the callbacks recorded since the stream loop last took it.
    aside: Mutex<Aside>,
    /// Set whenever `aside` gains something: the loop reads it once per event and takes the
    /// lock only when it is set.
    aside_changed: AtomicBool,
}

/// Entries recorded by the client's callbacks, waiting for the stream loop.
#[derive(Default)]
struct Aside {
    entries: Vec<AsideEntry>,
}

enum AsideEntry {
    Entry {
        attempt: u32,
        at: SystemTime,
        body: TraceBody,
    },
    /// The raw frames of one network read, which share its time.
    RawFrames {
        attempt: u32,
        at: SystemTime,
        frames: RawFrames,
    },
    /// The events of one network read were all handed out: what came before is one batch.
    ReadDrained,
}

/// The most trace entries gathered before they are queued, drained read or not.
const TRACE_BATCH: usize = 1024;

impl Pod {
    /// The tap of request `turn` of run `run_id`, at its first attempt.
    pub(super) fn tap(&self, run_id: &str, turn: u32, observer: Arc<dyn RunObserver>) -> Arc<Tap> {
        let run_id: Arc<str> = Arc::from(run_id);
        Arc::new(Tap {
            trace: self.trace.clone(),
            run_id: run_id.clone(),
            turn,
            attempt: AtomicU32::new(1),
            raw: self.manifest.session.trace_raw_sse,
            max_frame: self.manifest.session.trace_max_frame_bytes as usize,
            log: self.log.clone(),
            log_error: Mutex::new(None),
            scheme_label: self.model.scheme_label.clone(),
            model: self.model.model.clone(),
            sent_at: Mutex::new(None),
            first_event_ms: Mutex::new(None),
            retry_cause: Mutex::new(None),
            observer,
            aside: Mutex::new(Aside::default()),
            aside_changed: AtomicBool::new(false),
        })
    }
}

impl Tap {
    /// The attempt the provider client is on (retries count up from 1).
    pub(super) fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    /// Where the stream loop records the events of this request (nothing, with tracing off).
    pub(super) fn stream_trace(self: &Arc<Tap>) -> StreamTrace {
        StreamTrace {
            request: RequestEntries::new(self.run_id.clone(), self.turn, self.attempt()),
            tap: self.clone(),
            read_at: None,
            taken: Vec::new(),
        }
    }

    /// Put an entry of a callback aside for the stream loop.
    fn record_for(&self, attempt: u32, body: TraceBody) {
        if self.trace.is_none() {
            return;
        }
        self.put_aside(AsideEntry::Entry {
            attempt,
            at: SystemTime::now(),
            body,
        });
    }

    fn put_aside(&self, entry: AsideEntry) {
        locked(&self.aside).entries.push(entry);
        // Set after the entry is in: the loop clears the flag under the lock before taking the
        // entries, so a set flag may find nothing new, but no entry waits unflagged.
        self.aside_changed.store(true, Ordering::Release);
    }

    /// Milliseconds from the current attempt's request to its first stream event, when one came.
    pub(super) fn time_to_first_chunk_ms(&self) -> Option<u64> {
        *locked(&self.first_event_ms)
    }

    pub(super) fn take_log_error(&self) -> Option<CoreError> {
        locked(&self.log_error).take()
    }

    /// Move what the callbacks put aside into `request` (queueing it at each drained read),
    /// keeping `taken`'s room for the next time.
    fn take_aside(
        &self,
        trace: &TraceHandle,
        request: &mut RequestEntries,
        read_at: &mut Option<SystemTime>,
        taken: &mut Vec<AsideEntry>,
    ) {
        if !self.aside_changed.load(Ordering::Acquire) {
            return;
        }
        {
            let mut aside = locked(&self.aside);
            self.aside_changed.store(false, Ordering::Relaxed);
            std::mem::swap(&mut aside.entries, taken);
        }
        for entry in taken.drain(..) {
            match entry {
                AsideEntry::ReadDrained => {
                    *read_at = None;
                    trace.record_request(request);
                }
                AsideEntry::Entry { attempt, at, body } => {
                    Tap::switch_attempt(trace, request, attempt);
                    request.push(at, body);
                }
                AsideEntry::RawFrames {
                    attempt,
                    at,
                    frames,
                } => {
                    Tap::switch_attempt(trace, request, attempt);
                    request.push_raw_frames(at, &frames, self.max_frame);
                }
            }
        }
    }

    /// Queue the entries gathered of the attempt before, when `attempt` is a new one.
    fn switch_attempt(trace: &TraceHandle, request: &mut RequestEntries, attempt: u32) {
        if request.attempt != attempt {
            trace.record_request(request);
            request.attempt = attempt;
        }
    }
}

impl Drop for Tap {
    /// Whatever a callback recorded after the stream loop was gone is still queued.
    fn drop(&mut self) {
        if let Some(trace) = &self.trace {
            let mut request = RequestEntries::new(self.run_id.clone(), self.turn, self.attempt());
            self.take_aside(trace, &mut request, &mut None, &mut Vec::new());
            trace.record_request(&mut request);
        }
    }
}

/// The stream loop's side of a request's trace: its events gathered without a lock, what the
/// client's callbacks put aside moved in before the event that follows it, and everything
/// queued whenever the stream waits, at each drained network read, and when it is dropped.
pub(super) struct StreamTrace {
    tap: Arc<Tap>,
    request: RequestEntries,
    /// When the current network read's first event came: the events one read decoded arrive
    /// together, so they share its time (a clock read per event would cost more than recording
    /// it). Markers keep their own time.
    read_at: Option<SystemTime>,
    /// The aside entries last taken (kept for its room).
    taken: Vec<AsideEntry>,
}

impl StreamTrace {
    /// Record a normalized stream event.
    pub(super) fn event(&mut self, event: StreamEvent) {
        let Some(trace) = &self.tap.trace else {
            return;
        };
        self.tap
            .take_aside(trace, &mut self.request, &mut self.read_at, &mut self.taken);
        Tap::switch_attempt(trace, &mut self.request, self.tap.attempt());
        let at = *self.read_at.get_or_insert_with(SystemTime::now);
        self.request.push(at, TraceBody::Stream { event });
        if self.request.len() >= TRACE_BATCH {
            self.read_at = None;
            trace.record_request(&mut self.request);
        }
    }

    /// Record a lifecycle marker the stream loop itself notes.
    pub(super) fn marker(&mut self, marker: Marker) {
        let Some(trace) = &self.tap.trace else {
            return;
        };
        self.tap
            .take_aside(trace, &mut self.request, &mut self.read_at, &mut self.taken);
        self.request
            .push(SystemTime::now(), TraceBody::Lifecycle(marker));
    }

    /// Queue everything gathered so far: the stream is about to wait (on the network, or before
    /// a retry), so a follower of the trace sees what led there meanwhile.
    pub(super) fn send(&mut self) {
        let Some(trace) = &self.tap.trace else {
            return;
        };
        self.tap
            .take_aside(trace, &mut self.request, &mut self.read_at, &mut self.taken);
        trace.record_request(&mut self.request);
    }
}

impl Drop for StreamTrace {
    /// A stream dropped midway still queues what it gathered.
    fn drop(&mut self) {
        self.send();
    }
}

impl StreamObserver for Tap {
    fn on_request_built(&self, info: &RequestInfo) {
        self.attempt.store(info.attempt, Ordering::Relaxed);
        *locked(&self.first_event_ms) = None;
        if info.attempt > 1 {
            let logged = self
                .log
                .append(LogBody::ProviderRequestStarted(ProviderRequestStarted {
                    run_id: self.run_id.to_string(),
                    turn: self.turn,
                    attempt: info.attempt,
                    scheme: self.scheme_label.clone(),
                    model: self.model.clone(),
                    retry_of: locked(&self.retry_cause).take(),
                }));
            if let Err(error) = logged {
                locked(&self.log_error).get_or_insert(error);
            }
        }
        self.record_for(
            info.attempt,
            TraceBody::Lifecycle(Marker::RequestBuilt {
                endpoint: info.url.clone(),
                body_bytes: info.body_bytes,
                messages: info.message_count,
                tools: info.tool_count,
            }),
        );
    }

    fn on_milestone(&self, attempt: u32, milestone: &Milestone) {
        let marker = match milestone {
            Milestone::RequestSent => {
                *locked(&self.sent_at) = Some(Instant::now());
                Marker::StreamOpenStart
            }
            Milestone::HeadersReceived { status } => Marker::StreamOpenOk {
                http_status: *status,
            },
            Milestone::FirstByte => Marker::FirstByte,
            Milestone::FirstEvent => {
                let after_ms = locked(&self.sent_at)
                    .map(|s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX));
                *locked(&self.first_event_ms) = after_ms;
                Marker::FirstEvent { after_ms }
            }
            Milestone::OpenError { status, class } => Marker::StreamOpenError {
                http_status: *status,
                class: *class,
            },
            Milestone::IdleTimeout => Marker::IdleTimeout,
            Milestone::StreamEnd { outcome } => Marker::StreamEnd {
                outcome: outcome.clone(),
            },
        };
        self.record_for(attempt, TraceBody::Lifecycle(marker));
    }

    fn on_retry_scheduled(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        *locked(&self.retry_cause) = Some(RetryCause::of(cause, delay_ms));
        self.record_for(
            attempt,
            TraceBody::Lifecycle(Marker::RetryScheduled {
                delay_ms,
                cause: cause.clone(),
            }),
        );
        // The wait comes next: the stream loop queues what led to it as the stream waits.
        self.observer.on_retry(attempt, delay, cause);
    }

    fn wants_raw_frames(&self) -> bool {
        self.raw && self.trace.is_some()
    }

    fn on_read_drained(&self) {
        if self.trace.is_some() {
            self.put_aside(AsideEntry::ReadDrained);
        }
        self.observer.on_read_drained();
    }

    fn on_raw_frames(&self, attempt: u32, frames: RawFrames) {
        if self.trace.is_some() {
            self.put_aside(AsideEntry::RawFrames {
                attempt,
                at: SystemTime::now(),
                frames,
            });
        }
    }

    fn on_raw_response(&self, attempt: u32, response: &RawResponse) {
        self.record_for(
            attempt,
            TraceBody::RawResponse(RawResponseHead::bounded(
                response.scheme,
                response.status,
                response.headers.clone(),
                response.body.as_deref(),
                self.max_frame,
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod_provider::event::TextDelta;
    use pod_trace::MemorySink;

    fn tap(trace: TraceHandle) -> Arc<Tap> {
        let dir = tempfile::tempdir().unwrap();
        let log = SessionLog::create(&dir.path().join("log.jsonl")).unwrap();
        Arc::new(Tap {
            trace: Some(trace),
            run_id: Arc::from("run-1"),
            turn: 1,
            attempt: AtomicU32::new(1),
            raw: true,
            max_frame: 1024,
            log,
            log_error: Mutex::new(None),
            scheme_label: "openai-chat".into(),
            model: "m".into(),
            sent_at: Mutex::new(None),
            first_event_ms: Mutex::new(None),
            retry_cause: Mutex::new(None),
            observer: Arc::new(super::super::Quiet),
            aside: Mutex::new(Aside::default()),
            aside_changed: AtomicBool::new(false),
        })
    }

    fn delta(text: &str) -> StreamEvent {
        StreamEvent::TextDelta(TextDelta {
            choice: 0,
            text: text.into(),
        })
    }

    fn frame(data: &str) -> RawFrames {
        let mut frames = RawFrames::default();
        frames.push(pod_provider::RawFrame { event: "", data });
        frames
    }

    /// What a callback records lands after the events the loop gathered before it and before
    /// the event that follows, across drained reads, an attempt's retry and a dropped stream,
    /// and what it records once the loop is gone still reaches the trace.
    #[tokio::test]
    async fn callbacks_and_loop_events_keep_the_order_they_happened_in() {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let trace = TraceHandle::from_writer(
            std::path::Path::new("mem"),
            Box::new(MemorySink(bytes.clone())),
            1024,
        );
        let tap = tap(trace.clone());
        let mut stream = tap.stream_trace();
        tap.on_milestone(1, &Milestone::FirstByte);
        tap.on_raw_frames(1, frame("a"));
        stream.event(delta("a"));
        tap.on_raw_frames(1, frame("b"));
        stream.event(delta("b"));
        tap.on_read_drained();
        tap.on_raw_frames(1, frame("c"));
        stream.event(delta("c"));
        tap.on_milestone(
            1,
            &Milestone::StreamEnd {
                outcome: "error".into(),
            },
        );
        tap.attempt.store(2, Ordering::Relaxed);
        tap.on_milestone(2, &Milestone::RequestSent);
        stream.event(delta("d"));
        tap.on_milestone(2, &Milestone::FirstEvent);
        drop(stream);
        // Recorded after the stream loop was gone: queued when the tap goes.
        tap.on_milestone(
            2,
            &Milestone::StreamEnd {
                outcome: "completed".into(),
            },
        );
        drop(tap);
        trace.sync().await.unwrap();
        let text = String::from_utf8(bytes.lock().unwrap().clone()).unwrap();
        let order: Vec<String> = text
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let what = match v["kind"].as_str().unwrap() {
                    "stream" => format!("event {}", v["event"]["text"].as_str().unwrap()),
                    "raw_sse" => format!("frame {}", v["data"].as_str().unwrap()),
                    _ => v["marker"].as_str().unwrap().to_owned(),
                };
                format!("{}:{what}", v["attempt"])
            })
            .collect();
        assert_eq!(
            order,
            [
                "1:first_byte",
                "1:frame a",
                "1:event a",
                "1:frame b",
                "1:event b",
                "1:frame c",
                "1:event c",
                "1:stream_end",
                "2:stream_open_start",
                "2:event d",
                "2:first_event",
                "2:stream_end",
            ]
        );
    }
}
