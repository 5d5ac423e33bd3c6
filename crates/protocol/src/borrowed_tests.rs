//! Every borrowed shape reads a record this build writes with the same facts as its owned type.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::error::ErrorClass;
use crate::record::*;

/// The line a session log holds for `body` at `seq`.
fn line(seq: u64, body: LogBody) -> String {
    serde_json::to_string(&LogEntry {
        seq,
        ts: "2026-01-01T00:00:00.000Z".into(),
        body,
    })
    .unwrap()
}

#[test]
fn run_records_read_the_same_borrowed() {
    let started = RunStarted {
        run_id: "r\"1".into(),
        trigger: RunTrigger::ControlRequest {
            client: "cli".into(),
        },
        request_id: Some("q".into()),
        input: "say \"hi\"\n".into(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    };
    let text = line(2, LogBody::RunStarted(started.clone()));
    let lite: RunStartedLite = serde_json::from_str(&text).unwrap();
    assert_eq!(lite.seq, 2);
    assert_eq!(lite.ts, "2026-01-01T00:00:00.000Z");
    assert_eq!(lite.run_id, started.run_id);
    assert_eq!(lite.trigger().unwrap(), started.trigger);
    assert_eq!(lite.request_id, started.request_id);
    assert_eq!(lite.input, started.input, "escapes are undone");

    let completed = RunCompleted {
        run_id: "r1".into(),
        turns: 3,
        text: "done".into(),
        reason: "max_tokens".into(),
        stop_reason: Some(StopReason::MaxTokens),
    };
    let text = line(9, LogBody::RunCompleted(completed.clone()));
    let lite: RunCompletedLite = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            lite.seq,
            &*lite.run_id,
            lite.turns,
            &*lite.text,
            &*lite.reason
        ),
        (9, "r1", 3, "done", "max_tokens")
    );
    assert_eq!(lite.stop_reason().unwrap(), completed.stop_reason);
}

#[test]
fn request_and_message_records_read_the_same_borrowed() {
    let request = ProviderRequestStarted {
        run_id: "r1".into(),
        turn: 1,
        attempt: 2,
        scheme: "openai-chat".into(),
        model: "m".into(),
        retry_of: Some(RetryCause {
            class: ErrorClass::RateLimited,
            code: Some("rate_limit_exceeded".into()),
            http_status: Some(429),
            retry_after_ms: Some(1500),
            delay_ms: 1500,
        }),
    };
    let text = line(3, LogBody::ProviderRequestStarted(request));
    let lite: RequestLite = serde_json::from_str(&text).unwrap();
    assert_eq!((lite.seq, &*lite.run_id, &*lite.model), (3, "r1", "m"));
    assert_eq!(lite.attempt, Some(2));

    let message = AssistantMessage {
        run_id: "r1".into(),
        turn: 1,
        text: "a long answer".into(),
        reasoning: String::new(),
        tool_calls: Vec::new(),
    };
    let text = line(4, LogBody::AssistantMessage(message));
    let lite: AssistantLite = serde_json::from_str(&text).unwrap();
    assert_eq!((lite.seq, &*lite.run_id), (4, "r1"));
    let seq: SeqOnly = serde_json::from_str(&line(
        5,
        LogBody::SegmentClosed(SegmentClosed {
            reason: "completed".into(),
        }),
    ))
    .unwrap();
    assert_eq!(seq.seq, 5);
}

#[test]
fn tool_records_read_the_same_borrowed() {
    let input = json!({"path": "a b.txt", "n": [1, 2]});
    let started = ToolCallStarted {
        run_id: "r1".into(),
        call_id: "c1".into(),
        tool: "read_file".into(),
        side_effect: SideEffectClass::LocalWrite,
        input: input.clone(),
    };
    let text = line(6, LogBody::ToolCallStarted(started));
    let lite: ToolStartedLite = serde_json::from_str(&text).unwrap();
    assert_eq!((lite.seq, &*lite.run_id), (6, "r1"));
    assert_eq!((&*lite.call_id, &*lite.tool), ("c1", "read_file"));
    assert_eq!(lite.side_effect, SideEffectClass::LocalWrite);
    let raw: serde_json::Value = serde_json::from_str(lite.input.get()).unwrap();
    assert_eq!(raw, input, "the input's JSON text is the input");

    for outcome in [ToolOutcome::Ok, ToolOutcome::Error, ToolOutcome::Rejected] {
        let finished = ToolCallFinished {
            run_id: "r1".into(),
            call_id: "c1".into(),
            tool: "read_file".into(),
            side_effect: SideEffectClass::ReadOnly,
            outcome,
            output: "x".repeat(100),
        };
        let text = line(7, LogBody::ToolCallFinished(finished));
        let lite: ToolFinishedLite = serde_json::from_str(&text).unwrap();
        assert_eq!((lite.seq, &*lite.run_id, &*lite.call_id), (7, "r1", "c1"));
        assert_eq!(lite.outcome.as_deref(), Some(outcome.as_str()));
    }
}

/// What the owned types read from `line`: the run record's `pick`, or `None` when they reject it.
fn owned_reading<T>(line: &str, pick: impl Fn(LogBody) -> Option<T>) -> Option<T> {
    serde_json::from_str::<LogEntry>(line)
        .ok()
        .and_then(|entry| pick(entry.body))
}

#[test]
fn a_trigger_told_by_its_text_reads_as_the_owned_type_reads_it() {
    let triggers = [
        r#"{"type":"cli"}"#,
        r#"{ "type": "cli" }"#,
        r#"{"type":"cli","client":"x"}"#,
        r#"{"type":"c\u006ci"}"#,
        r#"{"type":"control_request","client":"c"}"#,
        r#"{"type":"control_request"}"#,
        r#"{"type":"bogus"}"#,
        r#""cli""#,
    ];
    for trigger in triggers {
        let line = format!(
            r#"{{"seq":1,"ts":"2026-01-01T00:00:00.000Z","kind":"run_started","run_id":"r","trigger":{trigger},"input":"i"}}"#
        );
        let lite = serde_json::from_str::<RunStartedLite>(&line)
            .ok()
            .and_then(|m| m.trigger().ok());
        let owned = owned_reading(&line, |body| match body {
            LogBody::RunStarted(started) => Some(started.trigger),
            _ => None,
        });
        assert_eq!(lite, owned, "{trigger}");
    }
}

#[test]
fn a_stop_reason_told_by_its_text_reads_as_the_owned_type_reads_it() {
    let reasons = [
        r#"{"reason":"end_turn"}"#,
        r#"{"reason":"tool_calls"}"#,
        r#"{ "reason": "end_turn" }"#,
        r#"{"reason":"end_turn","raw":"x"}"#,
        r#"{"reason":"max_tokens"}"#,
        r#"{"reason":"other","raw":"why"}"#,
        r#"{"reason":"other"}"#,
        r#"{"reason":"bogus"}"#,
        r#"null"#,
        r#""end_turn""#,
    ];
    for reason in reasons {
        let line = format!(
            r#"{{"seq":1,"ts":"2026-01-01T00:00:00.000Z","kind":"run_completed","run_id":"r","turns":1,"text":"t","reason":"end_turn","stop_reason":{reason}}}"#
        );
        let lite = serde_json::from_str::<RunCompletedLite>(&line)
            .ok()
            .and_then(|m| m.stop_reason().ok());
        let owned = owned_reading(&line, |body| match body {
            LogBody::RunCompleted(completed) => Some(completed.stop_reason),
            _ => None,
        });
        assert_eq!(lite, owned, "{reason}");
    }
}
