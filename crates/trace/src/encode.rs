//! Encoding trace lines into a byte buffer: the same JSON that serde writes for
//! [`crate::TraceEntry`], with the envelope and the bodies of nearly every line (text deltas and
//! raw SSE frames) written directly, so a line costs no serializer state machine and its strings
//! are escaped in runs rather than byte by byte. Other bodies go through serde. The tests check
//! the output against serde's byte for byte.

use pod_protocol::event::StreamEvent;

#[cfg(test)]
use crate::entry::PendingEntry;
use crate::entry::{RawSseFrame, TraceBody};

/// Append the line of `entry` numbered `seq` and stamped `ts` (RFC 3339), with its newline. The
/// writer puts the same pieces together itself, reusing an envelope across entries.
#[cfg(test)]
pub(crate) fn push_line(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &str,
    entry: &PendingEntry,
) -> std::io::Result<()> {
    let line_start = out.len();
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(out, seq);
    push_envelope_tail(out, ts, entry.run_id.as_deref(), entry.turn, entry.attempt);
    push_body_and_end(out, line_start, &entry.body)
}

/// The envelope fields after `seq` (`,"ts":…` through `,"attempt":…`): the same for every
/// entry of one network read, so the writer encodes them once per read.
pub(crate) fn push_envelope_tail(
    out: &mut Vec<u8>,
    ts: &str,
    run_id: Option<&str>,
    turn: Option<u32>,
    attempt: Option<u32>,
) {
    out.extend_from_slice(b",\"ts\":");
    push_json_str(out, ts);
    if let Some(run_id) = run_id {
        out.extend_from_slice(b",\"run_id\":");
        push_json_str(out, run_id);
    }
    if let Some(turn) = turn {
        out.extend_from_slice(b",\"turn\":");
        push_decimal(out, u64::from(turn));
    }
    if let Some(attempt) = attempt {
        out.extend_from_slice(b",\"attempt\":");
        push_decimal(out, u64::from(attempt));
    }
}

/// The body's fields and the line's end, after an envelope that starts at `line_start`; on an
/// error the line is taken back whole.
pub(crate) fn push_body_and_end(
    out: &mut Vec<u8>,
    line_start: usize,
    body: &TraceBody,
) -> std::io::Result<()> {
    if let Err(error) = push_body_fields(out, body) {
        out.truncate(line_start);
        return Err(error);
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// The body's fields, each preceded by a comma (the body is flattened into the envelope).
fn push_body_fields(out: &mut Vec<u8>, body: &TraceBody) -> std::io::Result<()> {
    match body {
        TraceBody::Stream {
            event: StreamEvent::TextDelta(delta),
        } => push_text_delta_fields(out, delta.choice, &delta.text),
        TraceBody::RawSse(frame) => push_raw_sse_fields(out, frame),
        other => {
            // `{"kind":…}` → `,"kind":…` (the body always serializes as a JSON object).
            let body_start = out.len();
            serde_json::to_writer(&mut *out, other)?;
            if out.get(body_start) != Some(&b'{') || out.last() != Some(&b'}') {
                return Err(std::io::Error::other("trace body is not a JSON object"));
            }
            out.pop();
            out[body_start] = b',';
        }
    }
    Ok(())
}

/// The body fields of a text delta, as [`push_body_fields`] writes them.
fn push_text_delta_fields(out: &mut Vec<u8>, choice: u32, text: &str) {
    out.extend_from_slice(b",\"kind\":\"stream\",\"event\":{\"type\":\"text_delta\",\"choice\":");
    push_decimal(out, u64::from(choice));
    out.extend_from_slice(b",\"text\":");
    push_json_str(out, text);
    out.push(b'}');
}

/// The line's end after the envelope for a text delta (it cannot fail).
pub(crate) fn push_text_delta_and_end(out: &mut Vec<u8>, choice: u32, text: &str) {
    push_text_delta_fields(out, choice, text);
    out.extend_from_slice(b"}\n");
}

fn push_raw_sse_fields(out: &mut Vec<u8>, frame: &RawSseFrame) {
    push_raw_sse_parts(
        out,
        frame.event.as_deref(),
        &frame.data,
        frame.original_len,
        frame.truncated,
    );
}

/// The line's end after the envelope for a raw SSE frame whose data is already cut to `data`
/// (the same bytes as [`push_body_and_end`] writes for the [`RawSseFrame`]).
pub(crate) fn push_raw_sse_and_end(
    out: &mut Vec<u8>,
    event: Option<&str>,
    data: &str,
    original_len: usize,
) {
    push_raw_sse_parts(out, event, data, original_len, data.len() < original_len);
    out.extend_from_slice(b"}\n");
}

fn push_raw_sse_parts(
    out: &mut Vec<u8>,
    event: Option<&str>,
    data: &str,
    original_len: usize,
    truncated: bool,
) {
    out.extend_from_slice(b",\"kind\":\"raw_sse\"");
    if let Some(event) = event {
        out.extend_from_slice(b",\"event\":");
        push_json_str(out, event);
    }
    out.extend_from_slice(b",\"data\":");
    push_json_str(out, data);
    out.extend_from_slice(b",\"original_len\":");
    push_decimal(out, original_len as u64);
    out.extend_from_slice(if truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
}

/// A number in decimal that counts up by one in place: the trace's line numbers.
#[derive(Debug, Clone)]
pub(crate) struct DecimalCounter {
    digits: [u8; 20],
    /// Where the number's first digit is in `digits` (it is right-aligned).
    start: usize,
}

impl DecimalCounter {
    pub(crate) fn one() -> DecimalCounter {
        let mut digits = [b'0'; 20];
        digits[19] = b'1';
        DecimalCounter { digits, start: 19 }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    /// Add one (a trace never reaches the twenty digits' limit).
    pub(crate) fn increment(&mut self) {
        for at in (0..self.digits.len()).rev() {
            if self.digits[at] == b'9' {
                self.digits[at] = b'0';
            } else {
                self.digits[at] += 1;
                self.start = self.start.min(at);
                return;
            }
        }
    }
}

/// `n` in decimal, without the formatting machinery (it runs for every line).
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `text` as a JSON string, escaped exactly as `serde_json` does: `"`, `\\` and control
/// characters only, with the short forms for `\b \t \n \f \r` and `\u00xx` for the rest.
/// Looks at eight bytes at a time (most text has long runs needing no escape) and handles every
/// escape a word holds without scanning it again (raw SSE frames are dense with quotes).
pub(crate) fn push_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    let mut chunks = bytes.chunks_exact(8);
    let mut word_start = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mut candidates = escape_candidates(u64::from_le_bytes(word));
        while candidates != 0 {
            let at = word_start + (candidates.trailing_zeros() / 8) as usize;
            // Only the lowest candidate of a word is exact: check each.
            if needs_escape(bytes[at]) {
                out.extend_from_slice(&bytes[run_start..at]);
                push_escape(out, bytes[at]);
                run_start = at + 1;
            }
            candidates &= candidates - 1;
        }
        word_start += 8;
    }
    for (offset, &byte) in chunks.remainder().iter().enumerate() {
        if needs_escape(byte) {
            let at = word_start + offset;
            out.extend_from_slice(&bytes[run_start..at]);
            push_escape(out, byte);
            run_start = at + 1;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Bit 7 of a byte of the result is set for every byte of `w` (little-endian) that needs
/// escaping, and possibly for some bytes above one that does (the subtraction borrows), never
/// for the lowest byte unless it needs escaping.
fn escape_candidates(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')))
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        control => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(control >> 4)],
            HEX[usize::from(control & 0xf)],
        ]),
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
