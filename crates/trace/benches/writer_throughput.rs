//! How fast the sidecar writer thread turns entries into JSON lines: entries per second through
//! a `TraceHandle` into an in-memory sink (no disk), with a queue large enough not to shed.
//!
//! `cargo bench -p pod-trace --bench writer_throughput` (env `TRACE_WRITER_ENTRIES`).

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use pod_provider::StreamEvent;
use pod_provider::event::TextDelta;
use pod_trace::{MemorySink, PendingEntry, TraceBody, TraceHandle};

fn main() {
    let entries: usize = std::env::var("TRACE_WRITER_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run: std::sync::Arc<str> = std::sync::Arc::from("01a2063b-f18d-7223-aa20-32fe9d67c2d2");
    for round in 0..3 {
        let sink = MemorySink::default();
        let trace = TraceHandle::from_writer("mem".as_ref(), Box::new(sink.clone()), entries + 16);
        let started = Instant::now();
        for i in 0..entries {
            trace.record(
                PendingEntry::now(TraceBody::Stream {
                    event: StreamEvent::TextDelta(TextDelta {
                        choice: 0,
                        text: format!("token{i} "),
                    }),
                })
                .run(run.clone())
                .request(1, 1),
            );
        }
        let recorded = started.elapsed();
        let stats = rt.block_on(trace.sync()).unwrap();
        let total = started.elapsed();
        assert_eq!(stats.shed, 0);
        let bytes = sink.0.lock().unwrap().len();
        println!(
            "round {round}: {entries} entries, hot path {:.0} ns/entry, written after {:.1} ms = {:.0} ns/entry ({:.1} MB)",
            recorded.as_nanos() as f64 / entries as f64,
            total.as_secs_f64() * 1000.0,
            total.as_nanos() as f64 / entries as f64,
            bytes as f64 / 1e6
        );
    }
}
