use serde_json::{Value, json};

use pod_protocol::record::{CausedBy, LifecycleKind, PeerCred};

use super::*;
use crate::document::RetryVerdict;
use crate::scan::scan_segment;

const TS: &str = "2026-11-23T01:02:03.456Z";

/// One log line at `ts`: `seq`, `ts` and `kind`, then the entry's own fields.
fn line_at(seq: u64, ts: &str, kind: &str, fields: Value) -> String {
    let mut entry = json!({ "seq": seq, "ts": ts, "kind": kind });
    let (Value::Object(entry_fields), Value::Object(fields)) = (&mut entry, fields) else {
        panic!("an entry is an object");
    };
    entry_fields.extend(fields);
    entry.to_string() + "\n"
}

fn line(seq: u64, kind: &str, fields: Value) -> String {
    line_at(seq, TS, kind, fields)
}

fn started(seq: u64) -> String {
    line(
        seq,
        "run_started",
        json!({ "run_id": "r1", "trigger": { "type": "cli" }, "input": "hi" }),
    )
}

fn phase(visible: bool, effects: &[&str]) -> Value {
    json!({
        "provider_progress_seen": true,
        "visible_output_seen": visible,
        "tool_execution": "completed",
        "side_effects_started": effects,
    })
}

fn segment_started(seq: u64, ts: &str, pid: u32) -> String {
    line_at(
        seq,
        ts,
        "segment_started",
        json!({
            "pod_id": "p", "segment_id": "s", "profile": "coder",
            "manifest_digest": "sha256:00", "pid": pid, "format_version": 1, "writer": "pods 9",
        }),
    )
}

/// The log made of `lines`, scanned as the export scans it, with each run summarized: final
/// runs as they are handed out, the rest at the end of the log, told whether a later segment
/// exists and the pod's pid.
fn scan_and_map(
    lines: &[String],
    later_segment: bool,
    pod_pid: Option<u32>,
) -> (SegmentDoc, Vec<RunDoc>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, lines.concat()).unwrap();
    let mut runs = Vec::new();
    let on_run = &mut |seg: &SegmentScan, acc| {
        runs.push(run_doc("p", seg, acc, false, pod_pid));
        Ok::<(), ()>(())
    };
    let mut scan = scan_segment(
        "p",
        &path,
        "sessions/s.jsonl".into(),
        "s".into(),
        false,
        false,
        on_run,
    )
    .unwrap();
    let open: Vec<RunAcc> = scan.runs.drain(..).collect();
    for acc in open {
        runs.push(run_doc("p", &scan, acc, later_segment, pod_pid));
    }
    (segment_doc(&scan), runs)
}

/// The one run of the log made of `lines`.
fn run_of(lines: &[String], later_segment: bool, pod_pid: Option<u32>) -> RunDoc {
    let (_, mut runs) = scan_and_map(lines, later_segment, pod_pid);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    runs.remove(0)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_completed_run_carries_its_output_stop_reason_usage_and_derived_phase() {
    let max_tokens = json!({ "reason": "max_tokens" });
    let run = run_of(
        &[
            line(
                1,
                "run_started",
                json!({
                    "run_id": "r1", "trigger": { "type": "control_request", "client": "tui" },
                    "request_id": "q1", "input": "hi",
                }),
            ),
            line(
                2,
                "provider_request_started",
                json!({ "run_id": "r1", "turn": 1, "attempt": 1, "scheme": "chat", "model": "m1" }),
            ),
            line(
                3,
                "assistant_message",
                json!({ "run_id": "r1", "turn": 1, "text": "hello" }),
            ),
            line(
                4,
                "tool_call_started",
                json!({
                    "run_id": "r1", "call_id": "c1", "tool": "read_file",
                    "side_effect": "read_only", "input": { "path": "a" },
                }),
            ),
            line(
                5,
                "tool_call_finished",
                json!({
                    "run_id": "r1", "call_id": "c1", "tool": "read_file",
                    "side_effect": "read_only", "outcome": "ok", "output": "x",
                }),
            ),
            // A retry of the second request: a request made, not a request started.
            line(
                6,
                "provider_request_started",
                json!({ "run_id": "r1", "turn": 2, "attempt": 2, "scheme": "chat", "model": "m1" }),
            ),
            line(
                7,
                "provider_request_finished",
                json!({
                    "run_id": "r1", "turn": 2, "attempt": 2, "end": "completed",
                    "stop_reason": max_tokens, "usage": { "input_tokens": 10, "output_tokens": 5 },
                    "unhandled": { "ping": 2 },
                }),
            ),
            line(
                8,
                "run_completed",
                json!({
                    "run_id": "r1", "turns": 2, "text": "done", "reason": "max_tokens",
                    "stop_reason": max_tokens,
                }),
            ),
        ],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::Completed);
    assert_eq!((run.run_id.as_str(), run.pod_id.as_str()), ("r1", "p"));
    assert_eq!(run.segment_id.as_deref(), Some("s"));
    assert_eq!(run.started_at.as_deref(), Some(TS));
    assert_eq!(run.ended_at.as_deref(), Some(TS));
    assert_eq!(
        run.trigger,
        Some(TriggerDoc::ControlRequest {
            client: "tui".into()
        })
    );
    assert_eq!(run.request_id.as_deref(), Some("q1"));
    assert_eq!(run.input.as_deref(), Some("hi"));
    assert_eq!(run.output.as_deref(), Some("done"));
    assert_eq!(run.provider_requests, Some(2));
    assert_eq!(run.model.as_deref(), Some("m1"));
    assert_eq!(run.stop_reason.as_deref(), Some("max_tokens"));
    assert_eq!(run.stop_raw, None);
    assert_eq!(run.truncated, Some(true));
    assert_eq!(
        run.usage,
        Some(UsageDoc {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cached_input_tokens: None,
            reasoning_tokens: None,
            requests_started: 1,
            requests_recorded: 1,
            requests_with_usage: 1,
        })
    );
    assert_eq!(
        run.unhandled_events,
        Some([("ping".to_owned(), 2)].into_iter().collect())
    );
    assert_eq!(run.tool_calls_rejected, Some(0));
    assert_eq!(run.tool_calls_started, Some(1));
    assert_eq!(run.tool_calls_finished, Some(1));
    assert!(run.tools_in_flight.is_empty());
    assert_eq!(
        (&run.error, &run.interrupt, &run.crash_evidence),
        (&None, &None, &None)
    );
    assert_eq!(
        run.phase,
        Some(PhaseDoc {
            source: "derived".into(),
            provider_progress_seen: Some(true),
            visible_output_seen: Some(true),
            tool_execution: "completed".into(),
            side_effects_started: Some(strings(&["read_only"])),
        })
    );
    assert_eq!(
        run.retry_safety.map(|s| s.verdict),
        Some(RetryVerdict::AskUser)
    );
    assert!(
        run.missing_provenance.is_empty(),
        "{:?}",
        run.missing_provenance
    );
}

#[test]
fn a_run_from_before_stop_reasons_has_an_unknown_stop_reason_and_says_so() {
    let run = run_of(
        &[
            started(1),
            line(
                2,
                "run_completed",
                json!({ "run_id": "r1", "turns": 1, "text": "done", "reason": "end_turn" }),
            ),
        ],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::Completed);
    assert_eq!(run.stop_reason.as_deref(), Some("unknown"));
    assert_eq!(run.truncated, None);
    // No request's end is recorded: usage is unknown, not zero.
    assert_eq!((run.usage, run.unhandled_events), (None, None));
    assert_eq!(run.missing_provenance, strings(&["stop_reason"]));
    let phase = run.phase.unwrap();
    assert_eq!(phase.provider_progress_seen, Some(false));
    assert_eq!(phase.visible_output_seen, Some(false));
    assert_eq!(phase.tool_execution, "not_started");
    assert_eq!(run.retry_safety.unwrap().verdict, RetryVerdict::Safe);
}

#[test]
fn a_provider_error_keeps_the_error_and_the_recorded_phase() {
    let error = json!({
        "class": "rate_limited", "code": "slow_down", "http_status": 429,
        "provider_request_id": "req-1", "retryable": true, "message": "slow down",
    });
    let run = run_of(
        &[
            started(1),
            line(
                2,
                "run_errored",
                json!({ "run_id": "r1", "error": error, "phase": phase(false, &["local_write"]) }),
            ),
        ],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::ProviderError);
    assert_eq!(
        run.error,
        Some(ErrorDoc {
            class: "rate_limited".into(),
            code: Some("slow_down".into()),
            http_status: Some(429),
            provider_request_id: Some("req-1".into()),
            retryable: Some(true),
            message: Some("slow down".into()),
        })
    );
    assert_eq!(
        run.phase,
        Some(PhaseDoc {
            source: "recorded".into(),
            provider_progress_seen: Some(true),
            visible_output_seen: Some(false),
            tool_execution: "completed".into(),
            side_effects_started: Some(strings(&["local_write"])),
        })
    );
    assert_eq!(run.retry_safety.unwrap().verdict, RetryVerdict::Unsafe);
    assert_eq!((run.output, run.stop_reason), (None, None));
    assert!(
        run.missing_provenance.is_empty(),
        "{:?}",
        run.missing_provenance
    );
}

#[test]
fn an_error_and_phase_an_older_writer_left_out_are_unknown_and_listed() {
    let run = run_of(
        &[
            started(1),
            line(
                2,
                "run_errored",
                json!({ "run_id": "r1", "error": { "retryable": false, "message": "m" } }),
            ),
        ],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::ProviderError);
    assert_eq!(run.error.unwrap().class, "unknown");
    let phase = run.phase.unwrap();
    assert_eq!(phase.source, "recorded");
    assert_eq!(phase.tool_execution, "unknown");
    assert_eq!(phase.side_effects_started, None);
    assert_eq!(
        run.missing_provenance,
        strings(&[
            "phase.provider_progress_seen",
            "phase.visible_output_seen",
            "phase.tool_execution",
            "phase.side_effects_started",
            "error.class",
        ])
    );
    // Nothing says which side effects started: a retry is the user's call.
    assert_eq!(run.retry_safety.unwrap().verdict, RetryVerdict::AskUser);
}

fn action(origin: Origin) -> LifecycleAction {
    LifecycleAction {
        action_id: "a1".into(),
        kind: LifecycleKind::StopTree,
        started_at: TS.into(),
        started_mono_ms: 5,
        affects: vec!["p".into()],
        origin,
        reason: Some("because".into()),
        caused_by: Some(CausedBy {
            pod_id: "parent".into(),
            action_id: "a0".into(),
            kind: LifecycleKind::Stop,
        }),
    }
}

fn cli() -> Origin {
    Origin::Cli {
        command: "pods stop".into(),
        request_id: "q".into(),
    }
}

fn interrupted(action: Option<&LifecycleAction>) -> RunDoc {
    let mut fields = json!({ "run_id": "r1", "reason": "stopped", "phase": phase(false, &[]) });
    if let Some(action) = action {
        fields["action"] = serde_json::to_value(action).unwrap();
    }
    run_of(
        &[started(1), line(2, "run_interrupted", fields)],
        false,
        None,
    )
}

#[test]
fn an_interrupt_carries_its_action_origin_and_cascade_link() {
    let run = interrupted(Some(&action(cli())));
    assert_eq!(run.outcome, Outcome::Interrupted);
    let expected = ActionDoc {
        action_id: "a1".into(),
        kind: "stop_tree".into(),
        started_at: TS.into(),
        affects: strings(&["p"]),
        origin: OriginDoc::Cli {
            command: "pods stop".into(),
            request_id: "q".into(),
        },
        reason: Some("because".into()),
        caused_by: Some(ActionRef {
            pod_id: "parent".into(),
            action_id: "a0".into(),
            kind: "stop".into(),
        }),
    };
    assert_eq!(
        run.interrupt,
        Some(InterruptDoc {
            reason: "stopped".into(),
            action: Some(expected),
        })
    );
    assert_eq!(run.retry_safety.unwrap().verdict, RetryVerdict::Safe);
    assert!(
        run.missing_provenance.is_empty(),
        "{:?}",
        run.missing_provenance
    );
}

#[test]
fn an_interrupt_without_an_action_leaves_action_and_origin_missing() {
    let run = interrupted(None);
    assert_eq!(run.outcome, Outcome::Interrupted);
    assert_eq!(run.interrupt.unwrap().action, None);
    assert_eq!(
        run.missing_provenance,
        strings(&["interrupt.action", "interrupt.origin"])
    );
}

#[test]
fn an_unknown_origin_lists_each_fact_it_lacks() {
    let unknown = |missing: &[&str]| {
        interrupted(Some(&action(Origin::Unknown {
            missing: strings(missing),
        })))
        .missing_provenance
    };
    assert_eq!(
        unknown(&["pid", "uid"]),
        strings(&["interrupt.origin.pid", "interrupt.origin.uid"])
    );
    assert_eq!(unknown(&[]), strings(&["interrupt.origin"]));
}

#[test]
fn an_unverified_origin_keeps_the_claim_apart_from_the_peer() {
    let claimed = Origin::ParentPod {
        parent_pod_id: "x".into(),
        tool_call_id: "t".into(),
    };
    let unverified = Origin::Unverified(Box::new(UnverifiedOrigin {
        claimed,
        claimed_caused_by: Some(CausedBy {
            pod_id: "x".into(),
            action_id: "a9".into(),
            kind: LifecycleKind::ParentExit,
        }),
        peer: PeerCred {
            pid: Some(7),
            uid: None,
        },
        why: "no such child".into(),
    }));
    assert_eq!(
        action_doc(&action(unverified)).origin,
        OriginDoc::Unverified {
            claimed: Box::new(OriginDoc::ParentPod {
                parent_pod_id: "x".into(),
                tool_call_id: "t".into(),
            }),
            claimed_caused_by: Some(ActionRef {
                pod_id: "x".into(),
                action_id: "a9".into(),
                kind: "parent_exit".into(),
            }),
            peer: PeerDoc {
                pid: Some(7),
                uid: None,
            },
            why: "no such child".into(),
        }
    );
}

#[test]
fn free_text_in_origins_and_triggers_is_cut_to_a_preview() {
    let long = "x".repeat(crate::scan::PREVIEW_CHARS + 10);
    let doc = action_doc(&action(Origin::Signal {
        signal: long.clone(),
    }));
    let OriginDoc::Signal { signal } = doc.origin else {
        panic!("{:?}", doc.origin);
    };
    assert!(
        signal.ends_with(&format!("… [{} bytes in all]", long.len())),
        "{signal}"
    );
    let TriggerDoc::ControlRequest { client } =
        trigger_doc(&RunTrigger::ControlRequest { client: long })
    else {
        panic!("not a control request");
    };
    assert!(client.len() < crate::scan::PREVIEW_CHARS + 30);
}

#[test]
fn a_run_left_open_before_a_later_segment_crashed_with_its_tool_in_flight() {
    let run = run_of(
        &[
            started(1),
            line(
                2,
                "tool_call_started",
                json!({
                    "run_id": "r1", "call_id": "c1", "tool": "shell",
                    "side_effect": "process", "input": { "cmd": "make" },
                }),
            ),
        ],
        true,
        Some(4_000_000),
    );
    assert_eq!(run.outcome, Outcome::Crashed);
    assert_eq!(
        run.crash_evidence,
        Some(CrashEvidence {
            last_seq: Some(2),
            last_entry_kind: Some("tool_call_started".into()),
            last_entry_at: Some(TS.into()),
            owner_pid: Some(4_000_000),
            owner: "gone".into(),
            detail: "a later segment of this pod was started by another process".into(),
            torn_tail: false,
            actions_seen: Vec::new(),
            exit_seen_by_parent: None,
        })
    );
    assert_eq!(run.tools_in_flight.len(), 1);
    assert_eq!(run.tools_in_flight[0].side_effect, "process");
    assert_eq!(run.tools_in_flight[0].input, json!({ "cmd": "make" }));
    let phase = run.phase.unwrap();
    assert_eq!(phase.tool_execution, "started");
    assert_eq!(phase.side_effects_started, Some(strings(&["process"])));
    assert_eq!(run.retry_safety.unwrap().verdict, RetryVerdict::Unsafe);
    assert_eq!(run.missing_provenance, strings(&["crash.cause"]));
}

#[test]
fn a_run_left_open_in_a_closed_segment_crashed_and_the_close_is_the_evidence() {
    let (segment, runs) = scan_and_map(
        &[
            segment_started(1, TS, 4_000_000),
            started(2),
            line(3, "segment_closed", json!({ "reason": "stopped" })),
        ],
        false,
        None,
    );
    let evidence = runs[0].crash_evidence.as_ref().unwrap();
    assert_eq!(runs[0].outcome, Outcome::Crashed);
    assert_eq!(
        evidence.detail,
        "the segment was closed (stopped) without ending the run"
    );
    // The segment's own owner, not the pod's.
    assert_eq!(evidence.owner_pid, Some(4_000_000));
    assert_eq!(
        segment,
        SegmentDoc {
            segment_id: "s".into(),
            log: "sessions/s.jsonl".into(),
            started_at: Some(TS.into()),
            format_version: Some(1),
            writer: Some("pods 9".into()),
            owner_pid: Some(4_000_000),
            closed: Some("stopped".into()),
        }
    );
}

#[test]
fn a_run_without_any_owner_pid_crashed_and_its_owner_is_unknown() {
    let run = run_of(&[started(1)], false, None);
    assert_eq!(run.outcome, Outcome::Crashed);
    let evidence = run.crash_evidence.unwrap();
    assert_eq!(
        (evidence.owner.as_str(), evidence.owner_pid),
        ("unknown", None)
    );
    assert_eq!(
        run.missing_provenance,
        strings(&["crash.owner_liveness", "crash.cause"])
    );
}

#[test]
fn a_run_whose_owner_lives_is_running_with_no_verdict_and_nothing_missing() {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let run = run_of(
        &[
            segment_started(1, &now, std::process::id()),
            started(2),
            line(
                3,
                "provider_request_started",
                json!({ "run_id": "r1", "turn": 1, "attempt": 1, "scheme": "chat", "model": "m" }),
            ),
        ],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::Running);
    assert_eq!((&run.crash_evidence, &run.retry_safety), (&None, &None));
    // The phase so far, with what is not known yet left unknown, not reported missing.
    let phase = run.phase.unwrap();
    assert_eq!(phase.provider_progress_seen, None);
    assert_eq!(phase.visible_output_seen, None);
    assert!(
        run.missing_provenance.is_empty(),
        "{:?}",
        run.missing_provenance
    );
}

#[test]
fn a_stream_open_when_the_run_ended_leaves_its_output_unknown() {
    let run = run_of(
        &[
            started(1),
            line(
                2,
                "assistant_message",
                json!({ "run_id": "r1", "turn": 1, "text": "" }),
            ),
            line(
                3,
                "provider_request_started",
                json!({ "run_id": "r1", "turn": 2, "attempt": 1, "scheme": "chat", "model": "m" }),
            ),
        ],
        true,
        None,
    );
    assert_eq!(run.outcome, Outcome::Crashed);
    let phase = run.phase.as_ref().unwrap();
    assert_eq!(phase.provider_progress_seen, Some(true));
    assert_eq!(phase.visible_output_seen, None);
    assert_eq!(
        run.missing_provenance,
        strings(&["crash.cause", "phase.visible_output_seen"])
    );
    let safety = run.retry_safety.unwrap();
    assert_eq!(safety.verdict, RetryVerdict::AskUser);
    assert!(
        safety.reason.starts_with("output may have been shown"),
        "{}",
        safety.reason
    );
}

#[test]
fn a_run_seen_without_its_run_started_says_so_first() {
    let run = run_of(
        &[line(
            1,
            "run_completed",
            json!({ "run_id": "r1", "turns": 1, "text": "done", "reason": "end_turn" }),
        )],
        false,
        None,
    );
    assert_eq!(run.outcome, Outcome::Completed);
    assert_eq!((run.started_at, run.input), (None, None));
    assert_eq!(
        run.missing_provenance,
        strings(&["run.run_started", "stop_reason"])
    );
}

#[test]
fn an_unreadable_terminal_entry_says_how_the_run_ended_and_nothing_more() {
    let torn = |kind: &str| {
        let cut = format!(r#"{{"seq":2,"ts":"{TS}","kind":"{kind}","run_id":"r1","phase":{{"prov"#);
        run_of(&[started(1), cut], false, None)
    };
    let errored = torn("run_errored");
    assert_eq!(errored.outcome, Outcome::ProviderError);
    assert_eq!(errored.error, None);
    let unreadable = errored.unreadable_terminal.as_ref().unwrap();
    assert_eq!(
        (unreadable.line, unreadable.kind.as_str(), unreadable.torn),
        (2, "run_errored", true)
    );
    assert_eq!(
        errored.missing_provenance,
        strings(&["terminal_entry", "error"])
    );
    assert_eq!(errored.phase.unwrap().source, "derived");

    let interrupted = torn("run_interrupted");
    assert_eq!(interrupted.outcome, Outcome::Interrupted);
    // Nothing of the entry is invented: no interrupt reason or action.
    assert_eq!(interrupted.interrupt, None);
    assert_eq!(
        interrupted.missing_provenance,
        strings(&[
            "terminal_entry",
            "interrupt.reason",
            "interrupt.action",
            "interrupt.origin",
        ])
    );
}
