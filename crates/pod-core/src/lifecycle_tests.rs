use super::*;
use crate::record::CausedBy;

fn cli_origin() -> Origin {
    Origin::Cli {
        command: "pods stop p1".into(),
        request_id: new_id(),
    }
}

#[test]
fn new_action_has_v7_id_clocks_and_affects() {
    start_process_clock();
    let a = new_action(LifecycleKind::Stop, vec!["p1".into()], cli_origin());
    let b = new_action(LifecycleKind::Stop, vec!["p1".into()], cli_origin());
    let id = uuid::Uuid::parse_str(&a.action_id).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    assert!(a.action_id < b.action_id, "v7 ids sort by creation");
    assert!(a.started_mono_ms <= b.started_mono_ms);
    assert!(
        humantime::parse_rfc3339(&a.started_at).is_ok(),
        "{}",
        a.started_at
    );
    assert!(a.started_at.ends_with('Z'));
    assert_eq!(a.affects, vec!["p1".to_owned()]);
    assert!(a.caused_by.is_none());
}

#[test]
fn cascade_kinds_only_for_tree_wide_actions() {
    assert_eq!(
        cascade_kind(LifecycleKind::StopTree),
        Some(LifecycleKind::StopTree)
    );
    assert_eq!(
        cascade_kind(LifecycleKind::Shutdown),
        Some(LifecycleKind::Shutdown)
    );
    assert_eq!(cascade_kind(LifecycleKind::Stop), None);
    assert_eq!(cascade_kind(LifecycleKind::Cancel), None);
    assert!(ends_pod(LifecycleKind::Watchdog));
    assert!(!ends_pod(LifecycleKind::Cancel));
    assert!(!ends_pod(LifecycleKind::Reload));
}

#[test]
fn resolver_prefers_direct_over_cascaded_and_earlier_over_later() {
    let parent = new_action(LifecycleKind::StopTree, vec!["parent".into()], cli_origin());
    // What a child builds when its parent cascades `parent` to it.
    let mut cascaded = new_action(LifecycleKind::StopTree, vec!["me".into()], cli_origin());
    cascaded.caused_by = Some(CausedBy {
        pod_id: "parent".into(),
        action_id: parent.action_id.clone(),
        kind: parent.kind,
    });
    let direct = new_action(LifecycleKind::Cancel, vec!["me".into()], cli_origin());
    let later_direct = new_action(LifecycleKind::Stop, vec!["me".into()], cli_origin());

    let mut r = ActionResolver::new();
    assert_eq!(r.offer(cascaded.clone()), Offered::Governs);
    // A direct action is nearer than the cascade, even though it arrived later.
    assert_eq!(r.offer(direct.clone()), Offered::Governs);
    assert_eq!(r.governing().map(|a| &a.action_id), Some(&direct.action_id));
    // Equally near: the first to arrive keeps governing.
    assert_eq!(r.offer(later_direct), Offered::Superseded);
    // A cascade never displaces a direct action.
    assert_eq!(r.offer(cascaded), Offered::Superseded);
    assert_eq!(r.take().map(|a| a.action_id), Some(direct.action_id));
    assert!(r.governing().is_none());
}

#[test]
fn unknown_origin_lists_missing_facts() {
    let origin = unknown_origin(["request_id", "client"]);
    assert_eq!(
        serde_json::to_value(&origin).expect("json"),
        serde_json::json!({"type": "unknown", "missing": ["request_id", "client"]})
    );
}
