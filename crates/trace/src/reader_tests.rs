use super::*;
use crate::entry::{RawResponseHead, RawSseFrame};
use pod_provider::{ErrorClass, ProviderError, WireScheme};

fn entry(seq: u64, run: &str, attempt: u32, body: TraceBody) -> TraceEntry {
    TraceEntry {
        seq,
        ts: String::new(),
        run_id: Some(run.to_owned()),
        turn: Some(1),
        attempt: Some(attempt),
        body,
    }
}

fn head(status: u16, body: Option<&str>) -> TraceBody {
    TraceBody::RawResponse(RawResponseHead::bounded(
        WireScheme::Gemini,
        status,
        vec![("retry-after".into(), "2".into())],
        body,
        1024,
    ))
}

fn frame(event: Option<&str>, data: &str, max: usize) -> TraceBody {
    TraceBody::RawSse(RawSseFrame::bounded(event.map(str::to_owned), data, max))
}

#[test]
fn attempts_become_responses_in_order_with_breaks_and_stalls() {
    let broke = ProviderError::new(
        ErrorClass::StreamClosedBeforeCompletion,
        format!("{}: unexpected EOF", pod_provider::BROKE_OFF),
    );
    let entries = vec![
        entry(1, "old-run", 1, head(200, None)),
        entry(2, "run-b", 1, head(429, Some("{\"error\":{}}"))),
        entry(3, "run-b", 2, head(200, None)),
        entry(
            4,
            "run-b",
            2,
            frame(Some("message"), "{\"a\":1}\n{\"b\":2}", 1024),
        ),
        entry(5, "run-b", 2, frame(None, "{\"c\":3}", 1024)),
        entry(6, "run-b", 2, TraceBody::Lifecycle(Marker::IdleTimeout)),
        entry(7, "run-b", 3, head(200, None)),
        entry(8, "run-b", 3, frame(None, "{}", 1024)),
        entry(
            9,
            "run-b",
            3,
            TraceBody::Stream {
                event: StreamEvent::Error(broke),
            },
        ),
        entry(
            10,
            "run-b",
            4,
            TraceBody::Lifecycle(Marker::StreamOpenError {
                http_status: None,
                class: ErrorClass::Transport,
            }),
        ),
    ];
    let built = cassette_from_trace(&entries, None).unwrap();
    assert_eq!(built.run_id, "run-b", "the last run by default");
    let c = &built.cassette;
    assert_eq!((c.version, c.scheme), (Some(1), WireScheme::Gemini));
    assert_eq!(c.responses.len(), 3);
    assert_eq!(c.responses[0].status, 429);
    assert_eq!(c.responses[0].body.as_deref(), Some("{\"error\":{}}"));
    assert_eq!(
        c.responses[0]
            .headers
            .get("retry-after")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        c.responses[1].body.as_deref(),
        Some("event: message\ndata: {\"a\":1}\ndata: {\"b\":2}\n\ndata: {\"c\":3}\n\n")
    );
    assert_eq!(
        c.responses[1].pause_after_events.map(|p| p.events),
        Some(2),
        "stalls where the idle timeout hit"
    );
    assert_eq!(c.responses[2].disconnect_after_events, Some(1));
    assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
    assert!(built.notes[0].contains("transport"), "{:?}", built.notes);

    let old = cassette_from_trace(&entries, Some("old")).unwrap();
    assert_eq!(
        (old.run_id.as_str(), old.cassette.responses.len()),
        ("old-run", 1)
    );
    assert_eq!(
        cassette_from_trace(&entries, Some("nope")),
        Err(CassetteGap::NoRun {
            wanted: Some("nope".into())
        })
    );
}

#[test]
fn what_a_cassette_cannot_be_built_from_is_named() {
    let cut = vec![
        entry(1, "r", 1, head(200, None)),
        entry(2, "r", 1, frame(None, "0123456789", 4)),
    ];
    assert_eq!(
        cassette_from_trace(&cut, None),
        Err(CassetteGap::Truncated {
            seq: 2,
            original_len: 10
        })
    );
    let shed = vec![
        entry(1, "r", 1, head(200, None)),
        entry(2, "r", 1, TraceBody::Shed { count: 5 }),
    ];
    assert_eq!(
        cassette_from_trace(&shed, None),
        Err(CassetteGap::Shed { seq: 2, count: 5 })
    );
    let no_raw = vec![entry(
        1,
        "r",
        1,
        TraceBody::Lifecycle(Marker::StreamOpenOk { http_status: 200 }),
    )];
    let gap = cassette_from_trace(&no_raw, None).unwrap_err();
    assert!(gap.to_string().contains("without raw capture"), "{gap}");
    let frames_only = vec![entry(1, "r", 1, frame(None, "{}", 64))];
    let gap = cassette_from_trace(&frames_only, None).unwrap_err();
    assert!(gap.to_string().contains("older pods"), "{gap}");
    assert_eq!(
        cassette_from_trace(&[], None),
        Err(CassetteGap::NoRun { wanted: None })
    );
}
