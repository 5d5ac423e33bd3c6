//! The agent loop against the real client and the loopback replay server: turn limits, tool
//! errors that go back to the model, interruption through `RunControl`, and the conversation a
//! later segment rebuilds from the log.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use pod_core::lifecycle::new_action;
use pod_core::record::{
    LifecycleKind, LogBody, Origin, RunTrigger, ToolExecutionPhase, ToolOutcome,
};
use pod_core::{
    ModelConnection, Pod, PodDir, PodHome, PodOptions, Quiet, RunControl, RunInput, RunOutcome,
    history_from_segments, read_segment,
};
use pod_profile::{Manifest, Scheme};
use pod_provider::Message;

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let body = json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {body}\n\n")
}

fn text(text: &str) -> Value {
    let mut body = chunk(json!({"role": "assistant", "content": text}), None);
    body.push_str(&chunk(json!({}), Some("stop")));
    body.push_str("data: [DONE]\n\n");
    json!({"status": 200, "body": body})
}

fn tool_call(call_id: &str, tool: &str, arguments: &str) -> Value {
    let mut body = chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function",
            "function": {"name": tool, "arguments": arguments}}]}),
        None,
    );
    body.push_str(&chunk(json!({}), Some("tool_calls")));
    body.push_str("data: [DONE]\n\n");
    json!({"status": 200, "body": body})
}

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("work")).unwrap();
        std::fs::write(tmp.path().join("work/a.txt"), "alpha").unwrap();
        Fixture { tmp }
    }

    fn work(&self) -> std::path::PathBuf {
        self.tmp.path().join("work")
    }

    fn manifest(&self, responses: Vec<Value>, max_turns: u32) -> Manifest {
        let path = self
            .tmp
            .path()
            .join(format!("cassette-{}.json", pod_core::new_id()));
        std::fs::write(
            &path,
            json!({"scheme": "openai-chat", "responses": responses}).to_string(),
        )
        .unwrap();
        let mut manifest = Manifest::default();
        manifest.model.scheme = Scheme::Replay;
        manifest.model.model = "m".into();
        manifest.model.cassette = Some(path.display().to_string());
        manifest.agent.max_turns = max_turns;
        manifest.session.record_event_trace = true;
        manifest
    }

    async fn pod(&self, dir: PodDir, manifest: Manifest, control: RunControl) -> Pod {
        let model = ModelConnection::connect(&manifest, &self.work())
            .await
            .unwrap();
        Pod::start(
            dir,
            manifest,
            PodOptions {
                work_dir: self.work(),
                model,
                control,
                approvals: Default::default(),
                telemetry: None,
                traceparent: None,
            },
        )
        .unwrap()
    }

    fn home(&self) -> PodHome {
        PodHome::at(self.tmp.path().join("home"))
    }
}

fn input(text: &str) -> RunInput {
    RunInput {
        text: text.into(),
        trigger: RunTrigger::Cli,
        request_id: None,
    }
}

fn log_bodies(dir: &PodDir) -> Vec<LogBody> {
    dir.segments()
        .unwrap()
        .iter()
        .flat_map(|s| read_segment(&s.log).unwrap().entries)
        .map(|e| e.body)
        .collect()
}

#[tokio::test]
async fn max_turns_ends_the_run_after_that_many_requests() {
    let fx = Fixture::new();
    let manifest = fx.manifest(
        vec![
            tool_call("c1", "read_file", r#"{"path":"a.txt"}"#),
            tool_call("c2", "read_file", r#"{"path":"a.txt"}"#),
            text("never requested"),
        ],
        2,
    );
    let dir = fx.home().create_pod(None, "t", None).unwrap();
    let mut pod = fx.pod(dir.clone(), manifest, RunControl::new()).await;
    let report = pod.run(input("loop"), Arc::new(Quiet)).await.unwrap();
    assert!(
        matches!(&report.outcome, RunOutcome::Completed { turns: 2, reason, .. } if reason == "max_turns"),
        "{:?}",
        report.outcome
    );
    pod.close("completed").await.unwrap();
    let requests = log_bodies(&dir)
        .iter()
        .filter(|b| matches!(b, LogBody::ProviderRequestStarted(_)))
        .count();
    assert_eq!(requests, 2);
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_go_back_to_the_model() {
    let fx = Fixture::new();
    let manifest = fx.manifest(
        vec![
            tool_call("c1", "launch_rockets", "{}"),
            tool_call("c2", "read_file", "{not json"),
            text("understood"),
        ],
        8,
    );
    let dir = fx.home().create_pod(None, "t", None).unwrap();
    let mut pod = fx.pod(dir.clone(), manifest, RunControl::new()).await;
    let report = pod.run(input("try things"), Arc::new(Quiet)).await.unwrap();
    assert!(
        matches!(&report.outcome, RunOutcome::Completed { text, turns: 3, .. } if text == "understood"),
        "{:?}",
        report.outcome
    );
    pod.close("completed").await.unwrap();
    let finished: Vec<(String, ToolOutcome, String)> = log_bodies(&dir)
        .into_iter()
        .filter_map(|b| match b {
            LogBody::ToolCallFinished(f) => Some((f.tool, f.outcome, f.output)),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0].1, ToolOutcome::Rejected);
    assert!(
        finished[0].2.contains("unknown tool `launch_rockets`"),
        "{}",
        finished[0].2
    );
    assert_eq!(finished[1].1, ToolOutcome::Rejected);
    assert!(
        finished[1].2.contains("not valid JSON"),
        "{}",
        finished[1].2
    );
    // The next segment's conversation carries the errors as error results.
    let history = history_from_segments(&dir).unwrap();
    let errors = history
        .iter()
        .filter(|m| matches!(m, Message::ToolResult { is_error: true, .. }))
        .count();
    assert_eq!(errors, 2);
}

#[tokio::test]
async fn an_interrupt_ends_a_stalled_stream_with_the_action_and_phase() {
    let fx = Fixture::new();
    let mut stalled = text("first words and more");
    stalled["pause_after_events"] = json!({"events": 1, "ms": 30000});
    let manifest = fx.manifest(vec![stalled, text("second run")], 4);
    let dir = fx.home().create_pod(None, "t", None).unwrap();
    let control = RunControl::new();
    let mut pod = fx.pod(dir.clone(), manifest, control.clone()).await;
    let action = new_action(
        LifecycleKind::Stop,
        vec![dir.id().to_owned()],
        Origin::Cli {
            command: "pods stop t".into(),
            request_id: "req-1".into(),
        },
    );
    let sent = action.clone();
    let interrupter = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        control.interrupt(sent);
    });
    let started = std::time::Instant::now();
    let report = pod.run(input("talk"), Arc::new(Quiet)).await.unwrap();
    interrupter.await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the pause was not cut short"
    );
    match &report.outcome {
        RunOutcome::Interrupted { action: got, phase } => {
            assert_eq!(got, &action);
            assert!(phase.provider_progress_seen);
            assert!(phase.visible_output_seen);
            assert_eq!(phase.tool_execution, ToolExecutionPhase::NotStarted);
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    // The control re-arms: the next run is not interrupted by the old action.
    let second = pod.run(input("again"), Arc::new(Quiet)).await.unwrap();
    assert!(
        matches!(second.outcome, RunOutcome::Completed { .. }),
        "{:?}",
        second.outcome
    );
    pod.close("completed").await.unwrap();
    let bodies = log_bodies(&dir);
    let interrupted = bodies
        .iter()
        .find_map(|b| match b {
            LogBody::RunInterrupted(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(interrupted.action.as_ref(), Some(&action));
    assert_eq!(interrupted.reason, "stopped");
    assert!(matches!(bodies.last(), Some(LogBody::SegmentClosed(_))));
}

#[tokio::test]
async fn a_new_segment_continues_the_conversation_from_the_log() {
    let fx = Fixture::new();
    let dir = fx.home().create_pod(None, "t", None).unwrap();
    let first = fx.manifest(
        vec![
            tool_call("c1", "read_file", r#"{"path":"a.txt"}"#),
            text("it says alpha"),
        ],
        4,
    );
    let mut pod = fx.pod(dir.clone(), first, RunControl::new()).await;
    pod.run(input("read a.txt"), Arc::new(Quiet)).await.unwrap();
    pod.close("completed").await.unwrap();

    let history = history_from_segments(&dir).unwrap();
    assert!(matches!(&history[0], Message::User { text } if text == "read a.txt"));
    assert!(
        matches!(&history[1], Message::Assistant { tool_calls, .. } if tool_calls[0].call_id == "c1")
    );
    assert!(
        matches!(&history[2], Message::ToolResult { output, is_error: false, .. } if output == "alpha")
    );
    assert!(matches!(&history[3], Message::Assistant { text, .. } if text == "it says alpha"));

    let second = fx.manifest(vec![text("still alpha")], 4);
    let mut pod = fx.pod(dir.clone(), second, RunControl::new()).await;
    let report = pod.run(input("and now?"), Arc::new(Quiet)).await.unwrap();
    assert!(matches!(report.outcome, RunOutcome::Completed { .. }));
    pod.close("completed").await.unwrap();
    assert_eq!(dir.segments().unwrap().len(), 2);
    assert_eq!(history_from_segments(&dir).unwrap().len(), 6);
}

#[tokio::test]
async fn an_action_offered_between_runs_interrupts_the_next_run_before_any_request() {
    let fx = Fixture::new();
    let manifest = fx.manifest(vec![text("never requested"), text("second")], 4);
    let dir = fx.home().create_pod(None, "t", None).unwrap();
    let control = RunControl::new();
    let mut pod = fx.pod(dir.clone(), manifest, control.clone()).await;
    let action = new_action(
        LifecycleKind::Cancel,
        vec![dir.id().to_owned()],
        Origin::Signal {
            signal: "SIGINT".into(),
        },
    );
    control.interrupt(action.clone());
    let report = pod.run(input("too late"), Arc::new(Quiet)).await.unwrap();
    match &report.outcome {
        RunOutcome::Interrupted { action: got, phase } => {
            assert_eq!(got, &action);
            assert!(!phase.provider_progress_seen);
            assert!(!phase.visible_output_seen);
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    // No request was sent for it: the next run gets the cassette's first response.
    let next = pod.run(input("again"), Arc::new(Quiet)).await.unwrap();
    assert!(
        matches!(&next.outcome, RunOutcome::Completed { text, .. } if text == "never requested"),
        "{:?}",
        next.outcome
    );
    pod.close("completed").await.unwrap();
    let requests = log_bodies(&dir)
        .iter()
        .filter(|b| matches!(b, LogBody::ProviderRequestStarted(_)))
        .count();
    assert_eq!(requests, 1);
}
