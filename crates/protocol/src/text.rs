//! Text as the formats carry it: bounded on a character boundary, stripped of credentials, and
//! escaped for a terminal. Every crate that cuts or cleans text for a record uses these, so a
//! record means the same whoever wrote it.

use std::borrow::Cow;

use crate::error::ERROR_MESSAGE_MAX_BYTES;

/// What a secret is replaced with wherever it is stripped.
pub const REDACTED: &str = "[redacted]";

/// The longest prefix of `text` that is at most `max` bytes and ends on a character boundary.
pub fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Cut `text` to at most `max` bytes on a character boundary, marking the cut with `…` (which
/// counts towards `max`).
pub fn truncate_marked(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let kept = cut_at_char_boundary(text, max.saturating_sub('…'.len_utf8())).len();
    text.truncate(kept);
    text.push('…');
}

/// `text` with every control character (ESC, CR, BEL, …, and DEL and the C1 range) written as
/// an escape (`\u{1b}`), so that names and other text from models or files cannot move the cursor,
/// recolour or rewrite a terminal. Used by every human-facing listing.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Strip `secret`, `Bearer …` tokens and `sk-…` keys, then bound to
/// [`ERROR_MESSAGE_MAX_BYTES`] on a char boundary: what an error message may hold.
pub fn clean_message(message: &str, secret: Option<&str>) -> String {
    let mut s = scrub(message, secret).into_owned();
    s = redact_after(&s, "sk-", |c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_'
    });
    truncate_marked(&mut s, ERROR_MESSAGE_MAX_BYTES);
    s
}

/// Strip the configured key `secret` and `Bearer …` tokens from provider data that is passed on
/// as it came (raw SSE frames, previews of unhandled events); everything else stays as it is.
pub fn scrub<'a>(text: &'a str, secret: Option<&str>) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    if let Some(k) = secret.filter(|k| k.len() >= 4)
        && out.contains(k)
    {
        out = Cow::Owned(out.replace(k, REDACTED));
    }
    if out.contains("Bearer ") {
        out = Cow::Owned(redact_after(&out, "Bearer ", |c| {
            !c.is_whitespace() && c != '"'
        }));
    }
    out
}

/// Replace the run of `keep` chars following each `marker` with `[redacted]` (marker kept for
/// `Bearer `, dropped for key prefixes so no part of a key survives).
fn redact_after(s: &str, marker: &str, keep: impl Fn(char) -> bool) -> String {
    if !s.contains(marker) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let run = after.find(|c: char| !keep(c)).unwrap_or(after.len());
        if run == 0 || (after[..run] == *REDACTED) {
            out.push_str(&rest[..i + marker.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        if marker == "Bearer " {
            out.push_str(marker);
        }
        out.push_str(REDACTED);
        rest = &after[run..];
    }
    out.push_str(rest);
    out
}

/// An error and its causes on one line (`outer: cause: root cause`), for tool outputs, log
/// entries and tables.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
