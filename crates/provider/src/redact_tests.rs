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
fn bounds_on_char_boundary() {
    let long = "é".repeat(ERROR_MESSAGE_MAX_BYTES);
    let m = clean_message(&long, None);
    assert!(m.len() <= ERROR_MESSAGE_MAX_BYTES);
    assert!(m.ends_with('…'));
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
