#![allow(clippy::unwrap_used)]

use super::*;

/// A home with pods `root` → `a` → `a1`, and `root` → `b`, created in that order.
fn family() -> (tempfile::TempDir, PodHome, [String; 4]) {
    let tmp = tempfile::tempdir().unwrap();
    let home = PodHome::at(tmp.path());
    let root = home.create_pod(Some("root"), "demo", None).unwrap();
    let a = home.create_pod(Some("a"), "demo", Some(root.id())).unwrap();
    let a1 = home.create_pod(Some("a1"), "demo", Some(a.id())).unwrap();
    let b = home.create_pod(Some("b"), "demo", Some(root.id())).unwrap();
    let ids = [root, a, a1, b].map(|d| d.id().to_owned());
    (tmp, home, ids)
}

#[test]
fn a_tree_lists_generations_top_down_and_bottom_up_children_first() {
    let (_tmp, home, [root, a, a1, b]) = family();
    let index = PodIndex::load(&home).unwrap();
    assert_eq!(
        index.tree(&root),
        vec![root.clone(), a.clone(), b.clone(), a1.clone()]
    );
    assert_eq!(
        index.tree_bottom_up(&root),
        vec![a1.clone(), a.clone(), b.clone(), root.clone()]
    );
    assert_eq!(index.ancestors(&a1), vec![root.clone(), a.clone()]);
    assert_eq!(index.children(&root), vec![a.as_str(), b.as_str()]);
}

#[test]
fn a_query_finds_by_id_prefix_or_newest_name_and_says_when_it_cannot() {
    let (_tmp, home, [root, a, _, _]) = family();
    let index = PodIndex::load(&home).unwrap();
    assert_eq!(index.find(&a).unwrap().id(), a);
    assert_eq!(index.find("a1").unwrap().name(), Some("a1"));
    let again = home.create_pod(Some("root"), "demo", None).unwrap();
    let index = PodIndex::load(&home).unwrap();
    assert_eq!(
        index.find("root").unwrap().id(),
        again.id(),
        "the newest of a name"
    );
    assert_ne!(index.find("root").unwrap().id(), root);
    assert!(matches!(
        index.find("zzz"),
        Err(HomeError::PodNotFound { .. })
    ));
    // Every id starts with the same timestamp digits.
    assert!(matches!(
        index.find(&root[..4]),
        Err(HomeError::AmbiguousPod { candidates, .. }) if candidates.len() == 5
    ));
}

#[test]
fn a_damaged_pod_json_still_lists_and_loops_in_parents_do_not_hang() {
    let (_tmp, home, [root, a, _, _]) = family();
    let dir = home.find(&a).unwrap();
    // Parent loop: root's parent is a, a's parent is root.
    std::fs::write(
        dir.info_path(),
        format!(r#"{{"id":"{a}","parent_id":"{root}","state":"mystery"}}"#),
    )
    .unwrap();
    let root_dir = home.find(&root).unwrap();
    root_dir
        .update_info(|i| i.parent_id = Some(a.clone()))
        .unwrap();
    let index = PodIndex::load(&home).unwrap();
    let fields = index.get(&a).unwrap().fields.as_ref().unwrap();
    assert_eq!(fields.name, None, "missing fields are None, not an error");
    assert_eq!(fields.pod_state(), None, "an unknown state is unknown");
    assert_eq!(index.tree(&root).len(), 4);
    assert_eq!(index.tree_bottom_up(&root).len(), 4);
    assert_eq!(index.ancestors(&root), vec![a.clone()]);
    std::fs::write(dir.info_path(), "[1,2]").unwrap();
    let index = PodIndex::load(&home).unwrap();
    assert_eq!(
        index.get(&a).unwrap().fields.as_ref().unwrap_err(),
        "not a JSON object"
    );
    assert!(
        index.get(&a).unwrap().may_be_live(),
        "unreadable: it may be running"
    );
}

#[test]
fn only_live_pods_lead_further_down() {
    let (_tmp, home, [root, a, a1, b]) = family();
    let me = std::process::id();
    for id in [&a, &a1] {
        home.find(id)
            .unwrap()
            .update_info(|i| {
                i.state = PodState::Running;
                i.pid = Some(me);
            })
            .unwrap();
    }
    home.find(&b)
        .unwrap()
        .update_info(|i| i.state = PodState::Stopped)
        .unwrap();
    let index = PodIndex::load(&home).unwrap();
    let mut below = index.live_below(vec![root.clone()]);
    below.sort();
    let mut expected = vec![root, a, a1];
    expected.sort();
    assert_eq!(below, expected, "the stopped pod is left out");
}
