//! The export on two threads: one reads the logs and builds the pieces of the document, the
//! other writes them, with a few batches of runs in flight between the two.

use crate::document::{PodDoc, RunDoc, SegmentDoc};
use crate::error::ExportError;
use crate::stream::{DocHead, DocTail, Sink};

use super::{ExportPlan, ExportStats, Progress};

impl ExportPlan {
    /// [`ExportPlan::run`] on a second thread, which reads the logs and builds the pieces
    /// while this one writes them (and reports progress). A few batches of runs are in flight
    /// between the two, no more.
    pub(super) fn run_beside(
        self,
        sink: &mut dyn Sink,
        secrets_checked: Vec<String>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(PIECES_IN_FLIGHT);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut pieces = PieceSink::new(tx.clone());
                let result = self.run(&mut pieces, secrets_checked, &mut |p| {
                    // A closed channel is seen by the next piece sent.
                    let _ = tx.send(Piece::Progress(p));
                });
                result.and_then(|stats| pieces.flush().map(|()| stats))
            });
            let mut written = Ok(());
            for piece in rx.iter() {
                let step = match piece {
                    Piece::Progress(p) => {
                        progress(p);
                        Ok(())
                    }
                    Piece::Begin(head) => sink.begin(&head),
                    Piece::PodStart(pod) => sink.pod_start(&pod),
                    Piece::Runs(runs) => runs.into_iter().try_for_each(|run| sink.run(run)),
                    Piece::PodEnd(segments) => sink.pod_end(segments),
                    Piece::Finish(tail) => sink.finish(*tail),
                };
                if let Err(error) = step {
                    written = Err(error);
                    break;
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

/// Batches of runs (and other pieces) queued between the reading and the writing thread.
const PIECES_IN_FLIGHT: usize = 8;
/// Runs per batch.
const RUNS_PER_PIECE: usize = 128;

/// What the reading thread hands to the writing one.
enum Piece {
    Progress(Progress),
    Begin(DocHead),
    PodStart(Box<PodDoc>),
    Runs(Vec<RunDoc>),
    PodEnd(Vec<SegmentDoc>),
    Finish(Box<DocTail>),
}

/// A [`Sink`] that sends the pieces to the writing thread, runs in batches.
struct PieceSink {
    tx: std::sync::mpsc::SyncSender<Piece>,
    runs: Vec<RunDoc>,
}

impl PieceSink {
    fn new(tx: std::sync::mpsc::SyncSender<Piece>) -> Self {
        PieceSink {
            tx,
            runs: Vec::with_capacity(RUNS_PER_PIECE),
        }
    }

    fn send(&mut self, piece: Piece) -> Result<(), ExportError> {
        // The writer stopped (and says why): stop reading.
        self.tx
            .send(piece)
            .map_err(|_| ExportError::Render(std::io::Error::other("the writer stopped")))
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let runs = std::mem::replace(&mut self.runs, Vec::with_capacity(RUNS_PER_PIECE));
        self.send(Piece::Runs(runs))
    }
}

impl Sink for PieceSink {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.send(Piece::Begin(head.clone()))
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        self.send(Piece::PodStart(Box::new(pod.clone())))
    }

    fn run(&mut self, run: RunDoc) -> Result<(), ExportError> {
        self.runs.push(run);
        if self.runs.len() >= RUNS_PER_PIECE {
            self.flush()?;
        }
        Ok(())
    }

    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        self.flush()?;
        self.send(Piece::PodEnd(segments))
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        self.flush()?;
        self.send(Piece::Finish(Box::new(tail)))
    }
}
