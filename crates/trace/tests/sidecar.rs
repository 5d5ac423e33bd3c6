//! The sidecar writer and reader against real files and injected sinks.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};

use pod_provider::StreamEvent;
use pod_provider::event::TextDelta;
use pod_trace::{
    Marker, MemorySink, PendingEntry, RawSseFrame, TraceBody, TraceEntry, TraceHandle, TraceLine,
    TraceReader, TraceSink, failed_requests, timeline,
};

fn text(run: &str, turn: u32, t: &str) -> PendingEntry {
    PendingEntry::now(TraceBody::Stream {
        event: StreamEvent::TextDelta(TextDelta {
            choice: 0,
            text: t.into(),
        }),
    })
    .run(run)
    .request(turn, 1)
}

fn marker(run: &str, marker: Marker) -> PendingEntry {
    PendingEntry::now(TraceBody::Lifecycle(marker)).run(run)
}

#[tokio::test]
async fn entries_reach_disk_in_order_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.trace.jsonl");
    // Room for everything: this test is about order, not shedding.
    let trace = TraceHandle::create(&path, 256).unwrap();
    trace.record(marker("r1", Marker::RunStarted));
    for i in 0..50 {
        trace.record(text("r1", 1, &format!("{i} ")));
    }
    trace.flush().await;
    let stats = trace.sync().await.unwrap();
    let (entries, problems) = TraceReader::read_all(&path).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(entries.len() as u64, stats.written);
    assert_eq!(stats.shed, 0);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    let items = timeline(&entries);
    let joined: String = (0..50).map(|i| format!("{i} ")).collect();
    assert!(
        matches!(&items[1], pod_trace::TimelineItem::Text { text, deltas: 50, .. } if *text == joined)
    );
}

#[test]
fn create_refuses_an_existing_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.trace.jsonl");
    std::fs::write(&path, "keep me\n").unwrap();
    let error = TraceHandle::create(&path, 4).unwrap_err();
    assert!(error.to_string().contains("s.trace.jsonl"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me\n");
}

/// A sink whose writes block until the test opens the gate.
#[derive(Clone)]
struct GatedSink {
    open: Arc<(Mutex<bool>, Condvar)>,
    inner: MemorySink,
}

impl Write for GatedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (lock, cvar) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TraceSink for GatedSink {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_queue_sheds_and_the_file_says_how_many() {
    let sink = GatedSink {
        open: Arc::new((Mutex::new(false), Condvar::new())),
        inner: MemorySink::default(),
    };
    let trace = TraceHandle::from_writer("gated".as_ref(), Box::new(sink.clone()), 2);
    // Larger than the write buffer, so the writer thread blocks in the sink on it.
    let big = "x".repeat(200_000);
    trace.record(
        PendingEntry::now(TraceBody::RawSse(RawSseFrame::bounded(
            None,
            &big,
            usize::MAX,
        )))
        .run("r1"),
    );
    std::thread::sleep(std::time::Duration::from_millis(50));
    let total_small = 20u64;
    for i in 0..total_small {
        trace.record(text("r1", 1, &i.to_string()));
    }
    let shed = trace.shed_count();
    assert!(
        shed >= total_small - 3,
        "expected most entries shed, got {shed}"
    );
    {
        let (lock, cvar) = &*sink.open;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
    let stats = trace.sync().await.unwrap();
    assert_eq!(stats.shed, shed);
    let bytes = sink.inner.0.lock().unwrap().clone();
    let entries: Vec<TraceEntry> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let marker_total: u64 = entries
        .iter()
        .map(|e| match e.body {
            TraceBody::Shed { count } => count,
            _ => 0,
        })
        .sum();
    let texts = entries
        .iter()
        .filter(|e| matches!(e.body, TraceBody::Stream { .. }))
        .count() as u64;
    assert_eq!(
        marker_total, shed,
        "every shed entry is counted in a marker"
    );
    assert_eq!(texts + shed, total_small, "written + shed = recorded");
}

struct FailingSink;
impl Write for FailingSink {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::other("disk on fire"))
    }
}
impl TraceSink for FailingSink {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn write_failures_are_reported_by_sync() {
    let trace = TraceHandle::from_writer("broken.trace.jsonl".as_ref(), Box::new(FailingSink), 8);
    trace.record(marker("r1", Marker::RunStarted));
    trace.record(marker(
        "r1",
        Marker::RunEnd {
            outcome: "completed".into(),
        },
    ));
    let error = trace.sync().await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("broken.trace.jsonl"), "{message}");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("disk on fire"), "{source}");
}

#[tokio::test]
async fn reader_reports_a_torn_tail_and_keeps_what_precedes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.trace.jsonl");
    let trace = TraceHandle::create(&path, 16).unwrap();
    trace.record(marker("r1", Marker::RunStarted));
    trace.record(text("r1", 1, "hello"));
    trace.sync().await.unwrap();
    drop(trace);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"seq":3,"ts":"2026-01-01T00:00:00.000Z","kind":"str"#)
        .unwrap();
    let lines: Vec<TraceLine> = TraceReader::open(&path)
        .unwrap()
        .map(|l| l.unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(matches!(lines[0], TraceLine::Entry(_)));
    assert!(matches!(lines[1], TraceLine::Entry(ref e) if e.seq == 2));
    assert!(matches!(
        lines[2],
        TraceLine::Unreadable {
            line: 3,
            torn: true,
            ..
        }
    ));
}

#[test]
fn failed_requests_group_the_attempt_that_failed() {
    let error = pod_provider::ProviderError {
        class: pod_provider::ErrorClass::ContextLengthExceeded,
        code: Some("context_length_exceeded".into()),
        http_status: None,
        provider_request_id: None,
        retry_after_ms: None,
        retryable: false,
        message: "too long".into(),
    };
    let raw = vec![
        marker("r1", Marker::RunStarted),
        text("r1", 1, "ok turn"),
        text("r1", 2, "partial"),
        PendingEntry::now(TraceBody::Stream {
            event: StreamEvent::Error(error),
        })
        .run("r1")
        .request(2, 1),
        marker("r2", Marker::RunStarted),
    ];
    let entries: Vec<TraceEntry> = raw
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let json = serde_json::json!({"seq": i + 1, "ts": "t"});
            let mut entry: TraceEntry = serde_json::from_value(merge(json, &p)).unwrap();
            entry.seq = i as u64 + 1;
            entry
        })
        .collect();
    let failures = failed_requests(&entries);
    assert_eq!(failures.len(), 1);
    let leading: Vec<u64> = failures[0].leading.iter().map(|e| e.seq).collect();
    // run_started (run-level) and the partial text of turn 2; not turn 1, not run r2.
    assert_eq!(leading, vec![1, 3]);
}

fn merge(mut base: serde_json::Value, pending: &PendingEntry) -> serde_json::Value {
    let body = serde_json::to_value(&pending.body).unwrap();
    let obj = base.as_object_mut().unwrap();
    for (k, v) in body.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    if let Some(run) = &pending.run_id {
        obj.insert("run_id".into(), run.to_string().into());
    }
    if let Some(turn) = pending.turn {
        obj.insert("turn".into(), turn.into());
        obj.insert("attempt".into(), pending.attempt.unwrap_or(1).into());
    }
    base
}

#[tokio::test]
async fn written_lines_read_back_as_the_same_entries() {
    let sink = MemorySink::default();
    let trace = TraceHandle::from_writer("mem".as_ref(), Box::new(sink.clone()), 64);
    let odd_run = "run \"quoted\" \\ ünïcode";
    trace.record(text(odd_run, 3, "a \"b\"\n"));
    trace.record(PendingEntry::now(TraceBody::Lifecycle(Marker::RunStarted)));
    trace.record(
        PendingEntry::now(TraceBody::RawSse(RawSseFrame::bounded(
            Some("delta".into()),
            "{\"x\":1}",
            100,
        )))
        .run(odd_run),
    );
    trace.sync().await.unwrap();
    let bytes = sink.0.lock().unwrap().clone();
    let entries: Vec<TraceEntry> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].run_id.as_deref(), Some(odd_run));
    assert_eq!((entries[0].turn, entries[0].attempt), (Some(3), Some(1)));
    assert!(matches!(
        &entries[0].body,
        TraceBody::Stream { event: StreamEvent::TextDelta(d) } if d.text == "a \"b\"\n"
    ));
    assert_eq!(entries[1].run_id, None);
    assert_eq!(entries[1].turn, None);
    assert!(matches!(
        entries[1].body,
        TraceBody::Lifecycle(Marker::RunStarted)
    ));
    assert!(matches!(&entries[2].body, TraceBody::RawSse(f) if f.data == "{\"x\":1}"));
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        entries
            .iter()
            .all(|e| humantime::parse_rfc3339(&e.ts).is_ok())
    );
}
