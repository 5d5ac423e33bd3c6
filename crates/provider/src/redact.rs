//! Bounding and secret-stripping of provider messages.

use crate::error::ERROR_MESSAGE_MAX_BYTES;

const REDACTED: &str = "[redacted]";

/// Strip `secret`, `Bearer …` tokens and `sk-…` keys, then bound to
/// [`ERROR_MESSAGE_MAX_BYTES`] on a char boundary.
pub(crate) fn clean_message(message: &str, secret: Option<&str>) -> String {
    let mut s = scrub(message, secret).into_owned();
    s = redact_after(&s, "sk-", |c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_'
    });
    truncate(&mut s, ERROR_MESSAGE_MAX_BYTES);
    s
}

/// Strip the configured key `secret` and `Bearer …` tokens from provider data that is passed on
/// as it came (raw SSE frames, previews of unhandled events); everything else stays as it is.
pub(crate) fn scrub<'a>(text: &'a str, secret: Option<&str>) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
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

/// Cut `s` to at most `max` bytes on a char boundary, marking the cut with `…`.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
}

/// The first `max` bytes of `s` on a char boundary.
pub(crate) fn preview(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_key_bearer_and_sk_patterns() {
        let m = clean_message(
            "bad key sk-proj-AbC123_xyz given in Authorization: Bearer tok.en-99 and MYSECRETKEY",
            Some("MYSECRETKEY"),
        );
        assert!(!m.contains("AbC123"), "{m}");
        assert!(!m.contains("tok.en-99"), "{m}");
        assert!(!m.contains("MYSECRETKEY"), "{m}");
        assert!(m.contains("Bearer [redacted]"), "{m}");
    }

    #[test]
    fn scrub_strips_the_key_and_bearer_tokens_and_keeps_everything_else() {
        let data = r#"{"echo":"k3y-abcdef","auth":"Bearer tok123","note":"risk-free sk-like"}"#;
        let s = scrub(data, Some("k3y-abcdef"));
        assert_eq!(
            s,
            r#"{"echo":"[redacted]","auth":"Bearer [redacted]","note":"risk-free sk-like"}"#
        );
        assert!(matches!(
            scrub("nothing to hide", Some("k3y-abcdef")),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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
    fn bounds_on_char_boundary() {
        let long = "é".repeat(ERROR_MESSAGE_MAX_BYTES);
        let m = clean_message(&long, None);
        assert!(m.len() <= ERROR_MESSAGE_MAX_BYTES);
        assert!(m.ends_with('…'));
    }
}
