//! Bounding and secret-stripping of provider messages.

pub(crate) use pod_protocol::text::{REDACTED, clean_message, scrub};

/// A URL as it may be shown in logs, errors and debug output: without userinfo
/// (`user:password@`), query string or fragment, which can carry credentials. Works on text that
/// does not parse as a URL too.
pub(crate) fn display_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str(host);
    out.push_str(path);
    out
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
    /// replaced by `[redacted]`.
    pub(crate) fn push(&mut self, key: StreamKey, piece: &str) -> String {
        let mut buf = match self.held.iter().position(|(k, _)| *k == key) {
            Some(p) => self.held.swap_remove(p).1,
            None => String::new(),
        };
        buf.push_str(piece);
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
            for len in (best + 1..s.len()).rev() {
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
mod tests {
    use super::*;

    #[test]
    fn display_url_drops_userinfo_query_and_fragment() {
        let cases = [
            (
                "https://user:pa55@proxy.example:8443/v1?key=SECRET#frag",
                "https://proxy.example:8443/v1",
            ),
            (
                "http://127.0.0.1:9/v1/responses",
                "http://127.0.0.1:9/v1/responses",
            ),
            ("https://tok@host", "https://host"),
            ("https://host/a@b/c?x=1", "https://host/a@b/c"),
            ("not a url?token=SECRET", "not a url"),
            ("user:pw@host/v1", "host/v1"),
            ("", ""),
        ];
        for (input, shown) in cases {
            assert_eq!(display_url(input), shown, "{input}");
        }
    }

    #[test]
    fn stream_scrubber_removes_a_key_split_into_three_pieces_anywhere() {
        for key in ["sk-ant-api03-XyZ", "k3y-without-prefix"] {
            let text = format!("a {key} b {key}");
            for i in 0..=text.len() {
                for j in i..=text.len() {
                    let mut s = StreamScrubber::new([key]);
                    let mut out = String::new();
                    for piece in [&text[..i], &text[i..j], &text[j..]] {
                        out += &s.push(StreamKey::Text(0), piece);
                    }
                    for (_, rest) in s.flush() {
                        out += &rest;
                    }
                    assert_eq!(out, "a [redacted] b [redacted]", "{key} at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn stream_scrubber_holds_back_only_a_proper_prefix_of_the_key() {
        let mut s = StreamScrubber::new(["secret-value"]);
        assert_eq!(s.push(StreamKey::Text(0), "say secr"), "say ");
        assert_eq!(s.push(StreamKey::Text(0), "et-val"), "");
        assert_eq!(s.push(StreamKey::Text(0), "idated"), "secret-validated");
        // Streams are apart: held text of one is not mixed into another.
        assert_eq!(s.push(StreamKey::Arguments(0, 1), "secret-"), "");
        assert_eq!(s.push(StreamKey::Text(0), "x"), "x");
        assert_eq!(
            s.take(StreamKey::Arguments(0, 1)).as_deref(),
            Some("secret-")
        );
        assert!(s.flush().is_empty());
        // Too short to be a key: not treated as one.
        assert!(!StreamScrubber::new(["abc"]).is_active());
    }
}
