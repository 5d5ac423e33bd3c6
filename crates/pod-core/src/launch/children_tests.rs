use pod_telemetry::ids;

use super::tree_trace;
use crate::home::PodHome;

const OUTER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn a_pod_hands_on_the_trace_it_was_started_in_else_its_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let home = PodHome::at(tmp.path().join("home"));
    let root = home.create_pod_in(None, "p", None, tmp.path()).unwrap();
    let kid = home
        .create_pod_in(None, "p", Some(root.id()), tmp.path())
        .unwrap();
    let grandkid = home
        .create_pod_in(None, "p", Some(kid.id()), tmp.path())
        .unwrap();

    let outer = ids::parse_traceparent(OUTER).unwrap().0;
    assert_eq!(tree_trace(Some(OUTER), grandkid.id(), true, &home), outer);
    assert_eq!(
        tree_trace(None, root.id(), false, &home),
        ids::trace_id(root.id())
    );
    // A child resumed on its own, with no trace handed to it: its tree's, found in the home.
    assert_eq!(
        tree_trace(None, grandkid.id(), true, &home),
        ids::trace_id(root.id())
    );
    // A malformed context is no context.
    assert_eq!(
        tree_trace(Some("00-junk-01"), kid.id(), true, &home),
        ids::trace_id(root.id())
    );
}

#[test]
fn a_home_that_cannot_be_read_gives_the_pod_a_trace_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let home = PodHome::at(tmp.path().join("home"));
    std::fs::create_dir_all(home.root()).unwrap();
    // The pods directory is a file: the home cannot be listed.
    std::fs::write(home.root().join("pods"), "not a directory").unwrap();
    assert_eq!(tree_trace(None, "kid", true, &home), ids::trace_id("kid"));
}
