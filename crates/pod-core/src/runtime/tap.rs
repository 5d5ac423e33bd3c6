//! The stream observer of one model request, which hands the trace sidecar its entries in
//! batches, logs the retried attempts (with why the attempt before failed) and notes when the
//! current attempt's first stream event came.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pod_provider::{Milestone, ProviderError, RawFrame, RawResponse, RequestInfo, StreamObserver};
use pod_trace::{Marker, RawResponseHead, RawSseFrame, RequestEntries, TraceBody, TraceHandle};

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
    /// Trace entries gathered since the last network read: queued as one batch.
    batch: Mutex<Batch>,
}

/// The trace entries of one network read (of one attempt: they share their run, turn and
/// attempt, tagged once per batch), and when the read's first stream event came: the events one
/// read decoded arrive together, so they share its time (a clock read per event would cost more
/// than recording it). Markers keep their own time.
struct Batch {
    request: RequestEntries,
    read_at: Option<SystemTime>,
}

/// The most trace entries a [`Tap`] gathers before queueing them, drained read or not.
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
            batch: Mutex::new(Batch {
                request: RequestEntries::new(run_id, turn, 1),
                read_at: None,
            }),
        })
    }
}

impl Tap {
    /// The attempt the provider client is on (retries count up from 1).
    pub(super) fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self, body: TraceBody) {
        self.record_for(self.attempt(), body);
    }

    fn record_for(&self, attempt: u32, body: TraceBody) {
        if let Some(trace) = &self.trace {
            let mut batch = locked(&self.batch);
            let at = match body {
                TraceBody::Stream { .. } | TraceBody::RawSse(_) => {
                    *batch.read_at.get_or_insert_with(SystemTime::now)
                }
                _ => SystemTime::now(),
            };
            if batch.request.attempt != attempt {
                // The entries gathered so far are of the attempt before.
                trace.record_request(&mut batch.request);
                batch.request.attempt = attempt;
            }
            batch.request.push(at, body);
            if batch.request.len() >= TRACE_BATCH {
                batch.read_at = None;
                trace.record_request(&mut batch.request);
            }
        }
    }

    /// Queue the gathered trace entries: the network read they came from is drained.
    pub(super) fn send_batch(&self) {
        if let Some(trace) = &self.trace {
            let mut batch = locked(&self.batch);
            batch.read_at = None;
            trace.record_request(&mut batch.request);
        }
    }

    /// Milliseconds from the current attempt's request to its first stream event, when one came.
    pub(super) fn time_to_first_chunk_ms(&self) -> Option<u64> {
        *locked(&self.first_event_ms)
    }

    pub(super) fn take_log_error(&self) -> Option<CoreError> {
        locked(&self.log_error).take()
    }
}

impl Drop for Tap {
    /// A stream dropped midway still queues what it gathered.
    fn drop(&mut self) {
        self.send_batch();
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
        // The wait comes next: what led to it is in the trace meanwhile.
        self.send_batch();
        self.observer.on_retry(attempt, delay, cause);
    }

    fn wants_raw_frames(&self) -> bool {
        self.raw && self.trace.is_some()
    }

    fn on_read_drained(&self) {
        self.send_batch();
        self.observer.on_read_drained();
    }

    fn on_raw_frame(&self, attempt: u32, frame: RawFrame) {
        let event = (!frame.event.is_empty()).then_some(frame.event);
        self.record_for(
            attempt,
            TraceBody::RawSse(RawSseFrame::bounded_owned(
                event,
                frame.data,
                self.max_frame,
            )),
        );
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
