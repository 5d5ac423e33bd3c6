//! The host loop: it waits for the next event (a control request, the parent going away, a
//! signal, a watchdog tick, a report of the pod task) and hands it to the method named for it.
//! Once an action ends the pod and no run is active, it lets the pod end.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::forced::{close_in_place, record_task_failure};
use super::pod_task::{Ended, Job, TaskCtx, Work, panic_text, pod_task};
use super::progress::{Progress, Watchdog, Watched};
use super::signals::Signals;
use super::{Host, HostAbort, HostEnd};
use crate::control::{ControlServer, Incoming, PodEvent, RunResult};
use crate::lifecycle::{cascade_kind, interrupt_reason, new_action};
use crate::record::{
    LifecycleAction, LifecycleActionRecorded, LifecycleKind, LogBody, Origin, PodState,
};
use crate::runtime::{RunInput, RunObserver, RunOutcome, RunReport};
use crate::session_log::SessionLog;
use crate::{CoreError, RunControl, error_chain};

/// How long an ending pod waits for the replies it already owes its control clients.
const REPLY_GRACE: Duration = Duration::from_millis(500);

/// The run the pod task is on, as far as the host loop knows. One run at a time: a `run`
/// request while one is active is refused.
pub(super) enum ActiveRun {
    Idle,
    /// The run given on the command line ([`Host::run_once`]); its end ends hosting.
    CommandLine,
    /// A run requested on the control socket, under this request id.
    Requested(String),
}

impl ActiveRun {
    pub(super) fn is_running(&self) -> bool {
        !matches!(self, ActiveRun::Idle)
    }

    /// The control request the run answers (`None` for the command line's run).
    fn request_id(&self) -> Option<String> {
        match self {
            ActiveRun::Requested(request_id) => Some(request_id.clone()),
            ActiveRun::Idle | ActiveRun::CommandLine => None,
        }
    }
}

/// The pod is ending because of `action`; its children are being told (`cascade`).
pub(super) struct Ending {
    pub(super) action: LifecycleAction,
    cascade: Option<tokio::task::JoinHandle<()>>,
}

/// What the host loop waits for.
enum Event {
    Request(Incoming),
    ParentGone,
    Signal(&'static str),
    WatchdogTick,
    /// A report of the pod task; `None` once the task is gone.
    Task(Option<Ended>),
}

/// How letting the ending pod go ended.
enum Release {
    /// The task sent the result of closing its segment (`None`: it ended without sending one).
    Closed(Option<Result<(), CoreError>>),
    /// A signal arrived while the pod was ending: stop waiting for it.
    Forced(&'static str),
}

/// A hosted pod's state while its task runs: what the loop routes between the control socket,
/// the pod task and the pod's children.
pub(super) struct HostLoop {
    pub(super) ctx: TaskCtx,
    pub(super) log: SessionLog,
    pub(super) control: RunControl,
    pub(super) server: ControlServer,
    /// Where a reload connects the new segment; `None` refuses `reload`.
    pub(super) work_dir: Option<PathBuf>,
    parent_gone: Pin<Box<dyn Future<Output = ()> + Send>>,
    signals: Signals,
    watchdog: Watchdog,
    /// Work for the pod task; `None` once the pod is let go.
    pub(super) jobs: Option<mpsc::Sender<Work>>,
    pub(super) done: mpsc::Receiver<Ended>,
    pub(super) closed: oneshot::Receiver<Result<(), CoreError>>,
    /// The pod task; `None` once joined.
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    pub(super) active: ActiveRun,
    pub(super) ending: Option<Ending>,
    /// How the command line's run ended, once it has.
    first_report: Option<Result<RunReport, CoreError>>,
    abort: Option<HostAbort>,
}

impl HostLoop {
    /// Start the pod task for `host` and give it `first` (the command line's run), if any.
    pub(super) async fn start(
        host: Host,
        first: Option<RunInput>,
        observer: Arc<dyn RunObserver>,
    ) -> HostLoop {
        let Host {
            pod,
            server,
            children,
            options,
        } = host;
        let log = pod.log().clone();
        let control = pod.control().clone();
        let watchdog_ms = pod.manifest().limits.watchdog_ms;
        let progress = Arc::new(Progress::default());
        progress.set_tools(&pod);
        let ctx = TaskCtx {
            progress,
            pod_id: pod.id().to_owned(),
            dir: pod.dir().clone(),
            children,
        };
        let (jobs, job_rx) = mpsc::channel::<Work>(4);
        let (done_tx, done) = mpsc::channel::<Ended>(4);
        let (closed_tx, closed) = oneshot::channel();
        let task = tokio::spawn(pod_task(pod, job_rx, done_tx, closed_tx, ctx.clone()));
        let parent_gone: Pin<Box<dyn Future<Output = ()> + Send>> = if options.watch_parent {
            Box::pin(crate::children::watch_parent())
        } else {
            Box::pin(std::future::pending())
        };
        let mut host = HostLoop {
            ctx,
            log,
            control,
            server,
            work_dir: options.work_dir,
            parent_gone,
            signals: Signals::new(options.handle_signals),
            watchdog: Watchdog::new(watchdog_ms),
            jobs: Some(jobs),
            done,
            closed,
            task: Some(task),
            active: ActiveRun::Idle,
            ending: None,
            first_report: None,
            abort: None,
        };
        if let Some(input) = first {
            host.active = ActiveRun::CommandLine;
            host.ctx.progress.touch();
            let observer = host.watched(observer, None);
            host.send(Work::Run(Job { input, observer })).await;
        }
        host
    }

    /// Host the pod until it has ended.
    pub(super) async fn run(mut self) -> Result<HostEnd, CoreError> {
        let release = match self.serve_until_ending().await {
            Some(signal) => Release::Forced(signal),
            None => self.let_pod_end().await,
        };
        match release {
            Release::Forced(signal) => Ok(self.end_forced(signal).await),
            Release::Closed(closed) => self.end_closed(closed).await,
        }
    }

    /// Handle events until an action ends the pod and no run is active. `Some(signal)` when a
    /// signal arrives while the pod is already ending: stop waiting for it.
    async fn serve_until_ending(&mut self) -> Option<&'static str> {
        while self.ending.is_none() || self.active.is_running() {
            match self.next_event().await {
                Event::Request(request) => self.on_request(request).await,
                Event::ParentGone => self.on_parent_gone(),
                Event::Signal(signal) if self.ending.is_some() => return Some(signal),
                Event::Signal(signal) => self.on_signal(signal),
                Event::WatchdogTick => self.on_watchdog_tick(),
                Event::Task(Some(Ended::Run(report))) => self.on_run_ended(report),
                Event::Task(Some(Ended::ReloadFailed(error))) => self.on_reload_failed(error),
                Event::Task(Some(Ended::Faulted { action, detail })) => {
                    self.on_run_faulted(action, detail)
                }
                Event::Task(None) => self.on_task_gone().await,
            }
        }
        None
    }

    async fn next_event(&mut self) -> Event {
        let ending = self.ending.is_some();
        let watching = self.watchdog.enabled() && self.active.is_running() && !ending;
        tokio::select! {
            Some(request) = self.server.incoming.recv() => Event::Request(request),
            () = &mut self.parent_gone, if !ending => Event::ParentGone,
            Some(signal) = self.signals.next() => Event::Signal(signal),
            () = self.watchdog.tick(), if watching => Event::WatchdogTick,
            ended = self.done.recv(), if self.task.is_some() => Event::Task(ended),
        }
    }

    fn on_parent_gone(&mut self) {
        let action = new_action(
            LifecycleKind::ParentExit,
            self.ctx.affects(LifecycleKind::ParentExit),
            Origin::Runtime {
                detail: "the parent process is gone (its pipe to this pod closed)".into(),
            },
        );
        self.apply(&action);
        self.begin_ending(action);
    }

    /// The first SIGTERM/SIGINT/SIGHUP: end the pod and its tree.
    fn on_signal(&mut self, signal: &'static str) {
        let action = new_action(
            LifecycleKind::Shutdown,
            self.ctx.affects(LifecycleKind::Shutdown),
            Origin::Signal {
                signal: signal.to_owned(),
            },
        );
        self.apply(&action);
        self.begin_ending(action);
    }

    fn on_watchdog_tick(&mut self) {
        if !self.watchdog.expired(&self.ctx.progress) {
            return;
        }
        let action = new_action(
            LifecycleKind::Watchdog,
            self.ctx.affects(LifecycleKind::Watchdog),
            Origin::Watchdog {
                idle_ms: self.watchdog.idle_limit_ms(),
            },
        );
        self.apply(&action);
        self.begin_ending(action);
    }

    /// The active run ended, recorded (`Ok`) or not (`Err`: the pod task has ended).
    fn on_run_ended(&mut self, report: Result<RunReport, CoreError>) {
        let finished = std::mem::replace(&mut self.active, ActiveRun::Idle);
        let request_id = finished.request_id();
        self.ctx.progress.set_run_id(None);
        let event = match &report {
            Ok(report) => PodEvent::RunEnded {
                run_id: report.run_id.clone(),
                request_id,
                result: run_result(&report.outcome),
            },
            Err(error) => PodEvent::RunFailed {
                request_id,
                message: error.to_string(),
            },
        };
        self.server.publish(event);
        if self.ending.is_none() {
            // An action that arrived as the run finished on its own applies to nothing now; do
            // not let it interrupt the next run.
            self.control.take();
        }
        if matches!(finished, ActiveRun::CommandLine) {
            self.first_report = Some(report);
            if self.ending.is_none() {
                let action = self.runtime_shutdown("the command-line run ended");
                self.record(&action, None);
                self.begin_ending(action);
            }
        } else if let (Err(error), None) = (&report, &self.ending) {
            self.abort.get_or_insert(HostAbort::TaskFailed {
                detail: format!("a run could not be recorded: {}", error_chain(error)),
            });
            let action = self.runtime_shutdown("the pod could not write its records");
            tracing::error!("a run could not be recorded; the pod stops");
            self.begin_ending(action);
        }
    }

    /// A reload could not open the new segment; the pod task has ended.
    fn on_reload_failed(&mut self, error: CoreError) {
        let detail = format!("reload failed: {}", error_chain(&error));
        tracing::error!(%detail, "the pod stops");
        self.server.publish(PodEvent::RunFailed {
            request_id: None,
            message: detail.clone(),
        });
        if self.ending.is_none() {
            let action = self.runtime_shutdown(&detail);
            self.record(&action, None);
            self.begin_ending(action);
        }
        self.abort.get_or_insert(HostAbort::TaskFailed { detail });
    }

    /// The active run panicked; the pod task recorded `action` and ends.
    fn on_run_faulted(&mut self, action: LifecycleAction, detail: String) {
        let finished = std::mem::replace(&mut self.active, ActiveRun::Idle);
        self.ctx.progress.set_run_id(None);
        self.control.take();
        self.server.publish(PodEvent::RunFailed {
            request_id: finished.request_id(),
            message: detail.clone(),
        });
        if self.ending.is_none() {
            self.begin_ending(action);
        }
        self.abort.get_or_insert(HostAbort::TaskFailed { detail });
    }

    /// The pod task is gone: it ended after reporting everything (a failed run or reload), or
    /// it failed without reporting.
    async fn on_task_gone(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        let failure = match task.await {
            Ok(()) => None,
            Err(error) if error.is_panic() => Some(format!(
                "the pod task panicked: {}",
                panic_text(error.into_panic().as_ref())
            )),
            Err(error) => Some(format!("the pod task ended unexpectedly: {error}")),
        };
        let run_active = std::mem::replace(&mut self.active, ActiveRun::Idle).is_running();
        match failure {
            Some(detail) => {
                tracing::error!(%detail, "the pod stops");
                let action = record_task_failure(&self.log, &self.ctx, &detail, run_active);
                self.ctx.progress.set_run_id(None);
                self.server.publish(PodEvent::RunFailed {
                    request_id: None,
                    message: detail.clone(),
                });
                if self.ending.is_none() {
                    self.begin_ending(action);
                }
                self.abort.get_or_insert(HostAbort::TaskFailed { detail });
            }
            None if self.ending.is_none() => {
                let action = self.runtime_shutdown("the pod task ended");
                self.record(&action, None);
                self.begin_ending(action);
            }
            None => {}
        }
    }

    /// The pod is ending: let the cascade reach the children and the pod task close its
    /// segment. A signal now stops waiting.
    async fn let_pod_end(&mut self) -> Release {
        let cascade = self
            .ending
            .as_mut()
            .and_then(|ending| ending.cascade.take());
        let action = self.ending.as_ref().map(|ending| ending.action.clone());
        let exiting = PodEvent::Exiting {
            reason: match &action {
                Some(action) => interrupt_reason(action.kind).to_owned(),
                None => "ended".to_owned(),
            },
            action,
        };
        let events = self.server.publisher();
        let jobs = self.jobs.take();
        let closing = &mut self.closed;
        let finish = async move {
            if let Some(cascade) = cascade {
                let _ = cascade.await;
            }
            let _ = events.send(exiting);
            drop(jobs);
            closing.await
        };
        tokio::select! {
            result = finish => Release::Closed(result.ok()),
            Some(signal) = self.signals.next() => Release::Forced(signal),
        }
    }

    /// The pod task let the pod end (`closed`: how closing its segment went).
    async fn end_closed(
        mut self,
        closed: Option<Result<(), CoreError>>,
    ) -> Result<HostEnd, CoreError> {
        self.server.close(REPLY_GRACE).await;
        let closed = match closed {
            Some(result) => result,
            None => {
                // The pod task ended without closing its segment: close it here.
                let detail = "the pod task ended without closing its session segment".to_owned();
                tracing::error!("{detail}");
                close_in_place(&self.log, &self.ctx.dir, "failed", PodState::Failed);
                self.abort.get_or_insert(HostAbort::TaskFailed { detail });
                Ok(())
            }
        };
        closed?;
        let first_run = match self.first_report {
            Some(Ok(report)) => Some(report),
            Some(Err(error)) => return Err(error),
            None => None,
        };
        Ok(HostEnd {
            action: self.ending.map(|ending| ending.action),
            first_run,
            abort: self.abort,
        })
    }

    /// A second signal stopped the wait for the pod (see [`HostLoop::force_end`]).
    async fn end_forced(mut self, signal: &'static str) -> HostEnd {
        let action = self.force_end(signal).await;
        self.server.close(REPLY_GRACE).await;
        HostEnd {
            action: self.ending.map(|ending| ending.action),
            first_run: None,
            abort: Some(HostAbort::Forced { action }),
        }
    }

    /// The pod will end because of `action`: cascade it to the children now (concurrently with
    /// the interruption of the active run).
    pub(super) fn begin_ending(&mut self, action: LifecycleAction) {
        let cascade = self.ctx.children.clone().map(|children| {
            let cause = action.clone();
            let kind = cascade_kind(action.kind).unwrap_or(LifecycleKind::ParentExit);
            tokio::spawn(async move {
                children.cascade(&cause, kind).await;
            })
        });
        self.ending = Some(Ending { action, cascade });
    }

    /// Record `action` and interrupt the active run with it when there is one.
    pub(super) fn apply(&self, action: &LifecycleAction) {
        let run_active = self.active.is_running();
        self.record(
            action,
            run_active.then(|| self.ctx.progress.run_id()).flatten(),
        );
        if run_active {
            self.control.interrupt(action.clone());
        }
    }

    pub(super) fn record(&self, action: &LifecycleAction, active: Option<String>) {
        record(&self.log, action, active)
    }

    /// A `shutdown` action the runtime takes, for `detail`.
    fn runtime_shutdown(&self, detail: &str) -> LifecycleAction {
        new_action(
            LifecycleKind::Shutdown,
            self.ctx.affects(LifecycleKind::Shutdown),
            Origin::Runtime {
                detail: detail.to_owned(),
            },
        )
    }

    /// `inner`, watched for progress and announced to control subscribers.
    pub(super) fn watched(
        &self,
        inner: Arc<dyn RunObserver>,
        request_id: Option<String>,
    ) -> Arc<dyn RunObserver> {
        Arc::new(Watched {
            inner,
            progress: self.ctx.progress.clone(),
            events: self.server.publisher(),
            request_id,
        })
    }

    /// Queue `work` for the pod task; `false` when the task has ended.
    pub(super) async fn send(&self, work: Work) -> bool {
        match &self.jobs {
            Some(jobs) => jobs.send(work).await.is_ok(),
            None => false,
        }
    }
}

pub(super) fn record(log: &SessionLog, action: &LifecycleAction, active: Option<String>) {
    if let Err(error) = log.append(LogBody::LifecycleAction(LifecycleActionRecorded {
        action: action.clone(),
        active_run_id: active,
    })) {
        tracing::error!(%error, "cannot record lifecycle action");
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
            reason: interrupt_reason(action.kind).to_owned(),
            action: Some(action.clone()),
        },
    }
}
