//! The sidecar writer: a bounded queue to a dedicated writer thread.
//!
//! The stream's hot path only ever calls [`TraceHandle::record`] or
//! [`TraceHandle::record_batch`], which never block: they put the entries on a queue bounded in
//! entries (not in sends, so a batch of a whole network read costs one send and one wake-up of
//! the writer), and when the queue is full they count the entries as shed. The writer
//! thread writes a `shed` marker with that count before the next entry it writes (and at every
//! flush or sync), so a loss is always visible in the file. [`TraceHandle::flush`] and
//! [`TraceHandle::sync`] go through the same queue, so they see every entry recorded before them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use crate::encode;
use crate::entry::{EntryBody, PendingEntry, RequestEntries, TraceBody};
use crate::error::TraceError;
use pod_home::files::WritebackFile;
use pod_home::locked;

/// What the writer did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceStats {
    /// Lines written, shed markers included.
    pub written: u64,
    /// Entries lost because the queue was full.
    pub shed: u64,
}

enum Command {
    Entry(PendingEntry),
    Batch(Vec<PendingEntry>),
    Request(RequestEntries),
    Flush,
    Sync(oneshot::Sender<Result<TraceStats, TraceError>>),
}

struct Shared {
    path: PathBuf,
    /// Entries queued and not yet written; at most `capacity`.
    queued: AtomicUsize,
    capacity: usize,
    /// Entries shed since the writer last wrote a shed marker.
    shed_pending: AtomicU64,
    shed_total: AtomicU64,
    /// Batches the writer is done with, emptied, for the hot path to gather the next ones in:
    /// their buffers are made and freed on neither thread again and again.
    spare: Mutex<Vec<RequestEntries>>,
}

/// How many emptied batches are kept for reuse, and the most room one may hold (an unusually
/// large batch is freed rather than kept).
const SPARE_BATCHES: usize = 4;
const SPARE_MAX_BYTES: usize = 1 << 20;

/// A cheap, cloneable handle to one sidecar's writer thread. The thread ends once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct TraceHandle {
    /// Unbounded as a channel: `Shared::queued` bounds it in entries.
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TraceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceHandle")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl TraceHandle {
    /// Create `path` (it must not exist) and start its writer thread with a queue of `capacity`
    /// entries.
    pub fn create(path: &Path, capacity: usize) -> Result<TraceHandle, TraceError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| TraceError::Create {
                path: path.to_owned(),
                source,
            })?;
        Ok(TraceHandle::from_writer(
            path,
            Box::new(WritebackFile::new(file)),
            capacity,
        ))
    }

    /// Start a writer thread over any sink (tests inject failing sinks). `path` names the sink
    /// in errors.
    pub fn from_writer(path: &Path, sink: Box<dyn TraceSink>, capacity: usize) -> TraceHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            queued: AtomicUsize::new(0),
            capacity: capacity.max(1),
            shed_pending: AtomicU64::new(0),
            shed_total: AtomicU64::new(0),
            spare: Mutex::new(Vec::with_capacity(SPARE_BATCHES)),
        });
        let state = WriterState {
            out: sink,
            shared: shared.clone(),
            seq: 0,
            next_seq: encode::DecimalCounter::one(),
            failed: None,
            last_ts: (0, String::new()),
            envelope: Envelope::default(),
            pending: Vec::with_capacity(WRITE_CHUNK + 4096),
            pending_lines: 0,
        };
        std::thread::Builder::new()
            .name("pods-trace-writer".into())
            .spawn(move || state.run(rx))
            .map(|_| ())
            .unwrap_or_else(|error| {
                // No thread: every entry will be shed and the first sync reports it.
                tracing::error!(%error, "could not start the trace writer thread");
            });
        TraceHandle { tx, shared }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queue an entry without ever blocking; a full queue sheds it (and counts it).
    pub fn record(&self, entry: PendingEntry) {
        if self.reserve(1) && self.tx.send(Command::Entry(entry)).is_err() {
            self.unreserve_shed(1);
        }
    }

    /// Queue `entries` (taken, in order; `entries` is left empty with room for as many) as one piece without ever blocking; when they do not
    /// all fit in the queue, all of them are shed (and counted).
    pub fn record_batch(&self, entries: &mut Vec<PendingEntry>) {
        let n = entries.len();
        if n == 0 {
            return;
        }
        if !self.reserve(n) {
            entries.clear();
            return;
        }
        // The caller keeps a vector of the same size to gather the next batch in, instead of
        // growing an empty one again entry by entry.
        let batch = std::mem::replace(entries, Vec::with_capacity(n));
        if self.tx.send(Command::Batch(batch)).is_err() {
            self.unreserve_shed(n);
        }
    }

    /// [`TraceHandle::record_batch`] for entries of one request attempt: `request.entries` is
    /// taken the same way.
    pub fn record_request(&self, request: &mut RequestEntries) {
        let n = request.len();
        if n == 0 {
            return;
        }
        if !self.reserve(n) {
            request.clear();
            return;
        }
        let spare = locked(&self.shared.spare).pop();
        let batch = request.take(spare);
        if self.tx.send(Command::Request(batch)).is_err() {
            self.unreserve_shed(n);
        }
    }

    /// Take `n` places in the queue, or count `n` entries shed.
    fn reserve(&self, n: usize) -> bool {
        let shared = &*self.shared;
        let before = shared.queued.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > shared.capacity {
            self.unreserve_shed(n);
            return false;
        }
        true
    }

    /// Give back `n` places that will not be written, counting the entries shed.
    fn unreserve_shed(&self, n: usize) {
        self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        self.shed(n);
    }

    fn shed(&self, n: usize) {
        let n = n as u64;
        self.shared.shed_pending.fetch_add(n, Ordering::Relaxed);
        self.shared.shed_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Ask the writer to flush its buffer to the file (not to disk).
    pub async fn flush(&self) {
        // A gone writer is reported by the next `sync`.
        let _ = self.tx.send(Command::Flush);
    }

    /// Write everything queued so far and sync the file to disk; reports any write failure
    /// since the sidecar was opened.
    pub async fn sync(&self) -> Result<TraceStats, TraceError> {
        let (reply, answer) = oneshot::channel();
        let gone = || TraceError::WriterGone {
            path: self.shared.path.clone(),
        };
        self.tx.send(Command::Sync(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Entries shed so far.
    pub fn shed_count(&self) -> u64 {
        self.shared.shed_total.load(Ordering::Relaxed)
    }
}

/// Where the writer thread writes: a file, or a test double.
pub trait TraceSink: Write + Send {
    /// Make written data durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl TraceSink for WritebackFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// Encoded lines are handed to the sink in writes of about this many bytes (and whenever the
/// queue stays dry for [`IDLE_WAIT`]): few syscalls, and a stalled stream's lines still reach
/// the file at once.
const WRITE_CHUNK: usize = 128 * 1024;

/// How long the writer waits, once the queue runs dry with lines pending, before it writes them
/// and parks. While it sleeps, a burst's batches gather without waking it for each one (a
/// wake-up costs the stream's thread a syscall); a stalled stream's lines are written this late
/// at most.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// The encoded envelope fields after `seq` of the last entry written, and what they were made
/// of: the entries of one network read share them.
#[derive(Default)]
struct Envelope {
    key: Option<EnvelopeKey>,
    bytes: Vec<u8>,
}

struct EnvelopeKey {
    at: SystemTime,
    run_id: Option<Arc<str>>,
    turn: Option<u32>,
    attempt: Option<u32>,
}

impl EnvelopeKey {
    fn matches(&self, of: &EnvelopeOf<'_>) -> bool {
        self.at == of.at
            && self.turn == of.turn
            && self.attempt == of.attempt
            && match (&self.run_id, of.run_id) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            }
    }
}

/// The envelope of one entry to write: a [`PendingEntry`]'s, or one of [`RequestEntries`]'.
#[derive(Clone, Copy)]
struct EnvelopeOf<'a> {
    at: SystemTime,
    run_id: Option<&'a Arc<str>>,
    turn: Option<u32>,
    attempt: Option<u32>,
}

impl<'a> EnvelopeOf<'a> {
    fn entry(entry: &'a PendingEntry) -> EnvelopeOf<'a> {
        EnvelopeOf {
            at: entry.at,
            run_id: entry.run_id.as_ref(),
            turn: entry.turn,
            attempt: entry.attempt,
        }
    }
}

struct WriterState {
    out: Box<dyn TraceSink>,
    shared: Arc<Shared>,
    seq: u64,
    /// `seq + 1` in decimal, counted up in place (cheaper than formatting it for every line).
    next_seq: encode::DecimalCounter,
    /// The first write failure and how many lines were lost since.
    failed: Option<(std::io::Error, u64)>,
    /// The last formatted timestamp and its millisecond.
    last_ts: (u128, String),
    envelope: Envelope,
    /// Encoded lines not yet handed to the sink (reused).
    pending: Vec<u8>,
    /// How many lines `pending` holds.
    pending_lines: u64,
}

impl WriterState {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let command = match rx.try_recv() {
                Ok(command) => command,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if !self.pending.is_empty() {
                        // More of a burst is likely on its way: let it gather unwoken.
                        std::thread::sleep(IDLE_WAIT);
                        match rx.try_recv() {
                            Ok(command) => {
                                self.handle(command);
                                continue;
                            }
                            Err(mpsc::error::TryRecvError::Disconnected) => break,
                            Err(mpsc::error::TryRecvError::Empty) => {}
                        }
                    }
                    // Idle: hand what we have to the file (one write per burst, not per entry),
                    // so `pods trace --follow` and a crash see entries of a stalled stream.
                    self.write_shed_marker();
                    self.flush();
                    match rx.blocking_recv() {
                        Some(command) => command,
                        None => break,
                    }
                }
            };
            self.handle(command);
        }
        self.write_shed_marker();
        self.flush();
        if let Some((error, lost)) = &self.failed {
            tracing::error!(path = %self.shared.path.display(), %error, lost, "trace sidecar writes failed");
        }
    }

    fn handle(&mut self, command: Command) {
        self.write_shed_marker();
        match command {
            Command::Entry(entry) => {
                self.write(&entry);
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            }
            Command::Batch(entries) => {
                let n = entries.len();
                for entry in &entries {
                    self.write(entry);
                }
                self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            }
            Command::Request(mut request) => {
                for (at, body) in request.iter() {
                    let envelope = EnvelopeOf {
                        at,
                        run_id: Some(&request.run_id),
                        turn: Some(request.turn),
                        attempt: Some(request.attempt),
                    };
                    self.write_parts(envelope, body);
                }
                self.shared
                    .queued
                    .fetch_sub(request.len(), Ordering::AcqRel);
                request.clear();
                let mut spare = locked(&self.shared.spare);
                if spare.len() < SPARE_BATCHES && request.room_bytes() <= SPARE_MAX_BYTES {
                    spare.push(request);
                }
            }
            Command::Flush => self.flush(),
            Command::Sync(reply) => {
                let result = self.sync();
                // The requester may have given up waiting; nothing else to tell.
                let _ = reply.send(result);
            }
        }
    }

    fn write_shed_marker(&mut self) {
        let count = self.shared.shed_pending.swap(0, Ordering::Relaxed);
        if count > 0 {
            self.write(&PendingEntry::now(TraceBody::Shed { count }));
        }
    }

    fn write(&mut self, entry: &PendingEntry) {
        self.write_parts(EnvelopeOf::entry(entry), EntryBody::Body(&entry.body));
    }

    fn write_parts(&mut self, envelope: EnvelopeOf<'_>, body: EntryBody<'_>) {
        if let Some((_, lost)) = &mut self.failed {
            *lost += 1;
            return;
        }
        self.refresh_envelope(&envelope);
        let line_start = self.pending.len();
        self.pending.extend_from_slice(b"{\"seq\":");
        self.pending.extend_from_slice(self.next_seq.as_bytes());
        self.pending.extend_from_slice(&self.envelope.bytes);
        let encoded = match body {
            EntryBody::TextDelta { choice, text } => {
                encode::push_text_delta_and_end(&mut self.pending, choice, text);
                Ok(())
            }
            EntryBody::RawSse {
                event,
                data,
                original_len,
            } => {
                encode::push_raw_sse_and_end(&mut self.pending, event, data, original_len);
                Ok(())
            }
            EntryBody::Body(body) => encode::push_body_and_end(&mut self.pending, line_start, body),
        };
        match encoded {
            Ok(()) => {
                self.seq += 1;
                self.next_seq.increment();
                self.pending_lines += 1;
            }
            Err(error) => self.fail(error, 1),
        }
        if self.pending.len() >= WRITE_CHUNK {
            self.write_pending();
        }
    }

    /// Hand the encoded lines to the sink in one write, scrubbed of every known key value
    /// (defense in depth: whatever the entries carry, no key is written).
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        crate::scrub::scrub_lines(&mut self.pending);
        let result = self.out.write_all(&self.pending);
        self.pending.clear();
        let lines = std::mem::take(&mut self.pending_lines);
        if let Err(error) = result {
            self.fail(error, lines);
        }
    }

    /// Write what is pending and flush the sink (to the file, not to disk).
    fn flush(&mut self) {
        self.write_pending();
        if self.failed.is_none()
            && let Err(error) = self.out.flush()
        {
            self.fail(error, 0);
        }
    }

    /// Encode the envelope of `entry` unless it is the last one's.
    fn refresh_envelope(&mut self, of: &EnvelopeOf<'_>) {
        if self
            .envelope
            .key
            .as_ref()
            .is_some_and(|key| key.matches(of))
        {
            return;
        }
        self.refresh_timestamp(of.at);
        self.envelope.bytes.clear();
        encode::push_envelope_tail(
            &mut self.envelope.bytes,
            &self.last_ts.1,
            of.run_id.map(|id| &**id),
            of.turn,
            of.attempt,
        );
        self.envelope.key = Some(EnvelopeKey {
            at: of.at,
            run_id: of.run_id.cloned(),
            turn: of.turn,
            attempt: of.attempt,
        });
    }

    /// RFC 3339 with milliseconds; formatted once per millisecond (bursts share one).
    fn refresh_timestamp(&mut self, at: std::time::SystemTime) {
        let millis = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if self.last_ts.0 != millis || self.last_ts.1.is_empty() {
            self.last_ts = (millis, humantime::format_rfc3339_millis(at).to_string());
        }
    }

    /// Record a failure that lost `lines` lines.
    fn fail(&mut self, error: std::io::Error, lines: u64) {
        match &mut self.failed {
            Some((_, lost)) => *lost += lines,
            None => self.failed = Some((error, lines)),
        }
    }

    fn sync(&mut self) -> Result<TraceStats, TraceError> {
        self.flush();
        if self.failed.is_none()
            && let Err(error) = self.out.sync()
        {
            self.fail(error, 0);
        }
        match &self.failed {
            Some((error, lost)) => Err(TraceError::Write {
                path: self.shared.path.clone(),
                lost: *lost,
                source: std::io::Error::new(error.kind(), error.to_string()),
            }),
            None => Ok(TraceStats {
                written: self.seq,
                shed: self.shared.shed_total.load(Ordering::Relaxed),
            }),
        }
    }
}

/// Keep a handle's sink alive for tests that inspect what was written.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<u8>>>);

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TraceSink for MemorySink {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Marker, RawSseFrame};

    #[tokio::test]
    async fn a_batch_that_does_not_fit_is_shed_whole_and_counted() {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(bytes.clone())), 4);
        let marker = |name: &str| {
            PendingEntry::now(TraceBody::Lifecycle(Marker::Other {
                name: name.into(),
                detail: String::new(),
            }))
        };
        let mut big: Vec<PendingEntry> = (0..5).map(|i| marker(&format!("big{i}"))).collect();
        trace.record_batch(&mut big);
        assert!(big.is_empty());
        let mut small = vec![marker("a"), marker("b")];
        trace.record_batch(&mut small);
        let stats = trace.sync().await.unwrap_or_default();
        assert_eq!(stats.shed, 5);
        let text = String::from_utf8(bytes.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // The shed marker comes first (before the next entry written), then the batch that fit.
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("\"shed\"") && lines[0].contains("\"count\":5"),
            "{text}"
        );
        assert!(
            lines[1].contains("\"a\"") && lines[2].contains("\"b\""),
            "{text}"
        );
        assert!(!text.contains("big"), "{text}");
    }

    #[tokio::test]
    async fn a_request_batch_writes_the_lines_its_entries_would_alone() {
        use pod_protocol::event::{StreamEvent, TextDelta};
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let bodies = || {
            vec![
                TraceBody::Stream {
                    event: StreamEvent::TextDelta(TextDelta {
                        choice: 0,
                        text: "say \"hi\"\n".into(),
                    }),
                },
                TraceBody::Lifecycle(Marker::FirstByte),
                TraceBody::Stream {
                    event: StreamEvent::TextDelta(TextDelta {
                        choice: 3,
                        text: String::new(),
                    }),
                },
                TraceBody::Stream {
                    event: StreamEvent::TextDelta(TextDelta {
                        choice: 0,
                        text: "ü✓".into(),
                    }),
                },
            ]
        };
        let alone = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(alone.clone())), 16);
        for body in bodies() {
            trace.record(PendingEntry::at(at, body).run("run-1").request(2, 3));
        }
        trace.sync().await.unwrap_or_default();
        let batched = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(batched.clone())), 16);
        let mut request = RequestEntries::new(Arc::from("run-1"), 2, 3);
        for body in bodies() {
            request.push(at, body);
        }
        trace.record_request(&mut request);
        assert!(request.is_empty());
        trace.sync().await.unwrap_or_default();
        let text = |bytes: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8(bytes.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default()
        };
        assert_eq!(text(&batched), text(&alone));
        assert_eq!(text(&alone).lines().count(), 4);
    }

    #[tokio::test]
    async fn raw_frames_of_a_read_write_the_lines_each_frame_would_alone() {
        use pod_provider::{RawFrame, RawFrames};
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        // No event name, a cut inside a two-byte character, one that fits exactly, quotes and
        // newlines to escape, an empty frame.
        let frames = [
            ("", "{\"a\":\"ü\"}"),
            ("message_delta", "aaaaaaaaaé"),
            ("x", "0123456789"),
            ("ping", "line \"one\"\nline two"),
            ("", ""),
        ];
        let max_bytes = 10;
        let alone = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(alone.clone())), 16);
        let delta = |text: &str| TraceBody::Stream {
            event: pod_protocol::event::StreamEvent::TextDelta(pod_protocol::event::TextDelta {
                choice: 0,
                text: text.into(),
            }),
        };
        // Two reads' frames with text deltas before, between and after them.
        let record = |body| trace.record(PendingEntry::at(at, body).run("run-1").request(2, 3));
        record(delta("before"));
        for round in 0..2 {
            for (event, data) in frames {
                let event = (!event.is_empty()).then(|| event.to_owned());
                record(TraceBody::RawSse(RawSseFrame::bounded(
                    event, data, max_bytes,
                )));
            }
            record(delta(["between", "after"][round]));
        }
        trace.sync().await.unwrap_or_default();
        let batched = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(batched.clone())), 16);
        let mut read = RawFrames::default();
        for (event, data) in frames {
            read.push(RawFrame { event, data });
        }
        let mut request = RequestEntries::new(Arc::from("run-1"), 2, 3);
        request.push(at, delta("before"));
        request.push_raw_frames(at, &read, max_bytes);
        request.push(at, delta("between"));
        request.push_raw_frames(at, &read, max_bytes);
        request.push(at, delta("after"));
        trace.record_request(&mut request);
        trace.sync().await.unwrap_or_default();
        let text = |bytes: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8(bytes.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default()
        };
        assert_eq!(text(&batched), text(&alone));
        let lines: Vec<serde_json::Value> = text(&alone)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 13);
        assert_eq!(lines[0]["event"]["text"], "before");
        assert!(lines[1].get("event").is_none());
        assert_eq!(lines[2]["data"], "aaaaaaaaa");
        assert_eq!(lines[2]["truncated"], true);
        assert_eq!(lines[3]["truncated"], false);
        assert_eq!(
            lines[4]["data"],
            "line \"one\"\nline two".get(..10).unwrap()
        );
        assert_eq!(lines[6]["event"]["text"], "between");
        assert_eq!(lines[8]["data"], "aaaaaaaaa");
        assert_eq!(lines[12]["event"]["text"], "after");
    }

    #[tokio::test]
    async fn no_line_the_writer_writes_holds_a_registered_secret() {
        let secret = "writer-secret-0123456789abcdef";
        crate::scrub::register_secret(secret);
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let trace =
            TraceHandle::from_writer(Path::new("mem"), Box::new(MemorySink(bytes.clone())), 16);
        trace.record(PendingEntry::now(TraceBody::Lifecycle(Marker::Other {
            name: format!("echo {secret}"),
            detail: format!("quoted \"{secret}\""),
        })));
        trace.sync().await.unwrap_or_default();
        let text = String::from_utf8(bytes.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(text.contains("echo [redacted]"), "{text}");
        assert!(!text.contains(secret), "{text}");
    }
}
