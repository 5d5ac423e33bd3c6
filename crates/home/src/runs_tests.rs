#![allow(clippy::unwrap_used)]

use pod_protocol::record::*;
use strum::VariantArray;

use super::*;

#[test]
fn an_unfinished_run_is_running_only_while_its_owner_is_known_alive() {
    assert_eq!(
        RunOutcome::unfinished(&Liveness::Alive),
        RunOutcome::Running
    );
    assert_eq!(
        RunOutcome::unfinished(&Liveness::Gone("x".into())),
        RunOutcome::Crashed
    );
    assert_eq!(
        RunOutcome::unfinished(&Liveness::Unknown("x".into())),
        RunOutcome::Crashed
    );
}

#[test]
fn a_segment_owner_is_judged_by_its_records_before_its_pid() {
    let me = std::process::id();
    let mut owner = SegmentOwner::default();
    assert!(matches!(owner.liveness(None), Liveness::Unknown(_)));
    assert_eq!(
        owner.liveness(Some(me)),
        Liveness::Alive,
        "pod.json's pid stands in"
    );
    owner.observe(
        &crate::now_rfc3339(),
        &LogBody::SegmentStarted(SegmentStarted {
            pod_id: "p".into(),
            segment_id: "s".into(),
            profile: "demo".into(),
            manifest_digest: "sha256:0".into(),
            pid: me,
            format_version: 1,
            writer: "test".into(),
        }),
    );
    assert_eq!(owner.liveness(None), Liveness::Alive);
    let later = SegmentOwner {
        later_segment: true,
        ..owner.clone()
    };
    assert!(matches!(later.liveness(None), Liveness::Gone(why) if why.contains("later segment")));
    owner.observe(
        "2026-01-01T00:00:00.000Z",
        &LogBody::SegmentClosed(SegmentClosed {
            reason: "stopped".into(),
        }),
    );
    assert!(
        matches!(owner.liveness(None), Liveness::Gone(why) if why.contains("closed (stopped)"))
    );
    // A segment started long ago by a pid this process now holds: reused.
    let old = SegmentOwner {
        pid: Some(me),
        started_at: Some("2001-01-01T00:00:00.000Z".into()),
        ..SegmentOwner::default()
    };
    assert!(matches!(old.liveness(None), Liveness::Gone(why) if why.contains("reused")));
}

#[test]
fn outcome_names_are_their_json_names() {
    for outcome in RunOutcome::VARIANTS {
        let json = serde_json::to_value(outcome).unwrap();
        assert_eq!(json.as_str().unwrap(), outcome.as_str());
    }
}

#[test]
fn a_segment_classifies_only_the_runs_it_left_unfinished() {
    let mut segment = SegmentRuns::new(true);
    segment.observe(
        "2026-01-01T00:00:00.000Z",
        &LogBody::RunErrored(RunErrored {
            run_id: "ended".into(),
            error: pod_protocol::ProviderError::new(pod_protocol::ErrorClass::Auth, "no"),
            phase: RunPhase::default(),
        }),
    );
    assert_eq!(segment.unfinished("ended", None), None);
    assert_eq!(
        segment.unfinished("open", Some(std::process::id())),
        Some(RunOutcome::Crashed),
        "a later segment took the pod over, whoever is alive"
    );
    let current = SegmentRuns::new(false);
    assert_eq!(
        current.unfinished("open", Some(std::process::id())),
        Some(RunOutcome::Running)
    );
}
