use pod_protocol::event::{StopReason, TextDelta, Usage};

use super::*;
use crate::entry::{Marker, TraceEntry};

fn serde_str(text: &str) -> Vec<u8> {
    serde_json::to_vec(text).unwrap_or_default()
}

fn ours_str(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    push_json_str(&mut out, text);
    out
}

#[test]
fn strings_are_escaped_exactly_like_serde_json() {
    let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
    let samples = [
        String::new(),
        "plain".into(),
        "exactly8".into(),
        "a \"quoted\" \\ path\\".into(),
        "{\"type\":\"response.output_text.delta\",\"delta\":\"fox \"}".into(),
        "tab\there\nnewline\r\u{8}\u{c}\u{1}\u{1f}\u{7f}".into(),
        "ünïcödé ✓ 🦀 \"é\"".into(),
        every_ascii.clone(),
        every_ascii.repeat(3),
    ];
    for sample in &samples {
        assert_eq!(ours_str(sample), serde_str(sample), "{sample:?}");
        // Every alignment of the eight-byte scan.
        for start in 0..sample.len().min(9) {
            if let Some(tail) = sample.get(start..) {
                assert_eq!(ours_str(tail), serde_str(tail), "{tail:?}");
            }
        }
    }
    for byte in 0u8..=0x7f {
        let alone = char::from(byte).to_string();
        let padded = format!("abcdefghij{alone}klmnopq");
        assert_eq!(ours_str(&alone), serde_str(&alone), "{byte:#x}");
        assert_eq!(ours_str(&padded), serde_str(&padded), "{byte:#x}");
    }
}

fn entries() -> Vec<PendingEntry> {
    let run = "0199a2b3-run \"id\" \\ é";
    let text = |text: &str, choice: u32| TraceBody::Stream {
        event: StreamEvent::TextDelta(TextDelta {
            choice,
            text: text.into(),
        }),
    };
    vec![
        PendingEntry::now(text("fox ", 0)).run(run).request(1, 1),
        PendingEntry::now(text("a \"b\"\n\u{1}", 3))
            .run(run)
            .request(12, 4),
        PendingEntry::now(text("", 0)),
        PendingEntry::now(TraceBody::RawSse(RawSseFrame::bounded(
            Some("response.output_text.delta".into()),
            "{\"type\":\"x\",\"delta\":\"fox \"}",
            1000,
        )))
        .run(run)
        .request(1, 2),
        PendingEntry::now(TraceBody::RawSse(RawSseFrame::bounded(
            None,
            "ünïcödé data cut here",
            9,
        ))),
        PendingEntry::now(TraceBody::Lifecycle(Marker::RunStarted)).run(run),
        PendingEntry::now(TraceBody::Lifecycle(Marker::StreamEnd {
            outcome: "completed".into(),
        }))
        .run(run)
        .request(2, 1),
        PendingEntry::now(TraceBody::Shed { count: 4109 }),
        PendingEntry::now(TraceBody::Stream {
            event: StreamEvent::Usage(Usage {
                input_tokens: Some(12),
                output_tokens: Some(200_000),
                ..Usage::default()
            }),
        }),
        PendingEntry::now(TraceBody::Stream {
            event: StreamEvent::Completed(pod_protocol::event::Completed {
                choice: 0,
                stop_reason: StopReason::EndTurn,
            }),
        }),
    ]
}

#[test]
fn lines_are_what_serde_writes_for_the_entry() {
    let ts = "2026-01-02T03:04:05.678Z";
    for (i, entry) in entries().into_iter().enumerate() {
        let seq = 7 + i as u64 * 1_000_003;
        let mut ours = Vec::new();
        push_line(&mut ours, seq, ts, &entry).unwrap_or_default();
        let mut expected =
            serde_json::to_vec(&entry.clone().into_entry(seq, ts.into())).unwrap_or_default();
        expected.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&expected)
        );
        let back: TraceEntry = serde_json::from_slice(&ours).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, entry.into_entry(seq, ts.into()));
    }
}

#[test]
fn decimals_are_written_like_display() {
    for n in [0, 7, 10, 99, 100, 1_234_567, u64::MAX] {
        let mut out = b"x".to_vec();
        push_decimal(&mut out, n);
        assert_eq!(out, format!("x{n}").into_bytes());
    }
}

#[test]
fn the_line_counter_counts_like_display() {
    let mut counter = DecimalCounter::one();
    for n in 1..=120_000u64 {
        assert_eq!(counter.as_bytes(), n.to_string().as_bytes());
        counter.increment();
    }
}
