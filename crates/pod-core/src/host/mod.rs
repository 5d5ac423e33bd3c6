//! Hosting a [`Pod`] in its process: runs requested on the control socket (or given by the
//! command line), lifecycle actions from the socket, signals and parent death, and the pod's
//! children, until the pod is told to end.
//!
//! The pod itself runs on its own task; the host loop only routes. Every lifecycle action that
//! reaches the pod is recorded (`lifecycle_action`) and, when a run is active, interrupts it
//! through the pod's [`RunControl`] (which resolves overlapping actions to the nearest). Actions
//! that end the pod cascade to its live children with a `caused_by` link, and name those
//! children (and their live descendants) in `affects`.
//!
//! Two things end hosting without the pod task's cooperation, each recorded as far as possible:
//! the pod task failing (a panic, or the task ending without reporting), which ends the active
//! run as `run_interrupted` by a `shutdown` action with a `runtime` origin naming the failure
//! and marks the pod failed ([`HostAbort::TaskFailed`]); and a second SIGINT/SIGTERM/SIGHUP
//! while the pod is already ending, which stops waiting for it ([`HostAbort::Forced`]).
//!
//! Ending is bounded: children told to end get `limits.shutdown_grace_ms` to answer and exit,
//! then their process groups are killed, each kill recorded as a `kill` action
//! (`end_child` in [`crate::spawn_tools`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Call, ControlServer, Incoming, PodEvent, ReplyError, RunResult};
use crate::home::{PodDir, PodHome};
use crate::lifecycle::{cascade_kind, ends_pod, mono_ms, new_action};
use crate::record::{
    LifecycleAction, LifecycleActionRecorded, LifecycleKind, LogBody, Origin, PodState,
    RunInterrupted, RunPhase, SegmentClosed, SideEffectClass, ToolExecutionPhase,
};
use crate::runtime::{Pod, Quiet, RunInput, RunObserver, RunOutcome, RunReport};
use crate::session_log::SessionLog;
use crate::spawn_tools::Children;
use crate::{CoreError, RunControl, error_chain};

/// How long a forced end (second signal) waits for the pod task to close its segment itself
/// before the host records the end in its place.
const FORCE_GRACE: Duration = Duration::from_millis(1000);
/// How long an ending pod waits for the replies it already owes its control clients.
const REPLY_GRACE: Duration = Duration::from_millis(500);
/// After [`FORCE_GRACE`], how long the host waits for the cancelled pod task to be dropped.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// What the host listens to besides the control socket.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// End the pod with a `parent_exit` action when stdin reaches EOF (a child pod).
    pub watch_parent: bool,
    /// End the pod (and its tree) with a `shutdown` action on SIGTERM / SIGINT / SIGHUP; a
    /// second signal while the pod is ending stops waiting for it ([`HostAbort::Forced`]).
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
    /// The report of the run given to [`Host::run_once`], when it ran to a recorded end.
    pub first_run: Option<RunReport>,
    /// Set when hosting ended without the pod task ending normally.
    pub abort: Option<HostAbort>,
}

/// Why hosting ended without the pod task ending normally.
#[derive(Debug)]
pub enum HostAbort {
    /// The pod task failed (panicked, or ended without reporting). The active run, if any, was
    /// recorded as `run_interrupted` by a `shutdown` action with a `runtime` origin naming the
    /// failure, and `pod.json` says `failed`.
    TaskFailed { detail: String },
    /// A second SIGINT/SIGTERM/SIGHUP arrived while the pod was ending (`action`, recorded).
    /// The host waited briefly for the pod task, then recorded the run's end and the segment's
    /// close in its place if the task had not.
    Forced { action: LifecycleAction },
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
    /// from the pod directory (see [`reload`] for why it is not re-materialized).
    Reload {
        work_dir: std::path::PathBuf,
    },
}

/// What the pod task reports back.
enum Ended {
    /// A run ended; `Err` when it could not be recorded (the pod task then ends).
    Run {
        request_id: Option<String>,
        report: Result<RunReport, CoreError>,
    },
    /// A reload could not open the new segment; the pod task has ended.
    ReloadFailed(CoreError),
    /// The run panicked. The pod task recorded `action` (and the run's interruption by it) and
    /// ends, marking the pod failed.
    Faulted {
        request_id: Option<String>,
        action: LifecycleAction,
        detail: String,
    },
}

/// What the pod task shares with the host loop.
#[derive(Clone)]
struct TaskCtx {
    progress: Arc<Progress>,
    pod_id: String,
    dir: PodDir,
    children: Option<Arc<Children>>,
}

impl TaskCtx {
    /// The pods an action of `kind` on this pod affects (see [`affected`]).
    fn affects(&self, kind: LifecycleKind) -> Vec<String> {
        affected(kind, &self.pod_id, &self.dir, &self.children)
    }
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
        let progress = Arc::new(Progress::default());
        progress.set_tools(&pod);
        let ctx = TaskCtx {
            progress: progress.clone(),
            pod_id: pod_id.clone(),
            dir: pod.dir().clone(),
            children: children.clone(),
        };
        let (job_tx, job_rx) = mpsc::channel::<Work>(4);
        let mut job_tx = Some(job_tx);
        let (done_tx, mut done_rx) = mpsc::channel::<Ended>(4);
        let (closed_tx, mut closed_rx) = oneshot::channel();
        let mut task = tokio::spawn(pod_task(pod, job_rx, done_tx, closed_tx, ctx.clone()));
        let mut task_joined = false;

        let mut parent_gone: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> =
            if options.watch_parent {
                Box::pin(crate::supervisor::watch_parent())
            } else {
                Box::pin(std::future::pending())
            };
        let mut signals = Signals::new(options.handle_signals);
        let mut watchdog = tokio::time::interval(Duration::from_millis((watchdog_ms / 4).max(10)));
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let once = first.is_some();
        let mut active: Option<Option<String>> = None;
        let mut first_report = None;
        let mut abort: Option<HostAbort> = None;
        let mut forced: Option<&'static str> = None;
        if let (Some(input), Some(jobs)) = (first, &job_tx) {
            active = Some(None);
            progress.touch();
            let _ = jobs
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
                    let end = match &job_tx {
                        Some(jobs) => handle_request(
                            request, &ctx, &log, &control,
                            &mut active, &state, jobs, &options.work_dir, &server.publisher(),
                        ).await,
                        None => None,
                    };
                    if let Some(action) = end {
                        state.begin(action, &children);
                    }
                }
                () = &mut parent_gone, if state.action.is_none() => {
                    let action = new_action(
                        LifecycleKind::ParentExit,
                        ctx.affects(LifecycleKind::ParentExit),
                        Origin::Runtime {
                            detail: "the parent process is gone (its pipe to this pod closed)".into(),
                        },
                    );
                    apply(&action, &log, &control, active.is_some(), &progress);
                    state.begin(action, &children);
                }
                Some(signal) = signals.next() => {
                    if state.action.is_some() {
                        // Already ending and told again: stop waiting for the pod.
                        forced = Some(signal);
                        break;
                    }
                    let action = new_action(
                        LifecycleKind::Shutdown,
                        ctx.affects(LifecycleKind::Shutdown),
                        Origin::Signal { signal: signal.to_owned() },
                    );
                    apply(&action, &log, &control, active.is_some(), &progress);
                    state.begin(action, &children);
                }
                _ = watchdog.tick(), if watchdog_ms > 0 && active.is_some() && state.action.is_none() => {
                    if progress.idle_ms() >= watchdog_ms {
                        let action = new_action(
                            LifecycleKind::Watchdog,
                            ctx.affects(LifecycleKind::Watchdog),
                            Origin::Watchdog { idle_ms: watchdog_ms },
                        );
                        apply(&action, &log, &control, true, &progress);
                        state.begin(action, &children);
                    }
                }
                ended = done_rx.recv(), if !task_joined => match ended {
                    Some(Ended::Run { request_id, report }) => {
                        active = None;
                        progress.set_run_id(None);
                        let event = match &report {
                            Ok(report) => PodEvent::RunEnded {
                                run_id: report.run_id.clone(),
                                request_id: request_id.clone(),
                                result: run_result(&report.outcome),
                            },
                            Err(error) => PodEvent::RunFailed {
                                request_id: request_id.clone(),
                                message: error.to_string(),
                            },
                        };
                        server.publish(event);
                        if state.action.is_none() {
                            // An action that arrived as the run finished on its own applies to
                            // nothing now; do not let it interrupt the next run.
                            control.take();
                        }
                        if request_id.is_none() && once {
                            first_report = Some(report);
                            if state.action.is_none() {
                                let action = new_action(
                                    LifecycleKind::Shutdown,
                                    ctx.affects(LifecycleKind::Shutdown),
                                    Origin::Runtime { detail: "the command-line run ended".into() },
                                );
                                record(&log, &action, None);
                                state.begin(action, &children);
                            }
                        } else if let (Err(error), None) = (&report, &state.action) {
                            // The pod task has ended (the run could not be recorded).
                            abort.get_or_insert(HostAbort::TaskFailed {
                                detail: format!("a run could not be recorded: {}", error_chain(error)),
                            });
                            let action = new_action(
                                LifecycleKind::Shutdown,
                                ctx.affects(LifecycleKind::Shutdown),
                                Origin::Runtime {
                                    detail: "the pod could not write its records".into(),
                                },
                            );
                            tracing::error!("a run could not be recorded; the pod stops");
                            state.begin(action, &children);
                        }
                    }
                    Some(Ended::ReloadFailed(error)) => {
                        let detail = format!("reload failed: {}", error_chain(&error));
                        tracing::error!(%detail, "the pod stops");
                        server.publish(PodEvent::RunFailed {
                            request_id: None,
                            message: detail.clone(),
                        });
                        if state.action.is_none() {
                            let action = new_action(
                                LifecycleKind::Shutdown,
                                ctx.affects(LifecycleKind::Shutdown),
                                Origin::Runtime { detail: detail.clone() },
                            );
                            record(&log, &action, None);
                            state.begin(action, &children);
                        }
                        abort.get_or_insert(HostAbort::TaskFailed { detail });
                    }
                    Some(Ended::Faulted { request_id, action, detail }) => {
                        active = None;
                        progress.set_run_id(None);
                        control.take();
                        server.publish(PodEvent::RunFailed {
                            request_id,
                            message: detail.clone(),
                        });
                        if state.action.is_none() {
                            state.begin(action, &children);
                        }
                        abort.get_or_insert(HostAbort::TaskFailed { detail });
                    }
                    None => {
                        // The pod task is gone: it ended after reporting everything (a failed
                        // run or reload), or it failed without reporting.
                        task_joined = true;
                        let failure = match (&mut task).await {
                            Ok(()) => None,
                            Err(error) if error.is_panic() => Some(format!(
                                "the pod task panicked: {}",
                                panic_text(error.into_panic().as_ref())
                            )),
                            Err(error) => Some(format!("the pod task ended unexpectedly: {error}")),
                        };
                        let run_active = active.take().is_some();
                        match failure {
                            Some(detail) => {
                                tracing::error!(%detail, "the pod stops");
                                let action = record_task_failure(&log, &ctx, &detail, run_active);
                                progress.set_run_id(None);
                                server.publish(PodEvent::RunFailed {
                                    request_id: None,
                                    message: detail.clone(),
                                });
                                if state.action.is_none() {
                                    state.begin(action, &children);
                                }
                                abort.get_or_insert(HostAbort::TaskFailed { detail });
                            }
                            None if state.action.is_none() => {
                                let action = new_action(
                                    LifecycleKind::Shutdown,
                                    ctx.affects(LifecycleKind::Shutdown),
                                    Origin::Runtime { detail: "the pod task ended".into() },
                                );
                                record(&log, &action, None);
                                state.begin(action, &children);
                            }
                            None => {}
                        }
                    }
                },
            }
        }

        // The pod is ending: let the cascade reach the children and the pod task close its
        // segment. A signal now stops waiting.
        let mut closed = None;
        if forced.is_none() {
            let cascade = state.cascade.take();
            let exiting = PodEvent::Exiting {
                reason: match &state.action {
                    Some(action) => crate::lifecycle::interrupt_reason(action.kind).to_owned(),
                    None => "ended".to_owned(),
                },
                action: state.action.clone(),
            };
            let events = server.publisher();
            let jobs = job_tx.take();
            let closing = &mut closed_rx;
            let finish = async move {
                if let Some(cascade) = cascade {
                    let _ = cascade.await;
                }
                let _ = events.send(exiting);
                drop(jobs);
                closing.await
            };
            tokio::select! {
                result = finish => closed = Some(result),
                Some(signal) = signals.next() => forced = Some(signal),
            }
        }
        if let Some(signal) = forced {
            let action = force_end(
                signal,
                &ctx,
                &log,
                &control,
                active.is_some(),
                &server,
                job_tx.take(),
                &mut done_rx,
                &mut closed_rx,
                (!task_joined).then_some(&mut task),
            )
            .await;
            server.close(REPLY_GRACE).await;
            return Ok(HostEnd {
                action: state.action,
                first_run: None,
                abort: Some(HostAbort::Forced { action }),
            });
        }
        server.close(REPLY_GRACE).await;
        let closed = match closed {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => {
                // The pod task ended without closing its segment: close it here.
                let detail = "the pod task ended without closing its session segment".to_owned();
                tracing::error!("{detail}");
                close_in_place(&log, &ctx.dir, "failed", PodState::Failed);
                abort.get_or_insert(HostAbort::TaskFailed { detail });
                Ok(())
            }
        };
        closed?;
        let first_run = match first_report {
            Some(Ok(report)) => Some(report),
            Some(Err(error)) => return Err(error),
            None => None,
        };
        Ok(HostEnd {
            action: state.action,
            first_run,
            abort,
        })
    }
}

/// A second signal while the pod is ending: record it, give the pod task [`FORCE_GRACE`] to
/// close its segment, and otherwise record the active run's interruption (by the action that
/// governs it) and the segment's close in its place. Returns the recorded action.
#[allow(clippy::too_many_arguments)]
async fn force_end(
    signal: &'static str,
    ctx: &TaskCtx,
    log: &SessionLog,
    control: &RunControl,
    run_active: bool,
    server: &ControlServer,
    jobs: Option<mpsc::Sender<Work>>,
    done: &mut mpsc::Receiver<Ended>,
    closed: &mut oneshot::Receiver<Result<(), CoreError>>,
    task: Option<&mut tokio::task::JoinHandle<()>>,
) -> LifecycleAction {
    let action = new_action(
        LifecycleKind::Shutdown,
        ctx.affects(LifecycleKind::Shutdown),
        Origin::Signal {
            signal: signal.to_owned(),
        },
    );
    let run_id = if run_active {
        ctx.progress.run_id()
    } else {
        None
    };
    record(log, &action, run_id.clone());
    // The governing action stays the one that reached the run first (equally near).
    let governing = control.governing().unwrap_or_else(|| action.clone());
    control.interrupt(action.clone());
    server.publish(PodEvent::Exiting {
        reason: format!("{signal} again while ending; not waiting for the pod"),
        action: Some(action.clone()),
    });
    drop(jobs);
    tracing::warn!(
        signal,
        "second signal while ending: not waiting for the pod"
    );
    if tokio::time::timeout(FORCE_GRACE, &mut *closed)
        .await
        .is_ok()
    {
        // The pod task closed its segment itself; everything it did is recorded.
        return action;
    }
    if let Some(task) = task {
        task.abort();
        let _ = tokio::time::timeout(ABORT_GRACE, task).await;
    }
    let mut run_ended = false;
    while let Ok(ended) = done.try_recv() {
        run_ended |= matches!(ended, Ended::Run { .. } | Ended::Faulted { .. });
    }
    if let Some(run_id) = run_id.filter(|_| !run_ended) {
        let interrupted = LogBody::RunInterrupted(RunInterrupted {
            run_id,
            reason: crate::lifecycle::interrupt_reason(governing.kind).to_owned(),
            action: Some(governing),
            phase: ctx.progress.phase(),
        });
        if let Err(error) = log.append(interrupted) {
            tracing::error!(error = %error_chain(&error), "cannot record the run's interruption");
        }
    }
    close_in_place(log, &ctx.dir, "interrupted", PodState::Stopped);
    action
}

/// Close the segment and update `pod.json` for a pod task that could not.
fn close_in_place(log: &SessionLog, dir: &PodDir, reason: &str, state: PodState) {
    if let Err(error) = log.append(LogBody::SegmentClosed(SegmentClosed {
        reason: reason.to_owned(),
    })) {
        tracing::error!(error = %error_chain(&error), "cannot close the session segment");
    }
    if let Err(error) = dir.update_info(|info| {
        info.state = state;
        info.pid = None;
    }) {
        tracing::error!(error = %error_chain(&error), "cannot update pod.json");
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
    fn begin(&mut self, action: LifecycleAction, children: &Option<Arc<Children>>) {
        if let Some(children) = children {
            let children = children.clone();
            let cause = action.clone();
            let kind = cascade_kind(action.kind).unwrap_or(LifecycleKind::ParentExit);
            self.cascade = Some(tokio::spawn(async move {
                children.cascade(&cause, kind).await;
            }));
        }
        self.action = Some(action);
    }
}

/// The pods an action of `kind` addressed to `pod_id` affects: the pod itself, and when the
/// action ends the pod (its children are then stopped with it), the live descendants known now
/// ([`live_descendants`]).
fn affected(
    kind: LifecycleKind,
    pod_id: &str,
    dir: &PodDir,
    children: &Option<Arc<Children>>,
) -> Vec<String> {
    let mut affects = vec![pod_id.to_owned()];
    if ends_pod(kind) {
        affects.extend(live_descendants(dir, children));
    }
    affects
}

/// The live descendants of the pod in `dir`: its children still running according to its
/// registry and, below them, the pods of the same home whose `pod.json` names one of those as
/// parent and whose process is alive.
fn live_descendants(dir: &PodDir, children: &Option<Arc<Children>>) -> Vec<String> {
    let Some(children) = children else {
        return Vec::new();
    };
    let listed = children.list();
    let direct: Vec<String> = listed["children"]
        .as_array()
        .map(|kids| {
            kids.iter()
                .filter(|kid| kid["state"] != "exited")
                .filter_map(|kid| kid["pod_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if direct.is_empty() {
        return direct;
    }
    // `<home>/pods/<id>`: the home holds the grandchildren's directories too.
    match dir.path().parent().and_then(std::path::Path::parent) {
        Some(home) => descendants_below(&PodHome::at(home), direct),
        None => direct,
    }
}

/// `direct` (live children) followed by every live pod in `home` descending from one of them.
fn descendants_below(home: &PodHome, direct: Vec<String>) -> Vec<String> {
    let pods: Vec<crate::record::PodInfo> = match home.pod_dirs() {
        Ok(dirs) => dirs.iter().filter_map(|d| d.read_info().ok()).collect(),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "cannot list pods for descendants");
            Vec::new()
        }
    };
    let mut found = direct.clone();
    let mut frontier = direct;
    while let Some(parent) = frontier.pop() {
        for pod in &pods {
            if pod.parent_id.as_deref() == Some(parent.as_str())
                && process_alive(pod)
                && !found.contains(&pod.id)
            {
                found.push(pod.id.clone());
                frontier.push(pod.id.clone());
            }
        }
    }
    found
}

/// Whether `pod.json` says the pod runs and its process still exists.
fn process_alive(pod: &crate::record::PodInfo) -> bool {
    matches!(pod.state, PodState::Running | PodState::Idle)
        && pod
            .pid
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The tool names of `pod` with their side-effect classes.
fn tool_classes(pod: &Pod) -> HashMap<String, SideEffectClass> {
    pod.tools()
        .names()
        .into_iter()
        .filter_map(|name| {
            pod.tools()
                .get(name)
                .map(|tool| (name.to_owned(), tool.side_effect()))
        })
        .collect()
}

/// Text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Record that the pod task failed: a `shutdown` action with a `runtime` origin naming the
/// failure and, when a run was active and had started, its `run_interrupted` entry embedding
/// the action with the phase the host saw. Returns the action.
fn record_task_failure(
    log: &SessionLog,
    ctx: &TaskCtx,
    detail: &str,
    run_active: bool,
) -> LifecycleAction {
    let action = new_action(
        LifecycleKind::Shutdown,
        ctx.affects(LifecycleKind::Shutdown),
        Origin::Runtime {
            detail: detail.to_owned(),
        },
    );
    let run_id = if run_active {
        ctx.progress.run_id()
    } else {
        None
    };
    record(log, &action, run_id.clone());
    if let Some(run_id) = run_id {
        let interrupted = LogBody::RunInterrupted(RunInterrupted {
            run_id,
            reason: "pod failed".to_owned(),
            action: Some(action.clone()),
            phase: ctx.progress.phase(),
        });
        if let Err(error) = log.append(interrupted) {
            tracing::error!(error = %error_chain(&error), "cannot record the run's interruption");
        }
    }
    action
}

async fn pod_task(
    mut pod: Pod,
    mut jobs: mpsc::Receiver<Work>,
    done: mpsc::Sender<Ended>,
    closed: oneshot::Sender<Result<(), CoreError>>,
    ctx: TaskCtx,
) {
    let mut faulted = false;
    while let Some(work) = jobs.recv().await {
        let job = match work {
            Work::Run(job) => job,
            Work::Reload { work_dir } => {
                match reload(pod, &work_dir).await {
                    Ok(reloaded) => {
                        pod = reloaded;
                        ctx.progress.set_tools(&pod);
                    }
                    Err(error) => {
                        // The old segment is closed and no new one could start.
                        if let Err(marked) = ctx.dir.update_info(|info| {
                            info.state = PodState::Failed;
                            info.pid = None;
                        }) {
                            tracing::error!(error = %error_chain(&marked), "cannot update pod.json");
                        }
                        let _ = done.send(Ended::ReloadFailed(error)).await;
                        let _ = closed.send(Ok(()));
                        return;
                    }
                }
                continue;
            }
        };
        let request_id = job.request_id;
        // A panic inside the run (the runtime, a tool, an observer) must not leave the host
        // waiting for a run that will never report: it ends the run as failed, recorded.
        let run = std::panic::AssertUnwindSafe(pod.run(job.input, job.observer))
            .catch_unwind()
            .await;
        match run {
            Ok(report) => {
                let failed = report.is_err();
                let _ = done.send(Ended::Run { request_id, report }).await;
                if failed {
                    break;
                }
            }
            Err(payload) => {
                let detail = format!("the run panicked: {}", panic_text(payload.as_ref()));
                tracing::error!(%detail, "the pod stops");
                let action = record_task_failure(pod.log(), &ctx, &detail, true);
                let _ = done
                    .send(Ended::Faulted {
                        request_id,
                        action,
                        detail,
                    })
                    .await;
                faulted = true;
                break;
            }
        }
    }
    // The segment closes with the outcome of its last run (`completed`, `errored`,
    // `interrupted`, `failed`), or `stopped` when it ran none.
    let reason = if faulted {
        "failed"
    } else {
        pod.last_outcome().unwrap_or("stopped")
    };
    let dir = pod.dir().clone();
    let mut result = pod.close(reason).await;
    if faulted {
        let marked = dir.update_info(|info| {
            info.state = PodState::Failed;
            info.pid = None;
        });
        result = result.and(marked.map(|_| ()));
    }
    let _ = closed.send(result);
}

/// Close the pod's segment and open a new one with the manifest re-read from its directory
/// (the new `segment_started` records its digest). Tools registered besides the builtins
/// (the child tools) stay registered.
///
/// `reload` re-reads `manifest.toml` rather than re-materializing the manifest from the
/// profile, for these reasons:
/// - a child's manifest was materialized by its parent from the parent's resolved manifest and
///   the spawn request (task, scope, overrides); the child process has neither, and resolving
///   its profile again on its own could widen it beyond what the parent allowed (its scope,
///   `[spawn]` limits and inherited settings must stay within the parent's);
/// - a pod continued with `pods resume` no longer has the inputs of its first resolution (the
///   `--set` list, the `PODS_*` environment, the project profiles of the directory it started
///   in);
/// - the child registry of a pod (its `[spawn]` limits, the manifest its children inherit
///   from, the scope they must stay inside) is fixed when the pod starts, so a manifest
///   re-materialized with a different `[spawn]` or `[scope]` would be applied only in part.
///
/// So `manifest.toml` stays the one description of what the pod runs with: an edit to it
/// takes effect at the next reload (except for what the child registry fixed at start, as
/// above), and every field whose value the edit changed gets provenance `unknown` in
/// `provenance.json` (who edited it is not recorded). To run with a changed profile, start a
/// new pod.
async fn reload(pod: Pod, work_dir: &std::path::Path) -> Result<Pod, CoreError> {
    let dir = pod.dir().clone();
    let control = pod.control().clone();
    let extra: Vec<Arc<dyn crate::tools::Tool>> = crate::spawn_tools::SPAWN_TOOLS
        .iter()
        .filter_map(|(name, _)| pod.tools().get(name).cloned())
        .collect();
    let previous = pod.manifest().clone();
    pod.close("reloaded").await?;
    let (resolved, edited) =
        pod_profile::reread_manifest_files(dir.path(), &previous).map_err(|e| {
            CoreError::Config {
                message: format!("cannot reload the manifest of pod {}", dir.id()),
                source: Some(Box::new(e)),
            }
        })?;
    if !edited.is_empty() {
        tracing::info!(pod = %dir.id(), ?edited, "reloaded manifest differs from the materialized one");
    }
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
    ctx: &TaskCtx,
    log: &SessionLog,
    control: &RunControl,
    active: &mut Option<Option<String>>,
    state: &Ending,
    jobs: &mpsc::Sender<Work>,
    work_dir: &Option<std::path::PathBuf>,
    events: &tokio::sync::broadcast::Sender<PodEvent>,
) -> Option<LifecycleAction> {
    let pod_id = ctx.pod_id.as_str();
    let progress = &ctx.progress;
    let children = &ctx.children;
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
            let Some(action) = request.action(ctx.affects(kind)) else {
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

/// When the active run last showed progress, for the idle watchdog, and where it was as far as
/// the host saw (for recording its end when the pod task cannot).
#[derive(Default)]
struct Progress {
    /// The active run's id, once it is recorded as started.
    run_id: std::sync::Mutex<Option<String>>,
    last_ms: AtomicU64,
    /// Tool calls executing; a run inside a tool call is not idle.
    in_tool: AtomicU32,
    phase: std::sync::Mutex<RunPhase>,
    /// Side-effect class of each tool the pod offers.
    tools: std::sync::Mutex<HashMap<String, SideEffectClass>>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Progress {
    fn run_id(&self) -> Option<String> {
        locked(&self.run_id).clone()
    }

    fn set_run_id(&self, run_id: Option<String>) {
        *locked(&self.run_id) = run_id;
    }

    fn set_tools(&self, pod: &Pod) {
        *locked(&self.tools) = tool_classes(pod);
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

    fn phase(&self) -> RunPhase {
        locked(&self.phase).clone()
    }

    fn update_phase(&self, change: impl FnOnce(&mut RunPhase)) {
        change(&mut locked(&self.phase));
    }

    fn tool_started(&self, tool: &str) {
        let class = locked(&self.tools).get(tool).copied();
        self.update_phase(|phase| {
            phase.provider_progress_seen = true;
            phase.tool_execution = ToolExecutionPhase::Started;
            if let Some(class) = class
                && !phase.side_effects_started.contains(&class)
            {
                phase.side_effects_started.push(class);
            }
        });
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
        self.progress
            .update_phase(|phase| *phase = RunPhase::default());
        self.progress.set_run_id(Some(run_id.to_owned()));
        let _ = self.events.send(PodEvent::RunStarted {
            run_id: run_id.to_owned(),
            request_id: self.request_id.clone(),
        });
        self.inner.on_run_started(run_id);
    }

    fn on_turn_end(&self, run_id: &str, turn: u32) {
        self.progress.touch();
        self.progress
            .update_phase(|phase| phase.provider_progress_seen = true);
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
        self.progress.update_phase(|phase| {
            phase.provider_progress_seen = true;
            phase.visible_output_seen |= !text.is_empty();
        });
        self.inner.on_text(text);
    }

    fn on_read_drained(&self) {
        self.inner.on_read_drained();
    }

    fn on_reasoning(&self, text: &str) {
        self.progress.touch();
        self.progress
            .update_phase(|phase| phase.provider_progress_seen = true);
        self.inner.on_reasoning(text);
    }

    fn on_request_finished(&self, turn: u32, usage: Option<&pod_provider::event::Usage>) {
        self.progress.touch();
        self.inner.on_request_finished(turn, usage);
    }

    fn on_tool_call(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: crate::record::SideEffectClass,
        input: &serde_json::Value,
    ) {
        self.progress.in_tool.fetch_add(1, Ordering::Relaxed);
        self.progress.touch();
        self.progress.tool_started(tool);
        self.inner.on_tool_call(call_id, tool, side_effect, input);
    }

    fn on_tool_result(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: crate::record::SideEffectClass,
        outcome: crate::record::ToolOutcome,
        output: &str,
    ) {
        let before =
            self.progress
                .in_tool
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.progress
                .update_phase(|phase| phase.tool_execution = ToolExecutionPhase::Completed);
        }
        self.progress.touch();
        self.inner
            .on_tool_result(call_id, tool, side_effect, outcome, output);
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &pod_provider::ProviderError) {
        self.progress.touch();
        self.inner.on_retry(attempt, delay, cause);
    }
}

fn run_result(outcome: &RunOutcome) -> RunResult {
    match outcome {
        RunOutcome::Completed {
            text, stop_reason, ..
        } => RunResult::Completed {
            text: text.clone(),
            stop_reason: Some(stop_reason.clone()),
            truncated: Some(stop_reason.is_truncated()),
        },
        RunOutcome::Errored { error, .. } => RunResult::Errored {
            error: error.clone(),
        },
        RunOutcome::Interrupted { action, .. } => RunResult::Interrupted {
            reason: crate::lifecycle::interrupt_reason(action.kind).to_owned(),
            action: Some(action.clone()),
        },
    }
}

/// SIGTERM, SIGINT and SIGHUP (the terminal closed, the SSH session was lost) as a stream of
/// names. Each ends the pod the same way: a `shutdown` action with origin `signal`. A SIGHUP
/// this process was started ignoring (`nohup pods run …`) stays ignored.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new(enabled: bool) -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind| {
            if !enabled {
                return None;
            }
            match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::warn!(%error, ?kind, "cannot listen for a signal");
                    None
                }
            }
        };
        Signals {
            term: listen(SignalKind::terminate()),
            int: listen(SignalKind::interrupt()),
            hup: if ignored_from_start(SIGHUP) {
                None
            } else {
                listen(SignalKind::hangup())
            },
        }
    }

    async fn next(&mut self) -> Option<&'static str> {
        async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match stream {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.term) => Some("SIGTERM"),
            Some(()) = recv(&mut self.int) => Some("SIGINT"),
            Some(()) = recv(&mut self.hup) => Some("SIGHUP"),
        }
    }
}

/// Signal number of SIGHUP.
const SIGHUP: u32 = 1;

/// Whether this process ignores signal `number` (its `SigIgn` mask in `/proc/self/status`),
/// as it does when started by `nohup`. Read before any handler is installed for it.
fn ignored_from_start(number: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| number >= 1 && mask & (1u64 << (number - 1)) != 0)
}

/// What a pod needs to spawn children: where profiles are, its own resolved manifest, the home
/// its children's directories go in, and how to launch them.
pub struct ChildSetup {
    pub catalog: pod_profile::Catalog,
    pub resolved: pod_profile::ResolvedManifest,
    pub home: crate::home::PodHome,
    pub launcher: crate::supervisor::Launcher,
    /// Hears of each child spawned and exited, as the session log records it.
    pub observer: Arc<dyn RunObserver>,
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
    let observer = setup.observer;
    let recorder: crate::spawn_tools::Recorder = Arc::new(move |body| {
        match &body {
            LogBody::ChildSpawned(child) => observer.on_child_spawned(child),
            LogBody::ChildExited(child) => observer.on_child_exited(child),
            _ => {}
        }
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
    let grace = Duration::from_millis(pod.manifest().limits.shutdown_grace_ms);
    let children = Arc::new(Children::new(
        pod_id,
        spawn,
        setup.launcher,
        Arc::new(factory),
        recorder,
        grace,
    ));
    for tool in crate::spawn_tools::ChildTool::all(&children) {
        pod.register_tool(tool);
    }
    Some(children)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::home::PodHome;
    use crate::record::RunTrigger;
    use pod_profile::{Manifest, Scheme};

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
    async fn hosted_pod(
        tmp: &std::path::Path,
        responses: Vec<serde_json::Value>,
    ) -> (Host, PodDir) {
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
}
