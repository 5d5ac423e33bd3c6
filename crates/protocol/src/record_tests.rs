//! The trace facts added to the log's records are optional: old lines read, new ones round-trip,
//! and an absent fact is not written.

#![allow(clippy::unwrap_used)]

use super::*;

fn body(line: &str) -> LogBody {
    serde_json::from_str::<LogEntry>(line).unwrap().body
}

#[test]
fn lines_written_before_the_trace_facts_still_read() {
    let LogBody::RunStarted(run) = body(
        r#"{"seq":2,"ts":"t","kind":"run_started","run_id":"r1","trigger":{"type":"cli"},"input":"hi"}"#,
    ) else {
        panic!("not run_started");
    };
    assert_eq!(run.traceparent, None);
    let LogBody::ProviderRequestStarted(request) = body(
        r#"{"seq":3,"ts":"t","kind":"provider_request_started","run_id":"r1","turn":1,"attempt":2,"scheme":"openai-chat","model":"m"}"#,
    ) else {
        panic!("not provider_request_started");
    };
    assert_eq!(request.retry_of, None);
    let LogBody::ProviderRequestFinished(finished) = body(
        r#"{"seq":4,"ts":"t","kind":"provider_request_finished","run_id":"r1","turn":1,"attempt":2,"end":"completed"}"#,
    ) else {
        panic!("not provider_request_finished");
    };
    assert_eq!(
        (
            finished.time_to_first_chunk_ms,
            finished.response_id,
            finished.response_model
        ),
        (None, None, None)
    );
}

#[test]
fn trace_facts_round_trip_and_absent_ones_are_not_written() {
    let finished = ProviderRequestFinished {
        run_id: "r1".into(),
        turn: 1,
        attempt: 2,
        end: "completed".into(),
        stop_reason: None,
        usage: None,
        unhandled: BTreeMap::new(),
        time_to_first_chunk_ms: Some(420),
        response_id: Some("resp_1".into()),
        response_model: Some("gpt-test-2026-01-01".into()),
    };
    let json = serde_json::to_value(&finished).unwrap();
    assert_eq!(json["time_to_first_chunk_ms"], 420);
    assert_eq!(json["response_id"], "resp_1");
    assert_eq!(json["response_model"], "gpt-test-2026-01-01");
    assert_eq!(
        serde_json::from_value::<ProviderRequestFinished>(json).unwrap(),
        finished
    );

    let request = ProviderRequestStarted {
        run_id: "r1".into(),
        turn: 1,
        attempt: 2,
        scheme: "openai-chat".into(),
        model: "m".into(),
        retry_of: Some(RetryCause::of(
            &ProviderError::new(ErrorClass::RateLimited, "slow down").with_code("rate_limit"),
            1500,
        )),
    };
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(
        json["retry_of"],
        serde_json::json!({"class": "rate_limited", "code": "rate_limit", "delay_ms": 1500})
    );

    let bare = RunStarted {
        run_id: "r1".into(),
        trigger: RunTrigger::Cli,
        request_id: None,
        input: "hi".into(),
        traceparent: None,
    };
    let text = serde_json::to_string(&bare).unwrap();
    assert!(!text.contains("traceparent"), "{text}");
    let request = ProviderRequestStarted {
        retry_of: None,
        ..request
    };
    assert!(
        !serde_json::to_string(&request)
            .unwrap()
            .contains("retry_of")
    );
}
