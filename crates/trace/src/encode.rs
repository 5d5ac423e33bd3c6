//! Encoding trace lines into a byte buffer: the same JSON that serde writes for
//! [`crate::TraceEntry`], with the envelope and the bodies of nearly every line (text deltas and
//! raw SSE frames) written directly, so a line costs no serializer state machine and its strings
//! are escaped in runs rather than byte by byte. Other bodies go through serde. The tests check
//! the output against serde's byte for byte.

use pod_protocol::event::StreamEvent;

use crate::entry::{PendingEntry, RawSseFrame, TraceBody};

/// Append the line of `entry` numbered `seq` and stamped `ts` (RFC 3339), with its newline.
pub(crate) fn push_line(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &str,
    entry: &PendingEntry,
) -> std::io::Result<()> {
    let line_start = out.len();
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(out, seq);
    out.extend_from_slice(b",\"ts\":");
    push_json_str(out, ts);
    if let Some(run_id) = &entry.run_id {
        out.extend_from_slice(b",\"run_id\":");
        push_json_str(out, run_id);
    }
    if let Some(turn) = entry.turn {
        out.extend_from_slice(b",\"turn\":");
        push_decimal(out, u64::from(turn));
    }
    if let Some(attempt) = entry.attempt {
        out.extend_from_slice(b",\"attempt\":");
        push_decimal(out, u64::from(attempt));
    }
    if let Err(error) = push_body_fields(out, &entry.body) {
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
        } => {
            out.extend_from_slice(
                b",\"kind\":\"stream\",\"event\":{\"type\":\"text_delta\",\"choice\":",
            );
            push_decimal(out, u64::from(delta.choice));
            out.extend_from_slice(b",\"text\":");
            push_json_str(out, &delta.text);
            out.push(b'}');
        }
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

fn push_raw_sse_fields(out: &mut Vec<u8>, frame: &RawSseFrame) {
    out.extend_from_slice(b",\"kind\":\"raw_sse\"");
    if let Some(event) = &frame.event {
        out.extend_from_slice(b",\"event\":");
        push_json_str(out, event);
    }
    out.extend_from_slice(b",\"data\":");
    push_json_str(out, &frame.data);
    out.extend_from_slice(b",\"original_len\":");
    push_decimal(out, frame.original_len as u64);
    out.extend_from_slice(if frame.truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
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

/// `text` as a JSON string, escaped exactly as `serde_json` does: `"`, `\` and control
/// characters only, with the short forms for `\b \t \n \f \r` and `\u00xx` for the rest.
pub(crate) fn push_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    while let Some(at) = next_to_escape(bytes, run_start) {
        out.extend_from_slice(&bytes[run_start..at]);
        push_escape(out, bytes[at]);
        run_start = at + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The first byte at or after `from` that needs escaping. Looks at eight bytes at a time: most
/// text has long runs without any.
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Bit 7 of each byte of the result is set for a zero byte of `w` (exact for the lowest one,
    // which is all that is used).
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut chunks = bytes[from..].chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let found = control
            | zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| needs_escape(b))
        .map(|p| at + p)
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
