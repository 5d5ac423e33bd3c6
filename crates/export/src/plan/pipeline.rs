//! The export on two threads: one reads the logs and renders the document, the other passes
//! the rendered bytes through the secret check to their destination, with a few chunks in
//! flight between the two.

use std::io::Write;
use std::sync::mpsc::SyncSender;

use crate::error::ExportError;
use crate::stream::Sink;

use super::{ExportPlan, ExportStats, Progress};

impl ExportPlan {
    /// [`ExportPlan::run`] on a second thread, into the sink `make_sink` builds there over a
    /// writer that hands its bytes to this thread in chunks; this thread writes them to `out`
    /// (and reports progress). Rendering beside the reading keeps what the runs leave to free
    /// on the thread that allocated it, and leaves this thread only the check and the writes.
    pub(super) fn run_beside<S: Sink>(
        self,
        make_sink: impl FnOnce(ChunkWriter) -> S + Send,
        secrets_checked: Vec<String>,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(CHUNKS_IN_FLIGHT);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut sink = make_sink(ChunkWriter::new(tx.clone()));
                self.run(&mut sink, secrets_checked, &mut |p| {
                    // A closed channel is seen by the next chunk sent.
                    let _ = tx.send(Piece::Progress(p));
                })
            });
            let mut written = Ok(());
            for piece in rx.iter() {
                match piece {
                    Piece::Progress(p) => progress(p),
                    Piece::Bytes(bytes) => {
                        if let Err(error) = out.write_all(&bytes) {
                            written = Err(ExportError::from_io(error));
                            break;
                        }
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

/// Chunks queued between the reading and the writing thread.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Bytes per chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// What the reading thread hands to the writing one, in order.
enum Piece {
    Progress(Progress),
    Bytes(Vec<u8>),
}

/// The writer a sink on the reading thread writes to: its bytes go to the writing thread in
/// chunks of [`CHUNK_BYTES`], and the rest on `flush` (which every sink's `finish` calls).
pub(crate) struct ChunkWriter {
    tx: SyncSender<Piece>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn new(tx: SyncSender<Piece>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4),
        );
        // The writer stopped (and says why): stop reading.
        self.tx
            .send(Piece::Bytes(full))
            .map_err(|_| std::io::Error::other("the writer stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write(data).map(|_| ())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
