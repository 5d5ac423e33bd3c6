//! The `&'static str` names (strum) agree with the JSON names (serde) for every variant.

#![allow(clippy::unwrap_used)]

use serde::Serialize;
use strum::VariantArray;

use crate::record::{
    Decision, DecisionSource, LifecycleKind, PodState, SideEffectClass, ToolExecutionPhase,
    ToolOutcome,
};
use crate::{ErrorClass, WireScheme};

/// The JSON string a unit variant serializes to.
fn json_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// The value of `tag` in the JSON object a tagged variant serializes to.
fn json_tag(value: &impl Serialize, tag: &str) -> String {
    serde_json::to_value(value).unwrap()[tag]
        .as_str()
        .unwrap()
        .to_owned()
}

fn unit_names_agree<T: VariantArray + Serialize>(name: impl Fn(&T) -> &'static str) {
    assert!(!T::VARIANTS.is_empty());
    for variant in T::VARIANTS {
        assert_eq!(name(variant), json_name(variant));
    }
}

#[test]
fn unit_enums_name_every_variant_as_json_does() {
    unit_names_agree::<ErrorClass>(|v| v.as_str());
    unit_names_agree::<WireScheme>(|v| v.as_str());
    unit_names_agree::<SideEffectClass>(|v| v.as_str());
    unit_names_agree::<ToolOutcome>(|v| v.as_str());
    unit_names_agree::<ToolExecutionPhase>(|v| v.as_str());
    unit_names_agree::<LifecycleKind>(|v| v.as_str());
    unit_names_agree::<PodState>(|v| v.as_str());
    unit_names_agree::<Decision>(|v| v.as_str());
    unit_names_agree::<DecisionSource>(|v| v.as_str());
}

#[test]
fn scheme_names_parse_back() {
    for scheme in WireScheme::ALL {
        assert_eq!(WireScheme::parse(scheme.as_str()), Some(*scheme));
    }
    assert_eq!(WireScheme::parse("openai_chat"), None);
}

#[test]
fn tagged_enums_name_their_variants_as_their_json_tag() {
    use crate::event::*;
    use crate::record::*;
    use crate::run_events::RunEvent;
    use crate::trace::{Marker, TraceBody};

    let events = [
        StreamEvent::Started(Started::default()),
        StreamEvent::TextDelta(TextDelta {
            choice: 0,
            text: "t".into(),
        }),
        StreamEvent::Usage(Usage::default()),
        StreamEvent::Completed(Completed {
            choice: 0,
            stop_reason: StopReason::EndTurn,
        }),
        StreamEvent::Error(crate::ProviderError::new(ErrorClass::Auth, "no")),
        StreamEvent::Unhandled(Unhandled {
            event: "x".into(),
            preview: String::new(),
            original_len: 0,
        }),
    ];
    for event in &events {
        assert_eq!(event.kind(), json_tag(event, "type"));
    }
    for reason in [
        StopReason::EndTurn,
        StopReason::ToolCalls,
        StopReason::MaxTokens,
        StopReason::Refusal,
        StopReason::ContentFilter,
        StopReason::Incomplete { raw: "r".into() },
        StopReason::Other { raw: "r".into() },
    ] {
        assert_eq!(reason.name(), json_tag(&reason, "reason"));
    }
    let bodies = [
        LogBody::SegmentClosed(SegmentClosed {
            reason: "completed".into(),
        }),
        LogBody::RunInterrupted(RunInterrupted {
            run_id: "r".into(),
            reason: "stopped".into(),
            action: None,
            phase: RunPhase::default(),
        }),
        LogBody::ChildExited(ChildExited {
            child_pod_id: "c".into(),
            exit_code: Some(0),
            signal: None,
            expected: true,
        }),
    ];
    for body in &bodies {
        assert_eq!(body.kind(), json_tag(body, "kind"));
    }
    for origin in [
        Origin::Signal {
            signal: "SIGTERM".into(),
        },
        Origin::Watchdog { idle_ms: 1 },
        Origin::Unknown { missing: vec![] },
        Origin::ParentPod {
            parent_pod_id: "p".into(),
            tool_call_id: "c".into(),
        },
    ] {
        assert_eq!(origin.kind(), json_tag(&origin, "type"));
    }
    for trigger in [
        RunTrigger::Cli,
        RunTrigger::ControlRequest { client: "c".into() },
    ] {
        assert_eq!(trigger.kind(), json_tag(&trigger, "type"));
    }
    let marker = Marker::StreamOpenOk { http_status: 200 };
    assert_eq!(marker.name(), json_tag(&marker, "marker"));
    let other = Marker::Other {
        name: "custom".into(),
        detail: String::new(),
    };
    assert_eq!(other.name(), "custom");
    let body = TraceBody::Shed { count: 1 };
    assert_eq!(body.kind(), json_tag(&body, "kind"));
    let run_event = RunEvent::RunStarted { run_id: "r".into() };
    assert_eq!(run_event.kind(), json_tag(&run_event, "kind"));
}
