//! A command's output kept within a bound whatever it prints: the first half of the bound and
//! the last half, with the length of what lies between.

use std::collections::VecDeque;

/// Bytes kept beyond each half, so that a key straddling a cut is still whole when the output
/// is scrubbed (it is cut after scrubbing).
const SCRUB_MARGIN: usize = 4096;

/// The head and tail of a stream of bytes, and its total length.
#[derive(Debug)]
pub(super) struct HeadTail {
    head_max: usize,
    tail_max: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl HeadTail {
    /// Keep at most `max` bytes to show (half at the start, half at the end).
    pub(super) fn new(max: usize) -> HeadTail {
        let head_max = max / 2;
        HeadTail {
            head_max,
            tail_max: max - head_max,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_room = (self.head_max + SCRUB_MARGIN).saturating_sub(self.head.len());
        self.head
            .extend_from_slice(&bytes[..head_room.min(bytes.len())]);
        // The tail is the end of the whole stream; it may overlap the head while both are short.
        let tail_keep = self.tail_max + SCRUB_MARGIN;
        let bytes = &bytes[bytes.len().saturating_sub(tail_keep)..];
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_keep);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// The output as text (invalid UTF-8 replaced), scrubbed of known keys, with the middle
    /// cut and its length stated when it was longer than the bound.
    pub(super) fn render(mut self) -> String {
        let scrub =
            |bytes: &[u8]| pod_trace::scrub::scrub(&String::from_utf8_lossy(bytes)).into_owned();
        let kept = (self.head_max + self.tail_max) as u64;
        if self.total <= kept {
            // Nothing was dropped: the tail starts within the head (or right after it).
            let tail_start = self.total - self.tail.len() as u64;
            let overlap =
                usize::try_from((self.head.len() as u64).saturating_sub(tail_start)).unwrap_or(0);
            let mut all = self.head;
            all.extend(self.tail.iter().skip(overlap));
            return scrub(&all);
        }
        let head = scrub(&self.head);
        let head = pod_protocol::text::cut_at_char_boundary(&head, self.head_max);
        let tail = scrub(self.tail.make_contiguous());
        let mut start = tail.len().saturating_sub(self.tail_max);
        while !tail.is_char_boundary(start) {
            start += 1;
        }
        let tail = &tail[start..];
        let cut = self.total.saturating_sub((head.len() + tail.len()) as u64);
        format!(
            "{head}\n[… {cut} bytes cut from the middle; {} bytes in total …]\n{tail}",
            self.total
        )
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
