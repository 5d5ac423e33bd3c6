//! Integration tests of pod-provider through its public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;

use std::path::PathBuf;

use pod_provider::event::{ReasoningKind, Usage};
use pod_provider::{StreamEvent, WireScheme, decode_body};

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub const CAP: usize = 16 * 1024 * 1024;

/// The facts a consumer cares about, gathered from a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub text: String,
    pub reasoning: String,
    pub signatures: usize,
    /// (index, name, call id, full arguments) in start order.
    pub calls: Vec<(u32, String, String, String)>,
    pub usage: Option<Usage>,
    pub unhandled: Vec<String>,
    pub started: usize,
    pub terminal: StreamEvent,
}

pub fn facts(events: &[StreamEvent]) -> Facts {
    let mut f = Facts {
        text: String::new(),
        reasoning: String::new(),
        signatures: 0,
        calls: Vec::new(),
        usage: None,
        unhandled: Vec::new(),
        started: 0,
        terminal: events.last().cloned().expect("at least one event"),
    };
    for (i, e) in events.iter().enumerate() {
        let last = i + 1 == events.len();
        let terminal = matches!(
            e,
            StreamEvent::Completed(_) | StreamEvent::Incomplete(_) | StreamEvent::Error(_)
        );
        assert_eq!(
            terminal, last,
            "terminal event must be last and unique: {events:#?}"
        );
        match e {
            StreamEvent::Started(_) => f.started += 1,
            StreamEvent::TextDelta(d) if d.choice == 0 => f.text.push_str(&d.text),
            StreamEvent::ReasoningDelta(r) => {
                if r.kind != ReasoningKind::Opaque {
                    f.reasoning.push_str(&r.text);
                }
                if r.signature.is_some() {
                    f.signatures += 1;
                }
            }
            StreamEvent::ToolCallStart(s) => {
                f.calls
                    .push((s.index, s.name.clone(), s.call_id.clone(), String::new()))
            }
            StreamEvent::ToolCallDelta(d) => {
                let c = f
                    .calls
                    .iter_mut()
                    .rev()
                    .find(|c| c.0 == d.index)
                    .expect("delta after start");
                c.3.push_str(&d.arguments);
            }
            StreamEvent::ToolCallEnd(end) => {
                let c = f
                    .calls
                    .iter_mut()
                    .rev()
                    .find(|c| c.0 == end.index)
                    .expect("end after start");
                // The end carries the concatenated deltas (or `{}` when no input streamed).
                assert!(c.3 == end.arguments || c.3.is_empty(), "{c:?} vs {end:?}");
                c.3 = end.arguments.clone();
            }
            StreamEvent::Usage(u) => f.usage = Some(u.clone()),
            StreamEvent::Unhandled(u) => f.unhandled.push(u.event.clone()),
            _ => {}
        }
    }
    f
}

pub fn decode(scheme: WireScheme, rel: &str) -> Vec<StreamEvent> {
    decode_body(scheme, &read(rel), 0, CAP)
}
