#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use pod_profile::{Manifest, Scheme};
use serde_json::json;

use super::affected::descendants_below;
use super::{Host, HostAbort, HostOptions};
use crate::RunControl;
use crate::control::ControlServer;
use crate::home::{PodDir, PodHome};
use crate::record::{LifecycleKind, LogBody, Origin, PodState, RunTrigger};
use crate::runtime::{Pod, RunInput, RunObserver};

fn text_response(text: &str) -> serde_json::Value {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let body = json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {body}\n\n")
    };
    let mut body = chunk(json!({"role": "assistant", "content": text}), None);
    body.push_str(&chunk(json!({}), Some("stop")));
    body.push_str("data: [DONE]\n\n");
    json!({"status": 200, "body": body})
}

/// A pod in a fresh home replaying `responses`, with its control socket bound.
async fn hosted_pod(tmp: &std::path::Path, responses: Vec<serde_json::Value>) -> (Host, PodDir) {
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cassette = tmp.join("cassette.json");
    std::fs::write(
        &cassette,
        json!({"scheme": "openai-chat", "responses": responses}).to_string(),
    )
    .unwrap();
    let mut manifest = Manifest::default();
    manifest.model.scheme = Scheme::Replay;
    manifest.model.model = "m".into();
    manifest.model.cassette = Some(cassette.display().to_string());
    let dir = PodHome::at(tmp.join("home"))
        .create_pod(None, "test", None)
        .unwrap();
    let model = crate::model::ModelConnection::connect(&manifest, &work)
        .await
        .unwrap();
    let pod = Pod::start(
        dir.clone(),
        manifest,
        crate::runtime::PodOptions {
            work_dir: work,
            model,
            control: RunControl::new(),
            approvals: Default::default(),
            telemetry: None,
            traceparent: None,
        },
    )
    .unwrap();
    let server = ControlServer::bind(dir.path()).await.unwrap();
    let host = Host::new(pod, server, None, HostOptions::default());
    (host, dir)
}

/// Panics on the first text it is shown.
struct PanicsOnText;
impl RunObserver for PanicsOnText {
    fn on_text(&self, _text: &str) {
        panic!("presentation broke");
    }
}

#[tokio::test]
async fn a_panicking_run_ends_hosting_as_a_recorded_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (host, dir) = hosted_pod(tmp.path(), vec![text_response("hello there")]).await;
    let input = RunInput {
        text: "hi".into(),
        trigger: RunTrigger::Cli,
        request_id: None,
    };
    // A safety deadline only: without the fix the host waits forever.
    let end = tokio::time::timeout(
        Duration::from_secs(60),
        host.run_once(input, Arc::new(PanicsOnText)),
    )
    .await
    .expect("hosting never ended after the run panicked")
    .unwrap();
    assert!(end.first_run.is_none());
    match &end.abort {
        Some(HostAbort::TaskFailed { detail }) => {
            assert!(detail.contains("presentation broke"), "{detail}");
        }
        other => panic!("expected a task failure, got {other:?}"),
    }
    let bodies: Vec<LogBody> = dir
        .segments()
        .unwrap()
        .iter()
        .flat_map(|s| crate::session_log::read_segment(&s.log).unwrap().entries)
        .map(|e| e.body)
        .collect();
    let interrupted = bodies
        .iter()
        .find_map(|b| match b {
            LogBody::RunInterrupted(i) => Some(i),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no run_interrupted: {bodies:#?}"));
    let action = interrupted.action.as_ref().unwrap();
    assert_eq!(action.kind, LifecycleKind::Shutdown);
    assert!(
        matches!(&action.origin, Origin::Runtime { detail } if detail.contains("panicked")),
        "{action:?}"
    );
    assert!(interrupted.phase.provider_progress_seen);
    assert!(interrupted.phase.visible_output_seen);
    assert!(bodies.iter().any(|b| matches!(
        b,
        LogBody::LifecycleAction(recorded) if recorded.action.action_id == action.action_id
    )));
    assert!(
        matches!(bodies.last(), Some(LogBody::SegmentClosed(closed)) if closed.reason == "failed"),
        "{bodies:#?}"
    );
    let info = dir.read_info().unwrap();
    assert_eq!(info.state, PodState::Failed);
    assert_eq!(info.pid, None);
}

#[test]
fn descendants_are_the_live_pods_below_the_live_children() {
    let tmp = tempfile::tempdir().unwrap();
    let home = PodHome::at(tmp.path());
    let me = std::process::id();
    let pod = |parent: Option<&str>, state: PodState, pid: Option<u32>| {
        let dir = home.create_pod(None, "p", parent).unwrap();
        dir.update_info(|info| {
            info.state = state;
            info.pid = pid;
        })
        .unwrap();
        dir.id().to_owned()
    };
    let root = pod(None, PodState::Running, Some(me));
    let child = pod(Some(&root), PodState::Running, Some(me));
    let grandchild = pod(Some(&child), PodState::Idle, Some(me));
    let great = pod(Some(&grandchild), PodState::Running, Some(me));
    let _stopped = pod(Some(&child), PodState::Stopped, None);
    // Says running, but its process is gone (a crash).
    let _crashed = pod(Some(&child), PodState::Running, Some(u32::MAX));
    let _unrelated = pod(None, PodState::Running, Some(me));
    let found = descendants_below(&home, vec![child.clone()]);
    assert_eq!(found, vec![child, grandchild, great]);
}
