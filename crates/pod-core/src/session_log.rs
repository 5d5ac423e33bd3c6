//! The session log: the durable, append-only record of a segment (`sessions/<id>.jsonl`).
//!
//! Writing: [`SessionLog`] is a cloneable handle (runtime, tools and lifecycle code append
//! through the same one); each entry is one JSON line, numbered from 1, flushed as it is
//! written, and synced to disk at run boundaries (`segment_started`, `run_started`, every
//! terminal run entry, `segment_closed`). A failed write poisons the log: the error is returned
//! to the caller (the run fails loudly) and later appends are refused, so no entry lands after
//! a hole. Appends happen between stream events (never per event), so the stream hot path
//! does not wait on them.
//!
//! Reading is `pod_home::log_read`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::CoreError;
use crate::lifecycle::now_rfc3339;
use crate::record::{LogBody, LogEntry};

/// Where a session log writes: a file, or a test double.
pub trait LogSink: Write + Send {
    /// Make everything written so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl LogSink for File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

struct Inner {
    sink: Box<dyn LogSink>,
    last_seq: u64,
    /// The first write failure; once set, appends are refused.
    poisoned: Option<String>,
}

/// Hears of every entry once it is written (live telemetry); must not block.
pub type LogFollower = Arc<dyn Fn(&LogEntry) + Send + Sync>;

/// A shareable handle to one segment's log.
#[derive(Clone)]
pub struct SessionLog {
    path: Arc<PathBuf>,
    inner: Arc<Mutex<Inner>>,
    follower: Option<LogFollower>,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SessionLog {
    /// Create a new segment log at `path` (it must not exist) and sync its directory.
    pub fn create(path: &Path) -> Result<SessionLog, CoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(CoreError::io("create session log", path))?;
        if let Some(dir) = path.parent() {
            crate::home::sync_dir(dir)?;
        }
        Ok(SessionLog::from_sink(path, Box::new(file)))
    }

    /// A log over any sink; `path` names it in errors.
    pub fn from_sink(path: &Path, sink: Box<dyn LogSink>) -> SessionLog {
        SessionLog {
            path: Arc::new(path.to_owned()),
            inner: Arc::new(Mutex::new(Inner {
                sink,
                last_seq: 0,
                poisoned: None,
            })),
            follower: None,
        }
    }

    /// The same log, telling `follower` of every entry written from now on.
    pub fn followed_by(mut self, follower: LogFollower) -> SessionLog {
        self.follower = Some(follower);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry; returns its sequence number. Run boundaries are synced to disk.
    pub fn append(&self, body: LogBody) -> Result<u64, CoreError> {
        let sync = is_boundary(&body);
        let mut inner = self.inner.lock().map_err(|_| CoreError::LogPoisoned {
            path: self.path.to_path_buf(),
            cause: "a writer panicked".into(),
        })?;
        if let Some(cause) = &inner.poisoned {
            return Err(CoreError::LogPoisoned {
                path: self.path.to_path_buf(),
                cause: cause.clone(),
            });
        }
        let Some(seq) = inner.last_seq.checked_add(1) else {
            return Err(CoreError::LogPoisoned {
                path: self.path.to_path_buf(),
                cause: "the sequence numbers are exhausted".into(),
            });
        };
        let entry = LogEntry {
            seq,
            ts: now_rfc3339(),
            body,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|source| CoreError::LogWrite {
            path: self.path.to_path_buf(),
            source: source.into(),
        })?;
        line.push(b'\n');
        // Defense in depth: whatever the entry carries, no known key value is written.
        pod_trace::scrub::scrub_line(&mut line);
        let written = inner
            .sink
            .write_all(&line)
            .and_then(|()| inner.sink.flush());
        let written = if sync {
            written.and_then(|()| inner.sink.sync())
        } else {
            written
        };
        match written {
            Ok(()) => {
                inner.last_seq = entry.seq;
                // Under the lock, so the follower hears the entries in their order.
                if let Some(follower) = &self.follower {
                    follower(&entry);
                }
                Ok(entry.seq)
            }
            Err(source) => {
                inner.poisoned = Some(source.to_string());
                Err(CoreError::LogWrite {
                    path: self.path.to_path_buf(),
                    source,
                })
            }
        }
    }

    /// Sync everything appended so far to disk.
    pub fn sync(&self) -> Result<(), CoreError> {
        let mut inner = self.inner.lock().map_err(|_| CoreError::LogPoisoned {
            path: self.path.to_path_buf(),
            cause: "a writer panicked".into(),
        })?;
        inner.sink.sync().map_err(|source| CoreError::LogWrite {
            path: self.path.to_path_buf(),
            source,
        })
    }
}

fn is_boundary(body: &LogBody) -> bool {
    matches!(
        body,
        LogBody::SegmentStarted(_)
            | LogBody::RunStarted(_)
            | LogBody::RunCompleted(_)
            | LogBody::RunErrored(_)
            | LogBody::RunInterrupted(_)
            | LogBody::SegmentClosed(_)
    )
}

pub use pod_home::log_read::{LogItem, LogProblem, LogReader, SegmentRead, read_segment};

#[cfg(test)]
#[path = "session_log_tests.rs"]
mod tests;
