use std::path::Path;

use super::*;
use crate::control::{ActionParams, ControlClient, ControlServer, RunParams, cli_client};
use crate::record::LifecycleKind;

/// A home with a parent pod and its child, the parent's `pod.json` recording `parent_pid`.
fn parent_and_child(root: &Path, parent_pid: Option<u32>) -> (PodDir, PodDir) {
    let home = crate::home::PodHome::at(root);
    let parent = home.create_pod(None, "parent", None).expect("parent");
    parent
        .update_info(|info| {
            info.pid = parent_pid;
            info.state = crate::record::PodState::Running;
        })
        .expect("update");
    let child = home
        .create_pod(None, "child", Some(parent.id()))
        .expect("child");
    (parent, child)
}

/// Send a `cancel` from `client` (optionally with a `caused_by` link) to the pod in
/// `child` and return the origin and the action the pod would record.
async fn cancel_from(
    child: &PodDir,
    client: ClientInfo,
    caused_by: Option<CausedBy>,
) -> (Origin, LifecycleAction) {
    let mut server = ControlServer::bind(child.path()).await.expect("bind");
    let owner = tokio::spawn(async move {
        let req = server.incoming.recv().await.expect("request");
        let action = req.action(vec!["c".into()]).expect("action");
        let origin = req.origin();
        req.respond(Ok(serde_json::json!({})));
        (origin, action, server)
    });
    let client = ControlClient::connect(child.path(), client)
        .await
        .expect("connect");
    let params = ActionParams {
        reason: None,
        caused_by,
    };
    client
        .call(&Call::Action(LifecycleKind::Cancel, params))
        .await
        .expect("reply");
    let (origin, action, _server) = owner.await.expect("owner");
    (origin, action)
}

fn parent_client(pod_id: &str) -> ClientInfo {
    ClientInfo::ParentPod {
        pod_id: pod_id.to_owned(),
        tool_call_id: Some("call_1".into()),
    }
}

#[tokio::test]
async fn a_parent_claim_from_the_parents_recorded_process_is_verified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // This test process is the "parent": its pid is the one the parent's pod.json records.
    let (parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
    let link = CausedBy {
        pod_id: parent.id().to_owned(),
        action_id: "a-1".into(),
        kind: LifecycleKind::StopTree,
    };
    let (origin, action) =
        cancel_from(&child, parent_client(parent.id()), Some(link.clone())).await;
    assert_eq!(
        origin,
        Origin::ParentPod {
            parent_pod_id: parent.id().to_owned(),
            tool_call_id: "call_1".into()
        }
    );
    assert_eq!(action.caused_by, Some(link));
}

#[tokio::test]
async fn a_forged_parent_claim_is_recorded_as_unverified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The parent's recorded process is another one than this client.
    let (parent, child) = parent_and_child(tmp.path(), Some(u32::MAX));
    let link = CausedBy {
        pod_id: parent.id().to_owned(),
        action_id: "a-1".into(),
        kind: LifecycleKind::StopTree,
    };
    let (origin, action) =
        cancel_from(&child, parent_client(parent.id()), Some(link.clone())).await;
    let Origin::Unverified(unverified) = &origin else {
        panic!("believed a forged claim: {origin:?}");
    };
    let UnverifiedOrigin {
        claimed,
        claimed_caused_by,
        peer,
        why,
    } = unverified.as_ref();
    assert!(
        matches!(claimed, Origin::ParentPod { parent_pod_id, .. } if parent_pod_id == parent.id())
    );
    assert_eq!(claimed_caused_by.as_ref(), Some(&link));
    assert_eq!(peer.pid, Some(std::process::id()));
    assert_eq!(peer.uid, Some(rustix::process::getuid().as_raw()));
    assert!(why.contains("is not the parent's recorded pid"), "{why}");
    assert!(
        action.caused_by.is_none(),
        "an unverified link is no cascade"
    );
    assert_eq!(action.origin, origin);
}

#[tokio::test]
async fn a_claim_to_be_another_pods_parent_is_unverified_whatever_the_peer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
    let (origin, _) = cancel_from(&child, parent_client("someone-else"), None).await;
    match origin {
        Origin::Unverified(unverified) => {
            assert!(
                unverified.why.contains("pod.json names parent"),
                "{}",
                unverified.why
            );
        }
        other => panic!("believed: {other:?}"),
    }
    // A top pod has no parent at all.
    let (top, _) = parent_and_child(&tmp.path().join("2"), Some(std::process::id()));
    let (origin, _) = cancel_from(&top, parent_client("anyone"), None).await;
    assert!(
        matches!(&origin, Origin::Unverified(u) if u.why.contains("names no parent")),
        "{origin:?}"
    );
}

#[tokio::test]
async fn a_caused_by_link_from_a_client_that_is_not_the_parent_is_unverified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
    let link = CausedBy {
        pod_id: parent.id().to_owned(),
        action_id: "a-1".into(),
        kind: LifecycleKind::StopTree,
    };
    let (origin, action) = cancel_from(&child, cli_client(), Some(link)).await;
    assert!(
        matches!(&origin, Origin::Unverified(u)
            if matches!(u.claimed, Origin::Cli { .. }) && u.why.contains("caused_by")),
        "{origin:?}"
    );
    assert!(action.caused_by.is_none());
    // Without a link, a command-line client is recorded as it says, as before.
    let (origin, _) = cancel_from(&child, cli_client(), None).await;
    assert!(matches!(origin, Origin::Cli { .. }), "{origin:?}");
}

#[test]
fn an_unverified_run_request_is_a_control_request_saying_so() {
    let (tx, _rx) = oneshot::channel();
    let inc = Incoming {
        request_id: "r".into(),
        client: ClientInfo::ParentPod {
            pod_id: "p".into(),
            tool_call_id: Some("call_1".into()),
        },
        call: Call::Run(RunParams { input: "hi".into() }),
        unverified: Some(Unverified {
            peer: PeerCred {
                pid: Some(42),
                uid: Some(1000),
            },
            why: "peer pid 42 is not the parent's recorded pid 7".into(),
        }),
        reply: tx,
    };
    match inc.trigger() {
        RunTrigger::ControlRequest { client } => {
            assert!(client.contains("unverified claim"), "{client}");
            assert!(client.contains("peer pid 42"), "{client}");
            assert!(client.contains("parent_pod:p"), "{client}");
        }
        other => panic!("believed: {other:?}"),
    }
    let json = serde_json::to_value(inc.origin()).expect("json");
    assert_eq!(json["type"], "unverified");
    assert_eq!(json["claimed"]["type"], "parent_pod");
    assert_eq!(json["peer"], serde_json::json!({"pid": 42, "uid": 1000}));
}

#[test]
fn parent_pod_client_with_tool_call_yields_parent_origin_and_trigger() {
    let (tx, _rx) = oneshot::channel();
    let inc = Incoming {
        request_id: "r".into(),
        client: ClientInfo::ParentPod {
            pod_id: "p".into(),
            tool_call_id: Some("call_1".into()),
        },
        call: Call::Run(RunParams { input: "hi".into() }),
        unverified: None,
        reply: tx,
    };
    assert_eq!(
        inc.origin(),
        Origin::ParentPod {
            parent_pod_id: "p".into(),
            tool_call_id: "call_1".into()
        }
    );
    assert_eq!(
        inc.trigger(),
        RunTrigger::ParentPod {
            parent_pod_id: "p".into(),
            tool_call_id: "call_1".into()
        }
    );
    assert!(inc.action(vec!["x".into()]).is_none());
}
