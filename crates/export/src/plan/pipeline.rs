//! The export on two threads: one reads the logs and turns them into the document's pieces
//! (runs, pods, segments), the other renders those pieces and passes the bytes through the
//! secret check to their destination, with a few batches of pieces in flight between the two.
//!
//! Reading (parsing every log line) and rendering (every run as JSON) cost about the same, so
//! each has a core of its own; checking and writing the bytes goes with the rendering. The
//! rendered batches go back to the reading thread to be dropped there, a run at a time: memory
//! is freed on the thread that allocated it, just before it is needed again, so the allocator
//! reuses it at once (freed on the other thread, or a batch at a time, it costs more than the
//! rendering saves).

use std::sync::mpsc::{Receiver, SyncSender};

use crate::document::{PodDoc, RunDoc, SegmentDoc};
use crate::error::ExportError;
use crate::stream::{DocHead, DocTail, Sink};

use super::{ExportPlan, ExportStats, Progress};

impl ExportPlan {
    /// [`ExportPlan::run`] on a second thread, its pieces handed in batches to this thread,
    /// which gives them to `sink` (and reports progress). On an error of `sink` the reading
    /// stops; that error is returned before the reader's.
    pub(super) fn run_beside(
        self,
        sink: &mut dyn Sink,
        secrets_checked: Vec<String>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(BATCHES_IN_FLIGHT);
        // No bound needed: the reader takes the rendered batches back before it sends another.
        let (rendered_tx, rendered_rx) = std::sync::mpsc::channel::<Vec<Call>>();
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut forward = Forward::new(tx.clone(), rendered_rx);
                self.run(&mut forward, secrets_checked, &mut |p| {
                    // A closed channel is seen by the next batch sent.
                    let _ = tx.send(Piece::Progress(p));
                })
            });
            let mut written = Ok(());
            'pieces: for piece in rx.iter() {
                match piece {
                    Piece::Progress(p) => progress(p),
                    Piece::Calls(calls) => {
                        for call in &calls {
                            if let Err(error) = call.give_to(sink) {
                                written = Err(error);
                                break 'pieces;
                            }
                        }
                        // The reader may be done: its batches are then dropped here.
                        let _ = rendered_tx.send(calls);
                    }
                }
            }
            // Dropping the receiver makes the reader's next send fail, so it stops.
            drop(rx);
            let read = reader.join().unwrap_or_else(|_| {
                Err(ExportError::Render(std::io::Error::other(
                    "the thread reading the logs panicked",
                )))
            });
            written?;
            read
        })
    }
}

/// Batches queued between the reading and the rendering thread.
const BATCHES_IN_FLIGHT: usize = 8;
/// Sink calls per batch: enough that handing a batch over costs little per run, few enough
/// that the runs in flight stay a few megabytes.
const CALLS_PER_BATCH: usize = 256;

/// What the reading thread hands to the rendering one, in order.
enum Piece {
    Progress(Progress),
    Calls(Vec<Call>),
}

/// One [`Sink`] call, made on the reading thread and replayed on the rendering one.
// Nearly every call is a run: kept inline, it costs no allocation of its own (one of over a
// kilobyte per run, which also made the allocator sort its free lists on every run).
#[allow(clippy::large_enum_variant)]
enum Call {
    Begin(Box<DocHead>),
    PodStart(Box<PodDoc>),
    Run(RunDoc),
    PodEnd(Vec<SegmentDoc>),
    Finish(Box<DocTail>),
}

impl Call {
    fn give_to(&self, sink: &mut dyn Sink) -> Result<(), ExportError> {
        match self {
            Call::Begin(head) => sink.begin(head),
            Call::PodStart(pod) => sink.pod_start(pod),
            Call::Run(run) => sink.run(run),
            // Rare and small: copied rather than taken from the batch.
            Call::PodEnd(segments) => sink.pod_end(segments.clone()),
            Call::Finish(tail) => sink.finish((**tail).clone()),
        }
    }
}

/// The sink of the reading thread: it batches the calls for the rendering thread, and sends
/// the last batch with `finish`.
struct Forward {
    tx: SyncSender<Piece>,
    /// Batches the rendering thread is done with.
    rendered: Receiver<Vec<Call>>,
    batch: Vec<Call>,
    /// A rendered batch, dropped one call for each new one: what a run frees is what the next
    /// run allocates, so the allocator hands the same memory back at once.
    spent: Vec<Call>,
    /// An emptied batch, for the next one.
    spare: Option<Vec<Call>>,
}

impl Forward {
    fn new(tx: SyncSender<Piece>, rendered: Receiver<Vec<Call>>) -> Self {
        Forward {
            tx,
            rendered,
            batch: Vec::with_capacity(CALLS_PER_BATCH),
            spent: Vec::new(),
            spare: None,
        }
    }

    fn push(&mut self, call: Call) -> Result<(), ExportError> {
        self.drop_one_rendered();
        self.batch.push(call);
        if self.batch.len() >= CALLS_PER_BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn drop_one_rendered(&mut self) {
        if self.spent.is_empty() {
            let Ok(done) = self.rendered.try_recv() else {
                return;
            };
            let empty = std::mem::replace(&mut self.spent, done);
            if empty.capacity() > 0 {
                self.spare = Some(empty);
            }
        }
        self.spent.pop();
    }

    fn send(&mut self) -> Result<(), ExportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(CALLS_PER_BATCH));
        let full = std::mem::replace(&mut self.batch, next);
        // The rendering thread stopped (and says why): stop reading.
        self.tx
            .send(Piece::Calls(full))
            .map_err(|_| ExportError::Render(std::io::Error::other("the writer stopped")))
    }
}

impl Sink for Forward {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.push(Call::Begin(Box::new(head.clone())))
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        self.push(Call::PodStart(Box::new(pod.clone())))
    }

    fn run(&mut self, run: &RunDoc) -> Result<(), ExportError> {
        self.run_owned(run.clone())
    }

    fn run_owned(&mut self, run: RunDoc) -> Result<(), ExportError> {
        self.push(Call::Run(run))
    }

    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        self.push(Call::PodEnd(segments))
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        self.push(Call::Finish(Box::new(tail)))?;
        self.send()
    }
}
