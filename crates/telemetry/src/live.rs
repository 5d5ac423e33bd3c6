//! Live export: the spans of a running pod, sent while it runs, and the GenAI client metrics
//! recorded from them (see [`crate::metrics`]).
//!
//! The pod hands every entry its session log appends to [`LiveExport::feed`], which only queues
//! it (never waits: a full queue counts the entry as dropped). A thread of its own feeds the
//! same [`SpanBuilder`] the files are read with, so live spans are the ones `pods telemetry
//! push` would send, and exports each completed batch over OTLP/HTTP while the next entries keep
//! arriving. A collector that is slow, unreachable or never answers costs that thread its
//! exporter's timeout, never the pod's run; failures are counted, the first is reported once
//! through the `on_problem` callback, and [`LiveExport::finish`] gives the last batch a bounded
//! time before the process goes on ending.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use pod_protocol::record::LogEntry;
use tokio::sync::mpsc;

use crate::builder::SpanBuilder;
use crate::error::TelemetryError;
use crate::metrics::{ChatMetrics, metrics_endpoint};
use crate::push::{PushTarget, SPANS_PER_REQUEST, exporter};

/// Entries queued for the export thread before new ones are dropped (and counted). The thread
/// takes entries in while a request is in flight, so only a thread that cannot keep up with the
/// log fills it.
pub const LIVE_QUEUE_ENTRIES: usize = 16 * 1024;

/// What live export did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveReport {
    pub endpoint: String,
    pub spans_sent: u64,
    pub spans_failed: u64,
    /// Log entries not taken in because the queue was full (their spans may be missing).
    pub entries_dropped: u64,
    /// The first failure, as reported.
    pub first_error: Option<String>,
}

impl LiveReport {
    /// Whether anything was lost.
    pub fn has_problems(&self) -> bool {
        self.spans_failed > 0 || self.entries_dropped > 0
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Spans made and not yet sent (in flight included): lost if the end comes first.
    unsent: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Called once, with a sentence for people, when export first fails.
pub type OnProblem = Box<dyn Fn(&str) + Send>;

/// A running pod's live export.
pub struct LiveExport {
    queue: Mutex<Option<mpsc::Sender<LogEntry>>>,
    counters: Arc<Counters>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    endpoint: String,
}

impl std::fmt::Debug for LiveExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveExport")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl LiveExport {
    /// Start exporting to `target` the spans `builder` makes of the entries fed from now on.
    pub fn start(
        target: &PushTarget,
        builder: SpanBuilder,
        on_problem: OnProblem,
    ) -> Result<LiveExport, TelemetryError> {
        let exporter = exporter(target)?;
        let metrics = metrics_endpoint(&target.endpoint, |name| std::env::var(name).ok())
            .map(|endpoint| ChatMetrics::new(target, endpoint))
            .transpose()?;
        let (queue, entries) = mpsc::channel(LIVE_QUEUE_ENTRIES);
        let counters = Arc::new(Counters::default());
        let (done_tx, done) = std::sync::mpsc::channel();
        let worker = Worker {
            exporter,
            metrics,
            metrics_due: false,
            builder,
            endpoint: target.endpoint.clone(),
            counters: counters.clone(),
            on_problem: Some(on_problem),
        };
        std::thread::Builder::new()
            .name("pods-telemetry".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(worker.run(entries)),
                    Err(error) => worker.fail_all(&format!("cannot start its runtime: {error}")),
                }
                let _ = done_tx.send(());
            })
            .map_err(|error| TelemetryError::Exporter {
                endpoint: target.endpoint.clone(),
                source: opentelemetry_otlp::ExporterBuildError::InternalFailure(error.to_string()),
            })?;
        Ok(LiveExport {
            queue: Mutex::new(Some(queue)),
            counters,
            done: Mutex::new(Some(done)),
            endpoint: target.endpoint.clone(),
        })
    }

    /// Queue `entry` for the export thread; never waits.
    pub fn feed(&self, entry: &LogEntry) {
        let Ok(queue) = self.queue.lock() else {
            return;
        };
        let Some(queue) = queue.as_ref() else {
            return;
        };
        if queue.try_send(entry.clone()).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What was sent and lost so far.
    pub fn report(&self) -> LiveReport {
        LiveReport {
            endpoint: self.endpoint.clone(),
            spans_sent: self.counters.sent.load(Ordering::Relaxed),
            spans_failed: self.counters.failed.load(Ordering::Relaxed),
            entries_dropped: self.counters.dropped.load(Ordering::Relaxed),
            first_error: self
                .counters
                .first_error
                .lock()
                .ok()
                .and_then(|first| first.clone()),
        }
    }

    /// Stop taking entries, and give the export thread up to `grace` to send what is left;
    /// spans it has not sent by then are counted as failed.
    pub fn finish(&self, grace: Duration) -> LiveReport {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let done = self.done.lock().ok().and_then(|mut done| done.take());
        if let Some(done) = done
            && done.recv_timeout(grace).is_err()
        {
            let unsent = self.counters.unsent.swap(0, Ordering::Relaxed);
            self.counters.failed.fetch_add(unsent, Ordering::Relaxed);
            let mut first = self
                .counters
                .first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            first.get_or_insert_with(|| {
                format!(
                    "telemetry to {}: {unsent} span(s) not taken within {} ms of the end",
                    self.endpoint,
                    grace.as_millis()
                )
            });
        }
        self.report()
    }
}

/// The export thread's state.
struct Worker {
    exporter: opentelemetry_otlp::SpanExporter,
    /// Off when no metrics endpoint follows from the traces endpoint.
    metrics: Option<ChatMetrics>,
    /// Chat spans were recorded since the metrics were last sent.
    metrics_due: bool,
    builder: SpanBuilder,
    endpoint: String,
    counters: Arc<Counters>,
    on_problem: Option<OnProblem>,
}

impl Worker {
    /// Feed entries to the builder as they come, and export what it completes: one request at a
    /// time, with the spans completed meanwhile going in the next one.
    async fn run(mut self, mut entries: mpsc::Receiver<LogEntry>) {
        let mut ready: Vec<SpanData> = Vec::new();
        let mut open = true;
        loop {
            if open {
                match entries.recv().await {
                    Some(entry) => self.builder.feed(&entry, &mut ready),
                    None => open = false,
                }
                // Whatever else has arrived goes into the same batch.
                while let Ok(entry) = entries.try_recv() {
                    self.builder.feed(&entry, &mut ready);
                }
                self.counters
                    .unsent
                    .store(ready.len() as u64, Ordering::Relaxed);
            }
            if ready.is_empty() {
                if open {
                    continue;
                }
                break;
            }
            let take = ready.len().min(SPANS_PER_REQUEST);
            // `unsent` still counts the batch while it is in flight.
            let batch: Vec<SpanData> = ready.drain(..take).collect();
            if let Some(metrics) = &self.metrics {
                metrics.observe(&batch);
                self.metrics_due = true;
            }
            self.export(batch, &mut entries, &mut ready, &mut open)
                .await;
            if ready.is_empty() {
                self.export_metrics().await;
            }
        }
        self.export_metrics().await;
        if let Err(error) = self.exporter.shutdown() {
            self.problem(&format!("shutting the exporter down failed: {error}"));
        }
        if let Some(metrics) = &self.metrics {
            metrics.shutdown();
        }
    }

    /// Send the metrics when chat spans were recorded since they were last sent.
    async fn export_metrics(&mut self) {
        let Some(metrics) = self.metrics.as_ref().filter(|_| self.metrics_due) else {
            return;
        };
        self.metrics_due = false;
        if let Err(error) = metrics.export().await {
            let endpoint = metrics.endpoint.clone();
            self.problem(&format!("exporting metrics to {endpoint} failed: {error}"));
        }
    }

    /// Send `batch`, taking in entries that arrive meanwhile (their spans go to `ready`).
    async fn export(
        &mut self,
        batch: Vec<SpanData>,
        entries: &mut mpsc::Receiver<LogEntry>,
        ready: &mut Vec<SpanData>,
        open: &mut bool,
    ) {
        let count = batch.len() as u64;
        let result = {
            let sending = self.exporter.export(batch);
            tokio::pin!(sending);
            loop {
                tokio::select! {
                    result = &mut sending => break result,
                    entry = entries.recv(), if *open => match entry {
                        Some(entry) => {
                            self.builder.feed(&entry, ready);
                            let unsent = count + ready.len() as u64;
                            self.counters.unsent.store(unsent, Ordering::Relaxed);
                        }
                        None => *open = false,
                    },
                }
            }
        };
        self.counters
            .unsent
            .store(ready.len() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.counters.sent.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters.failed.fetch_add(count, Ordering::Relaxed);
                self.problem(&format!("exporting {count} span(s) failed: {error}"));
            }
        }
    }

    /// Record `what` as the first error (once), and tell the pod once.
    fn problem(&mut self, what: &str) {
        let sentence = format!("telemetry to {}: {what}", self.endpoint);
        if let Ok(mut first) = self.counters.first_error.lock() {
            first.get_or_insert_with(|| sentence.clone());
        }
        if let Some(tell) = self.on_problem.take() {
            tell(&sentence);
        }
    }

    /// The thread could not run at all: everything fed will be lost.
    fn fail_all(mut self, why: &str) {
        self.problem(why);
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
