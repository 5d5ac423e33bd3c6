//! Exports of pod homes built with the runtime's record types, one situation per test.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use pod_export::document::{ChainLink, ExportDocument, OriginDoc, Outcome, RetryVerdict, RunDoc};
use pod_export::{ExportError, ExportRequest, Format, Progress, Secret, export, render_checked};
use pod_protocol::ErrorClass;
use pod_protocol::record::{
    CausedBy, LifecycleKind, Origin, PodState, SideEffectClass, ToolExecutionPhase,
};

const POD: &str = "0193a000-0000-7000-8000-000000000001";
const CHILD: &str = "0193a000-0000-7000-8000-000000000002";
const CHILD2: &str = "0193a000-0000-7000-8000-000000000003";
const SEG: &str = "0193a000-0000-7000-8000-00000000aaa1";
const SEG2: &str = "0193a000-0000-7000-8000-00000000aaa2";

fn export_pod(home: &Path, pod: &str, tree: bool, sanitize: bool) -> ExportDocument {
    let request = ExportRequest {
        home: home.to_path_buf(),
        pod: pod.to_owned(),
        tree,
        sanitize,
    };
    export(&request, &mut |_| {}).unwrap()
}

fn run<'a>(doc: &'a ExportDocument, run_id: &str) -> &'a RunDoc {
    doc.pods
        .iter()
        .flat_map(|p| &p.runs)
        .find(|r| r.run_id == run_id)
        .unwrap_or_else(|| panic!("run {run_id} not in export"))
}

#[test]
fn completed_run_is_completed_with_no_incident() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "say hi")
        .request("r1")
        .message("r1", "hi")
        .completed("r1", "hi")
        .closed("completed");
    let doc = export_pod(home.path(), POD, false, false);
    assert_eq!(doc.format, "pods.session-export");
    assert_eq!(doc.schema_version, 4);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.input.as_deref(), Some("say hi"));
    assert_eq!(r.output.as_deref(), Some("hi"));
    assert_eq!(r.provider_requests, Some(1));
    assert!(
        r.missing_provenance.is_empty(),
        "{:?}",
        r.missing_provenance
    );
    assert!(doc.incidents.is_empty());
    let integrity = doc.integrity.as_ref().unwrap();
    assert_eq!(integrity.len(), 1);
    assert_eq!(integrity[0].entries, 6);
    assert!(!integrity[0].torn_final_line);
    assert!(!integrity[0].trace_sidecar);
    assert_eq!(doc.pods[0].segments[0].closed.as_deref(), Some("completed"));
    assert_eq!(
        doc.pods[0].manifest.as_ref().unwrap()["model"]["model"],
        "gpt-test"
    );
}

#[test]
fn provider_error_keeps_class_code_status_and_request_id() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "summarize")
        .request("r1")
        .message("r1", "partial answer")
        .errored(
            "r1",
            ErrorClass::ContextLengthExceeded,
            "context_length_exceeded",
            phase(true, ToolExecutionPhase::NotStarted, &[]),
        );
    std::fs::write(
        pod.dir.join("sessions").join(format!("{SEG}.trace.jsonl")),
        "",
    )
    .unwrap();
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::ProviderError);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.class, "context_length_exceeded");
    assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
    assert_eq!(e.http_status, Some(400));
    assert_eq!(e.provider_request_id.as_deref(), Some("req_prov_1"));
    assert_eq!(
        r.retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::AskUser
    );
    assert_eq!(doc.incidents.len(), 1);
    let incident = &doc.incidents[0];
    assert_eq!(incident.cause.category, "provider_error");
    assert!(
        incident.summary.contains("context_length_exceeded"),
        "{}",
        incident.summary
    );
    assert!(matches!(
        &incident.chain[1],
        ChainLink::ProviderError { class, .. } if class == "context_length_exceeded"
    ));
    assert!(incident.diagnostics_complete);
    assert!(doc.integrity.as_ref().unwrap()[0].trace_sidecar);
}

#[test]
fn interrupt_chain_runs_from_run_to_action_origin_and_request() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let stop = action(
        "act-1",
        LifecycleKind::Stop,
        &[POD],
        cli_origin("req-cli-9"),
    );
    pod.segment(SEG, dead_pid())
        .run_started("r1", "long task")
        .request("r1")
        .action(stop.clone(), Some("r1"))
        .interrupted(
            "r1",
            "stopped",
            Some(stop),
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Interrupted);
    let action = r.interrupt.as_ref().unwrap().action.as_ref().unwrap();
    assert_eq!(action.kind, "stop");
    assert!(
        matches!(&action.origin, OriginDoc::Cli { request_id, .. } if request_id == "req-cli-9")
    );
    let incident = &doc.incidents[0];
    let links: Vec<&str> = incident.chain.iter().map(link_name).collect();
    assert_eq!(
        links,
        ["run", "interrupt", "lifecycle_action", "origin", "request"]
    );
    assert!(matches!(
        incident.nearest_origin,
        Some(OriginDoc::Cli { ref request_id, .. }) if request_id == "req-cli-9"
    ));
    assert!(incident.diagnostics_complete);
    assert!(incident.missing_provenance.is_empty());
    assert!(
        incident.summary.contains("stop action"),
        "{}",
        incident.summary
    );
    assert!(
        incident.summary.contains("req-cli-9"),
        "{}",
        incident.summary
    );
    assert_eq!(r.retry_safety.as_ref().unwrap().verdict, RetryVerdict::Safe);
}

#[test]
fn every_lifecycle_kind_and_origin_is_reported_as_written() {
    let cases = [
        (
            LifecycleKind::Cancel,
            Origin::Signal {
                signal: "SIGINT".into(),
            },
            "cancel",
        ),
        (
            LifecycleKind::Shutdown,
            Origin::Signal {
                signal: "SIGTERM".into(),
            },
            "shutdown",
        ),
        (
            LifecycleKind::Reload,
            Origin::ControlRequest {
                request_id: "rq-2".into(),
                client: "cli".into(),
            },
            "reload",
        ),
        (
            LifecycleKind::Watchdog,
            Origin::Watchdog { idle_ms: 60000 },
            "watchdog",
        ),
        (
            LifecycleKind::StopTree,
            Origin::Runtime {
                detail: "last run ended".into(),
            },
            "stop_tree",
        ),
    ];
    for (kind, origin, name) in cases {
        let home = Home::new();
        let pod = home.pod(POD, "alpha", None);
        let a = action("act", kind, &[POD], origin.clone());
        pod.segment(SEG, dead_pid())
            .run_started("r1", "x")
            .interrupted(
                "r1",
                name,
                Some(a),
                phase(false, ToolExecutionPhase::NotStarted, &[]),
            );
        let doc = export_pod(home.path(), POD, false, false);
        let incident = &doc.incidents[0];
        assert!(
            matches!(&incident.chain[2], ChainLink::LifecycleAction { kind, .. } if kind == name)
        );
        let expected_type = serde_json::to_value(&origin).unwrap()["type"].clone();
        let got = serde_json::to_value(incident.nearest_origin.as_ref().unwrap()).unwrap();
        assert_eq!(got["type"], expected_type, "{name}");
        assert!(incident.diagnostics_complete, "{name}");
    }
}

#[test]
fn interrupt_without_action_names_what_is_missing() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "x")
        .interrupted(
            "r1",
            "cancelled",
            None,
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let doc = export_pod(home.path(), POD, false, false);
    let incident = &doc.incidents[0];
    assert_eq!(
        incident.missing_provenance,
        ["interrupt.action", "interrupt.origin"]
    );
    assert!(!incident.diagnostics_complete);
    assert!(incident.nearest_origin.is_none());
    assert!(
        incident.summary.contains("does not record"),
        "{}",
        incident.summary
    );
}

#[test]
fn unknown_origin_lists_its_missing_facts() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let a = action(
        "act",
        LifecycleKind::Stop,
        &[POD],
        Origin::Unknown {
            missing: vec!["request_id".into(), "client".into()],
        },
    );
    pod.segment(SEG, dead_pid())
        .run_started("r1", "x")
        .interrupted(
            "r1",
            "stopped",
            Some(a),
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let doc = export_pod(home.path(), POD, false, false);
    let incident = &doc.incidents[0];
    assert_eq!(
        incident.missing_provenance,
        ["interrupt.origin.request_id", "interrupt.origin.client"]
    );
    assert!(!incident.diagnostics_complete);
    assert!(incident.nearest_origin.is_none());
    assert!(matches!(
        incident.root_origin,
        Some(OriginDoc::Unknown { .. })
    ));
}

/// A parent `stop_tree` from the CLI cascades to two children; each child's interrupt links to
/// the one parent action, found in the parent's log.
fn cascade_home() -> Home {
    let home = Home::new();
    let parent = home.pod(POD, "parent", None);
    let parent_action = action(
        "act-parent",
        LifecycleKind::StopTree,
        &[POD, CHILD, CHILD2],
        cli_origin("req-tree"),
    );
    parent
        .segment(SEG, dead_pid())
        .run_started("rp", "coordinate")
        .action(parent_action.clone(), Some("rp"))
        .interrupted(
            "rp",
            "stopped",
            Some(parent_action),
            phase(
                false,
                ToolExecutionPhase::Started,
                &[SideEffectClass::Spawn],
            ),
        );
    for (child_id, run_id) in [(CHILD, "rc1"), (CHILD2, "rc2")] {
        let child = home.pod(child_id, "child", Some(POD));
        let mut a = action(
            &format!("act-{run_id}"),
            LifecycleKind::StopTree,
            &[child_id],
            Origin::ParentPod {
                parent_pod_id: POD.into(),
                tool_call_id: "call-stop".into(),
            },
        );
        a.caused_by = Some(CausedBy {
            pod_id: POD.into(),
            action_id: "act-parent".into(),
            kind: LifecycleKind::StopTree,
        });
        child
            .segment(SEG2, dead_pid())
            .run_started(run_id, "review")
            .interrupted(
                run_id,
                "stopped",
                Some(a),
                phase(true, ToolExecutionPhase::NotStarted, &[]),
            );
    }
    home
}

#[test]
fn cascade_chain_continues_into_the_parents_action_and_origin() {
    let home = cascade_home();
    let doc = export_pod(home.path(), POD, true, false);
    assert_eq!(doc.pods.len(), 3);
    assert_eq!(doc.pods[1].ancestors, [POD]);
    assert_eq!(doc.incidents.len(), 3);
    for run_id in ["rc1", "rc2"] {
        let incident = doc.incidents.iter().find(|i| i.run_id == run_id).unwrap();
        let actions: Vec<(&str, &str)> = incident
            .chain
            .iter()
            .filter_map(|l| match l {
                ChainLink::LifecycleAction {
                    pod_id, action_id, ..
                } => Some((pod_id.as_str(), action_id.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(actions[1], (POD, "act-parent"), "{run_id}");
        assert!(matches!(
            incident.nearest_origin,
            Some(OriginDoc::ParentPod { .. })
        ));
        assert!(matches!(
            incident.root_origin,
            Some(OriginDoc::Cli { ref request_id, .. }) if request_id == "req-tree"
        ));
        assert!(
            matches!(incident.chain.last(), Some(ChainLink::Request { request_id, .. }) if request_id == "req-tree")
        );
        assert!(incident.diagnostics_complete);
        assert!(
            incident
                .summary
                .contains("cascaded from a stop_tree action"),
            "{}",
            incident.summary
        );
    }
}

#[test]
fn child_export_alone_still_follows_the_cascade_and_shows_ancestors() {
    let home = cascade_home();
    let doc = export_pod(home.path(), CHILD, false, false);
    assert_eq!(doc.pods.len(), 1);
    assert_eq!(doc.pods[0].ancestors, [POD]);
    assert_eq!(doc.pods[0].parent_id.as_deref(), Some(POD));
    let incident = &doc.incidents[0];
    assert!(matches!(incident.root_origin, Some(OriginDoc::Cli { .. })));
}

#[test]
fn cascade_whose_parent_action_is_missing_is_unresolved_and_incomplete() {
    let home = cascade_home();
    // The parent's log is lost.
    std::fs::remove_file(
        home.path()
            .join("pods")
            .join(POD)
            .join("sessions")
            .join(format!("{SEG}.jsonl")),
    )
    .unwrap();
    let doc = export_pod(home.path(), CHILD, false, false);
    let incident = &doc.incidents[0];
    assert!(
        matches!(incident.chain.last(), Some(ChainLink::Unresolved { action_id, .. }) if action_id == "act-parent")
    );
    assert_eq!(
        incident.missing_provenance,
        ["interrupt.caused_by.action", "interrupt.caused_by.origin"]
    );
    assert!(!incident.diagnostics_complete);
}

#[test]
fn run_without_terminal_entry_and_dead_owner_is_crash_evidence() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let pid = dead_pid();
    pod.segment(SEG, pid)
        .run_started("r1", "x")
        .request("r1")
        .tool_started(
            "r1",
            "c1",
            "write_file",
            SideEffectClass::LocalWrite,
            serde_json::json!({"path": "out.txt"}),
        );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Crashed);
    let evidence = r.crash_evidence.as_ref().unwrap();
    assert_eq!(evidence.owner_pid, Some(pid));
    assert_eq!(evidence.owner, "gone");
    assert_eq!(
        evidence.last_entry_kind.as_deref(),
        Some("tool_call_started")
    );
    assert_eq!(r.tools_in_flight.len(), 1);
    assert!(r.interrupt.is_none());
    assert_eq!(
        r.retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::Unsafe
    );
    let incident = &doc.incidents[0];
    assert_eq!(incident.cause.category, "crashed");
    assert!(matches!(incident.chain[1], ChainLink::CrashEvidence { .. }));
    assert!(
        !incident
            .chain
            .iter()
            .any(|l| matches!(l, ChainLink::LifecycleAction { .. }))
    );
    assert!(
        incident.summary.contains("crash evidence"),
        "{}",
        incident.summary
    );
}

#[test]
fn a_huge_in_flight_tool_input_is_cut_to_a_preview_with_its_length() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let big = serde_json::json!({"path": "big.txt", "content": "x".repeat(3_000_000)});
    let small = serde_json::json!({"path": "small.txt", "content": "é"});
    let mut stop = action("act-1", LifecycleKind::Stop, &[POD], cli_origin("req-1"));
    stop.reason = Some("r".repeat(1_000_000));
    pod.segment(SEG, dead_pid())
        .run_started("r1", "write two files")
        .request("r1")
        .tool_started(
            "r1",
            "c1",
            "write_file",
            SideEffectClass::LocalWrite,
            small.clone(),
        )
        .tool_started(
            "r1",
            "c2",
            "write_file",
            SideEffectClass::LocalWrite,
            big.clone(),
        );
    let pod2 = home.pod(CHILD, "beta", None);
    pod2.segment(SEG, dead_pid())
        .run_started("r2", "x")
        .action(stop.clone(), Some("r2"))
        .interrupted(
            "r2",
            "stopped",
            Some(stop),
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let reason = export_pod(home.path(), CHILD, false, false).pods[0].runs[0]
        .interrupt
        .clone()
        .unwrap()
        .action
        .unwrap()
        .reason
        .unwrap();
    assert!(reason.starts_with("rrr"));
    assert!(reason.len() < 2100, "{} bytes", reason.len());
    assert!(
        reason.contains("1000000 bytes in all"),
        "{}",
        &reason[1990..]
    );
    let mut doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    let [kept, cut] = &r.tools_in_flight[..] else {
        panic!("{:?}", r.tools_in_flight)
    };
    assert_eq!(kept.input, small);
    assert!(!kept.input_truncated);
    assert_eq!(kept.input_bytes, small.to_string().len() as u64);
    assert!(cut.input_truncated);
    assert_eq!(cut.input_bytes, big.to_string().len() as u64);
    let preview = cut.input.as_str().unwrap();
    assert!(
        preview.starts_with("{\"content\":\"xxx"),
        "{}",
        &preview[..40]
    );
    assert!(preview.chars().count() <= 2001, "{}", preview.len());
    let bytes = render_checked(&mut doc, Format::Json, &[]).unwrap();
    assert!(bytes.len() < 64 * 1024, "document is {} bytes", bytes.len());
}

#[test]
fn run_without_terminal_entry_and_live_owner_is_running() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut log = pod.segment(SEG, std::process::id());
    // The segment started now, owned by this (live) test process.
    std::fs::write(&log.path, "").unwrap();
    log.seq = 0;
    log.raw(&format!(
        "{{\"seq\":1,\"ts\":\"{now}\",\"kind\":\"segment_started\",\"pod_id\":\"{POD}\",\"segment_id\":\"{SEG}\",\"profile\":\"coder\",\"manifest_digest\":\"sha256:00\",\"pid\":{},\"format_version\":1,\"writer\":\"pods 0.1.0\"}}\n",
        std::process::id()
    ));
    log.seq = 1;
    log.run_started("r1", "x").request("r1");
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Running);
    assert!(r.crash_evidence.is_none());
    assert!(doc.incidents.is_empty());
}

#[test]
fn an_unreadable_file_named_like_a_later_log_does_not_make_a_live_run_crashed() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut log = pod.segment(SEG, std::process::id());
    std::fs::write(&log.path, "").unwrap();
    log.raw(&format!(
        "{{\"seq\":1,\"ts\":\"{now}\",\"kind\":\"segment_started\",\"pod_id\":\"{POD}\",\"segment_id\":\"{SEG}\",\"profile\":\"coder\",\"manifest_digest\":\"sha256:00\",\"pid\":{},\"format_version\":1,\"writer\":\"pods 0.1.0\"}}\n",
        std::process::id()
    ));
    log.seq = 1;
    log.run_started("r1", "x").request("r1");
    std::fs::create_dir(pod.dir.join("sessions/zz-not-a-segment.jsonl")).unwrap();
    let doc = export_pod(home.path(), POD, false, false);
    assert_eq!(run(&doc, "r1").outcome, Outcome::Running);
    assert_eq!(doc.integrity.as_ref().unwrap().len(), 2);
}

#[test]
fn unterminated_run_of_an_older_segment_is_crashed_even_if_the_pid_lives() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, std::process::id()).run_started("r1", "x");
    pod.segment(SEG2, dead_pid())
        .run_started("r2", "y")
        .completed("r2", "ok");
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Crashed);
    assert!(
        r.crash_evidence
            .as_ref()
            .unwrap()
            .detail
            .contains("later segment")
    );
}

#[test]
fn retry_safety_follows_output_and_side_effects() {
    let cases = [
        (
            phase(true, ToolExecutionPhase::NotStarted, &[]),
            RetryVerdict::AskUser,
            "visible output",
        ),
        (
            phase(
                false,
                ToolExecutionPhase::Started,
                &[SideEffectClass::ReadOnly, SideEffectClass::LocalWrite],
            ),
            RetryVerdict::Unsafe,
            "local_write",
        ),
        (
            phase(
                true,
                ToolExecutionPhase::Completed,
                &[SideEffectClass::Process],
            ),
            RetryVerdict::Unsafe,
            "process",
        ),
        (
            phase(false, ToolExecutionPhase::NotStarted, &[]),
            RetryVerdict::Safe,
            "nothing had started",
        ),
        (
            phase(
                false,
                ToolExecutionPhase::Completed,
                &[SideEffectClass::ReadOnly],
            ),
            RetryVerdict::Safe,
            "read_only",
        ),
    ];
    for (i, (p, verdict, reason)) in cases.into_iter().enumerate() {
        let home = Home::new();
        let pod = home.pod(POD, "alpha", None);
        pod.segment(SEG, dead_pid())
            .run_started("r1", "x")
            .interrupted(
                "r1",
                "cancelled",
                Some(action("a", LifecycleKind::Cancel, &[POD], cli_origin("q"))),
                p,
            );
        let doc = export_pod(home.path(), POD, false, false);
        let safety = run(&doc, "r1").retry_safety.clone().unwrap();
        assert_eq!(safety.verdict, verdict, "case {i}");
        assert!(
            safety.reason.contains(reason),
            "case {i}: {}",
            safety.reason
        );
    }
}

#[test]
fn crashed_mid_stream_without_a_logged_message_may_have_shown_output() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "x")
        .request("r1");
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    let phase = r.phase.as_ref().unwrap();
    assert_eq!(phase.source, "derived");
    assert_eq!(phase.visible_output_seen, None);
    assert_eq!(
        r.retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::AskUser
    );
    assert!(
        r.missing_provenance
            .contains(&"phase.visible_output_seen".to_owned())
    );
}

#[test]
fn torn_tail_gaps_and_garbage_are_reported_and_nothing_before_is_lost() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "x")
        .completed("r1", "done")
        .raw("this is not json\n")
        .skip_seq(3)
        .run_started("r2", "y")
        .completed("r2", "done too")
        .raw("{\"seq\":9,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_sta");
    let doc = export_pod(home.path(), POD, false, false);
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert!(log.torn_final_line);
    assert_eq!(log.unparseable_count, 1);
    assert_eq!(log.unparseable_lines, [4]);
    assert_eq!(log.sequence_gap_count, 1);
    assert_eq!(
        (log.sequence_gaps[0].after, log.sequence_gaps[0].next),
        (3, 7)
    );
    assert_eq!(log.entries, 5);
    assert_eq!(run(&doc, "r1").outcome, Outcome::Completed);
    assert_eq!(run(&doc, "r2").outcome, Outcome::Completed);
}

#[test]
fn entries_of_unknown_kinds_are_counted_not_fatal() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let mut log = pod.segment(SEG, dead_pid());
    log.raw("{\"seq\":2,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"future_thing\",\"x\":1}\n");
    log.seq = 2;
    log.run_started("r1", "x").completed("r1", "ok");
    let doc = export_pod(home.path(), POD, false, false);
    let integrity = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(integrity.unknown_kinds.get("future_thing"), Some(&1));
    assert_eq!(integrity.unparseable_count, 0);
    assert_eq!(integrity.sequence_gap_count, 0);
}

#[test]
fn a_sequence_number_at_u64_max_is_a_gap_not_an_overflow() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .raw(&format!("{{\"seq\":{},\"ts\":\"{TS}\",\"kind\":\"run_started\",\"run_id\":\"r1\",\"trigger\":{{\"type\":\"cli\"}},\"input\":\"x\"}}\n", u64::MAX))
        .raw(&format!("{{\"seq\":5,\"ts\":\"{TS}\",\"kind\":\"run_completed\",\"run_id\":\"r1\",\"turns\":1,\"text\":\"ok\",\"reason\":\"end_turn\"}}\n"));
    let doc = export_pod(home.path(), POD, false, false);
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(log.entries, 3);
    assert_eq!(log.sequence_gap_count, 2);
    assert_eq!(
        (log.sequence_gaps[1].after, log.sequence_gaps[1].next),
        (u64::MAX, 5)
    );
    assert_eq!(run(&doc, "r1").outcome, Outcome::Completed);
}

#[test]
fn the_entry_kind_is_the_top_level_one_not_one_nested_in_a_value() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let mut log = pod.segment(SEG, dead_pid());
    log.run_started("r1", "x");
    // Another writer's key order: a nested "kind" comes before the entry's own.
    log.raw(&format!("{{\"seq\":3,\"ts\":\"{TS}\",\"input\":{{\"kind\":\"run_completed\",\"run_id\":\"r1\",\"text\":\"no\"}},\"kind\":\"tool_call_started\",\"run_id\":\"r1\",\"call_id\":\"c1\",\"tool\":\"list_dir\",\"side_effect\":\"read_only\"}}\n"));
    // A kind written with an escape: only a full parse reads it.
    log.raw(&format!("{{\"seq\":4,\"ts\":\"{TS}\",\"kind\":\"run\\u005fstarted\",\"run_id\":\"r2\",\"trigger\":{{\"type\":\"cli\"}},\"input\":\"escaped\"}}\n"));
    let doc = export_pod(home.path(), POD, false, false);
    let r1 = run(&doc, "r1");
    assert_eq!(r1.tool_calls_started, Some(1));
    assert_eq!(r1.tools_in_flight.len(), 1);
    assert_eq!(r1.tools_in_flight[0].input["kind"], "run_completed");
    assert_ne!(r1.outcome, Outcome::Completed);
    assert_eq!(run(&doc, "r2").input.as_deref(), Some("escaped"));
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(log.unparseable_count, 0);
    assert!(log.unknown_kinds.is_empty(), "{:?}", log.unknown_kinds);
}

#[test]
fn terminal_entry_lacking_a_later_field_reports_it_missing_not_defaulted() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let mut log = pod.segment(SEG, dead_pid());
    log.run_started("r1", "x");
    // An interrupt written without `phase.side_effects_started` (serde would default it to []).
    log.raw("{\"seq\":3,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_interrupted\",\"run_id\":\"r1\",\"reason\":\"cancelled\",\"phase\":{\"provider_progress_seen\":false,\"visible_output_seen\":false,\"tool_execution\":\"not_started\"}}\n");
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    let phase = r.phase.as_ref().unwrap();
    assert_eq!(phase.side_effects_started, None);
    assert!(
        r.missing_provenance
            .contains(&"phase.side_effects_started".to_owned())
    );
    assert_eq!(
        r.retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::AskUser
    );
}

/// A segment of `POD` (closed, dead owner) with one run `r1` started, ended by `terminal`.
fn home_with_terminal(terminal: &str) -> Home {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let mut log = pod.segment(SEG, dead_pid());
    log.run_started("r1", "x").request("r1").raw(terminal);
    home
}

fn has(list: &[String], fact: &str) -> bool {
    list.iter().any(|m| m == fact)
}

#[test]
fn interrupt_without_phase_is_interrupted_with_each_phase_fact_missing() {
    let home = home_with_terminal(
        "{\"seq\":4,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_interrupted\",\"run_id\":\"r1\",\"reason\":\"stopped\"}\n",
    );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert!(r.crash_evidence.is_none());
    assert_eq!(r.interrupt.as_ref().unwrap().reason, "stopped");
    let phase = r.phase.as_ref().unwrap();
    assert_eq!(phase.source, "recorded");
    assert_eq!(phase.provider_progress_seen, None);
    assert_eq!(phase.visible_output_seen, None);
    assert_eq!(phase.tool_execution, "unknown");
    assert_eq!(phase.side_effects_started, None);
    for fact in [
        "phase.provider_progress_seen",
        "phase.visible_output_seen",
        "phase.tool_execution",
        "phase.side_effects_started",
    ] {
        assert!(
            has(&r.missing_provenance, fact),
            "{fact}: {:?}",
            r.missing_provenance
        );
    }
    assert_eq!(
        r.retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::AskUser
    );
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(log.unparseable_count, 0);
    assert_eq!(log.entries, 4);
    assert!(!doc.incidents[0].diagnostics_complete);
}

#[test]
fn interrupt_lacking_one_phase_flag_keeps_the_others() {
    let home = home_with_terminal(
        "{\"seq\":4,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_interrupted\",\"run_id\":\"r1\",\"reason\":\"cancelled\",\"phase\":{\"provider_progress_seen\":true,\"tool_execution\":\"not_started\",\"side_effects_started\":[]}}\n",
    );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Interrupted);
    let phase = r.phase.as_ref().unwrap();
    assert_eq!(phase.provider_progress_seen, Some(true));
    assert_eq!(phase.visible_output_seen, None);
    assert_eq!(phase.tool_execution, "not_started");
    assert_eq!(phase.side_effects_started, Some(vec![]));
    assert!(has(&r.missing_provenance, "phase.visible_output_seen"));
    assert!(!has(&r.missing_provenance, "phase.provider_progress_seen"));
    assert!(!has(&r.missing_provenance, "phase.tool_execution"));
    let safety = r.retry_safety.as_ref().unwrap();
    assert_eq!(safety.verdict, RetryVerdict::AskUser);
    assert!(
        safety.reason.contains("does not record"),
        "{}",
        safety.reason
    );
}

#[test]
fn provider_error_without_retryable_reports_it_missing() {
    let home = home_with_terminal(
        "{\"seq\":4,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_errored\",\"run_id\":\"r1\",\"error\":{\"class\":\"rate_limited\",\"code\":\"rate_limit_exceeded\",\"http_status\":429,\"message\":\"slow down\"},\"phase\":{\"provider_progress_seen\":false,\"visible_output_seen\":false,\"tool_execution\":\"not_started\",\"side_effects_started\":[]}}\n",
    );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::ProviderError);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.class, "rate_limited");
    assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(e.http_status, Some(429));
    assert_eq!(e.retryable, None);
    assert_eq!(r.missing_provenance, ["error.retryable"]);
    assert_eq!(r.retry_safety.as_ref().unwrap().verdict, RetryVerdict::Safe);
    let incident = &doc.incidents[0];
    assert_eq!(incident.cause.category, "provider_error");
    assert!(!incident.diagnostics_complete);
}

#[test]
fn unparseable_terminal_line_is_said_on_the_run_not_turned_into_a_crash() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "x")
        .request("r1")
        .raw("{\"seq\":4,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_interrupted\",\"run_id\":\"r1\",\"reason\":\"stopped\",\"phase\":{\"provider_progress_seen\":fal\n")
        .skip_seq(1)
        .closed("stopped");
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert!(r.crash_evidence.is_none());
    let entry = r.unreadable_terminal.as_ref().unwrap();
    assert_eq!(entry.line, 4);
    assert_eq!(entry.kind, "run_interrupted");
    assert!(!entry.torn);
    assert!(!entry.error.contains("fal"), "{}", entry.error);
    for fact in ["terminal_entry", "interrupt.action", "interrupt.origin"] {
        assert!(
            has(&r.missing_provenance, fact),
            "{fact}: {:?}",
            r.missing_provenance
        );
    }
    assert_eq!(r.phase.as_ref().unwrap().source, "derived");
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(log.unparseable_lines, [4]);
    let incident = &doc.incidents[0];
    assert_eq!(incident.cause.category, "interrupted");
    assert!(incident.summary.contains("line 4"), "{}", incident.summary);
    assert!(
        !incident.summary.contains("no terminal entry"),
        "{}",
        incident.summary
    );
    assert!(!incident.diagnostics_complete);
}

#[test]
fn torn_final_terminal_line_is_a_terminal_entry_cut_off_while_written() {
    let home = home_with_terminal(
        "{\"seq\":4,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"run_errored\",\"run_id\":\"r1\",\"error\":{\"cla",
    );
    let doc = export_pod(home.path(), POD, false, false);
    let r = run(&doc, "r1");
    assert_eq!(r.outcome, Outcome::ProviderError);
    assert!(r.crash_evidence.is_none());
    assert!(r.unreadable_terminal.as_ref().unwrap().torn);
    assert!(has(&r.missing_provenance, "error"));
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert!(log.torn_final_line);
    assert_eq!(log.unparseable_count, 0);
    let summary = &doc.incidents[0].summary;
    assert!(summary.contains("cut off"), "{summary}");
}

#[test]
fn sanitized_export_holds_no_prompt_output_tool_input_message_or_path() {
    let home = cascade_home();
    let pod = home.pod("0193a000-0000-7000-8000-000000000009", "solo", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "PROMPT-please refactor the billing module")
        .request("r1")
        .message("r1", "OUTPUT-I will refactor it now")
        .tool_started("r1", "c1", "write_file", SideEffectClass::LocalWrite, serde_json::json!({"path": "/home/alice/project/billing.rs", "content": "TOOLINPUT-fn main"}));
    let pod2 = home.pod("0193a000-0000-7000-8000-00000000000a", "solo2", None);
    pod2.segment(SEG, dead_pid())
        .run_started("r2", "PROMPT-please refactor the billing module")
        .completed("r2", "OUTPUT-final answer")
        .run_started("r3", "PROMPT-x")
        .errored(
            "r3",
            ErrorClass::ContextLengthExceeded,
            "context_length_exceeded",
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let mut all = Vec::new();
    for id in [
        POD,
        "0193a000-0000-7000-8000-000000000009",
        "0193a000-0000-7000-8000-00000000000a",
    ] {
        let mut doc = export_pod(home.path(), id, true, true);
        for format in [Format::Json, Format::Markdown] {
            let bytes = render_checked(&mut doc, format, &[]).unwrap();
            all.push((doc.clone(), String::from_utf8(bytes).unwrap()));
        }
    }
    for (doc, text) in &all {
        for forbidden in [
            "PROMPT-",
            "OUTPUT-",
            "TOOLINPUT-",
            "/home/alice",
            "billing",
            "maximum context",
            "cleanup of",
            "Be terse",
            "/secret/cassettes",
            "debug.toml",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} leaked:\n{text}");
        }
        assert_eq!(
            doc.redaction.mode,
            pod_export::document::RedactionMode::Sanitized
        );
    }
    let (doc, text) = &all[2];
    // Ids, classes, codes and tool names stay.
    assert!(text.contains("write_file"));
    assert!(text.contains("0193a000-0000-7000-8000-000000000009"));
    let r = run(doc, "r1");
    assert!(r.input.as_deref().unwrap().starts_with("[redacted:prompt:"));
    assert!(
        r.tools_in_flight[0]
            .input
            .as_str()
            .unwrap()
            .starts_with("[redacted:tool_input:")
    );
    assert!(doc.redaction.replaced["prompt"] >= 1);
    let scope = &doc.pods[0].manifest.as_ref().unwrap()["scope"]["allow"][0];
    assert!(scope.as_str().unwrap().starts_with("[redacted:path:"));
    // The same prompt gets the same placeholder within one document.
    let (doc, _) = &all[4];
    let e = run(doc, "r3").error.as_ref().unwrap();
    assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
    assert!(
        e.message
            .as_deref()
            .unwrap()
            .starts_with("[redacted:error_message:")
    );
    let (doc, _) = &all[0];
    let child_inputs = ["rc1", "rc2"].map(|r| run(doc, r).input.clone());
    assert_eq!(child_inputs[0], child_inputs[1]);
}

#[test]
fn unsanitized_export_keeps_content_and_paths() {
    let home = cascade_home();
    let mut doc = export_pod(home.path(), POD, true, false);
    let text = String::from_utf8(render_checked(&mut doc, Format::Json, &[]).unwrap()).unwrap();
    assert!(text.contains("/home/alice/project"));
    assert!(text.contains("coordinate"));
    assert!(text.contains("\"mode\": \"secrets_only\""));
}

#[test]
fn export_refuses_a_document_that_contains_a_configured_secret() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.segment(SEG, dead_pid())
        .run_started("r1", "my key is sk-live-0123456789abcdef, use it")
        .completed("r1", "ok");
    let mut doc = export_pod(home.path(), POD, false, false);
    let names = pod_export::key_env_names(&doc);
    assert!(names.contains(&"TEST_POD_KEY".to_owned()));
    assert!(names.contains(&"OPENAI_API_KEY".to_owned()));
    let secrets = pod_export::secrets_from(&names, |name| {
        (name == "TEST_POD_KEY").then(|| "sk-live-0123456789abcdef".to_owned())
    });
    let err = render_checked(&mut doc, Format::Json, &secrets).unwrap_err();
    assert!(matches!(&err, ExportError::SecretInOutput { env_var } if env_var == "TEST_POD_KEY"));
    assert!(!err.to_string().contains("sk-live"));
    // Sanitizing removes the prompt, so the sanitized document passes, and says what it checked.
    let mut clean = export_pod(home.path(), POD, false, true);
    let bytes = render_checked(&mut clean, Format::Json, &secrets).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        value["redaction"]["secrets_checked"],
        serde_json::json!(["TEST_POD_KEY"])
    );
    let _ = Secret::new(String::new(), String::new());
}

#[test]
fn pods_are_found_by_id_prefix_or_name_and_bad_queries_are_errors() {
    let home = cascade_home();
    let by_name = export_pod(home.path(), "parent", false, false);
    assert_eq!(by_name.root_pod_id, POD);
    let single = Home::new();
    single.pod(POD, "alpha", None);
    let by_prefix = export_pod(single.path(), "0193a000", false, false);
    assert_eq!(by_prefix.root_pod_id, POD);
    let request = |pod: &str| ExportRequest {
        home: home.path().to_path_buf(),
        pod: pod.to_owned(),
        tree: false,
        sanitize: false,
    };
    // A shared name stands for the newest pod that has it (ids are time-ordered).
    let newest = export(&request("child"), &mut |_| {}).unwrap();
    assert_eq!(newest.root_pod_id, CHILD.max(CHILD2));
    assert!(matches!(
        export(&request("0193a000"), &mut |_| {}),
        Err(ExportError::AmbiguousPod { .. })
    ));
    assert!(matches!(
        export(&request("nope"), &mut |_| {}),
        Err(ExportError::PodNotFound { .. })
    ));
    let missing = ExportRequest {
        home: home.path().join("elsewhere"),
        ..request("parent")
    };
    assert!(matches!(
        export(&missing, &mut |_| {}),
        Err(ExportError::NoPodsDir { .. })
    ));
}

#[test]
fn bad_pod_json_is_an_error_naming_the_file() {
    let home = Home::new();
    home.pod(POD, "alpha", None);
    std::fs::write(
        home.path().join("pods").join(POD).join("pod.json"),
        "{not json",
    )
    .unwrap();
    let request = ExportRequest {
        home: home.path().to_path_buf(),
        pod: POD.to_owned(),
        tree: false,
        sanitize: false,
    };
    let err = export(&request, &mut |_| {}).unwrap_err();
    assert!(matches!(&err, ExportError::BadPodJson { path, .. } if path.ends_with("pod.json")));
    assert!(err.to_string().contains(POD));
}

#[test]
fn an_unreadable_pod_elsewhere_is_listed_not_fatal() {
    let home = cascade_home();
    std::fs::write(
        home.path().join("pods").join(CHILD2).join("pod.json"),
        "[1, 2",
    )
    .unwrap();
    let mut doc = export_pod(home.path(), POD, true, false);
    assert_eq!(doc.pods.len(), 2);
    assert_eq!(doc.unreadable_pods.len(), 1);
    assert_eq!(doc.unreadable_pods[0].dir, CHILD2);
    let text = String::from_utf8(render_checked(&mut doc, Format::Markdown, &[]).unwrap()).unwrap();
    assert!(text.contains("## Unreadable pods"), "{text}");
}

#[test]
fn pod_without_manifest_or_logs_says_what_is_missing() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    std::fs::remove_file(pod.dir.join("manifest.toml")).unwrap();
    std::fs::remove_file(pod.dir.join("provenance.json")).unwrap();
    let doc = export_pod(home.path(), POD, false, false);
    assert_eq!(doc.pods[0].missing, ["manifest.toml", "provenance.json"]);
    assert!(doc.pods[0].manifest.is_none());
    assert!(doc.pods[0].runs.is_empty());
}

#[test]
fn progress_reports_pods_and_logs() {
    let home = cascade_home();
    let mut seen = Vec::new();
    let request = ExportRequest {
        home: home.path().to_path_buf(),
        pod: POD.to_owned(),
        tree: true,
        sanitize: false,
    };
    export(&request, &mut |p| seen.push(p)).unwrap();
    assert_eq!(seen[0], Progress::Pods { total: 3 });
    assert_eq!(
        seen.iter()
            .filter(|p| matches!(p, Progress::LogScanned { .. }))
            .count(),
        3
    );
}

/// Replace `pod`'s log of `segment` with a directory of the same name: a log no read succeeds on.
fn make_log_unreadable(home: &Home, pod: &str, segment: &str) -> std::path::PathBuf {
    let path = home
        .path()
        .join("pods")
        .join(pod)
        .join("sessions")
        .join(format!("{segment}.jsonl"));
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    path
}

#[test]
fn an_unreadable_log_is_recorded_in_integrity_and_the_rest_is_exported() {
    let home = cascade_home();
    make_log_unreadable(&home, POD, SEG);
    let mut seen = Vec::new();
    let request = ExportRequest {
        home: home.path().to_path_buf(),
        pod: POD.to_owned(),
        tree: true,
        sanitize: false,
    };
    let mut doc = export(&request, &mut |p| seen.push(p)).unwrap();
    let integrity = doc.integrity.as_ref().unwrap();
    assert_eq!(integrity.len(), 3);
    let bad = integrity.iter().find(|l| l.pod_id == POD).unwrap();
    assert_eq!(bad.log, format!("sessions/{SEG}.jsonl"));
    assert!(bad.read_error.is_some());
    assert_eq!(bad.entries, 0);
    assert!(
        integrity
            .iter()
            .filter(|l| l.pod_id != POD)
            .all(|l| l.read_error.is_none() && l.entries == 3)
    );
    assert!(doc.pods[0].runs.is_empty());
    assert_eq!(doc.pods[0].segments.len(), 1);
    assert_eq!(run(&doc, "rc1").outcome, Outcome::Interrupted);
    assert!(seen.iter().any(|p| matches!(
        p,
        Progress::LogUnreadable { pod_id, .. } if pod_id == POD
    )));
    // The parent's action is in no log that could be read: the cascade says so.
    let incident = doc.incidents.iter().find(|i| i.run_id == "rc1").unwrap();
    assert!(matches!(
        incident.chain.last(),
        Some(ChainLink::Unresolved { action_id, .. }) if action_id == "act-parent"
    ));
    let text = String::from_utf8(render_checked(&mut doc, Format::Markdown, &[]).unwrap()).unwrap();
    assert!(text.contains("| read |"), "{text}");
}

#[test]
fn an_ancestor_log_read_only_for_cascade_links_does_not_stop_the_export() {
    let home = cascade_home();
    make_log_unreadable(&home, POD, SEG);
    let doc = export_pod(home.path(), CHILD, false, false);
    assert_eq!(doc.pods.len(), 1);
    assert_eq!(doc.pods[0].ancestors, [POD]);
    let integrity = doc.integrity.as_ref().unwrap();
    let ancestor = integrity.iter().find(|l| l.pod_id == POD).unwrap();
    assert!(ancestor.read_error.is_some());
    let incident = &doc.incidents[0];
    assert!(has(
        &incident.missing_provenance,
        "interrupt.caused_by.action"
    ));
    assert!(!incident.diagnostics_complete);
}

#[test]
fn a_sessions_path_that_is_not_a_directory_is_recorded_not_fatal() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    std::fs::remove_dir(pod.dir.join("sessions")).unwrap();
    std::fs::write(pod.dir.join("sessions"), "not a directory").unwrap();
    let doc = export_pod(home.path(), POD, false, false);
    let integrity = doc.integrity.as_ref().unwrap();
    assert_eq!(integrity.len(), 1);
    assert_eq!(integrity[0].log, "sessions");
    assert!(integrity[0].read_error.is_some());
    // A pod with no sessions directory at all simply has no logs.
    std::fs::remove_file(pod.dir.join("sessions")).unwrap();
    let doc = export_pod(home.path(), POD, false, false);
    assert!(doc.integrity.as_ref().unwrap().is_empty());
}

#[test]
fn markdown_report_has_tree_incident_summaries_chains_and_runs() {
    let home = cascade_home();
    let mut doc = export_pod(home.path(), POD, true, false);
    let text = String::from_utf8(render_checked(&mut doc, Format::Markdown, &[]).unwrap()).unwrap();
    assert!(text.contains("## Pods"));
    assert!(text.contains(&format!("  - child `{CHILD}`")), "{text}");
    for incident in &doc.incidents {
        assert!(text.contains(&incident.summary));
    }
    assert!(text.contains("origin: the command line (request req-tree)"));
    assert!(text.contains("| `rc1` |"));
    assert!(
        !text.contains("Below `"),
        "a root export has no ancestors line"
    );

    // A child exported alone says where it sits.
    let mut doc = export_pod(home.path(), CHILD, false, false);
    let text = String::from_utf8(render_checked(&mut doc, Format::Markdown, &[]).unwrap()).unwrap();
    assert!(
        text.contains(&format!("Below `{POD}` (ancestors, root first")),
        "{text}"
    );
}

fn link_name(link: &ChainLink) -> &'static str {
    match link {
        ChainLink::Run { .. } => "run",
        ChainLink::ProviderError { .. } => "provider_error",
        ChainLink::Interrupt { .. } => "interrupt",
        ChainLink::LifecycleAction { .. } => "lifecycle_action",
        ChainLink::Origin { .. } => "origin",
        ChainLink::Request { .. } => "request",
        ChainLink::Unresolved { .. } => "unresolved",
        ChainLink::CrashEvidence { .. } => "crash_evidence",
    }
}

#[test]
fn pod_state_from_pod_json_is_reported() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    pod.set_pid(dead_pid(), PodState::Failed);
    let doc = export_pod(home.path(), POD, false, false);
    assert_eq!(doc.pods[0].state.as_deref(), Some("failed"));
}

// ---------------------------------------------------------------------------------------------
// Format versions: a pod home written in session-log format 1 and export documents of schema 1
// and 2, committed under tests/fixtures and read by every build.

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

const FIX_PARENT: &str = "0193a100-0000-7000-8000-000000000101";
const FIX_CHILD: &str = "0193a100-0000-7000-8000-000000000102";
const FIX_CRASHED: &str = "0193a100-0000-7000-8000-000000000103";
/// Pids above the kernel's pid_max (at most 2^22) never belong to a live process.
const FIX_DEAD_PID: u32 = 2_147_483_000;

/// Build the log-format-1 fixture home at `root`.
fn write_home_v1(root: &Path) {
    let home = Home::at(root);
    let parent = home.pod(FIX_PARENT, "fixture-parent", None);
    let tree_stop = action(
        "0193a100-0000-7000-8000-0000000a0001",
        LifecycleKind::StopTree,
        &[FIX_PARENT, FIX_CHILD, FIX_CRASHED],
        cli_origin("0193a100-0000-7000-8000-0000000f0001"),
    );
    parent
        .segment("0193a100-0000-7000-8000-0000000b0001", FIX_DEAD_PID)
        .run_started("run-p1", "list the files")
        .request("run-p1")
        .tool_started(
            "run-p1",
            "call-1",
            "list_dir",
            SideEffectClass::ReadOnly,
            serde_json::json!({"path": "."}),
        )
        .tool_finished(
            "run-p1",
            "call-1",
            "list_dir",
            SideEffectClass::ReadOnly,
            "a.txt",
        )
        .message("run-p1", "There is one file.")
        .completed("run-p1", "There is one file.")
        .run_started("run-p2", "spawn a reviewer")
        .request("run-p2")
        .action(tree_stop.clone(), Some("run-p2"))
        .interrupted(
            "run-p2",
            "stopped",
            Some(tree_stop),
            phase(
                false,
                ToolExecutionPhase::Completed,
                &[SideEffectClass::Spawn],
            ),
        )
        .closed("stopped");
    let child = home.pod(FIX_CHILD, "fixture-child", Some(FIX_PARENT));
    let mut cascaded = action(
        "0193a100-0000-7000-8000-0000000a0002",
        LifecycleKind::StopTree,
        &[FIX_CHILD],
        Origin::ParentPod {
            parent_pod_id: FIX_PARENT.into(),
            tool_call_id: "call-stop".into(),
        },
    );
    cascaded.caused_by = Some(CausedBy {
        pod_id: FIX_PARENT.into(),
        action_id: "0193a100-0000-7000-8000-0000000a0001".into(),
        kind: LifecycleKind::StopTree,
    });
    child
        .segment("0193a100-0000-7000-8000-0000000b0002", FIX_DEAD_PID)
        .run_started("run-c1", "review the diff")
        .request("run-c1")
        .message("run-c1", "Reviewing")
        .errored(
            "run-c1",
            ErrorClass::ContextLengthExceeded,
            "context_length_exceeded",
            phase(true, ToolExecutionPhase::NotStarted, &[]),
        )
        .run_started("run-c2", "review again")
        .request("run-c2")
        .action(cascaded.clone(), Some("run-c2"))
        .interrupted(
            "run-c2",
            "stopped",
            Some(cascaded),
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        )
        .closed("stopped");
    std::fs::write(
        child
            .dir
            .join("sessions/0193a100-0000-7000-8000-0000000b0002.trace.jsonl"),
        "",
    )
    .unwrap();
    let crashed = home.pod(FIX_CRASHED, "fixture-crashed", Some(FIX_PARENT));
    crashed
        .segment("0193a100-0000-7000-8000-0000000b0003", FIX_DEAD_PID)
        .run_started("run-x1", "write the report")
        .request("run-x1")
        .tool_started(
            "run-x1",
            "call-w",
            "write_file",
            SideEffectClass::LocalWrite,
            serde_json::json!({"path": "report.md", "content": "draft"}),
        )
        .raw("{\"seq\":5,\"ts\":\"2026-11-23T01:02:03.456Z\",\"kind\":\"tool_call_fin");
}

/// Regenerate the fixtures (only when a format version is added):
/// `PODS_REGENERATE_FIXTURES=1 cargo test -p pod-export --test export -- --ignored`.
#[test]
#[ignore = "writes committed fixtures"]
fn regenerate_fixtures() {
    if std::env::var_os("PODS_REGENERATE_FIXTURES").is_none() {
        return;
    }
    let home = fixtures().join("home-v1");
    let _ = std::fs::remove_dir_all(&home);
    write_home_v1(&home);
    let mut doc = export_pod(&home, FIX_PARENT, true, false);
    doc.exported_at = "2026-11-23T02:00:00.000Z".to_owned();
    let bytes = render_checked(&mut doc, Format::Json, &[]).unwrap();
    let name = format!("documents/schema-{}.json", pod_export::SCHEMA_VERSION);
    std::fs::write(fixtures().join(name), bytes).unwrap();
}

#[test]
fn log_format_1_home_exports_every_situation() {
    let doc = export_pod(&fixtures().join("home-v1"), FIX_PARENT, true, false);
    assert_eq!(doc.pods.len(), 3);
    assert!(
        doc.pods
            .iter()
            .all(|p| p.segments[0].format_version == Some(1))
    );
    assert_eq!(run(&doc, "run-p1").outcome, Outcome::Completed);
    assert_eq!(
        run(&doc, "run-p1").retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::AskUser
    );
    assert_eq!(run(&doc, "run-p2").outcome, Outcome::Interrupted);
    assert_eq!(
        run(&doc, "run-p2").retry_safety.as_ref().unwrap().verdict,
        RetryVerdict::Unsafe
    );
    assert_eq!(run(&doc, "run-c1").outcome, Outcome::ProviderError);
    assert_eq!(run(&doc, "run-c2").outcome, Outcome::Interrupted);
    let crashed = run(&doc, "run-x1");
    assert_eq!(crashed.outcome, Outcome::Crashed);
    assert!(crashed.crash_evidence.as_ref().unwrap().torn_tail);
    let cascade = doc.incidents.iter().find(|i| i.run_id == "run-c2").unwrap();
    assert!(matches!(cascade.root_origin, Some(OriginDoc::Cli { .. })));
    assert!(cascade.diagnostics_complete);
    let torn = doc
        .integrity
        .as_ref()
        .unwrap()
        .iter()
        .find(|l| l.pod_id == FIX_CRASHED)
        .unwrap();
    assert!(torn.torn_final_line);
}

const FIX_PARTIAL: &str = "0193a200-0000-7000-8000-000000000201";

#[test]
fn terminal_entries_lacking_later_fields_export_with_the_gaps_named_not_as_crashes() {
    let doc = export_pod(
        &fixtures().join("home-v1-partial"),
        FIX_PARTIAL,
        false,
        false,
    );
    let runs = &doc.pods[0].runs;
    assert_eq!(runs.len(), 5);
    assert!(
        runs.iter().all(|r| r.outcome != Outcome::Crashed),
        "{:#?}",
        runs.iter()
            .map(|r| (&r.run_id, r.outcome))
            .collect::<Vec<_>>()
    );
    let no_phase = run(&doc, "r-no-phase");
    assert_eq!(no_phase.outcome, Outcome::Interrupted);
    assert!(has(
        &no_phase.missing_provenance,
        "phase.visible_output_seen"
    ));
    assert!(has(&no_phase.missing_provenance, "interrupt.action"));
    let no_visible = run(&doc, "r-no-visible");
    assert_eq!(no_visible.outcome, Outcome::Interrupted);
    assert_eq!(
        no_visible.missing_provenance,
        [
            "phase.visible_output_seen",
            "interrupt.action",
            "interrupt.origin"
        ]
    );
    let no_retryable = run(&doc, "r-no-retryable");
    assert_eq!(no_retryable.outcome, Outcome::ProviderError);
    assert_eq!(no_retryable.missing_provenance, ["error.retryable"]);
    let bare = run(&doc, "r-bare-error");
    assert_eq!(bare.outcome, Outcome::ProviderError);
    assert_eq!(bare.error.as_ref().unwrap().class, "server_error");
    assert_eq!(bare.error.as_ref().unwrap().http_status, Some(500));
    for fact in [
        "error.retryable",
        "error.message",
        "phase.side_effects_started",
    ] {
        assert!(has(&bare.missing_provenance, fact), "{fact}");
    }
    let garbled = run(&doc, "r-garbled");
    assert_eq!(garbled.outcome, Outcome::Interrupted);
    assert_eq!(garbled.unreadable_terminal.as_ref().unwrap().line, 15);
    let log = &doc.integrity.as_ref().unwrap()[0];
    assert_eq!(log.unparseable_lines, [15]);
    assert_eq!(log.entries, 15);
    assert_eq!(log.sequence_gap_count, 1);
    assert_eq!(doc.incidents.len(), 5);
    assert!(doc.incidents.iter().all(|i| !i.diagnostics_complete));
}

/// Everything but the time of export and the tool version, which change with every build.
fn comparable(mut value: serde_json::Value) -> serde_json::Value {
    value["exported_at"] = serde_json::Value::Null;
    value["tool"]["version"] = serde_json::Value::Null;
    value
}

#[test]
fn schema_4_fixture_matches_a_fresh_export_of_the_same_home() {
    let mut doc = export_pod(&fixtures().join("home-v1"), FIX_PARENT, true, false);
    let fresh: serde_json::Value =
        serde_json::from_slice(&render_checked(&mut doc, Format::Json, &[]).unwrap()).unwrap();
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("documents/schema-4.json")).unwrap())
            .unwrap();
    assert_eq!(comparable(fresh), comparable(committed));
}

#[test]
fn schema_4_document_upgrades_to_itself() {
    let path = fixtures().join("documents/schema-4.json");
    let bytes = std::fs::read(&path).unwrap();
    let mut doc = pod_export::upgrade(&bytes, &path).unwrap();
    assert_eq!(doc.upgraded_from, None);
    let again = render_checked(&mut doc, Format::Json, &[]).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again).unwrap(),
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    );
}

/// Remove what schema 4 adds to every run of `doc`, checking that an upgraded document says it
/// is unknown (null) rather than inventing it.
fn strip_schema_4_run_fields(doc: &mut serde_json::Value) {
    for pod in doc["pods"].as_array_mut().unwrap() {
        for run in pod["runs"].as_array_mut().unwrap() {
            let run = run.as_object_mut().unwrap();
            for key in [
                "stop_reason",
                "stop_raw",
                "stop_statement",
                "truncated",
                "usage",
                "unhandled_events",
                "tool_calls_rejected",
            ] {
                assert_eq!(run.remove(key), Some(serde_json::Value::Null), "{key}");
            }
        }
    }
}

#[test]
fn schema_3_document_upgrades_to_schema_4_with_the_new_facts_unknown() {
    let path = fixtures().join("documents/schema-3.json");
    let bytes = std::fs::read(&path).unwrap();
    let mut doc = pod_export::upgrade(&bytes, &path).unwrap();
    assert_eq!(doc.schema_version, 4);
    assert_eq!(doc.upgraded_from, Some(3));
    let mut upgraded: serde_json::Value =
        serde_json::from_slice(&render_checked(&mut doc, Format::Json, &[]).unwrap()).unwrap();
    let obj = upgraded.as_object_mut().unwrap();
    assert_eq!(obj.remove("upgraded_from"), Some(serde_json::json!(3)));
    upgraded["schema_version"] = serde_json::json!(3);
    strip_schema_4_run_fields(&mut upgraded);
    assert_eq!(
        upgraded,
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    );
}

#[test]
fn schema_2_document_upgrades_to_schema_4_marked_as_upgraded() {
    let path = fixtures().join("documents/schema-2.json");
    let bytes = std::fs::read(&path).unwrap();
    let mut doc = pod_export::upgrade(&bytes, &path).unwrap();
    assert_eq!(doc.schema_version, 4);
    assert_eq!(doc.upgraded_from, Some(2));
    let mut upgraded: serde_json::Value =
        serde_json::from_slice(&render_checked(&mut doc, Format::Json, &[]).unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // Schemas 3 and 4 add only fields a schema-2 exporter never had reason to write.
    let obj = upgraded.as_object_mut().unwrap();
    assert_eq!(obj.remove("upgraded_from"), Some(serde_json::json!(2)));
    upgraded["schema_version"] = serde_json::json!(2);
    strip_schema_4_run_fields(&mut upgraded);
    // Schema 2 copied tool inputs whole: their length is that of their JSON text.
    let mut calls = 0;
    for pod in upgraded["pods"].as_array_mut().unwrap() {
        for run in pod["runs"].as_array_mut().unwrap() {
            for call in run["tools_in_flight"].as_array_mut().unwrap() {
                let call = call.as_object_mut().unwrap();
                let bytes = call.remove("input_bytes").unwrap();
                assert_eq!(bytes, call["input"].to_string().len());
                assert_eq!(call.remove("input_truncated").unwrap(), false);
                calls += 1;
            }
        }
    }
    assert_eq!(calls, 1);
    // A schema-2 exporter stopped at the first unreadable log: every log listed was read.
    for log in upgraded["integrity"].as_array_mut().unwrap() {
        let log = log.as_object_mut().unwrap();
        assert_eq!(log.remove("read_error"), Some(serde_json::Value::Null));
    }
    assert_eq!(upgraded, original);
}

#[test]
fn schema_1_document_upgrades_with_missing_facts_labelled() {
    let path = fixtures().join("documents/schema-1.json");
    let mut doc = pod_export::upgrade(&std::fs::read(&path).unwrap(), &path).unwrap();
    assert_eq!(doc.schema_version, 4);
    assert_eq!(doc.upgraded_from, Some(1));
    assert!(doc.integrity.is_none());
    assert_eq!(
        doc.redaction.mode,
        pod_export::document::RedactionMode::Unknown
    );
    let child = &doc.pods[1];
    assert_eq!(child.ancestors, ["0193a0ff-0000-7000-8000-000000000001"]);
    assert!(child.missing.contains(&"manifest".to_owned()));
    let errored = run(&doc, "run-old-2");
    assert_eq!(errored.outcome, Outcome::ProviderError);
    assert_eq!(errored.error.as_ref().unwrap().class, "rate_limited");
    assert!(errored.phase.is_none());
    assert!(errored.retry_safety.is_none());
    assert!(errored.provider_requests.is_none());
    assert!(errored.missing_provenance.contains(&"phase".to_owned()));
    let stopped = run(&doc, "run-old-3");
    assert!(
        stopped
            .missing_provenance
            .contains(&"interrupt.action.caused_by".to_owned())
    );
    let incident = doc
        .incidents
        .iter()
        .find(|i| i.run_id == "run-old-3")
        .unwrap();
    assert!(!incident.diagnostics_complete);
    assert!(matches!(
        incident.nearest_origin,
        Some(OriginDoc::Signal { ref signal }) if signal == "SIGTERM"
    ));
    let crashed = doc
        .incidents
        .iter()
        .find(|i| i.run_id == "run-old-4")
        .unwrap();
    assert!(
        crashed
            .missing_provenance
            .contains(&"crash_evidence".to_owned())
    );
    // The upgraded document renders in both formats.
    render_checked(&mut doc, Format::Markdown, &[]).unwrap();
}

#[test]
fn unknown_schema_and_foreign_json_are_refused() {
    let path = Path::new("doc.json");
    let newer = br#"{"format":"pods.session-export","schema_version":99}"#;
    assert!(matches!(
        pod_export::upgrade(newer, path),
        Err(ExportError::UnknownSchema { found: 99, .. })
    ));
    let foreign = br#"{"format":"something-else","schema_version":1}"#;
    assert!(matches!(
        pod_export::upgrade(foreign, path),
        Err(ExportError::WrongFormat { .. })
    ));
    let err = pod_export::upgrade(b"not json", path).unwrap_err();
    assert!(matches!(err, ExportError::NotADocument { .. }));
    assert!(err.to_string().contains("doc.json"));
}

#[test]
fn parent_exit_without_a_recorded_cause_is_incomplete() {
    let home = Home::new();
    home.pod(POD, "parent", None)
        .segment(SEG, dead_pid())
        .run_started("rp", "x");
    let child = home.pod(CHILD, "child", Some(POD));
    let a = action(
        "act-exit",
        LifecycleKind::ParentExit,
        &[CHILD],
        Origin::Runtime {
            detail: "parent process exited".into(),
        },
    );
    child
        .segment(SEG2, dead_pid())
        .run_started("rc", "y")
        .interrupted(
            "rc",
            "parent exited",
            Some(a),
            phase(false, ToolExecutionPhase::NotStarted, &[]),
        );
    let doc = export_pod(home.path(), POD, true, false);
    assert_eq!(run(&doc, "rp").outcome, Outcome::Crashed);
    let incident = doc.incidents.iter().find(|i| i.run_id == "rc").unwrap();
    assert_eq!(incident.missing_provenance, ["interrupt.parent_exit.cause"]);
    assert!(!incident.diagnostics_complete);
    assert!(matches!(
        incident.nearest_origin,
        Some(OriginDoc::Runtime { .. })
    ));
    assert!(
        incident.summary.contains("not recorded"),
        "{}",
        incident.summary
    );
}

#[test]
fn a_crashed_childs_evidence_includes_the_exit_its_parent_recorded() {
    let home = Home::new();
    home.pod(POD, "parent", None)
        .segment(SEG, dead_pid())
        .run_started("rp", "x")
        .child_exited(CHILD, Some(9), false)
        .completed("rp", "carried on");
    home.pod(CHILD, "child", Some(POD))
        .segment(SEG2, dead_pid())
        .run_started("rc", "y")
        .request("rc");
    for tree_root in [POD, CHILD] {
        let doc = export_pod(home.path(), tree_root, true, false);
        let r = run(&doc, "rc");
        assert_eq!(r.outcome, Outcome::Crashed);
        let exit = r
            .crash_evidence
            .as_ref()
            .unwrap()
            .exit_seen_by_parent
            .clone()
            .unwrap();
        assert_eq!(exit.signal, Some(9));
        assert!(!exit.expected);
        assert_eq!(exit.parent_pod_id, POD);
        let incident = doc.incidents.iter().find(|i| i.run_id == "rc").unwrap();
        assert!(
            incident.summary.contains("killed by signal 9"),
            "{}",
            incident.summary
        );
    }
}

/// `pod`'s export written as it is built, the way `pods export` writes it.
fn streamed(
    home: &Path,
    pod: &str,
    tree: bool,
    sanitize: bool,
    format: Format,
    secrets: &[Secret],
) -> Result<Vec<u8>, ExportError> {
    let request = ExportRequest {
        home: home.to_path_buf(),
        pod: pod.to_owned(),
        tree,
        sanitize,
    };
    let plan = pod_export::prepare(&request)?;
    let mut out = Vec::new();
    plan.write_to(format, secrets, &mut out, &mut |_| {})?;
    Ok(out)
}

#[test]
fn the_streamed_document_is_the_in_memory_one_byte_for_byte() {
    let cascade = cascade_home();
    let sparse = Home::new();
    sparse.pod(POD, "alpha", None);
    let child = sparse.pod(CHILD, "beta", Some(POD));
    child
        .segment(SEG, dead_pid())
        .run_started("r1", "first")
        .completed("r1", "ok")
        .run_started("r2", "second");
    child.segment(SEG2, dead_pid()).run_started("r3", "third");
    std::fs::create_dir_all(sparse.path().join("pods/broken")).unwrap();
    std::fs::write(sparse.path().join("pods/broken/pod.json"), "{").unwrap();
    let homes = [
        (fixtures().join("home-v1"), FIX_PARENT),
        (fixtures().join("home-v1-partial"), ""),
        (cascade.path().to_path_buf(), POD),
        (sparse.path().to_path_buf(), POD),
    ];
    for (home, pod) in homes {
        let pod = if pod.is_empty() {
            let dirs = std::fs::read_dir(home.join("pods")).unwrap();
            dirs.map(|d| d.unwrap().file_name().into_string().unwrap())
                .next()
                .unwrap()
        } else {
            pod.to_owned()
        };
        for sanitize in [false, true] {
            let what = format!("{} {pod} sanitize={sanitize}", home.display());
            let bytes = streamed(&home, &pod, true, sanitize, Format::Json, &[]).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let doc: ExportDocument = serde_json::from_str(&text).unwrap();
            // The same bytes as `render_json` of the same document …
            let mut again = Vec::new();
            pod_export::render_json(&doc, &mut again).unwrap();
            assert_eq!(String::from_utf8(again).unwrap(), text, "{what}");
            // … and the same document as the in-memory export, but for the time.
            let mut memory = export_pod(&home, &pod, true, sanitize);
            memory.exported_at = doc.exported_at.clone();
            assert_eq!(doc, memory, "{what}");
            // The Markdown report too.
            let markdown = streamed(&home, &pod, true, sanitize, Format::Markdown, &[]).unwrap();
            let markdown = String::from_utf8(markdown).unwrap();
            let at = markdown
                .split(", exported ")
                .nth(1)
                .and_then(|rest| rest.split(" by ").next())
                .unwrap();
            memory.exported_at = at.to_owned();
            let mut expected = Vec::new();
            pod_export::render_markdown_with_logs(&memory, &home, &mut expected).unwrap();
            assert_eq!(String::from_utf8(expected).unwrap(), markdown, "{what}");
        }
    }
}

#[test]
fn a_streamed_export_holding_a_secret_reaches_neither_the_file_nor_stdout() {
    let home = Home::new();
    let pod = home.pod(POD, "alpha", None);
    let mut log = pod.segment(SEG, dead_pid());
    // Far more than one checked chunk of document before the secret.
    for i in 0..5000 {
        let run = format!("r{i}");
        log.run_started(&run, "an ordinary prompt")
            .completed(&run, "ok");
    }
    // In the prompt (JSON) and, as a careless writer might have put it, in the run id (which
    // the Markdown report shows).
    log.run_started(
        "sk-live-0123456789abcdef",
        "my key is sk-live-0123456789abcdef",
    )
    .completed("sk-live-0123456789abcdef", "ok");
    let secrets = [Secret::new("TEST_POD_KEY", "sk-live-0123456789abcdef")];
    let request = ExportRequest {
        home: home.path().to_path_buf(),
        pod: POD.to_owned(),
        tree: false,
        sanitize: false,
    };
    let out_dir = tempfile::tempdir().unwrap();
    let path = out_dir.path().join("export.json");
    for format in [Format::Json, Format::Markdown] {
        let plan = pod_export::prepare(&request).unwrap();
        let err = pod_export::write_file_atomically(&path, |out| {
            plan.write_to(format, &secrets, out, &mut |_| {})
        })
        .unwrap_err();
        assert!(
            matches!(&err, ExportError::SecretInOutput { env_var } if env_var == "TEST_POD_KEY")
        );
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
        let mut stdout = Vec::new();
        let plan = pod_export::prepare(&request).unwrap();
        let err = pod_export::write_stdout_checked(&mut stdout, |out| {
            plan.write_to(format, &secrets, out, &mut |_| {})
        })
        .unwrap_err();
        assert!(matches!(err, ExportError::SecretInOutput { .. }));
        assert!(stdout.is_empty());
    }
    // Checked for another value, the file is written whole, and says what was checked.
    let secrets = [Secret::new("TEST_POD_KEY", "sk-other-0123456789abcdef")];
    let plan = pod_export::prepare(&request).unwrap();
    let stats = pod_export::write_file_atomically(&path, |out| {
        plan.write_to(Format::Json, &secrets, out, &mut |_| {})
    })
    .unwrap();
    assert_eq!(stats.runs, 5001);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(stats.bytes, bytes.len() as u64);
    let doc: ExportDocument = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc.pods[0].runs.len(), 5001);
    assert_eq!(doc.redaction.secrets_checked, ["TEST_POD_KEY"]);
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 1);
}
