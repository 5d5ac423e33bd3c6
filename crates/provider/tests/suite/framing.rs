//! SSE framing: the synthetic framing fixtures through the Responses adapter, and the framer's
//! rules directly.

use pod_provider::event::StopReason;
use pod_provider::sse::{Framer, frame_all};
use pod_provider::{ErrorClass, StreamDecoder, StreamEvent, WireScheme, decode_body};

use crate::{CAP, facts, read};

const SAME_AS_TEXT_BASIC: &[&str] = &[
    "synthetic/framing/crlf-lines.sse",
    "synthetic/framing/cr-only-lines.sse",
    "synthetic/framing/bom-prefix.sse",
    "synthetic/framing/no-space-after-colon.sse",
    "synthetic/framing/multiline-data.sse",
    "synthetic/framing/comments-id-retry.sse",
    "synthetic/framing/empty-data-and-blank-events.sse",
    "synthetic/framing/no-trailing-blank-line.sse",
];

#[test]
fn framing_variants_decode_like_the_original() {
    let original = facts(&decode_body(
        WireScheme::OpenaiResponses,
        &read("openai-responses/text-basic.sse"),
        0,
        CAP,
    ));
    for rel in SAME_AS_TEXT_BASIC {
        let body = read(rel);
        let whole = decode_body(WireScheme::OpenaiResponses, &body, 0, CAP);
        let f = facts(&whole);
        assert_eq!(f.text, "The capital of France is Paris.", "{rel}");
        assert_eq!(f.usage, original.usage, "{rel}");
        assert!(
            matches!(&f.terminal, StreamEvent::Completed(c) if c.stop_reason == StopReason::EndTurn),
            "{rel}: {:?}",
            f.terminal
        );
        let marked = f.unhandled.iter().any(|u| u == "sse.unterminated_event");
        assert_eq!(
            marked,
            rel.contains("no-trailing-blank-line"),
            "{rel}: {:?}",
            f.unhandled
        );
    }
}

/// Decode `body` cut in two at `cut`.
fn decode_split(body: &[u8], cut: usize, cap: usize) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new(WireScheme::OpenaiResponses, cap);
    let mut out = Vec::new();
    d.push(&body[..cut], &mut out, None);
    d.push(&body[cut..], &mut out, None);
    d.finish(&mut out, None);
    out
}

/// The longest run of one repeated byte in `body`, as `start..end`.
fn longest_run(body: &[u8]) -> std::ops::Range<usize> {
    let (mut best, mut start) = (0..0, 0);
    for i in 1..=body.len() {
        if i == body.len() || body[i] != body[start] {
            if i - start > best.len() {
                best = start..i;
            }
            start = i;
        }
    }
    best
}

/// Every file in `synthetic/framing` (so a new one is covered too), sorted.
fn framing_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(crate::fixture("synthetic/framing"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    files
}

const HUGE: &str = "huge-event-300k.sse";

/// Cut `body` in two at every point in `cuts` and compare with the unsplit decode, and decode
/// it in 1-byte chunks.
fn same_at_every_cut(name: &str, body: &[u8], cap: usize, cuts: impl Iterator<Item = usize>) {
    let whole = decode_body(WireScheme::OpenaiResponses, body, 0, cap);
    let mut tried = 0;
    for cut in cuts {
        assert_eq!(
            decode_split(body, cut, cap),
            whole,
            "{name} (cap {cap}) split at {cut} differs"
        );
        tried += 1;
    }
    assert!(tried > 0, "{name}");
    assert_eq!(
        decode_body(WireScheme::OpenaiResponses, body, 1, cap),
        whole,
        "{name} (cap {cap}) in 1-byte chunks"
    );
}

#[test]
fn every_framing_fixture_decodes_the_same_at_every_split_point() {
    for path in framing_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == HUGE {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        same_at_every_cut(&name, &body, CAP, 1..body.len());
    }
}

#[test]
fn the_huge_event_decodes_the_same_at_every_split_point_outside_its_run() {
    let body = read(&format!("synthetic/framing/{HUGE}"));
    // Inside the 300 KB run of `x` every cut is alike: there, one cut in 1021 (and every cut
    // within 64 bytes of either end); everywhere else, every cut.
    let run = longest_run(&body);
    assert!(run.len() >= 300_000, "{run:?}");
    let inner = run.start + 64..run.end - 64;
    let cuts = || (1..body.len()).filter(|c| !inner.contains(c) || (c - inner.start) % 1021 == 0);
    // It passes under the default cap and fails under a small one: the same at every cut.
    same_at_every_cut(HUGE, &body, CAP, cuts());
    same_at_every_cut(HUGE, &body, 64 * 1024, cuts());
}

#[test]
fn huge_event_passes_under_the_cap_and_fails_over_it() {
    let body = read("synthetic/framing/huge-event-300k.sse");
    let f = facts(&decode_body(WireScheme::OpenaiResponses, &body, 1024, CAP));
    assert!(
        f.text.len() >= 300_000 && f.text.bytes().all(|b| b == b'x'),
        "{}",
        f.text.len()
    );
    assert!(
        matches!(&f.terminal, StreamEvent::Error(e) if e.class == ErrorClass::StreamClosedBeforeCompletion)
    );

    let capped = decode_body(WireScheme::OpenaiResponses, &body, 1024, 64 * 1024);
    let f = facts(&capped);
    assert!(f.text.is_empty());
    assert!(
        matches!(&f.terminal, StreamEvent::Error(e) if e.class == ErrorClass::MalformedStream && e.message.contains("65536")),
        "{:?}",
        f.terminal
    );
}

#[test]
fn multibyte_text_survives_every_split() {
    let body = read("synthetic/framing/utf8-multibyte.sse");
    let whole = decode_body(WireScheme::OpenaiResponses, &body, 0, CAP);
    for chunk in 1..9 {
        assert_eq!(
            decode_body(WireScheme::OpenaiResponses, &body, chunk, CAP),
            whole
        );
    }
    let f = facts(&whole);
    assert_eq!(f.text, "héllo 👋 世界 \u{2028} \\n");
    assert!(!f.unhandled.iter().any(|u| u == "sse.invalid_utf8"));
}

#[test]
fn malformed_json_chunk_is_a_malformed_stream_error() {
    let f = facts(&decode_body(
        WireScheme::OpenaiResponses,
        &read("synthetic/framing/malformed-json-chunk.sse"),
        0,
        CAP,
    ));
    assert!(
        matches!(&f.terminal, StreamEvent::Error(e) if e.class == ErrorClass::MalformedStream && e.message.contains("response.output_text.delta")),
        "{:?}",
        f.terminal
    );
}

#[test]
fn framer_follows_the_event_stream_rules() {
    let body = b"\xEF\xBB\xBF: comment\r\nretry: 1500\rid: 7\nevent:first\ndata:a\ndata: b\n\ndata:  two spaces\r\n\r\nid: bad\0id\nevent: x\ndata\n\ndata: last";
    let (frames, over) = frame_all(body, CAP);
    assert!(over.is_none());
    assert_eq!(frames.len(), 4, "{frames:#?}");
    assert_eq!(
        (
            frames[0].event.as_str(),
            frames[0].data.as_str(),
            frames[0].id.as_deref()
        ),
        ("first", "a\nb", Some("7"))
    );
    // Only one space after the colon is removed.
    assert_eq!(frames[1].data, " two spaces");
    assert_eq!(frames[1].event, "", "the event name resets after dispatch");
    // An id containing NUL is ignored; `data` without a colon is an empty data line.
    assert_eq!(
        (
            frames[2].event.as_str(),
            frames[2].data.as_str(),
            frames[2].id.as_deref()
        ),
        ("x", "", Some("7"))
    );
    assert!(frames[3].unterminated && frames[3].data == "last");
    assert!(!frames[0].unterminated);
    let mut framer = Framer::new(CAP);
    framer.push(body, |_| {}).unwrap();
    assert_eq!(framer.retry_ms(), Some(1500));
}

#[test]
fn framer_is_chunking_independent_for_cr_lf_boundaries() {
    let body = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n";
    let (expected, _) = frame_all(body, CAP);
    assert_eq!(
        expected.iter().map(|f| f.data.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    for cut in 1..body.len() {
        let mut framer = Framer::new(CAP);
        let mut got = Vec::new();
        framer
            .push(&body[..cut], |f| got.push(f.data.to_string()))
            .unwrap();
        framer
            .push(&body[cut..], |f| got.push(f.data.to_string()))
            .unwrap();
        framer.finish(|f| got.push(f.data.to_string())).unwrap();
        assert_eq!(got, ["one", "two", "three"], "split at {cut}");
    }
}

#[test]
fn invalid_utf8_is_replaced_and_flagged() {
    let body = b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"a\xFFb\"}\n\n";
    let events = decode_body(WireScheme::OpenaiResponses, body, 1, CAP);
    assert!(matches!(&events[0], StreamEvent::Unhandled(u) if u.event == "sse.invalid_utf8"));
    assert!(matches!(&events[1], StreamEvent::TextDelta(t) if t.text == "a\u{FFFD}b"));
}
