//! Bytes to normalized events for one scheme, without any transport: framing, framing markers,
//! the scheme's decoder, and the "nothing after the terminal event" rule. The client feeds it
//! network chunks; tests and tools feed it whole bodies or arbitrary splits.

use crate::adapter::{Decoder, adapter_for, is_terminal};
use crate::error::{ErrorClass, ProviderError};
use crate::event::{StreamEvent, UNHANDLED_PREVIEW_BYTES, Unhandled};
use crate::observe::{RawFrame, RawFrames};
use crate::redact::preview;
use crate::scheme::WireScheme;
use crate::sse::{Frame, Framer};

/// Incremental decoder of one response body.
pub struct StreamDecoder {
    framer: Framer,
    decoder: Box<dyn Decoder>,
    done: bool,
}

impl StreamDecoder {
    pub fn new(scheme: WireScheme, max_event_bytes: usize) -> StreamDecoder {
        StreamDecoder {
            framer: Framer::new(max_event_bytes),
            decoder: adapter_for(scheme).decoder(),
            done: false,
        }
    }

    /// Whether the terminal event has been produced; later input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feed one chunk; new events are appended to `out`, and every frame as framed to `raw`.
    pub fn push(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<StreamEvent>,
        mut raw: Option<&mut RawFrames>,
    ) {
        if self.done {
            return;
        }
        let start = out.len();
        let decoder = &mut self.decoder;
        let result = self.framer.push(chunk, |frame| {
            on_frame(decoder, &frame, out, raw.as_deref_mut())
        });
        if let Err(over) = result {
            out.push(oversized(over.limit));
        }
        self.seal(start, out);
    }

    /// The body ended: flush a last unterminated event and let the scheme decide whether ending
    /// here is complete or `stream_closed_before_completion`.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>, mut raw: Option<&mut RawFrames>) {
        if self.done {
            return;
        }
        let start = out.len();
        let decoder = &mut self.decoder;
        let result = self
            .framer
            .finish(|frame| on_frame(decoder, &frame, out, raw.as_deref_mut()));
        if let Err(over) = result {
            out.push(oversized(over.limit));
        }
        if !out[start..].iter().any(is_terminal) {
            self.decoder.end(out);
        }
        self.seal(start, out);
    }

    /// Cut everything after the first terminal event among the new ones.
    fn seal(&mut self, start: usize, out: &mut Vec<StreamEvent>) {
        if let Some(t) = out[start..].iter().position(is_terminal) {
            out.truncate(start + t + 1);
            self.done = true;
        }
    }
}

fn on_frame(
    decoder: &mut Box<dyn Decoder>,
    frame: &Frame<'_>,
    out: &mut Vec<StreamEvent>,
    raw: Option<&mut RawFrames>,
) {
    if let Some(raw) = raw {
        raw.push(RawFrame {
            event: frame.event,
            data: frame.data,
        });
    }
    if frame.lossy {
        out.push(marker("sse.invalid_utf8", frame.data));
    }
    if frame.unterminated {
        out.push(marker("sse.unterminated_event", frame.data));
    }
    // `data:` with nothing after it carries no information (keep-alives); no scheme reads it.
    if !frame.data.is_empty() {
        decoder.frame(frame, out);
    }
}

fn marker(event: &str, data: &str) -> StreamEvent {
    StreamEvent::Unhandled(Unhandled {
        event: event.to_string(),
        preview: preview(data, UNHANDLED_PREVIEW_BYTES),
        original_len: data.len(),
    })
}

fn oversized(limit: usize) -> StreamEvent {
    StreamEvent::Error(ProviderError::new(
        ErrorClass::MalformedStream,
        format!("an SSE event is larger than the {limit}-byte limit (max_event_bytes)"),
    ))
}

/// Decode a whole body delivered in chunks of `chunk` bytes (the whole body at once for 0).
pub fn decode_body(
    scheme: WireScheme,
    body: &[u8],
    chunk: usize,
    max_event_bytes: usize,
) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new(scheme, max_event_bytes);
    let mut out = Vec::new();
    if chunk == 0 {
        d.push(body, &mut out, None);
    } else {
        for c in body.chunks(chunk) {
            d.push(c, &mut out, None);
        }
    }
    d.finish(&mut out, None);
    out
}
