//! A Server-Sent Events framer: bytes in, frames out, linear in the input whatever the chunking.
//!
//! Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR; one leading UTF-8 BOM is
//! stripped; lines starting with `:` are comments; `data:` lines are joined with `\n`; one space
//! after the colon is optional; `id:` (without NUL) and `retry:` (digits) are kept; a blank line
//! dispatches. Unlike the spec, a final event without its blank line is still dispatched (marked
//! `unterminated`), because providers that close early should not lose their last event.
//!
//! Each byte is scanned once: a partial line stays in the buffer and scanning resumes where it
//! stopped; the consumed prefix is dropped only when it is at least half the buffer, so
//! compaction is amortized linear too. An event with one `data:` line (nearly all of them) is
//! handed out borrowed from the buffer, without a copy.

/// One dispatched event, borrowed from the framer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `event:` field; empty when the frame had none.
    pub event: &'a str,
    /// All `data:` lines joined with `\n`.
    pub data: &'a str,
    /// The last `id:` seen on the stream so far, if any.
    pub id: Option<&'a str>,
    /// The stream ended before the blank line that dispatches this event.
    pub unterminated: bool,
    /// Some bytes of this frame were not valid UTF-8 and were replaced with U+FFFD.
    pub lossy: bool,
}

/// The event being assembled grew beyond the configured cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    pub limit: usize,
}

/// Incremental SSE framer.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the first unconsumed line in `buf`.
    start: usize,
    /// Where to resume looking for a line end (everything in `start..scan` has none).
    scan: usize,
    /// The previous line ended in CR, so a leading LF belongs to it.
    skip_lf: bool,
    bom_checked: bool,
    event: String,
    /// The data lines gathered so far, when they could not stay in `buf` (see `data_line`).
    data: String,
    /// The byte range in `buf` of the event's only data line so far, not yet validated as
    /// UTF-8; moved into `data` when a second line comes or before `buf` is compacted.
    data_line: Option<(usize, usize)>,
    data_seen: bool,
    id: Option<String>,
    lossy: bool,
    retry_ms: Option<u64>,
    max_event_bytes: usize,
    bytes_in: u64,
}

impl Framer {
    pub fn new(max_event_bytes: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            skip_lf: false,
            bom_checked: false,
            event: String::new(),
            data: String::new(),
            data_line: None,
            data_seen: false,
            id: None,
            lossy: false,
            retry_ms: None,
            max_event_bytes,
            bytes_in: 0,
        }
    }

    /// The last `retry:` value the stream sent.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Total bytes fed so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Feed one chunk; `on_frame` is called for every event it completes.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), Oversized> {
        self.bytes_in += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Ok(());
            }
            self.bom_checked = true;
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.start = 3;
                self.scan = 3;
            }
        }
        loop {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                    self.scan = self.scan.max(self.start);
                }
                self.skip_lf = false;
            }
            let Some(rel) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                break;
            };
            let end = self.scan + rel;
            if self.buf[end] == b'\r' {
                self.skip_lf = true;
            }
            let line_start = self.start;
            self.start = end + 1;
            self.scan = self.start;
            self.line(line_start, end, &mut on_frame)?;
        }
        // The next push may compact `buf`: a pending data line moves out of it first.
        self.keep_data_line();
        if self.data.len() + (self.buf.len() - self.start) > self.max_event_bytes {
            return Err(Oversized {
                limit: self.max_event_bytes,
            });
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        Ok(())
    }

    /// The stream ended: process a last line without terminator, and dispatch a pending event
    /// (marked `unterminated`).
    pub fn finish(&mut self, mut on_frame: impl FnMut(Frame<'_>)) -> Result<(), Oversized> {
        if !self.bom_checked && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.start = 3;
        }
        self.bom_checked = true;
        if self.start < self.buf.len() {
            let (s, e) = (self.start, self.buf.len());
            self.start = e;
            self.scan = e;
            self.line(s, e, &mut on_frame)?;
        }
        if self.data_seen {
            self.dispatch(true, &mut on_frame);
        }
        self.buf.clear();
        self.start = 0;
        self.scan = 0;
        Ok(())
    }

    fn line(
        &mut self,
        s: usize,
        e: usize,
        on_frame: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), Oversized> {
        let line = &self.buf[s..e];
        if line.is_empty() {
            if self.data_seen {
                self.dispatch(false, on_frame);
            } else {
                self.event.clear();
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let gathered = self.data.len() + self.data_line.map_or(0, |(s, e)| e - s);
                if gathered + value.len() + 1 > self.max_event_bytes {
                    return Err(Oversized {
                        limit: self.max_event_bytes,
                    });
                }
                if self.data_seen {
                    // A second line: the first joins `data` (as `keep_data_line` would).
                    if let Some((s, e)) = self.data_line.take() {
                        push_lossy(&mut self.data, &self.buf[s..e], &mut self.lossy);
                    }
                    self.data.push('\n');
                    push_lossy(&mut self.data, value, &mut self.lossy);
                } else {
                    let at = e - value.len();
                    self.data_line = Some((at, e));
                }
                self.data_seen = true;
            }
            b"event" => {
                self.event.clear();
                push_lossy(&mut self.event, value, &mut self.lossy);
            }
            b"id" if memchr::memchr(0, value).is_none() => {
                let mut id = String::new();
                push_lossy(&mut id, value, &mut self.lossy);
                self.id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        Ok(())
    }

    /// Move a data line still in `buf` into `data`.
    fn keep_data_line(&mut self) {
        if let Some((s, e)) = self.data_line.take() {
            push_lossy(&mut self.data, &self.buf[s..e], &mut self.lossy);
        }
    }

    fn dispatch(&mut self, unterminated: bool, on_frame: &mut impl FnMut(Frame<'_>)) {
        let (buf, gathered) = (&self.buf, &mut self.data);
        let data: &str = match self.data_line.take() {
            Some((s, e)) => match std::str::from_utf8(&buf[s..e]) {
                Ok(line) => line,
                Err(_) => {
                    self.lossy = true;
                    gathered.push_str(&String::from_utf8_lossy(&buf[s..e]));
                    gathered
                }
            },
            None => gathered,
        };
        on_frame(Frame {
            event: &self.event,
            data,
            id: self.id.as_deref(),
            unterminated,
            lossy: self.lossy,
        });
        self.event.clear();
        self.data.clear();
        self.data_seen = false;
        self.lossy = false;
    }
}

fn push_lossy(out: &mut String, bytes: &[u8], lossy: &mut bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => {
            *lossy = true;
            out.push_str(&String::from_utf8_lossy(bytes));
        }
    }
}

/// Frame a whole body at once (tests, the CLI and tools). Returns owned frames and whether the
/// event cap was hit.
pub fn frame_all(body: &[u8], max_event_bytes: usize) -> (Vec<OwnedFrame>, Option<Oversized>) {
    let mut framer = Framer::new(max_event_bytes);
    let mut out = Vec::new();
    let mut collect = |f: Frame<'_>| out.push(OwnedFrame::from(f));
    let r = framer
        .push(body, &mut collect)
        .and_then(|()| framer.finish(&mut collect));
    (out, r.err())
}

/// An owned copy of a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    pub unterminated: bool,
    pub lossy: bool,
}

impl From<Frame<'_>> for OwnedFrame {
    fn from(f: Frame<'_>) -> OwnedFrame {
        OwnedFrame {
            event: f.event.to_string(),
            data: f.data.to_string(),
            id: f.id.map(str::to_string),
            unterminated: f.unterminated,
            lossy: f.lossy,
        }
    }
}
