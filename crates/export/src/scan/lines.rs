//! The line reader of the scan: one log line at a time into a reused buffer, never holding
//! more than [`MAX_LINE_BYTES`] of it, and an entry's top-level `kind` found by walking the
//! start of the line instead of parsing it.

use std::borrow::Cow;
use std::io::BufRead;

use serde::Deserialize;

/// Longest line kept; longer ones are counted as unparseable without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Read one line into `buf` (without keeping more than [`MAX_LINE_BYTES`]); `None` at EOF.
pub(super) fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<pod_home::files::LineRead>> {
    pod_home::files::read_line_bounded(reader, buf, MAX_LINE_BYTES)
}

pub(super) fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// A log line to parse, its UTF-8 checked once: a line that is valid UTF-8 (all of them, but
/// for damage) is parsed as a `str`, so the parser does not check each string of it again; the
/// rest is parsed as bytes, exactly as before.
pub(super) struct Line<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> Line<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Line {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// The line as a `T`; the same answer as `serde_json::from_slice`.
    pub(super) fn parse<T: Deserialize<'a>>(&self) -> serde_json::Result<T> {
        match self.text {
            Some(text) => serde_json::from_str(text),
            None => serde_json::from_slice(self.bytes),
        }
    }
}

#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

/// The entry's own (top-level) `kind`. The line's structure is walked up to that key, so a
/// `"kind"` nested in a value is never taken for it; the writer puts `kind` third, so the walk
/// is short. When the walk cannot tell (the kind has escapes, or the line breaks before it), the
/// whole line is parsed.
pub(super) fn find_kind(line: &[u8]) -> Option<Cow<'_, str>> {
    if let Some(kind) = kind_as_written(line) {
        return std::str::from_utf8(kind).ok().map(Cow::Borrowed);
    }
    match walk_top_level(line, b"kind") {
        Walk::Found(kind) => std::str::from_utf8(kind).ok().map(Cow::Borrowed),
        Walk::Absent => None,
        Walk::Unsure => serde_json::from_slice::<KindOnly>(line)
            .ok()
            .map(|k| Cow::Owned(k.kind)),
    }
}

/// The `kind` of a line that starts the way the writer starts every line,
/// `{"seq":N,"ts":"…","kind":"…"`, read without walking it: the walk would find the same.
/// `None` when the line starts any other way or a string has escapes (the walk then decides).
fn kind_as_written(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].strip_prefix(b",\"ts\":\"")?;
    let ts_end = memchr::memchr2(b'"', b'\\', rest).filter(|&i| rest[i] == b'"')?;
    let rest = rest[ts_end + 1..].strip_prefix(b",\"kind\":\"")?;
    let kind_end = memchr::memchr2(b'"', b'\\', rest).filter(|&i| rest[i] == b'"')?;
    Some(&rest[..kind_end])
}

/// The string value of the top-level `key` of the JSON object in `line`, found by walking the
/// line's structure (nesting and strings) without parsing it, so it also works on a damaged or
/// torn line up to the damage. `None` when the key is not found before the line ends or breaks,
/// when its value is not a string, or when that string has escapes.
pub(super) fn top_level_str<'a>(line: &'a [u8], key: &str) -> Option<&'a str> {
    match walk_top_level(line, key.as_bytes()) {
        Walk::Found(value) => std::str::from_utf8(value).ok(),
        Walk::Absent | Walk::Unsure => None,
    }
}

/// What [`walk_top_level`] found.
#[derive(Debug, PartialEq, Eq)]
enum Walk<'a> {
    /// The key's string value (raw bytes, no escapes).
    Found(&'a [u8]),
    /// The whole line was walked: it is an object without that key as a string.
    Absent,
    /// The line is damaged or the value has escapes: only a full parse can tell.
    Unsure,
}

fn walk_top_level<'a>(line: &'a [u8], key: &[u8]) -> Walk<'a> {
    let mut i = 0;
    let mut depth = 0usize;
    // At depth 1: the next string is a key.
    let mut at_key = false;
    // At depth 1: the last key was `key` and its value comes next.
    let mut want_value = false;
    while i < line.len() {
        match line[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b':' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                let end = loop {
                    match memchr::memchr2(b'"', b'\\', &line[j..]) {
                        None => return Walk::Unsure,
                        Some(k) if line[j + k] == b'\\' => {
                            escaped = true;
                            j += k + 2;
                            if j > line.len() {
                                return Walk::Unsure;
                            }
                        }
                        Some(k) => break j + k,
                    }
                };
                let text = &line[start..end];
                if depth == 1 && at_key {
                    at_key = false;
                    want_value = !escaped && text == key;
                } else if depth == 1 && want_value {
                    return if escaped {
                        Walk::Unsure
                    } else {
                        Walk::Found(text)
                    };
                }
                i = end + 1;
            }
            c @ (b'{' | b'[') => {
                if depth == 0 && c != b'{' {
                    return Walk::Absent;
                }
                if depth == 1 && want_value {
                    return Walk::Absent;
                }
                depth += 1;
                at_key = depth == 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Walk::Unsure;
                }
                depth -= 1;
                if depth == 0 {
                    return Walk::Absent;
                }
                i += 1;
            }
            b',' => {
                if depth == 1 {
                    if want_value {
                        return Walk::Unsure;
                    }
                    at_key = true;
                }
                i += 1;
            }
            _ => {
                if depth == 0 {
                    return Walk::Absent;
                }
                if depth == 1 && want_value {
                    // A number, `true`, `false` or `null`: not a string.
                    return Walk::Absent;
                }
                i += 1;
            }
        }
    }
    Walk::Unsure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_finds_only_top_level_keys() {
        let line = br#"{"seq":1,"input":{"kind":"nested"},"kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
        let line = br#"{"a":["kind","x"],"b":"kind","kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
        let line = br#"{"text":"he said "kind":"x"","kind":"top"}"#;
        assert_eq!(walk_top_level(line, b"kind"), Walk::Found(b"top"));
    }

    #[test]
    fn walk_says_absent_only_when_the_whole_object_was_seen() {
        assert_eq!(
            walk_top_level(br#"{"x":{"kind":"nested"}}"#, b"kind"),
            Walk::Absent
        );
        assert_eq!(walk_top_level(br#"{"kind":3}"#, b"kind"), Walk::Absent);
        assert_eq!(walk_top_level(br#"["kind"]"#, b"kind"), Walk::Absent);
        // Cut off before the key, or the value has an escape: only a parse can tell.
        assert_eq!(
            walk_top_level(br#"{"seq":1,"ts":"2026"#, b"kind"),
            Walk::Unsure
        );
        assert_eq!(
            walk_top_level(br#"{"kind":"run\u005fstarted"}"#, b"kind"),
            Walk::Unsure
        );
        // Cut off after it: still found.
        assert_eq!(
            walk_top_level(
                br#"{"seq":9,"kind":"run_errored","run_id":"r1","err"#,
                b"run_id"
            ),
            Walk::Found(b"r1")
        );
    }

    #[test]
    fn a_line_parses_as_from_slice_does_valid_utf8_or_not() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Seq {
            seq: u64,
        }
        let valid = br#"{"seq":7,"text":"caf\u00e9 ok"}"#;
        // Invalid UTF-8 in a field the shape ignores: bytes in, the same answer out.
        let invalid = b"{\"seq\":8,\"text\":\"\xff\xfe\"}";
        for line in [&valid[..], &invalid[..]] {
            let ours = Line::new(line).parse::<Seq>().ok();
            let theirs = serde_json::from_slice::<Seq>(line).ok();
            assert_eq!(ours, theirs);
        }
        assert_eq!(Line::new(invalid).parse::<Seq>().ok(), Some(Seq { seq: 8 }));
        assert!(Line::new(b"{\"seq\":").parse::<Seq>().is_err());
    }

    #[test]
    fn the_writers_layout_is_read_as_the_walk_reads_it() {
        let lines: &[&[u8]] = &[
            br#"{"seq":12,"ts":"2026-11-23T01:02:03.456Z","kind":"run_started","run_id":"r"}"#,
            br#"{"seq":1,"ts":"t","kind":"run_\u0073tarted"}"#,
            br#"{"seq":1,"ts":"t\"","kind":"x"}"#,
            br#"{"seq":-1,"ts":"t","kind":"x"}"#,
            br#"{"seq":1,"ts":"t","kinds":"x","kind":"y"}"#,
            br#"{"seq":1,"ts":"t","kind":"cut"#,
            br#" {"seq":1,"ts":"t","kind":"x"}"#,
        ];
        for line in lines {
            if let Some(kind) = kind_as_written(line) {
                assert_eq!(walk_top_level(line, b"kind"), Walk::Found(kind));
            }
        }
        assert_eq!(kind_as_written(lines[0]), Some(&b"run_started"[..]));
        assert_eq!(kind_as_written(lines[1]), None);
        assert_eq!(kind_as_written(lines[4]), None);
        assert_eq!(find_kind(lines[4]).as_deref(), Some("y"));
    }

    #[test]
    fn find_kind_falls_back_to_a_full_parse() {
        assert_eq!(
            find_kind(br#"{"kind":"run\u005fstarted"}"#).as_deref(),
            Some("run_started")
        );
        assert_eq!(find_kind(br#"{"x":{"kind":"nested"}}"#), None);
        assert_eq!(find_kind(b"not json"), None);
    }
}
