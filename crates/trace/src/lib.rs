//! `pod-trace`: the trace sidecar of a pod's session log.
//!
//! When `session.record_event_trace` is on, every normalized provider stream event and every
//! lifecycle marker of a run (request built, stream open, first event, retry scheduled, stream
//! end, run end) is written to `sessions/<segment_id>.trace.jsonl`, one [`TraceEntry`] per line.
//! This crate owns the entry types, the writer — a bounded queue to a writer thread so the
//! stream's hot path never waits for the disk, with every shed entry counted in a `shed`
//! marker — and the reader and views (`timeline`, `failed_requests`) that `pods trace` and the
//! export use. It does not decide *what* to trace; the pod runtime (`pod-core`) does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pod_trace::TraceError> {
//! use pod_trace::{Marker, PendingEntry, TraceBody, TraceHandle};
//! let trace = TraceHandle::create("s.trace.jsonl".as_ref(), 8192)?;
//! trace.record(PendingEntry::now(TraceBody::Lifecycle(Marker::RunStarted)).run("run-1"));
//! let stats = trace.sync().await?; // on disk now
//! assert_eq!(stats.shed, 0);
//! # Ok(()) }
//! ```

mod encode;
mod entry;
mod error;
mod reader;
pub mod scrub;
mod writer;

pub use entry::{
    Marker, PendingEntry, RawResponseHead, RawSseFrame, RequestEntries, TRACE_FORMAT_VERSION,
    TraceBody, TraceEntry,
};
pub use error::TraceError;
pub use reader::{
    CassetteGap, FailedRequest, FieldCassette, LineRead, MAX_LINE_BYTES, TimelineItem, TraceLine,
    TraceReader, cassette_from_trace, failed_requests, file_kind, is_failure, open_regular,
    read_line_bounded, read_regular, timeline,
};
pub use writer::{MemorySink, TraceHandle, TraceSink, TraceStats};
