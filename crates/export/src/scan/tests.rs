use super::*;

fn entry(seq: u64, body: pod_protocol::record::LogBody) -> String {
    let entry = LogEntry {
        seq,
        ts: "2026-11-23T01:02:03.456Z".into(),
        body,
    };
    serde_json::to_string(&entry).unwrap() + "\n"
}

fn started(run_id: &str) -> pod_protocol::record::LogBody {
    pod_protocol::record::LogBody::RunStarted(pod_protocol::record::RunStarted {
        run_id: run_id.into(),
        trigger: RunTrigger::Cli,
        request_id: None,
        input: "hi".into(),
        traceparent: None,
    })
}

fn completed(run_id: &str) -> pod_protocol::record::LogBody {
    pod_protocol::record::LogBody::RunCompleted(pod_protocol::record::RunCompleted {
        run_id: run_id.into(),
        turns: 1,
        text: "done".into(),
        reason: "end_turn".into(),
        stop_reason: Some(pod_protocol::record::StopReason::EndTurn),
    })
}

/// Scan `log`; returns the runs in the order handed out, each with the number of lines read
/// when it was, and the runs left open at the end.
fn scan_text(log: &str) -> (Vec<(String, u64)>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, log).unwrap();
    let mut handed = Vec::new();
    let scan = scan_segment::<()>(
        "p",
        &path,
        "s".into(),
        "s".into(),
        false,
        false,
        &mut |seg, run| {
            handed.push((run.run_id, seg.integrity.lines));
            Ok(())
        },
    )
    .unwrap();
    (handed, scan.runs.into_iter().map(|r| r.run_id).collect())
}

#[test]
fn a_final_run_is_handed_out_when_the_next_one_starts_not_at_the_end() {
    let log = [
        entry(1, started("r1")),
        entry(2, completed("r1")),
        entry(3, started("r2")),
        entry(4, completed("r2")),
        entry(5, started("r3")),
        entry(6, completed("r3")),
    ]
    .concat();
    let (handed, open) = scan_text(&log);
    assert_eq!(handed, vec![("r1".to_owned(), 3), ("r2".to_owned(), 5)]);
    // The last one is final too, but its log might still say more about it.
    assert_eq!(open, vec!["r3".to_owned()]);
}

#[test]
fn an_open_run_holds_back_the_runs_after_it_so_the_order_is_kept() {
    let log = [
        entry(1, started("r1")),
        entry(2, started("r2")),
        entry(3, completed("r2")),
        entry(4, started("r3")),
        entry(5, completed("r1")),
        entry(6, started("r4")),
        entry(7, started("r5")),
    ]
    .concat();
    let (handed, open) = scan_text(&log);
    let order: Vec<&str> = handed.iter().map(|(id, _)| id.as_str()).collect();
    // r1 ends at line 5; r2 and r3 wait behind it and then go in their order.
    assert_eq!(order, ["r1", "r2"]);
    assert_eq!(handed[0].1, 6);
    assert_eq!(open, ["r3", "r4", "r5"]);
}

#[test]
fn a_probe_stops_at_segment_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let seg = pod_protocol::record::LogBody::SegmentStarted(SegmentStarted {
        pod_id: "p".into(),
        segment_id: "s".into(),
        profile: "coder".into(),
        manifest_digest: "sha256:00".into(),
        pid: 1,
        format_version: pod_protocol::record::LOG_FORMAT_VERSION,
        writer: "test".into(),
    });
    std::fs::write(&path, [entry(1, seg), entry(2, started("r1"))].concat()).unwrap();
    let scan = scan_segment::<()>(
        "p",
        &path,
        "s".into(),
        "s".into(),
        false,
        true,
        &mut |_, _| Ok(()),
    )
    .unwrap();
    assert!(scan.started.is_some());
    assert_eq!(scan.integrity.lines, 1);
    assert!(scan.is_a_segment());
}

#[test]
fn runs_are_found_the_same_whether_few_or_many_are_held() {
    // r0 stays open while 20 more start (the index takes over past RUNS_SEARCHED), each
    // finished out of order; then r0 ends, the rest go, and a few more start (looked through
    // again).
    let mut log = vec![entry(1, started("r0"))];
    let mut seq = 1;
    let mut next = |body| {
        seq += 1;
        entry(seq, body)
    };
    for i in 1..=20 {
        log.push(next(started(&format!("r{i}"))));
    }
    for i in (1..=20).rev() {
        log.push(next(completed(&format!("r{i}"))));
    }
    log.push(next(completed("r0")));
    for i in 21..=23 {
        log.push(next(started(&format!("r{i}"))));
        log.push(next(completed(&format!("r{i}"))));
    }
    // An entry for a run already handed out starts a run of its own (as documented).
    log.push(next(completed("r5")));
    let (handed, open) = scan_text(&log.concat());
    let order: Vec<&str> = handed.iter().map(|(id, _)| id.as_str()).collect();
    let expected: Vec<String> = (0..=23).map(|i| format!("r{i}")).collect();
    assert_eq!(order, expected);
    assert_eq!(open, ["r5"]);
    // Each run was started once and completed once: none was split in two.
    assert_eq!(handed.len(), 24);
}
