//! Reading a session log back: [`LogReader`] streams entries and reports, without failing, a
//! torn last line (a write cut short by a crash), unparseable lines, oversized lines and
//! sequence gaps, with line numbers.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use pod_protocol::record::LogEntry;

use crate::error::HomeError;

/// Something wrong with a log, found while reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogProblem {
    /// The last line has no line end: a write cut short. Everything before it is intact.
    TornTail { line: u64, bytes: usize },
    /// A complete line that is not a log entry this build understands.
    Unparseable { line: u64, error: String },
    /// An entry's `seq` is not the previous one plus one.
    SeqGap {
        line: u64,
        expected: u64,
        found: u64,
    },
    /// An entry follows one whose `seq` was the largest possible: there is no next number.
    SeqAfterLast { line: u64, found: u64 },
    /// A line longer than [`crate::files::MAX_LINE_BYTES`]; it was skipped without being kept.
    TooLong { line: u64, bytes: u64 },
}

impl std::fmt::Display for LogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogProblem::TornTail { line, bytes } => {
                write!(
                    f,
                    "line {line}: torn last line ({bytes} bytes without a line end)"
                )
            }
            LogProblem::Unparseable { line, error } => write!(f, "line {line}: {error}"),
            LogProblem::SeqGap {
                line,
                expected,
                found,
            } => write!(f, "line {line}: expected seq {expected}, found {found}"),
            LogProblem::SeqAfterLast { line, found } => write!(
                f,
                "line {line}: seq {found} follows the largest possible seq ({})",
                u64::MAX
            ),
            LogProblem::TooLong { line, bytes } => write!(
                f,
                "line {line}: {bytes} bytes, longer than {} bytes; skipped",
                crate::files::MAX_LINE_BYTES
            ),
        }
    }
}

/// One item read from a log.
// Entries are the common case and are moved out at once; boxing them would cost every read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LogItem {
    Entry(LogEntry),
    Problem(LogProblem),
}

/// Streams the entries of one segment log, reporting problems in place.
pub struct LogReader {
    path: PathBuf,
    lines: BufReader<File>,
    line: u64,
    last_seq: u64,
    pending: Option<LogEntry>,
}

impl LogReader {
    /// Open a segment log; anything but a regular file (a FIFO, a socket, a device, also
    /// through a symlink) is refused with an error naming the file.
    pub fn open(path: &Path) -> Result<LogReader, HomeError> {
        let file =
            crate::files::open_regular(path).map_err(HomeError::io("read session log", path))?;
        Ok(LogReader {
            path: path.to_owned(),
            lines: BufReader::new(file),
            line: 0,
            last_seq: 0,
            pending: None,
        })
    }
}

impl Iterator for LogReader {
    type Item = Result<LogItem, HomeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.pending.take() {
            return Some(Ok(LogItem::Entry(entry)));
        }
        let mut buf = Vec::new();
        match crate::files::read_line_bounded(
            &mut self.lines,
            &mut buf,
            crate::files::MAX_LINE_BYTES,
        ) {
            Ok(None) => None,
            Err(source) => Some(Err(HomeError::Io {
                action: "read session log",
                path: self.path.clone(),
                source,
            })),
            Ok(Some(read)) => {
                self.line = self.line.saturating_add(1);
                if read.oversized {
                    return Some(Ok(LogItem::Problem(LogProblem::TooLong {
                        line: self.line,
                        bytes: read.bytes,
                    })));
                }
                if !read.terminated {
                    return Some(Ok(LogItem::Problem(LogProblem::TornTail {
                        line: self.line,
                        bytes: buf.len(),
                    })));
                }
                if buf.trim_ascii().is_empty() {
                    return self.next();
                }
                match serde_json::from_slice::<LogEntry>(&buf) {
                    Err(error) => Some(Ok(LogItem::Problem(LogProblem::Unparseable {
                        line: self.line,
                        error: error.to_string(),
                    }))),
                    Ok(entry) => {
                        let expected = self.last_seq.checked_add(1);
                        self.last_seq = entry.seq;
                        let found = entry.seq;
                        let problem = match expected {
                            Some(expected) if expected == found => {
                                return Some(Ok(LogItem::Entry(entry)));
                            }
                            Some(expected) => LogProblem::SeqGap {
                                line: self.line,
                                expected,
                                found,
                            },
                            None => LogProblem::SeqAfterLast {
                                line: self.line,
                                found,
                            },
                        };
                        self.pending = Some(entry);
                        Some(Ok(LogItem::Problem(problem)))
                    }
                }
            }
        }
    }
}

/// A whole segment read into memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentRead {
    pub entries: Vec<LogEntry>,
    pub problems: Vec<LogProblem>,
}

/// Read a whole segment log.
pub fn read_segment(path: &Path) -> Result<SegmentRead, HomeError> {
    let mut read = SegmentRead::default();
    for item in LogReader::open(path)? {
        match item? {
            LogItem::Entry(entry) => read.entries.push(entry),
            LogItem::Problem(problem) => read.problems.push(problem),
        }
    }
    Ok(read)
}
