//! The secret values this process knows (the API keys of the manifests it runs), and scrubbing
//! them out of text. Every line the session log and the trace sidecar write goes through
//! [`scrub_line`], and tool results and echoes go through [`scrub`], so a key that comes back
//! from the model or a file is replaced by `[redacted]` before anything keeps it.
//!
//! The set is process-wide because a value must be scrubbed wherever it turns up, by writers
//! that know nothing of manifests; it only ever grows.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a scrubbed value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this are not registered: they would match ordinary text, and no real
/// API key is that short.
pub const MIN_SECRET_LEN: usize = 8;

/// Each registered value in every form it can take in a written line: as it is, and escaped as
/// inside a JSON string when that differs. Longest first, so a form containing another is
/// replaced whole.
static FORMS: RwLock<Vec<Form>> = RwLock::new(Vec::new());

/// One form of a secret, with its searcher built once (every written line is searched).
struct Form {
    text: String,
    finder: memchr::memmem::Finder<'static>,
}

/// Register `value` as a secret of this process. Short values are ignored (see
/// [`MIN_SECRET_LEN`]).
pub fn register_secret(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let escaped = serde_json::to_string(value).unwrap_or_default();
    let escaped = escaped
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(value)
        .to_owned();
    let mut forms = FORMS.write().unwrap_or_else(|e| e.into_inner());
    for text in [value.to_owned(), escaped] {
        if !forms.iter().any(|f| f.text == text) {
            let finder = memchr::memmem::Finder::new(text.as_bytes()).into_owned();
            forms.push(Form { text, finder });
        }
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.text.len()));
}

/// Whether any secret is registered.
pub fn has_secrets() -> bool {
    !FORMS.read().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let forms = FORMS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for form in forms.iter() {
        if form.finder.find(out.as_bytes()).is_some() {
            out = Cow::Owned(out.replace(form.text.as_str(), REDACTED));
        }
    }
    out
}

/// Replace every registered secret in `line` (a line about to be written) by [`REDACTED`];
/// returns how many were replaced.
pub fn scrub_line(line: &mut Vec<u8>) -> usize {
    scrub_bytes(line, |_| true)
}

/// [`scrub_line`] for a buffer of whole JSON lines (each ending in `\n`), searched at once: the
/// same replacements as scrubbing each line alone, since a JSON line holds no raw newline and so
/// no form of a secret containing one (such a match could only span two lines).
pub fn scrub_lines(lines: &mut Vec<u8>) -> usize {
    scrub_bytes(lines, |form| !form.text.contains('\n'))
}

fn scrub_bytes(bytes: &mut Vec<u8>, applies: impl Fn(&Form) -> bool) -> usize {
    let forms = FORMS.read().unwrap_or_else(|e| e.into_inner());
    let mut replaced = 0;
    for form in forms.iter().filter(|form| applies(form)) {
        let needle = form.text.as_bytes();
        if form.finder.find(bytes).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        while let Some(at) = form.finder.find(rest) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(REDACTED.as_bytes());
            rest = &rest[at + needle.len()..];
            replaced += 1;
        }
        out.extend_from_slice(rest);
        *bytes = out;
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_scrubbed_raw_and_json_escaped() {
        register_secret("short");
        register_secret("k3y\"with\\quote-0123");
        assert_eq!(scrub("a short text"), "a short text");
        assert_eq!(
            scrub("x k3y\"with\\quote-0123 y"),
            format!("x {REDACTED} y")
        );
        let mut line = serde_json::to_vec(&serde_json::json!({"t": "k3y\"with\\quote-0123!"}))
            .unwrap_or_default();
        assert_eq!(scrub_line(&mut line), 1);
        assert_eq!(String::from_utf8_lossy(&line), r#"{"t":"[redacted]!"}"#);
        assert!(has_secrets());
    }

    #[test]
    fn a_buffer_of_lines_is_scrubbed_like_each_line_alone() {
        register_secret("line-secret-0123");
        register_secret("split\nsecret-0123");
        let lines = [
            r#"{"a":"line-secret-0123","b":"split\nsecret-0123"}"#,
            r#"{"c":"ends with split"}"#,
            r#"{"d":"secret-0123 line-secret-0123line-secret-0123"}"#,
        ];
        let mut one_by_one = Vec::new();
        for line in lines {
            let mut line = format!("{line}\n").into_bytes();
            scrub_line(&mut line);
            one_by_one.extend_from_slice(&line);
        }
        let mut together = lines.map(|l| format!("{l}\n")).concat().into_bytes();
        assert_eq!(scrub_lines(&mut together), 4);
        assert_eq!(
            String::from_utf8_lossy(&together),
            String::from_utf8_lossy(&one_by_one)
        );
    }
}
