use super::*;

#[test]
fn a_cut_never_splits_a_character() {
    assert_eq!(cut_at_char_boundary("aé€b", 3), "aé");
    assert_eq!(cut_at_char_boundary("aé€b", 2), "a");
    assert_eq!(cut_at_char_boundary("abc", 10), "abc");
    assert_eq!(cut_at_char_boundary("€", 0), "");
}

#[test]
fn a_marked_cut_fits_its_bound_with_the_mark() {
    let mut text = "héllo world".to_owned();
    truncate_marked(&mut text, 6);
    assert_eq!(text, "hé…");
    assert!(text.len() <= 6);
    let mut short = "hi".to_owned();
    truncate_marked(&mut short, 6);
    assert_eq!(short, "hi");
}

#[test]
fn control_characters_are_escaped_and_plain_text_borrowed() {
    assert_eq!(printable("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\u{d}");
    assert!(matches!(printable("plain"), Cow::Borrowed("plain")));
}

#[test]
fn messages_lose_keys_bearer_tokens_and_the_configured_secret() {
    let cleaned = clean_message(
        "bad key sk-abc_123 with Bearer tok.en and my-secret-value",
        Some("my-secret-value"),
    );
    assert_eq!(
        cleaned,
        "bad key [redacted] with Bearer [redacted] and [redacted]"
    );
    let long = "x".repeat(ERROR_MESSAGE_MAX_BYTES * 2);
    assert!(clean_message(&long, None).len() <= ERROR_MESSAGE_MAX_BYTES);
}

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
