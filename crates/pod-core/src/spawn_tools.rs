//! A pod's children and the tools that manage them: `spawn_pod`, `wait_pod`, `send_to_pod`,
//! `stop_pod`, `list_pods`.
//!
//! [`Children`] owns the live child processes of one pod. Spawning checks the `[spawn]` limits,
//! asks a [`ChildFactory`] to materialize the child's manifest and write its pod directory
//! (that is the profile crate's child materialization; nothing is copied here by hand), launches
//! the child ([`crate::supervisor::Launcher`]), subscribes to its events on the control socket and
//! hands it its task. A failure before the child is live removes the directory again and leaves
//! no process and no registration. Every child's exit is recorded (`child_exited`), expected or
//! lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use pod_profile::manifest::SpawnSection;

use crate::control::{
    ActionParams, Call, ClientInfo, ControlClient, PodEvent, RunParams, RunResult,
};
use crate::error::error_chain;
use crate::record::{
    CausedBy, ChildExited, ChildSpawned, LifecycleAction, LifecycleActionRecorded, LifecycleKind,
    LogBody, Origin, SideEffectClass,
};
use crate::supervisor::{ChildError, ChildProcess, ExitInfo, Launcher};

/// Names of the tools this module provides, with their side-effect class.
pub const SPAWN_TOOLS: &[(&str, SideEffectClass)] = &[
    ("spawn_pod", SideEffectClass::Spawn),
    ("wait_pod", SideEffectClass::ReadOnly),
    ("send_to_pod", SideEffectClass::Spawn),
    ("stop_pod", SideEffectClass::Spawn),
    ("list_pods", SideEffectClass::ReadOnly),
];

/// `spawn_pod` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnArgs {
    /// Child profile name.
    pub profile: String,
    /// The task handed to the child as its first run.
    pub task: String,
    /// Narrower filesystem scope for the child (`{"allow": [...], "deny": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// Manifest overrides by dotted key (`{"session.record_event_trace": false}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<BTreeMap<String, Value>>,
    /// A name for the child; the other child tools accept it in place of the pod id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A child's pod directory, written and ready to launch.
#[derive(Debug, Clone)]
pub struct PreparedChild {
    pub pod_id: String,
    pub name: String,
    pub dir: PathBuf,
    pub profile: String,
    /// `limits.spawn_ready_timeout_ms` of the parent's manifest.
    pub ready_timeout: Duration,
}

/// Materializes a child manifest and writes its pod directory (`manifest.toml`,
/// `provenance.json`, `pod.json` naming the parent). An error here is a refusal the model sees
/// (unknown profile, scope escalation, forbidden override).
pub trait ChildFactory: Send + Sync {
    fn prepare(&self, args: &SpawnArgs) -> Result<PreparedChild, ChildError>;
}

/// Where a pod's child-related log entries go (the pod's session log).
pub type Recorder = Arc<dyn Fn(LogBody) + Send + Sync>;

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

struct LiveChild {
    pod_id: String,
    name: String,
    profile: String,
    pid: u32,
    process: tokio::sync::Mutex<ChildProcess>,
    client: ControlClient,
    view: watch::Receiver<ChildView>,
    view_tx: watch::Sender<ChildView>,
    /// Set before this pod asks the child to end, so its exit is recorded as expected.
    stopping: Arc<Mutex<bool>>,
}

/// The children of one pod.
pub struct Children {
    parent_pod_id: String,
    limits: SpawnSection,
    launcher: Launcher,
    factory: Arc<dyn ChildFactory>,
    record: Recorder,
    /// `limits.shutdown_grace_ms`: how long a child told to end may take to answer and exit
    /// before its process group is killed.
    grace: Duration,
    live: Mutex<Vec<Arc<LiveChild>>>,
}

/// What a tool gives back to the model: `ok` false marks the call as failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolReply {
    pub ok: bool,
    pub output: Value,
}

impl ToolReply {
    fn ok(output: Value) -> Self {
        ToolReply { ok: true, output }
    }

    fn err(error: &ChildError) -> Self {
        ToolReply {
            ok: false,
            output: json!({ "error": error_chain(error) }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Children {
    pub fn new(
        parent_pod_id: impl Into<String>,
        limits: SpawnSection,
        launcher: Launcher,
        factory: Arc<dyn ChildFactory>,
        record: Recorder,
        grace: Duration,
    ) -> Children {
        Children {
            parent_pod_id: parent_pod_id.into(),
            limits,
            launcher,
            factory,
            record,
            grace,
            live: Mutex::new(Vec::new()),
        }
    }

    /// Run one of the [`SPAWN_TOOLS`] by name with its JSON arguments.
    pub async fn call_tool(
        &self,
        tool: &str,
        run_id: &str,
        call_id: &str,
        args: Value,
    ) -> ToolReply {
        let result = match tool {
            "spawn_pod" => match serde_json::from_value::<SpawnArgs>(args) {
                Ok(args) => self.spawn(run_id, call_id, args).await,
                Err(e) => Err(ChildError::SpawnRefused(format!(
                    "invalid spawn_pod arguments: {e}"
                ))),
            },
            "wait_pod" => match pod_arg(&args) {
                Ok(pod) => {
                    let timeout = args.get("timeout_ms").and_then(Value::as_u64);
                    self.wait(&pod, timeout.map(Duration::from_millis)).await
                }
                Err(e) => Err(e),
            },
            "send_to_pod" => match (pod_arg(&args), args.get("input").and_then(Value::as_str)) {
                (Ok(pod), Some(input)) => self.send(&pod, call_id, input).await,
                (Err(e), _) => Err(e),
                (_, None) => Err(ChildError::SpawnRefused(
                    "send_to_pod needs `input` (text)".to_owned(),
                )),
            },
            "stop_pod" => match pod_arg(&args) {
                Ok(pod) => {
                    let reason = args
                        .get("reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.stop(&pod, call_id, reason).await
                }
                Err(e) => Err(e),
            },
            "list_pods" => Ok(self.list()),
            other => Err(ChildError::SpawnRefused(format!("unknown tool `{other}`"))),
        };
        match result {
            Ok(value) => ToolReply::ok(value),
            Err(error) => ToolReply::err(&error),
        }
    }

    /// This pod as a control-socket client, optionally naming the tool call behind a request.
    fn as_client(&self, tool_call_id: Option<&str>) -> ClientInfo {
        ClientInfo::ParentPod {
            pod_id: self.parent_pod_id.clone(),
            tool_call_id: tool_call_id.map(str::to_owned),
        }
    }

    /// Number of children whose process is still running.
    pub fn live_count(&self) -> usize {
        lock(&self.live)
            .iter()
            .filter(|c| c.view.borrow().exited.is_none())
            .count()
    }

    fn find(&self, pod_id: &str) -> Result<Arc<LiveChild>, ChildError> {
        lock(&self.live)
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

    /// `spawn_pod`: check limits, prepare, launch, hand over the task.
    pub async fn spawn(
        &self,
        run_id: &str,
        call_id: &str,
        args: SpawnArgs,
    ) -> Result<Value, ChildError> {
        if !self
            .limits
            .allowed_profiles
            .iter()
            .any(|p| p == &args.profile)
        {
            let allowed = if self.limits.allowed_profiles.is_empty() {
                "none (spawn.allowed_profiles is empty)".to_owned()
            } else {
                self.limits.allowed_profiles.join(", ")
            };
            return Err(ChildError::SpawnRefused(format!(
                "profile `{}` is not in spawn.allowed_profiles; allowed: {allowed}",
                args.profile
            )));
        }
        if self.limits.max_depth == 0 {
            return Err(ChildError::SpawnRefused(
                "spawn depth exhausted: spawn.max_depth is 0 for this pod, so it may not spawn children"
                    .to_owned(),
            ));
        }
        let live = self.live_count();
        if live >= self.limits.max_children as usize {
            return Err(ChildError::SpawnRefused(format!(
                "{live} children are live and spawn.max_children is {}; wait for or stop one first",
                self.limits.max_children
            )));
        }
        let prepared = self.factory.prepare(&args)?;
        let process = match self
            .launcher
            .launch(&prepared.pod_id, &prepared.dir, prepared.ready_timeout)
            .await
        {
            Ok(process) => process,
            Err(error) => {
                remove_dir(&prepared.dir);
                return Err(error);
            }
        };
        match self.register(process, &prepared, call_id, &args.task).await {
            Ok((child, request_id)) => {
                (self.record)(LogBody::ChildSpawned(ChildSpawned {
                    run_id: run_id.to_owned(),
                    call_id: call_id.to_owned(),
                    child_pod_id: child.pod_id.clone(),
                    profile: child.profile.clone(),
                    pid: child.pid,
                }));
                Ok(json!({
                    "pod_id": child.pod_id,
                    "name": child.name,
                    "profile": child.profile,
                    "request_id": request_id,
                }))
            }
            Err((mut process, error)) => {
                process.kill().await;
                remove_dir(&prepared.dir);
                Err(error)
            }
        }
    }

    async fn register(
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
        lock(&self.live).push(child.clone());
        tokio::spawn(follow_events(child.clone()));
        tokio::spawn(follow_exit(child.clone(), self.record.clone()));
        Ok((child, request_id))
    }

    /// `wait_pod`: the result of the child's latest run (completed text, structured error,
    /// interruption), or its loss if the process ended first.
    pub async fn wait(&self, pod_id: &str, timeout: Option<Duration>) -> Result<Value, ChildError> {
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
    pub async fn send(
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
    pub fn list(&self) -> Value {
        let children = lock(&self.live).clone();
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
    pub async fn cascade(&self, cause: &LifecycleAction, kind: LifecycleKind) {
        let children: Vec<Arc<LiveChild>> = lock(&self.live)
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
                    crate::lifecycle::kind_name(kind),
                    crate::lifecycle::kind_name(link.kind),
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
        *lock(&child.stopping) = true;
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

fn pod_arg(args: &Value) -> Result<String, ChildError> {
    args.get("pod_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ChildError::SpawnRefused("missing `pod_id` (text)".to_owned()))
}

fn remove_dir(dir: &std::path::Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove child pod dir after failed spawn");
    }
}

async fn follow_events(child: Arc<LiveChild>) {
    while let Some(event) = child.client.next_event().await {
        match event {
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
    let expected = *lock(&child.stopping) || info.code == Some(0);
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

/// The [`ChildFactory`] of a real pod: the profile crate's child materialization, then a new pod
/// directory in the home with the materialized `manifest.toml` + `provenance.json` and a
/// `pod.json` naming the parent.
pub struct ProfileChildFactory {
    pub catalog: pod_profile::Catalog,
    pub parent: pod_profile::ResolvedManifest,
    pub parent_pod_id: String,
    /// The parent's resolved scope: a child's scope must stay inside it with symlinks followed.
    pub parent_scope: Arc<crate::scope::Scope>,
    pub home: crate::home::PodHome,
    /// Environment layer for the child's own resolution (`PODS_SECTION__KEY` pairs).
    pub env: Vec<(String, String)>,
}

impl ChildFactory for ProfileChildFactory {
    fn prepare(&self, args: &SpawnArgs) -> Result<PreparedChild, ChildError> {
        let scope = match &args.scope {
            None => None,
            Some(value) => Some(serde_json::from_value(value.clone()).map_err(|e| {
                ChildError::SpawnRefused(format!(
                    "invalid `scope` (expected {{\"allow\": [...], \"deny\": [...]}}): {e}"
                ))
            })?),
        };
        let request = pod_profile::SpawnRequest {
            task: args.task.clone(),
            scope,
            overrides: args.overrides.clone().unwrap_or_default(),
        };
        let resolved = pod_profile::materialize_child(
            &self.catalog,
            &self.parent,
            &self.parent_pod_id,
            &args.profile,
            &request,
            &self.env,
        )
        .map_err(|e| ChildError::SpawnRefused(error_chain(&e)))?;
        // Children run in the parent's working directory.
        let child_scope =
            crate::scope::Scope::new(&resolved.manifest.scope, self.parent_scope.work_dir());
        self.parent_scope.covers(&child_scope).map_err(|e| {
            ChildError::SpawnRefused(format!("requested scope is wider than the parent's: {e}"))
        })?;
        let dir = self
            .home
            .create_pod_in(
                args.name.as_deref(),
                &args.profile,
                Some(&self.parent_pod_id),
                self.parent_scope.work_dir(),
            )
            .map_err(|e| ChildError::SpawnRefused(error_chain(&e)))?;
        let name = match dir.read_info() {
            Ok(info) => info.name,
            Err(_) => dir.id().to_owned(),
        };
        if let Err(e) = pod_profile::write_manifest_files(dir.path(), &resolved) {
            remove_dir(dir.path());
            return Err(ChildError::SpawnRefused(error_chain(&e)));
        }
        Ok(PreparedChild {
            pod_id: dir.id().to_owned(),
            name,
            dir: dir.path().to_owned(),
            profile: args.profile.clone(),
            ready_timeout: Duration::from_millis(
                self.parent.manifest.limits.spawn_ready_timeout_ms,
            ),
        })
    }
}

/// One of the child tools, backed by the pod's [`Children`].
pub struct ChildTool {
    name: &'static str,
    side_effect: SideEffectClass,
    children: Arc<Children>,
}

impl ChildTool {
    /// All five child tools over one [`Children`].
    pub fn all(children: &Arc<Children>) -> Vec<Arc<dyn crate::tools::Tool>> {
        SPAWN_TOOLS
            .iter()
            .map(|(name, side_effect)| {
                Arc::new(ChildTool {
                    name,
                    side_effect: *side_effect,
                    children: children.clone(),
                }) as Arc<dyn crate::tools::Tool>
            })
            .collect()
    }
}

impl crate::tools::Tool for ChildTool {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        match self.name {
            "spawn_pod" => {
                "Start a child pod from a profile and hand it a task. Returns its pod_id and the \
                 run_id of the task; use wait_pod to get the result."
            }
            "wait_pod" => {
                "Wait for a child pod's latest run to end. Returns the completed text, or the \
                 structured provider error, or how it was interrupted or lost."
            }
            "send_to_pod" => "Start a new run in a child pod with the given input.",
            "stop_pod" => "Stop a child pod (and its own children) and wait for it to exit.",
            _ => "List this pod's children with their state and last run result.",
        }
    }

    fn parameters(&self) -> Value {
        match self.name {
            "spawn_pod" => json!({
                "type": "object",
                "properties": {
                    "profile": {"type": "string", "description": "child profile name"},
                    "task": {"type": "string"},
                    "name": {"type": "string", "description": "optional name for the child"},
                    "scope": {"type": "object", "properties": {
                        "allow": {"type": "array", "items": {"type": "string"}},
                        "deny": {"type": "array", "items": {"type": "string"}}}},
                    "overrides": {"type": "object", "description": "dotted manifest key -> value"}
                },
                "required": ["profile", "task"]
            }),
            "wait_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "timeout_ms": {"type": "integer"}},
                "required": ["pod_id"]
            }),
            "send_to_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "input": {"type": "string"}},
                "required": ["pod_id", "input"]
            }),
            "stop_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["pod_id"]
            }),
            _ => json!({"type": "object", "properties": {}}),
        }
    }

    fn side_effect(&self) -> SideEffectClass {
        self.side_effect
    }

    fn call<'a>(
        &'a self,
        ctx: &'a crate::tools::ToolContext,
        input: Value,
    ) -> crate::tools::ToolFuture<'a> {
        // The operation runs on its own task: when the run is interrupted and drops this future,
        // a spawn still finishes (registered and recorded, so it is cascaded and reaped) or
        // rolls back; it is never left half done.
        let children = self.children.clone();
        let name = self.name;
        let run_id = ctx.run_id.clone();
        let call_id = ctx.call_id.clone();
        let task =
            tokio::spawn(async move { children.call_tool(name, &run_id, &call_id, input).await });
        Box::pin(async move {
            let reply = match task.await {
                Ok(reply) => reply,
                Err(error) => ToolReply {
                    ok: false,
                    output: json!({ "error": format!("the {name} operation failed: {error}") }),
                },
            };
            let text = reply.output.to_string();
            if reply.ok {
                Ok(text)
            } else {
                Err(crate::tools::ToolError(text))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
