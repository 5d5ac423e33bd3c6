use super::*;

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
