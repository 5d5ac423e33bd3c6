//! The live children of a pod: registering a launched child, following its events and its
//! exit, and the operations on it (wait for its run, send it input, list, stop, cascade).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::{ChildError, ChildProcess, Children, ExitInfo, PreparedChild, Recorder};
use crate::approval::Approver;
use crate::control::{
    ActionParams, Call, ClientInfo, ControlClient, PodEvent, RunParams, RunResult,
};
use crate::error::error_chain;
use crate::record::{
    CausedBy, ChildExited, LifecycleAction, LifecycleActionRecorded, LifecycleKind, LogBody, Origin,
};
use pod_home::locked;
use pod_protocol::control::ApprovalAsk;

/// One run a parent asked a child for.
#[derive(Debug, Clone)]
struct ChildRun {
    request_id: String,
    run_id: Option<String>,
    /// Turns the child reported ended so far.
    turns: u32,
    result: Option<RunResult>,
}

/// What a parent knows about one child.
#[derive(Debug, Clone, Default)]
struct ChildView {
    /// Runs this pod asked for, in order, with their result once ended.
    runs: Vec<ChildRun>,
    exited: Option<ExitInfo>,
}

impl ChildView {
    fn expect(&mut self, request_id: String) {
        self.runs.push(ChildRun {
            request_id,
            run_id: None,
            turns: 0,
            result: None,
        });
    }
}

/// A child this pod launched and registered: its process, its control connection, and what it
/// has reported so far.
pub(super) struct LiveChild {
    pub(super) pod_id: String,
    pub(super) name: String,
    pub(super) profile: String,
    pub(super) pid: u32,
    process: tokio::sync::Mutex<ChildProcess>,
    client: ControlClient,
    view: watch::Receiver<ChildView>,
    view_tx: watch::Sender<ChildView>,
    /// Set before this pod asks the child to end, so its exit is recorded as expected.
    stopping: Arc<Mutex<bool>>,
}

impl Children {
    /// This pod as a control-socket client, optionally naming the tool call behind a request.
    pub(super) fn as_client(&self, tool_call_id: Option<&str>) -> ClientInfo {
        ClientInfo::ParentPod {
            pod_id: self.parent_pod_id.clone(),
            tool_call_id: tool_call_id.map(str::to_owned),
        }
    }

    /// Number of children whose process is still running.
    pub(crate) fn live_count(&self) -> usize {
        locked(&self.live)
            .iter()
            .filter(|c| c.view.borrow().exited.is_none())
            .count()
    }

    fn find(&self, pod_id: &str) -> Result<Arc<LiveChild>, ChildError> {
        locked(&self.live)
            .iter()
            .find(|c| {
                c.pod_id == pod_id
                    || c.name == pod_id
                    || (pod_id.len() >= 8 && c.pod_id.starts_with(pod_id))
            })
            .cloned()
            .ok_or_else(|| {
                ChildError::SpawnRefused(format!(
                    "pod {pod_id} is not a child of this pod (see list_pods)"
                ))
            })
    }

    pub(super) async fn register(
        &self,
        process: ChildProcess,
        prepared: &PreparedChild,
        call_id: &str,
        task: &str,
    ) -> Result<(Arc<LiveChild>, String), (ChildProcess, ChildError)> {
        let client_info = ClientInfo::ParentPod {
            pod_id: self.parent_pod_id.clone(),
            tool_call_id: Some(call_id.to_owned()),
        };
        let client = match ControlClient::connect(&prepared.dir, client_info).await {
            Ok(c) => c,
            Err(e) => return Err((process, e)),
        };
        if let Err(e) = client.subscribe().await {
            return Err((process, e));
        }
        let run = client
            .call(&Call::Run(RunParams {
                input: task.to_owned(),
            }))
            .await;
        let request_id = match run_request_id(run, &client) {
            Ok(id) => id,
            Err(e) => return Err((process, e)),
        };
        let mut initial = ChildView::default();
        initial.expect(request_id.clone());
        let (view_tx, view) = watch::channel(initial);
        let child = Arc::new(LiveChild {
            pod_id: prepared.pod_id.clone(),
            name: prepared.name.clone(),
            profile: prepared.profile.clone(),
            pid: process.pid,
            process: tokio::sync::Mutex::new(process),
            client,
            view,
            view_tx,
            stopping: Arc::new(Mutex::new(false)),
        });
        locked(&self.live).push(child.clone());
        tokio::spawn(follow_events(child.clone(), self.approver.clone()));
        tokio::spawn(follow_exit(child.clone(), self.record.clone()));
        Ok((child, request_id))
    }

    /// `wait_pod`: the result of the child's latest run (completed text, structured error,
    /// interruption), or its loss if the process ended first.
    pub(crate) async fn wait(
        &self,
        pod_id: &str,
        timeout: Option<Duration>,
    ) -> Result<Value, ChildError> {
        let child = self.find(pod_id)?;
        let mut view = child.view.clone();
        let settled = view.wait_for(|v| {
            v.exited.is_some() || v.runs.last().is_some_and(|run| run.result.is_some())
        });
        let snapshot = match timeout {
            Some(limit) => match tokio::time::timeout(limit, settled).await {
                Ok(r) => r.map(|v| v.clone()),
                Err(_) => {
                    return Ok(json!({
                        "pod_id": child.pod_id,
                        "outcome": "still_running",
                        "waited_ms": limit.as_millis() as u64,
                    }));
                }
            },
            None => settled.await.map(|v| v.clone()),
        };
        let snapshot = snapshot.unwrap_or_default();
        match snapshot.runs.last() {
            Some(ChildRun {
                run_id,
                result: Some(result),
                ..
            }) => {
                let mut value = serde_json::to_value(result).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("pod_id".into(), json!(child.pod_id));
                    map.insert("run_id".into(), json!(run_id));
                }
                Ok(value)
            }
            last => Ok(json!({
                "pod_id": child.pod_id,
                "request_id": last.map(|run| run.request_id.clone()),
                "outcome": "lost",
                "exit": snapshot.exited.map(|e| e.to_string()),
                "message": "the child process ended before its run did",
            })),
        }
    }

    /// `send_to_pod`: start a new run in the child.
    pub(crate) async fn send(
        &self,
        pod_id: &str,
        call_id: &str,
        input: &str,
    ) -> Result<Value, ChildError> {
        let child = self.find(pod_id)?;
        // Expect the run before asking for it: its events may arrive before the reply does.
        let request_id = crate::lifecycle::new_id();
        child.view_tx.send_modify(|v| v.expect(request_id.clone()));
        let reply = child
            .client
            .call_as(
                &request_id,
                &self.as_client(Some(call_id)),
                &Call::Run(RunParams {
                    input: input.to_owned(),
                }),
            )
            .await;
        match run_request_id(reply, &child.client) {
            Ok(answered) if answered == request_id => {
                Ok(json!({"pod_id": child.pod_id, "request_id": request_id}))
            }
            outcome => {
                // No run was started for this request: forget the expectation again.
                child
                    .view_tx
                    .send_modify(|v| v.runs.retain(|r| r.request_id != request_id));
                Err(match outcome {
                    Ok(answered) => ChildError::Protocol {
                        path: child.client.socket_path().to_owned(),
                        message: format!(
                            "`run` reply names request {answered}, expected {request_id}"
                        ),
                    },
                    Err(error) => error,
                })
            }
        }
    }

    /// `stop_pod`: stop one child (its own children follow with `parent_exit`) and wait for it.
    pub async fn stop(
        &self,
        pod_id: &str,
        call_id: &str,
        reason: Option<String>,
    ) -> Result<Value, ChildError> {
        let child = self.find(pod_id)?;
        let params = ActionParams {
            reason,
            caused_by: None,
        };
        // The child records the action with origin parent_pod (this pod, this tool call).
        let client = self.as_client(Some(call_id));
        let call = Call::Action(LifecycleKind::Stop, params);
        let told = format!("stop_pod (tool call {call_id})");
        let (action, exit) = self.end_child(&child, &client, &call, &told, None).await;
        Ok(json!({"pod_id": child.pod_id, "exit": exit.to_string(), "action": action}))
    }

    /// `list_pods`: every child of this pod, live or ended.
    pub(crate) fn list(&self) -> Value {
        let children = locked(&self.live).clone();
        let items: Vec<Value> = children
            .iter()
            .map(|c| {
                let view = c.view.borrow();
                let (run_id, turns, result) = view
                    .runs
                    .last()
                    .map(|run| (run.run_id.clone(), run.turns, run.result.clone()))
                    .unwrap_or((None, 0, None));
                json!({
                    "pod_id": c.pod_id,
                    "name": c.name,
                    "profile": c.profile,
                    "pid": c.pid,
                    "state": match (&view.exited, &result) {
                        (Some(_), _) => "exited",
                        (None, Some(_)) => "idle",
                        (None, None) => "running",
                    },
                    "exit": view.exited.map(|e| e.to_string()),
                    "last_run_id": run_id,
                    "last_run_turns_ended": turns,
                    "last_result": result,
                })
            })
            .collect();
        json!({ "children": items })
    }

    /// Cascade `cause` (an action on this pod) to every live child as `kind` with a `caused_by`
    /// link, then wait for each to exit; a child that does not answer and exit within the grace
    /// is killed (see `end_child`).
    pub(crate) async fn cascade(&self, cause: &LifecycleAction, kind: LifecycleKind) {
        let children: Vec<Arc<LiveChild>> = locked(&self.live)
            .iter()
            .filter(|c| c.view.borrow().exited.is_none())
            .cloned()
            .collect();
        let link = CausedBy {
            pod_id: self.parent_pod_id.clone(),
            action_id: cause.action_id.clone(),
            kind: cause.kind,
        };
        let stops = children.iter().map(|child| {
            let params = ActionParams {
                reason: cause.reason.clone(),
                caused_by: Some(link.clone()),
            };
            let link = link.clone();
            async move {
                // Not a tool call: the child records a control request from this pod, linked to
                // the cause by `caused_by`.
                let client = self.as_client(None);
                let call = Call::Action(kind, params);
                let told = format!(
                    "{} (cascade of this pod's {} action {})",
                    kind.as_str(),
                    link.kind.as_str(),
                    link.action_id
                );
                self.end_child(child, &client, &call, &told, Some(link))
                    .await
            }
        });
        futures_util::future::join_all(stops).await;
    }

    /// Tell `child` to end with `call` and wait for its exit. A child that has not answered
    /// within `limits.shutdown_grace_ms` (stopped, hung), or answered but has not exited within
    /// one and a half graces after that, is killed with its process group, and the kill is
    /// recorded in this pod's log as a `kill` action: origin `runtime` saying what the child was
    /// `told` and how long it had, `caused_by` the action of this pod that ended it, when there
    /// is one. Returns the child's reply (the action it recorded) when it answered, and how it
    /// exited.
    ///
    /// Why the extra half grace for a child that answered: it is ending, and cascading to its own
    /// children with the same grace. Killing it at the same moment as it would kill a stopped
    /// grandchild would kill it first, and leave that grandchild stopped with nobody to end it.
    async fn end_child(
        &self,
        child: &LiveChild,
        client: &ClientInfo,
        call: &Call,
        told: &str,
        cause: Option<CausedBy>,
    ) -> (Option<Value>, ExitInfo) {
        *locked(&child.stopping) = true;
        let mut view = child.view.clone();
        let answered = tokio::time::timeout(
            self.grace,
            child
                .client
                .call_as(&crate::lifecycle::new_id(), client, call),
        )
        .await;
        let mut reply = None;
        let waited = match answered {
            Err(_) => "did not answer",
            Ok(result) => {
                match result {
                    Ok(value) => reply = Some(value),
                    // A child already gone cannot answer; its exit says the rest.
                    Err(error) => {
                        tracing::warn!(pod_id = %child.pod_id, %error, "request to end the child failed")
                    }
                }
                let exited = tokio::time::timeout(self.grace + self.grace / 2, async {
                    view.wait_for(|v| v.exited.is_some())
                        .await
                        .ok()
                        .and_then(|v| v.exited)
                })
                .await;
                if let Ok(Some(info)) = exited {
                    return (reply, info);
                }
                "answered but did not exit"
            }
        };
        let grace_ms = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
        let mut action = crate::lifecycle::new_action(
            LifecycleKind::Kill,
            vec![child.pod_id.clone()],
            Origin::Runtime {
                detail: format!(
                    "child pod {} {waited} in time (limits.shutdown_grace_ms {grace_ms} ms) after {told}; its process group was killed",
                    child.pod_id
                ),
            },
        );
        action.caused_by = cause;
        tracing::warn!(pod_id = %child.pod_id, grace_ms, "child did not end in time; killing its process group");
        (self.record)(LogBody::LifecycleAction(LifecycleActionRecorded {
            action,
            active_run_id: None,
        }));
        let info = child.process.lock().await.kill().await;
        // The child could not close its own records: say in its pod.json that it ended.
        let dir = child.process.lock().await.dir.clone();
        if let Err(error) = crate::home::PodDir::open(&dir).update_info(|pod| {
            pod.state = crate::record::PodState::Failed;
            pod.pid = None;
        }) {
            tracing::warn!(error = %error_chain(&error), "cannot mark the killed child pod as failed");
        }
        (reply, info)
    }
}

/// The request id a child's `run` reply hands back.
fn run_request_id(
    reply: Result<Value, ChildError>,
    client: &ControlClient,
) -> Result<String, ChildError> {
    reply?
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ChildError::Protocol {
            path: client.socket_path().to_owned(),
            message: "`run` reply without request_id".to_owned(),
        })
}

async fn follow_events(child: Arc<LiveChild>, approver: Arc<dyn Approver>) {
    while let Some(event) = child.client.next_event().await {
        match event {
            // Answered on a task of its own: a person may take a while, and the child's other
            // events keep coming meanwhile.
            PodEvent::ApprovalRequested(ask) => {
                tokio::spawn(answer_ask(child.clone(), approver.clone(), ask));
            }
            PodEvent::RunStarted {
                run_id,
                request_id: Some(request_id),
            } => child.view_tx.send_modify(|v| {
                if let Some(run) = v.runs.iter_mut().find(|r| r.request_id == request_id) {
                    run.run_id = Some(run_id);
                }
            }),
            PodEvent::TurnEnded { run_id, turn } => child.view_tx.send_modify(|v| {
                if let Some(run) = v
                    .runs
                    .iter_mut()
                    .find(|r| r.run_id.as_deref() == Some(&run_id))
                {
                    run.turns = turn;
                }
            }),
            PodEvent::RunEnded {
                run_id,
                request_id: Some(request_id),
                result,
            } => child.view_tx.send_modify(|v| {
                if let Some(run) = v.runs.iter_mut().find(|r| r.request_id == request_id) {
                    run.run_id = Some(run_id);
                    run.result = Some(result);
                }
            }),
            PodEvent::RunFailed {
                request_id: Some(request_id),
                message,
            } => child.view_tx.send_modify(|v| {
                if let Some(run) = v.runs.iter_mut().find(|r| r.request_id == request_id) {
                    run.result = Some(RunResult::Interrupted {
                        reason: format!("the child could not record its run: {message}"),
                        action: None,
                    });
                }
            }),
            PodEvent::Lagged { missed } => {
                tracing::warn!(pod_id = %child.pod_id, missed, "missed child events");
            }
            PodEvent::RunStarted { .. }
            | PodEvent::RunEnded { .. }
            | PodEvent::RunFailed { .. }
            | PodEvent::Exiting { .. } => {}
        }
    }
}

/// Decide a child's ask with this pod's approver and send the answer down.
async fn answer_ask(child: Arc<LiveChild>, approver: Arc<dyn Approver>, ask: ApprovalAsk) {
    let answer = approver.decide(&ask).await;
    if let Err(error) = child.client.call(&Call::Approve(answer)).await {
        tracing::warn!(pod_id = %child.pod_id, ask_id = %ask.ask_id, error = %error_chain(&error), "cannot answer a child's ask");
    }
}

async fn follow_exit(child: Arc<LiveChild>, record: Recorder) {
    let (mut watch, dir) = {
        let process = child.process.lock().await;
        (process.exit_watch(), process.dir.clone())
    };
    let info = match watch.wait_for(Option::is_some).await {
        Ok(v) => v.unwrap_or(ExitInfo {
            code: None,
            signal: None,
        }),
        Err(_) => ExitInfo {
            code: None,
            signal: None,
        },
    };
    // Expected: this pod asked the child to end, or the child ended cleanly on its own (exit 0,
    // e.g. its idle watchdog). Anything else is a loss.
    let expected = *locked(&child.stopping) || info.code == Some(0);
    child.view_tx.send_modify(|v| v.exited = Some(info));
    if !expected {
        // A lost child could not close its own records: say in its pod.json that it failed,
        // so `pods ls` does not show it running.
        let lost = crate::home::PodDir::open(&dir).update_info(|pod| {
            pod.state = crate::record::PodState::Failed;
            pod.pid = None;
        });
        if let Err(error) = lost {
            tracing::warn!(%error, "cannot mark lost child pod as failed");
        }
    }
    record(LogBody::ChildExited(ChildExited {
        child_pod_id: child.pod_id.clone(),
        exit_code: info.code,
        signal: info.signal,
        expected,
    }));
}
