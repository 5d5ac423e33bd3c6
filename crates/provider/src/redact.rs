//! Secret-stripping of provider text: messages and raw data by `pod_protocol::text`, streamed
//! output by [`StreamScrubber`].

pub(crate) use pod_protocol::text::{REDACTED, clean_message, scrub};

/// [`scrub`] for text that passes by the thousand (raw SSE frames): the searches are built once,
/// and a whole read's frames are searched together, so frames holding neither the key nor a
/// bearer token cost one fast search of their read for each.
pub(crate) struct FrameScrub {
    key: Option<(memchr::memmem::Finder<'static>, String)>,
    bearer: memchr::memmem::Finder<'static>,
}

impl FrameScrub {
    pub(crate) fn new(secret: Option<&str>) -> FrameScrub {
        FrameScrub {
            // The same keys `scrub` strips: shorter values would match ordinary text.
            key: secret
                .filter(|k| k.len() >= 4)
                .map(|k| (memchr::memmem::Finder::new(k).into_owned(), k.to_owned())),
            bearer: memchr::memmem::Finder::new("Bearer ").into_owned(),
        }
    }

    /// Whether `text` holds the key or a bearer token (or, across the seams of texts put
    /// together, seems to).
    pub(crate) fn finds_in(&self, text: &str) -> bool {
        let has_key = self
            .key
            .as_ref()
            .is_some_and(|(finder, _)| finder.find(text.as_bytes()).is_some());
        has_key || self.bearer.find(text.as_bytes()).is_some()
    }

    pub(crate) fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.finds_in(text) {
            return std::borrow::Cow::Borrowed(text);
        }
        scrub(text, self.key.as_ref().map(|(_, key)| key.as_str()))
    }
}

/// The first `max` bytes of `s` on a char boundary.
pub(crate) fn preview(s: &str, max: usize) -> String {
    pod_protocol::text::cut_at_char_boundary(s, max).to_owned()
}

/// Strips secrets from streamed text whose pieces arrive one delta at a time: a secret split
/// across deltas is removed all the same. Each stream (text, reasoning, one tool call's
/// arguments, per choice) holds back only a tail that is a proper prefix of a secret, and
/// releases it when more text shows it is not one, or at [`StreamScrubber::flush`].
#[derive(Default)]
pub(crate) struct StreamScrubber {
    secrets: Vec<String>,
    held: Vec<(StreamKey, String)>,
}

/// Which stream a piece of text belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum StreamKey {
    Text(u32),
    Reasoning(u32, crate::event::ReasoningKind),
    Arguments(u32, u32),
}

impl StreamScrubber {
    /// A scrubber for `secrets`; values shorter than 4 bytes are not treated as secrets (they
    /// would match ordinary text).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> StreamScrubber {
        StreamScrubber {
            secrets: secrets
                .into_iter()
                .filter(|s| s.len() >= 4)
                .map(str::to_string)
                .collect(),
            held: Vec::new(),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The part of `piece` (after what `key` held back) that can be passed on now, secrets
    /// replaced by `[redacted]`. Taking the piece by value lets the usual case, nothing held
    /// and nothing to replace, hand it back without a copy.
    pub(crate) fn push(&mut self, key: StreamKey, piece: impl Into<String>) -> String {
        let piece = piece.into();
        let buf = match self.held.iter().position(|(k, _)| *k == key) {
            Some(p) => {
                let mut held = self.held.swap_remove(p).1;
                held.push_str(&piece);
                held
            }
            None => piece,
        };
        let mut buf = self.replace_all(buf);
        let keep = self.pending_prefix(&buf);
        if keep > 0 {
            let tail = buf.split_off(buf.len() - keep);
            self.held.push((key, tail));
        }
        buf
    }

    /// What `key` still holds back (it was not a secret after all), and forget it.
    pub(crate) fn take(&mut self, key: StreamKey) -> Option<String> {
        let p = self.held.iter().position(|(k, _)| *k == key)?;
        Some(self.held.swap_remove(p).1).filter(|s| !s.is_empty())
    }

    /// Everything still held back, in the order the streams were first held.
    pub(crate) fn flush(&mut self) -> Vec<(StreamKey, String)> {
        std::mem::take(&mut self.held)
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect()
    }

    /// `text` with every whole secret replaced.
    pub(crate) fn scrub_whole(&self, text: String) -> String {
        self.replace_all(text)
    }

    fn replace_all(&self, mut text: String) -> String {
        for s in &self.secrets {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), REDACTED);
            }
        }
        text
    }

    /// The length of the longest tail of `buf` that is a proper prefix of some secret.
    fn pending_prefix(&self, buf: &str) -> usize {
        let mut best = 0;
        for s in &self.secrets {
            // A tail no longer than `buf` itself.
            for len in (best + 1..s.len().min(buf.len() + 1)).rev() {
                if s.is_char_boundary(len) && buf.ends_with(&s[..len]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
