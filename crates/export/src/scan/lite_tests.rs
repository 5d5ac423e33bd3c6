//! The scan reads the frequent kinds into borrowed shapes (`*Lite`) instead of the
//! `pod_protocol::record` types: these tests hold the two to the same reading, over a record of
//! every kind as this build writes it and every line of the older-format fixtures.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use pod_protocol::record::{
    CausedBy, ChildSpawned, Decision, DecisionSource, LifecycleAction, LifecycleKind, LogBody,
    LogEntry, Origin, ProviderRequestFinished, ProviderRequestStarted, RequestedToolCall,
    RunCompleted, RunErrored, RunInterrupted, RunPhase, RunStarted, SegmentClosed, StopReason,
    TelemetryExportFailed, ToolCallFinished, ToolCallStarted, ToolDecision, ToolExecutionPhase,
    ToolOutcome, Usage,
};
use pod_protocol::{ErrorClass, ProviderError};

use super::lines::top_level_str;
use super::terminal::{TerminalLite, read_error, read_phase};
use super::*;

const TS: &str = "2026-11-23T01:02:03.456Z";

fn action() -> LifecycleAction {
    LifecycleAction {
        action_id: "a1".into(),
        kind: LifecycleKind::StopTree,
        started_at: TS.into(),
        started_mono_ms: 5,
        affects: vec!["p".into()],
        origin: Origin::Cli {
            command: "pods stop".into(),
            request_id: "q".into(),
        },
        reason: Some("because".into()),
        caused_by: Some(CausedBy {
            pod_id: "parent".into(),
            action_id: "a0".into(),
            kind: LifecycleKind::Stop,
        }),
    }
}

fn phase() -> RunPhase {
    RunPhase {
        provider_progress_seen: true,
        visible_output_seen: false,
        tool_execution: ToolExecutionPhase::Started,
        side_effects_started: vec![SideEffectClass::ReadOnly, SideEffectClass::Process],
    }
}

/// A record of every kind as this build writes it, optional fields set.
fn current_records() -> Vec<String> {
    let run_id = || "r1".to_owned();
    let bodies = [
        LogBody::SegmentStarted(SegmentStarted {
            pod_id: "p".into(),
            segment_id: "s".into(),
            profile: "coder".into(),
            manifest_digest: "sha256:00".into(),
            pid: 7,
            format_version: pod_protocol::record::LOG_FORMAT_VERSION,
            writer: "pods 9".into(),
        }),
        LogBody::RunStarted(RunStarted {
            run_id: run_id(),
            trigger: RunTrigger::ParentPod {
                parent_pod_id: "parent".into(),
                tool_call_id: "t1".into(),
            },
            request_id: Some("q1".into()),
            // Escapes: the borrowed string cannot borrow and is unescaped all the same.
            input: "say \"hi\"\n".into(),
            traceparent: None,
        }),
        LogBody::ProviderRequestStarted(ProviderRequestStarted {
            run_id: run_id(),
            turn: 1,
            attempt: 2,
            scheme: "chat".into(),
            model: "m1".into(),
            retry_of: None,
        }),
        LogBody::ProviderRequestFinished(ProviderRequestFinished {
            run_id: run_id(),
            turn: 1,
            attempt: 2,
            end: "completed".into(),
            stop_reason: Some(StopReason::ToolCalls),
            usage: Some(Usage {
                input_tokens: Some(10),
                output_tokens: Some(5),
                cached_input_tokens: None,
                reasoning_tokens: Some(1),
            }),
            unhandled: [("ping".to_owned(), 2)].into_iter().collect(),
            time_to_first_chunk_ms: None,
            response_id: None,
            response_model: None,
        }),
        LogBody::AssistantMessage(pod_protocol::record::AssistantMessage {
            run_id: run_id(),
            turn: 1,
            text: "calling \"ls\"".into(),
            reasoning: "because".into(),
            tool_calls: vec![RequestedToolCall {
                call_id: "c1".into(),
                tool: "shell".into(),
                arguments: r#"{"cmd":"ls"}"#.into(),
            }],
        }),
        LogBody::ToolDecision(ToolDecision {
            run_id: run_id(),
            call_id: "c1".into(),
            tool: "shell".into(),
            side_effect: SideEffectClass::Process,
            decision: Decision::Allowed,
            source: DecisionSource::User,
            detail: "allowed once at the terminal".into(),
        }),
        LogBody::ToolCallStarted(ToolCallStarted {
            run_id: run_id(),
            call_id: "c1".into(),
            tool: "shell".into(),
            side_effect: SideEffectClass::Process,
            input: json!({ "cmd": "ls", "env": { "kind": "nested" } }),
        }),
        LogBody::ToolCallFinished(ToolCallFinished {
            run_id: run_id(),
            call_id: "c1".into(),
            tool: "shell".into(),
            side_effect: SideEffectClass::Process,
            outcome: ToolOutcome::Error,
            output: "no such file".into(),
        }),
        LogBody::LifecycleAction(LifecycleActionRecorded {
            action: action(),
            active_run_id: Some(run_id()),
        }),
        LogBody::ChildSpawned(ChildSpawned {
            run_id: run_id(),
            call_id: "c2".into(),
            child_pod_id: "child".into(),
            profile: "coder".into(),
            pid: 8,
        }),
        LogBody::ChildExited(ChildExited {
            child_pod_id: "child".into(),
            exit_code: Some(0),
            signal: None,
            expected: true,
        }),
        LogBody::RunCompleted(RunCompleted {
            run_id: run_id(),
            turns: 2,
            text: "done".into(),
            reason: "incomplete: pause".into(),
            stop_reason: Some(StopReason::Incomplete {
                raw: "pause".into(),
            }),
        }),
        LogBody::RunErrored(RunErrored {
            run_id: run_id(),
            error: ProviderError {
                class: ErrorClass::RateLimited,
                code: Some("slow_down".into()),
                http_status: Some(429),
                provider_request_id: Some("req-1".into()),
                retry_after_ms: Some(100),
                retryable: true,
                message: "slow down".into(),
            },
            phase: phase(),
        }),
        LogBody::RunInterrupted(RunInterrupted {
            run_id: run_id(),
            reason: "stopped".into(),
            action: Some(action()),
            phase: phase(),
        }),
        LogBody::TelemetryExportFailed(TelemetryExportFailed {
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            spans_failed: 3,
            entries_dropped: 0,
            error: "connection refused".into(),
        }),
        LogBody::SegmentClosed(SegmentClosed {
            reason: "stopped".into(),
        }),
    ];
    let records: Vec<String> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let entry = LogEntry {
                seq: i as u64 + 1,
                ts: TS.into(),
                body,
            };
            serde_json::to_string(&entry).unwrap()
        })
        .collect();
    let kinds: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| top_level_str(r.as_bytes(), "kind"))
        .collect();
    assert_eq!(
        kinds,
        KNOWN_KINDS.iter().copied().collect(),
        "a record of every kind"
    );
    records
}

/// Every line of every session log under `tests/fixtures` (older formats; some lines are
/// damaged or lack fields on purpose).
fn fixture_lines() -> Vec<String> {
    fn walk(dir: &Path, lines: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, lines);
            } else if name.ends_with(".jsonl") && !name.ends_with(".trace.jsonl") {
                let text = std::fs::read_to_string(&path).unwrap();
                lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
            }
        }
    }
    let mut lines = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut lines,
    );
    assert!(lines.len() > 20, "the fixture logs are there");
    lines
}

/// What the scan's shape of `line` reads, as JSON for comparing; `None` when it rejects the
/// line. Kinds the scan reads with the record types themselves have no shape here.
fn lite_reading(kind: &str, line: &str) -> Option<Option<Value>> {
    let reading = match kind {
        "run_started" => serde_json::from_str::<RunStartedLite>(line)
            .ok()
            .and_then(|m| {
                let trigger = m.trigger().ok()?;
                Some(json!({
                    "seq": m.seq, "ts": m.ts, "run_id": m.run_id, "trigger": trigger,
                    "request_id": m.request_id, "input": m.input,
                }))
            }),
        "run_completed" => serde_json::from_str::<RunCompletedLite>(line)
            .ok()
            .and_then(|m| {
                let stop_reason = m.stop_reason().ok()?;
                Some(json!({
                    "seq": m.seq, "ts": m.ts, "run_id": m.run_id, "turns": m.turns,
                    "text": m.text, "reason": m.reason, "stop_reason": stop_reason,
                }))
            }),
        "assistant_message" => serde_json::from_str::<AssistantLite>(line)
            .ok()
            .map(|m| json!({ "seq": m.seq, "run_id": m.run_id })),
        "provider_request_started" => serde_json::from_str::<RequestLite>(line).ok().map(|m| {
            json!({ "seq": m.seq, "run_id": m.run_id, "model": m.model, "attempt": m.attempt })
        }),
        "tool_call_started" => serde_json::from_str::<ToolStartedLite>(line).ok().map(|m| {
            let input: Value = serde_json::from_str(m.input.get()).unwrap();
            json!({
                "seq": m.seq, "run_id": m.run_id, "call_id": m.call_id, "tool": m.tool,
                "side_effect": m.side_effect, "input": input,
            })
        }),
        "tool_call_finished" => serde_json::from_str::<ToolFinishedLite>(line).ok().map(|m| {
            json!({ "seq": m.seq, "run_id": m.run_id, "call_id": m.call_id, "outcome": m.outcome })
        }),
        _ => return None,
    };
    Some(reading)
}

/// The same facts from the record type's reading of the line.
fn owned_reading(entry: &LogEntry) -> Value {
    let record = serde_json::to_value(entry).unwrap();
    let pick = |keys: &[&str]| -> Value {
        keys.iter()
            .map(|k| {
                (
                    (*k).to_owned(),
                    record.get(*k).cloned().unwrap_or(Value::Null),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    match record["kind"].as_str().unwrap() {
        "run_started" => pick(&["seq", "ts", "run_id", "trigger", "request_id", "input"]),
        "run_completed" => pick(&[
            "seq",
            "ts",
            "run_id",
            "turns",
            "text",
            "reason",
            "stop_reason",
        ]),
        "assistant_message" => pick(&["seq", "run_id"]),
        "provider_request_started" => pick(&["seq", "run_id", "model", "attempt"]),
        "tool_call_started" => pick(&["seq", "run_id", "call_id", "tool", "side_effect", "input"]),
        "tool_call_finished" => pick(&["seq", "run_id", "call_id", "outcome"]),
        other => panic!("no shape for {other}"),
    }
}

/// A line the record types read is read the same by the scan: its kind, and the facts of its
/// borrowed shape or (for terminal entries) of its lenient reading, with nothing reported
/// missing. Returns the kind and whether each accepts the line, where the scan has a shape.
fn agree(line: &str) -> Option<(String, bool, bool)> {
    let owned = serde_json::from_str::<LogEntry>(line);
    let kind = find_kind(line.as_bytes());
    if let Ok(entry) = &owned {
        let written = serde_json::to_value(entry).unwrap()["kind"].clone();
        assert_eq!(kind.as_deref(), written.as_str(), "{line}");
        assert_eq!(json!(entry.body.kind()), written, "{line}");
    }
    let kind = kind?;
    if let (Ok(entry), "run_errored" | "run_interrupted") = (&owned, &*kind) {
        terminal_agrees(entry, line);
    }
    let lite = lite_reading(&kind, line)?;
    if let Ok(entry) = &owned {
        assert_eq!(lite.as_ref(), Some(&owned_reading(entry)), "{line}");
    }
    Some((kind.into_owned(), lite.is_some(), owned.is_ok()))
}

/// The lenient reading of a terminal entry the record types read: the same phase, error and
/// action, none of it reported missing.
fn terminal_agrees(entry: &LogEntry, line: &str) {
    let lite: TerminalLite = serde_json::from_str(line).unwrap();
    let mut missing = Vec::new();
    let phase = read_phase(lite.phase.as_ref(), &mut missing);
    let (recorded, error, action) = match &entry.body {
        LogBody::RunErrored(e) => (&e.phase, Some(&e.error), None),
        LogBody::RunInterrupted(i) => (&i.phase, None, i.action.as_ref()),
        other => panic!("not terminal: {other:?}"),
    };
    assert_eq!(
        phase.provider_progress_seen,
        Some(recorded.provider_progress_seen)
    );
    assert_eq!(
        phase.visible_output_seen,
        Some(recorded.visible_output_seen)
    );
    assert_eq!(
        phase.tool_execution.map(Value::from),
        Some(serde_json::to_value(recorded.tool_execution).unwrap())
    );
    assert_eq!(
        phase.side_effects_started.map(Value::from),
        Some(serde_json::to_value(&recorded.side_effects_started).unwrap())
    );
    if let Some(error) = error {
        let Some(Value::Object(found)) = &lite.error else {
            panic!("no error object: {line}");
        };
        let read = read_error(found, &mut missing);
        assert_eq!(
            read.class.map(Value::from),
            Some(serde_json::to_value(error.class).unwrap())
        );
        assert_eq!(read.code, error.code);
        assert_eq!(read.http_status, error.http_status);
        assert_eq!(read.provider_request_id, error.provider_request_id);
        assert_eq!(read.retryable, Some(error.retryable));
        assert_eq!(read.message.as_deref(), Some(error.message.as_str()));
    } else {
        let read = lite
            .action
            .map(|a| serde_json::from_value::<LifecycleAction>(a).unwrap());
        assert_eq!(read.as_ref(), action);
    }
    assert!(missing.is_empty(), "{missing:?} missing from {line}");
}

#[test]
fn the_shapes_read_every_current_record_as_the_record_types_do() {
    for line in current_records() {
        assert!(serde_json::from_str::<LogEntry>(&line).is_ok(), "{line}");
        if let Some((kind, lite, _)) = agree(&line) {
            assert!(lite, "{kind}: {line}");
        }
    }
}

#[test]
fn the_shapes_read_the_older_format_fixtures_as_the_record_types_do() {
    let mut compared = BTreeSet::new();
    for line in fixture_lines() {
        if let Some((kind, lite, owned)) = agree(&line) {
            assert_eq!(lite, owned, "{kind}: {line}");
            compared.insert(kind);
        }
    }
    assert!(
        compared.contains("run_started") && compared.contains("run_completed"),
        "{compared:?}"
    );
}

/// Fields of the record types the scan's shapes do not read, or read leniently (an optional
/// `attempt` or `outcome`, a skipped `text` or `output`): a line that lacks them, or has them
/// of another type, is still an entry to the scan. `run_started` and `run_completed` have
/// none: their shapes accept exactly the lines the record types accept.
const NOT_CHECKED_BY_THE_SCAN: &[(&str, &[&str])] = &[
    (
        "assistant_message",
        &["ts", "turn", "text", "reasoning", "tool_calls"],
    ),
    (
        "provider_request_started",
        &["ts", "turn", "attempt", "scheme"],
    ),
    ("tool_call_started", &["ts"]),
    (
        "tool_call_finished",
        &["ts", "tool", "side_effect", "outcome", "output"],
    ),
];

#[test]
fn a_damaged_record_is_rejected_by_both_unless_the_scan_does_not_read_the_field() {
    // (kind, field) where a damage was accepted by the scan's shape only.
    let mut lenient = BTreeSet::new();
    for line in current_records() {
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(&line) else {
            panic!("{line}");
        };
        let kind = record["kind"].as_str().unwrap().to_owned();
        for key in record.keys().filter(|k| *k != "kind") {
            let damages = [
                ("absent", None),
                ("null", Some(Value::Null)),
                ("an array", Some(json!([]))),
            ];
            for (how, value) in damages {
                let mut damaged = record.clone();
                match value {
                    None => damaged.remove(key),
                    Some(value) => damaged.insert(key.clone(), value),
                };
                let line = Value::Object(damaged).to_string();
                let Some((_, lite, owned)) = agree(&line) else {
                    continue;
                };
                // The scan is never stricter than the record types.
                assert!(
                    lite || !owned,
                    "{kind}.{key} {how}: rejected by the scan only"
                );
                if lite && !owned {
                    lenient.insert((kind.clone(), key.clone()));
                }
            }
        }
    }
    let expected: BTreeSet<(String, String)> = NOT_CHECKED_BY_THE_SCAN
        .iter()
        .flat_map(|(kind, keys)| {
            keys.iter()
                .map(|key| ((*kind).to_owned(), (*key).to_owned()))
        })
        .collect();
    assert_eq!(lenient, expected);
}
