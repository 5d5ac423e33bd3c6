//! Hosting a [`Pod`] in its process: runs requested on the control socket (or given by the
//! command line), lifecycle actions from the socket, signals and parent death, and the pod's
//! children, until the pod is told to end.
//!
//! The pod itself runs on its own task; the host loop only routes. Every lifecycle action that
//! reaches the pod is recorded (`lifecycle_action`) and, when a run is active, interrupts it
//! through the pod's [`RunControl`](crate::RunControl) (which resolves overlapping actions to
//! the nearest). Actions that end the pod cascade to its live children with a `caused_by` link.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Call, ControlServer, Incoming, PodEvent, ReplyError, RunResult};
use crate::lifecycle::{cascade_kind, ends_pod, mono_ms, new_action};
use crate::record::{LifecycleAction, LifecycleActionRecorded, LifecycleKind, LogBody, Origin};
use crate::runtime::{Pod, Quiet, RunInput, RunObserver, RunOutcome, RunReport};
use crate::session_log::SessionLog;
use crate::spawn_tools::Children;
use crate::{CoreError, RunControl};

/// What the host listens to besides the control socket.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// End the pod with a `parent_exit` action when stdin reaches EOF (a child pod).
    pub watch_parent: bool,
    /// End the pod (and its tree) with a `shutdown` action on SIGTERM / SIGINT.
    pub handle_signals: bool,
    /// The pod's working directory; needed to reload (a new segment connects its model and
    /// scope again). Without it `reload` is refused.
    pub work_dir: Option<std::path::PathBuf>,
}

/// How hosting ended.
#[derive(Debug)]
pub struct HostEnd {
    /// The action that ended the pod, when one did.
    pub action: Option<LifecycleAction>,
    /// The report of the run given to [`Host::run_once`], when it ran.
    pub first_run: Option<RunReport>,
}

struct Job {
    input: RunInput,
    request_id: Option<String>,
    observer: Arc<dyn RunObserver>,
}

/// What the pod task does next, in order.
enum Work {
    Run(Job),
    /// After the current run: close the segment and open a new one with the manifest re-read
    /// from the pod directory.
    Reload {
        work_dir: std::path::PathBuf,
    },
}

struct Finished {
    request_id: Option<String>,
    report: Result<RunReport, CoreError>,
}

/// A pod with its control socket and children, ready to be hosted.
pub struct Host {
    pod: Pod,
    server: ControlServer,
    children: Option<Arc<Children>>,
    options: HostOptions,
}

impl Host {
    pub fn new(
        pod: Pod,
        server: ControlServer,
        children: Option<Arc<Children>>,
        options: HostOptions,
    ) -> Host {
        Host {
            pod,
            server,
            children,
            options,
        }
    }

    /// Serve requests until a lifecycle action ends the pod (`pods serve`).
    pub async fn serve(self) -> Result<HostEnd, CoreError> {
        self.host(None, Arc::new(Quiet)).await
    }

    /// Run `input` while serving the control socket; end when that run ends (`pods run`), or
    /// earlier when an action ends the pod.
    pub async fn run_once(
        self,
        input: RunInput,
        observer: Arc<dyn RunObserver>,
    ) -> Result<HostEnd, CoreError> {
        self.host(Some(input), observer).await
    }

    async fn host(
        self,
        first: Option<RunInput>,
        observer: Arc<dyn RunObserver>,
    ) -> Result<HostEnd, CoreError> {
        let Host {
            pod,
            mut server,
            children,
            options,
        } = self;
        let pod_id = pod.id().to_owned();
        let watchdog_ms = pod.manifest().limits.watchdog_ms;
        let log = pod.log().clone();
        let control = pod.control().clone();
        let (job_tx, job_rx) = mpsc::channel::<Work>(4);
        let (done_tx, mut done_rx) = mpsc::channel::<Finished>(4);
        let (closed_tx, closed_rx) = oneshot::channel();
        tokio::spawn(pod_task(pod, job_rx, done_tx, closed_tx));

        let mut parent_gone: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> =
            if options.watch_parent {
                Box::pin(crate::supervisor::watch_parent())
            } else {
                Box::pin(std::future::pending())
            };
        let mut signals = Signals::new(options.handle_signals);
        let progress = Arc::new(Progress::default());
        let mut watchdog = tokio::time::interval(Duration::from_millis((watchdog_ms / 4).max(10)));
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let once = first.is_some();
        let mut active: Option<Option<String>> = None;
        let mut first_report = None;
        if let Some(input) = first {
            active = Some(None);
            progress.touch();
            let _ = job_tx
                .send(Work::Run(Job {
                    input,
                    request_id: None,
                    observer: Arc::new(Watched {
                        inner: observer,
                        progress: progress.clone(),
                        events: server.publisher(),
                        request_id: None,
                    }),
                }))
                .await;
        }
        let mut state = Ending::default();
        loop {
            if state.action.is_some() && active.is_none() {
                break;
            }
            tokio::select! {
                Some(request) = server.incoming.recv() => {
                    let end = handle_request(
                        request, &pod_id, &log, &control, &children,
                        &mut active, &state, &job_tx, &options.work_dir, &progress, &server.publisher(),
                    ).await;
                    if let Some(action) = end {
                        state.begin(action, &children, &pod_id);
                    }
                }
                () = &mut parent_gone, if state.action.is_none() => {
                    let action = new_action(
                        LifecycleKind::ParentExit,
                        vec![pod_id.clone()],
                        Origin::Runtime {
                            detail: "the parent process is gone (its pipe to this pod closed)".into(),
                        },
                    );
                    apply(&action, &log, &control, active.is_some(), &progress);
                    state.begin(action, &children, &pod_id);
                }
                Some(signal) = signals.next(), if state.action.is_none() => {
                    let action = new_action(
                        LifecycleKind::Shutdown,
                        vec![pod_id.clone()],
                        Origin::Signal { signal: signal.to_owned() },
                    );
                    apply(&action, &log, &control, active.is_some(), &progress);
                    state.begin(action, &children, &pod_id);
                }
                _ = watchdog.tick(), if watchdog_ms > 0 && active.is_some() && state.action.is_none() => {
                    if progress.idle_ms() >= watchdog_ms {
                        let action = new_action(
                            LifecycleKind::Watchdog,
                            vec![pod_id.clone()],
                            Origin::Watchdog { idle_ms: watchdog_ms },
                        );
                        apply(&action, &log, &control, true, &progress);
                        state.begin(action, &children, &pod_id);
                    }
                }
                Some(finished) = done_rx.recv() => {
                    active = None;
                    progress.set_run_id(None);
                    let failed = finished.report.is_err();
                    let event = match &finished.report {
                        Ok(report) => PodEvent::RunEnded {
                            run_id: report.run_id.clone(),
                            request_id: finished.request_id.clone(),
                            result: run_result(&report.outcome),
                        },
                        Err(error) => PodEvent::RunFailed {
                            request_id: finished.request_id.clone(),
                            message: error.to_string(),
                        },
                    };
                    server.publish(event);
                    if state.action.is_none() {
                        // An action that arrived as the run finished on its own applies to
                        // nothing now; do not let it interrupt the next run.
                        control.take();
                    }
                    if finished.request_id.is_none() && once {
                        first_report = Some(finished.report);
                        if state.action.is_none() {
                            let action = new_action(
                                LifecycleKind::Shutdown,
                                vec![pod_id.clone()],
                                Origin::Runtime { detail: "the command-line run ended".into() },
                            );
                            record(&log, &action, None);
                            state.begin(action, &children, &pod_id);
                        }
                    } else if failed && state.action.is_none() {
                        // The pod task has ended (a run or a reload could not be recorded).
                        let action = new_action(
                            LifecycleKind::Shutdown,
                            vec![pod_id.clone()],
                            Origin::Runtime {
                                detail: "the pod could not write its records".into(),
                            },
                        );
                        tracing::error!("a run or reload could not be recorded; the pod stops");
                        state.begin(action, &children, &pod_id);
                    }
                }
            }
        }
        if let Some(cascade) = state.cascade.take() {
            let _ = cascade.await;
        }
        let reason = match &state.action {
            Some(action) => crate::lifecycle::interrupt_reason(action.kind).to_owned(),
            None => "ended".to_owned(),
        };
        server.publish(PodEvent::Exiting {
            reason: reason.clone(),
            action: state.action.clone(),
        });
        drop(job_tx);
        let closed = closed_rx.await.unwrap_or(Ok(()));
        drop(server);
        closed?;
        let first_run = match first_report {
            Some(Ok(report)) => Some(report),
            Some(Err(error)) => return Err(error),
            None => None,
        };
        Ok(HostEnd {
            action: state.action,
            first_run,
        })
    }
}

#[derive(Default)]
struct Ending {
    action: Option<LifecycleAction>,
    cascade: Option<tokio::task::JoinHandle<()>>,
}

impl Ending {
    /// The pod will end because of `action`: cascade it to the children now (concurrently with
    /// the interruption of the active run).
    fn begin(&mut self, action: LifecycleAction, children: &Option<Arc<Children>>, pod_id: &str) {
        if let Some(children) = children {
            let children = children.clone();
            let cause = action.clone();
            let kind = cascade_kind(action.kind).unwrap_or(LifecycleKind::ParentExit);
            let _ = pod_id;
            self.cascade = Some(tokio::spawn(async move {
                children.cascade(&cause, kind).await;
            }));
        }
        self.action = Some(action);
    }
}

async fn pod_task(
    mut pod: Pod,
    mut jobs: mpsc::Receiver<Work>,
    done: mpsc::Sender<Finished>,
    closed: oneshot::Sender<Result<(), CoreError>>,
) {
    while let Some(work) = jobs.recv().await {
        let job = match work {
            Work::Run(job) => job,
            Work::Reload { work_dir } => {
                match reload(pod, &work_dir).await {
                    Ok(reloaded) => pod = reloaded,
                    Err(error) => {
                        tracing::error!(%error, "reload failed; the pod stops");
                        let _ = done
                            .send(Finished {
                                request_id: None,
                                report: Err(error),
                            })
                            .await;
                        let _ = closed.send(Ok(()));
                        return;
                    }
                }
                continue;
            }
        };
        let report = pod.run(job.input, job.observer).await;
        let failed = report.is_err();
        let _ = done
            .send(Finished {
                request_id: job.request_id,
                report,
            })
            .await;
        if failed {
            break;
        }
    }
    // The segment closes with the outcome of its last run (`completed`, `errored`,
    // `interrupted`, `failed`), or `stopped` when it ran none.
    let reason = pod.last_outcome().unwrap_or("stopped");
    let _ = closed.send(pod.close(reason).await);
}

/// Close the pod's segment and open a new one with the manifest re-read from its directory
/// (the new `segment_started` records its digest). Tools registered besides the builtins
/// (the child tools) stay registered.
async fn reload(pod: Pod, work_dir: &std::path::Path) -> Result<Pod, CoreError> {
    let dir = pod.dir().clone();
    let control = pod.control().clone();
    let extra: Vec<Arc<dyn crate::tools::Tool>> = crate::spawn_tools::SPAWN_TOOLS
        .iter()
        .filter_map(|(name, _)| pod.tools().get(name).cloned())
        .collect();
    pod.close("reloaded").await?;
    let resolved = pod_profile::read_manifest_files(dir.path()).map_err(|e| CoreError::Config {
        message: format!("cannot reload the manifest of pod {}", dir.id()),
        source: Some(Box::new(e)),
    })?;
    let model = crate::model::ModelConnection::connect(&resolved.manifest, work_dir).await?;
    let mut pod = Pod::start(
        dir,
        resolved.manifest,
        crate::runtime::PodOptions {
            work_dir: work_dir.to_owned(),
            model,
            control,
        },
    )?;
    for tool in extra {
        pod.register_tool(tool);
    }
    Ok(pod)
}

fn record(log: &SessionLog, action: &LifecycleAction, active: Option<String>) {
    if let Err(error) = log.append(LogBody::LifecycleAction(LifecycleActionRecorded {
        action: action.clone(),
        active_run_id: active,
    })) {
        tracing::error!(%error, "cannot record lifecycle action");
    }
}

/// Record `action` and interrupt the active run with it when it is one that disturbs runs.
fn apply(
    action: &LifecycleAction,
    log: &SessionLog,
    control: &RunControl,
    run_active: bool,
    progress: &Progress,
) {
    record(log, action, run_active.then(|| progress.run_id()).flatten());
    if run_active {
        control.interrupt(action.clone());
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle_request(
    request: Incoming,
    pod_id: &str,
    log: &SessionLog,
    control: &RunControl,
    children: &Option<Arc<Children>>,
    active: &mut Option<Option<String>>,
    state: &Ending,
    jobs: &mpsc::Sender<Work>,
    work_dir: &Option<std::path::PathBuf>,
    progress: &Arc<Progress>,
    events: &tokio::sync::broadcast::Sender<PodEvent>,
) -> Option<LifecycleAction> {
    match &request.call {
        Call::Run(params) => {
            if state.action.is_some() {
                request.respond(Err(ReplyError::new("not_running", "the pod is ending")));
            } else if active.is_some() {
                request.respond(Err(ReplyError::new(
                    "busy",
                    "a run is active; wait for it to end or cancel it",
                )));
            } else {
                let input = RunInput {
                    text: params.input.clone(),
                    trigger: request.trigger(),
                    request_id: Some(request.request_id.clone()),
                };
                let request_id = request.request_id.clone();
                *active = Some(Some(request_id.clone()));
                progress.touch();
                if jobs
                    .send(Work::Run(Job {
                        input,
                        request_id: Some(request_id.clone()),
                        observer: Arc::new(Watched {
                            inner: Arc::new(Quiet),
                            progress: progress.clone(),
                            events: events.clone(),
                            request_id: Some(request_id.clone()),
                        }),
                    }))
                    .await
                    .is_err()
                {
                    *active = None;
                    request.respond(Err(ReplyError::new("failed", "the pod task has ended")));
                } else {
                    request.respond(Ok(json!({ "request_id": request_id })));
                }
            }
            None
        }
        Call::Action(kind, _) => {
            let kind = *kind;
            let Some(action) = request.action(pod_id) else {
                request.respond(Err(ReplyError::new("failed", "not an action")));
                return None;
            };
            if kind == LifecycleKind::Reload {
                let Some(work_dir) = work_dir.clone() else {
                    request.respond(Err(ReplyError::new(
                        "unsupported",
                        "this pod process cannot reload (no working directory given)",
                    )));
                    return None;
                };
                // Interrupt the active run, then (in order, after it ends) start a new segment
                // with the manifest re-read from the pod directory.
                apply(&action, log, control, active.is_some(), progress);
                let queued = jobs.send(Work::Reload { work_dir }).await;
                let reply = match queued {
                    Ok(()) => Ok(serde_json::to_value(&action).unwrap_or_default()),
                    Err(_) => Err(ReplyError::new("failed", "the pod task has ended")),
                };
                request.respond(reply);
                return None;
            }
            let ends = ends_pod(kind);
            if ends && state.action.is_some() {
                // Already ending: record the later action, it does not change the outcome.
                record(
                    log,
                    &action,
                    active.as_ref().and_then(|_| progress.run_id()),
                );
                if active.is_some() {
                    control.interrupt(action.clone());
                }
                request.respond(Ok(serde_json::to_value(&action).unwrap_or_default()));
                return None;
            }
            apply(&action, log, control, active.is_some(), progress);
            request.respond(Ok(serde_json::to_value(&action).unwrap_or_default()));
            ends.then_some(action)
        }
        Call::Status => {
            let kids = children.as_ref().map(|c| c.list());
            request.respond(Ok(json!({
                "pod_id": pod_id,
                "pid": std::process::id(),
                "state": if active.is_some() { "running" } else { "idle" },
                "ending": state.action.as_ref().map(|a| a.kind),
                "children": kids,
            })));
            None
        }
        Call::Subscribe => {
            // The server answers subscriptions itself.
            request.respond(Ok(json!({"subscribed": true})));
            None
        }
    }
}

/// When the active run last showed progress, for the idle watchdog.
#[derive(Default)]
struct Progress {
    /// The active run's id, once it is recorded as started.
    run_id: std::sync::Mutex<Option<String>>,
    last_ms: AtomicU64,
    /// Tool calls executing; a run inside a tool call is not idle.
    in_tool: AtomicU32,
}

impl Progress {
    fn run_id(&self) -> Option<String> {
        self.run_id.lock().map(|id| id.clone()).unwrap_or(None)
    }

    fn set_run_id(&self, run_id: Option<String>) {
        if let Ok(mut id) = self.run_id.lock() {
            *id = run_id;
        }
    }

    fn touch(&self) {
        self.last_ms.store(mono_ms(), Ordering::Relaxed);
    }

    /// Milliseconds without progress; 0 while a tool call executes.
    fn idle_ms(&self) -> u64 {
        if self.in_tool.load(Ordering::Relaxed) > 0 {
            return 0;
        }
        mono_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Forwards to the presenting observer, records progress for the watchdog, and tells control
/// subscribers when the run starts and each turn ends.
struct Watched {
    inner: Arc<dyn RunObserver>,
    progress: Arc<Progress>,
    events: tokio::sync::broadcast::Sender<PodEvent>,
    request_id: Option<String>,
}

impl RunObserver for Watched {
    fn on_run_started(&self, run_id: &str) {
        self.progress.set_run_id(Some(run_id.to_owned()));
        let _ = self.events.send(PodEvent::RunStarted {
            run_id: run_id.to_owned(),
            request_id: self.request_id.clone(),
        });
        self.inner.on_run_started(run_id);
    }

    fn on_turn_end(&self, run_id: &str, turn: u32) {
        self.progress.touch();
        let _ = self.events.send(PodEvent::TurnEnded {
            run_id: run_id.to_owned(),
            turn,
        });
        self.inner.on_turn_end(run_id, turn);
    }

    fn on_first_event(&self) {
        self.progress.touch();
        self.inner.on_first_event();
    }

    fn on_text(&self, text: &str) {
        self.progress.touch();
        self.inner.on_text(text);
    }

    fn on_reasoning(&self, text: &str) {
        self.progress.touch();
        self.inner.on_reasoning(text);
    }

    fn on_tool_call(&self, tool: &str, input: &serde_json::Value) {
        self.progress.in_tool.fetch_add(1, Ordering::Relaxed);
        self.progress.touch();
        self.inner.on_tool_call(tool, input);
    }

    fn on_tool_result(&self, tool: &str, ok: bool, output: &str) {
        let _ = self
            .progress
            .in_tool
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.progress.touch();
        self.inner.on_tool_result(tool, ok, output);
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &pod_provider::ProviderError) {
        self.progress.touch();
        self.inner.on_retry(attempt, delay, cause);
    }
}

fn run_result(outcome: &RunOutcome) -> RunResult {
    match outcome {
        RunOutcome::Completed { text, .. } => RunResult::Completed { text: text.clone() },
        RunOutcome::Errored { error, .. } => RunResult::Errored {
            error: error.clone(),
        },
        RunOutcome::Interrupted { action, .. } => RunResult::Interrupted {
            reason: crate::lifecycle::interrupt_reason(action.kind).to_owned(),
            action: Some(action.clone()),
        },
    }
}

/// SIGTERM and SIGINT as a stream of names.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new(enabled: bool) -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        if !enabled {
            return Signals {
                term: None,
                int: None,
            };
        }
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) -> Option<&'static str> {
        match (&mut self.term, &mut self.int) {
            (Some(term), Some(int)) => tokio::select! {
                Some(()) = term.recv() => Some("SIGTERM"),
                Some(()) = int.recv() => Some("SIGINT"),
            },
            (Some(term), None) => term.recv().await.map(|()| "SIGTERM"),
            (None, Some(int)) => int.recv().await.map(|()| "SIGINT"),
            (None, None) => std::future::pending().await,
        }
    }
}

/// What a pod needs to spawn children: where profiles are, its own resolved manifest, the home
/// its children's directories go in, and how to launch them.
pub struct ChildSetup {
    pub catalog: pod_profile::Catalog,
    pub resolved: pod_profile::ResolvedManifest,
    pub home: crate::home::PodHome,
    pub launcher: crate::supervisor::Launcher,
}

/// Give `pod` its children: when its manifest allows any child profile, register the child
/// tools (`spawn_pod`, `wait_pod`, `send_to_pod`, `stop_pod`, `list_pods`) and return the
/// registry the host cascades lifecycle actions through. `child_spawned` / `child_exited` go to
/// the pod's session log.
pub fn attach_children(pod: &mut Pod, setup: ChildSetup) -> Option<Arc<Children>> {
    let spawn = pod.manifest().spawn.clone();
    if spawn.allowed_profiles.is_empty() {
        return None;
    }
    let pod_id = pod.id().to_owned();
    let log = pod.log().clone();
    let recorder: crate::spawn_tools::Recorder = Arc::new(move |body| {
        if let Err(error) = log.append(body) {
            tracing::error!(%error, "cannot record child supervision entry");
        }
    });
    let factory = crate::spawn_tools::ProfileChildFactory {
        catalog: setup.catalog,
        parent: setup.resolved,
        parent_pod_id: pod_id.clone(),
        parent_scope: pod.scope().clone(),
        home: setup.home,
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("PODS_") && k.contains("__"))
            .collect(),
    };
    let children = Arc::new(Children::new(
        pod_id,
        spawn,
        setup.launcher,
        Arc::new(factory),
        recorder,
    ));
    for tool in crate::spawn_tools::ChildTool::all(&children) {
        pod.register_tool(tool);
    }
    Some(children)
}
