use pod_profile::manifest::SpawnSection;

use super::*;
use crate::children::{ChildFactory, Launcher, PreparedChild};

/// A factory that must not be reached: refusals happen before any directory is written.
struct Unreachable;

impl ChildFactory for Unreachable {
    fn prepare(&self, _args: &SpawnArgs) -> Result<PreparedChild, ChildError> {
        panic!("prepare called although the spawn should have been refused");
    }
}

fn children(limits: SpawnSection) -> Children {
    Children::new(
        "parent",
        limits,
        Launcher::with_exe("/nonexistent/pods"),
        Arc::new(Unreachable),
        Arc::new(|_| {}),
        Duration::from_secs(5),
    )
}

fn limits(allowed: &[&str], depth: u32, max: u32) -> SpawnSection {
    SpawnSection {
        allowed_profiles: allowed.iter().map(|s| (*s).to_owned()).collect(),
        max_depth: depth,
        max_children: max,
    }
}

async fn refusal(children: &Children, args: Value) -> String {
    let reply = children.call_tool("spawn_pod", "run", "call", args).await;
    assert!(!reply.ok, "{:?}", reply.output);
    reply.output["error"]
        .as_str()
        .expect("error text")
        .to_owned()
}

#[tokio::test]
async fn spawn_limits_refuse_before_touching_disk() {
    let args = json!({"profile": "reviewer", "task": "t"});
    let not_allowed = refusal(&children(limits(&["coder"], 2, 4)), args.clone()).await;
    assert!(not_allowed.contains("allowed: coder"), "{not_allowed}");
    let none_allowed = refusal(&children(limits(&[], 2, 4)), args.clone()).await;
    assert!(
        none_allowed.contains("allowed_profiles is empty"),
        "{none_allowed}"
    );
    let depth = refusal(&children(limits(&["reviewer"], 0, 4)), args.clone()).await;
    assert!(depth.contains("max_depth is 0"), "{depth}");
    let full = refusal(&children(limits(&["reviewer"], 2, 0)), args).await;
    assert!(full.contains("max_children is 0"), "{full}");
}

#[tokio::test]
async fn bad_arguments_and_unknown_children_are_tool_errors() {
    let c = children(limits(&["reviewer"], 2, 4));
    let missing_task = refusal(&c, json!({"profile": "reviewer"})).await;
    assert!(missing_task.contains("task"), "{missing_task}");
    let unknown_key = refusal(&c, json!({"profile": "reviewer", "task": "t", "x": 1})).await;
    assert!(unknown_key.contains("unknown field"), "{unknown_key}");
    let wait = c
        .call_tool("wait_pod", "run", "call", json!({"pod_id": "nobody"}))
        .await;
    assert!(!wait.ok);
    assert!(
        wait.output["error"]
            .as_str()
            .expect("text")
            .contains("not a child")
    );
    let send = c
        .call_tool("send_to_pod", "run", "call", json!({"pod_id": "nobody"}))
        .await;
    assert!(!send.ok);
    assert_eq!(c.list(), json!({"children": []}));
    assert_eq!(c.live_count(), 0);
}

#[test]
fn tool_side_effect_classes() {
    let class = |name| {
        SPAWN_TOOLS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    };
    assert_eq!(class("spawn_pod"), Some(SideEffectClass::Spawn));
    assert_eq!(class("send_to_pod"), Some(SideEffectClass::Spawn));
    assert_eq!(class("stop_pod"), Some(SideEffectClass::Spawn));
    assert_eq!(class("wait_pod"), Some(SideEffectClass::ReadOnly));
    assert_eq!(class("list_pods"), Some(SideEffectClass::ReadOnly));
}
