use super::*;

#[test]
fn output_within_the_bound_is_kept_whole_across_pushes() {
    let mut out = HeadTail::new(100);
    out.push(b"hello ");
    out.push(b"world\n");
    assert_eq!(out.total(), 12);
    assert_eq!(out.render(), "hello world\n");
}

#[test]
fn output_longer_than_either_half_but_within_the_bound_is_kept_whole_in_order() {
    let bound = 4 * SCRUB_MARGIN;
    let text: String = (0..bound - 10)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut out = HeadTail::new(bound);
    for piece in text.as_bytes().chunks(777) {
        out.push(piece);
    }
    assert_eq!(out.render(), text);
}

#[test]
fn output_beyond_the_bound_keeps_head_and_tail_and_states_the_cut() {
    let mut out = HeadTail::new(20);
    // 10 000 bytes in small pushes: memory stays bounded, head and tail survive.
    out.push(b"START.....");
    for _ in 0..998 {
        out.push(b"0123456789");
    }
    out.push(b".......END");
    assert_eq!(out.total(), 10_000);
    assert!(out.head.len() + out.tail.len() <= 20 + 2 * SCRUB_MARGIN);
    assert_eq!(
        out.render(),
        "START.....\n[… 9980 bytes cut from the middle; 10000 bytes in total …]\n.......END"
    );
}

#[test]
fn one_huge_push_is_bounded_too() {
    let mut out = HeadTail::new(8);
    let mut bytes = b"abcd".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 1_000_000));
    bytes.extend(b"wxyz");
    out.push(&bytes);
    assert!(out.tail.len() <= 4 + SCRUB_MARGIN);
    assert_eq!(
        out.render(),
        "abcd\n[… 1000000 bytes cut from the middle; 1000008 bytes in total …]\nwxyz"
    );
}

#[test]
fn a_cut_inside_a_character_keeps_whole_characters() {
    let mut out = HeadTail::new(6);
    out.push("ééééé|ééééé".as_bytes());
    let text = out.render();
    // Three bytes each side: one two-byte character each, never half of one.
    assert!(text.starts_with("é\n[… 17 bytes cut"), "{text}");
    assert!(text.ends_with("…]\né"), "{text}");
    assert!(!text.contains('\u{FFFD}'), "{text}");
}

#[test]
fn a_key_straddling_the_cut_is_scrubbed_before_it_is_cut() {
    let key = "sk-shell-output-test-key-0123456789";
    pod_trace::scrub::register_secret(key);
    let mut out = HeadTail::new(20);
    // The head bound (10 bytes) falls inside the key.
    out.push(format!("abc{key}").as_bytes());
    out.push(&[b'-'; 100]);
    let text = out.render();
    assert!(!text.contains("sk-shell"), "{text}");
    assert!(!text.contains("0123456789"), "{text}");
    assert!(text.starts_with("abc[redact"), "{text}");
}
