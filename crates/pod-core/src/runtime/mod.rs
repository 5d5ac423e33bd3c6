//! The pod runtime: one segment of a pod's life in this process, and the agent loop.
//!
//! [`Pod::start`] opens a new segment (session log, optional trace sidecar) in an existing pod
//! directory for a manifest — a top-level pod and a child pod start the same way. [`Pod::run`]
//! runs one input to its end: provider stream → assistant output → tool calls → tool results →
//! next request, until the model ends its turn, `agent.max_turns` is reached, the provider
//! fails (`run_errored`), or a lifecycle action arrives through [`RunControl`]
//! (`run_interrupted`). [`Pod::close`] writes `segment_closed` and the pod's final state.
//!
//! The parts: `turns` is the agent loop of one run, `stream` reads one model request's stream,
//! `tap` observes that stream for the trace sidecar and the log, `tool_call` runs the tools the
//! model asks for, and `history` rebuilds the conversation of earlier segments.

mod history;
mod stream;
mod tap;
mod tool_call;
mod turns;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use pod_profile::Manifest;
use pod_provider::event::{StopReason, Usage};
use pod_provider::{Message, ProviderError};
use pod_trace::{Marker, PendingEntry, TRACE_FORMAT_VERSION, TraceBody, TraceHandle};

use crate::approval::{Approvals, Verdict};
use crate::control_handle::RunControl;
use crate::error::{CoreError, error_chain};
use crate::home::PodDir;
use crate::lifecycle::{interrupt_reason, new_id};
use crate::model::ModelConnection;
use crate::record::{
    ChildExited, ChildSpawned, LOG_FORMAT_VERSION, LifecycleAction, LogBody, PodInfo, PodState,
    RunCompleted, RunErrored, RunInterrupted, RunPhase, RunStarted, RunTrigger, SegmentClosed,
    SegmentStarted, SideEffectClass, TelemetryExportFailed, ToolOutcome,
};
use crate::scope::Scope;
use crate::session_log::SessionLog;
use crate::summary::UsageTotals;
use crate::telemetry::LiveTelemetry;
use crate::tools::ToolRegistry;

pub use history::history_from_segments;
pub use tool_call::TOOL_OUTPUT_LOG_MAX_BYTES;

/// What presentation code wants to hear while a run goes on. All methods default to no-ops;
/// they are called on the runtime's task and must not block.
pub trait RunObserver: Send + Sync {
    /// The first stream event of a model request arrived.
    fn on_first_event(&self) {}
    /// The run was recorded as started (`run_started` is in the log).
    fn on_run_started(&self, _run_id: &str) {}
    /// A model turn ended: its assistant message is in the log.
    fn on_turn_end(&self, _run_id: &str, _turn: u32) {}
    fn on_text(&self, _text: &str) {}
    /// The stream handed over all it decoded from one network read and now waits for the
    /// next: text gathered since the last call can be written out as one piece.
    fn on_read_drained(&self) {}
    fn on_reasoning(&self, _text: &str) {}
    /// A model request ended (its `provider_request_finished` is in the log) with this usage.
    fn on_request_finished(&self, _turn: u32, _usage: Option<&Usage>) {}
    /// A tool call started (`tool_call_started` is in the log). A call that never starts is
    /// [`RunObserver::on_tool_rejected`].
    fn on_tool_call(
        &self,
        _call_id: &str,
        _tool: &str,
        _side_effect: SideEffectClass,
        _input: &Value,
    ) {
    }
    fn on_tool_result(
        &self,
        _call_id: &str,
        _tool: &str,
        _side_effect: SideEffectClass,
        _outcome: ToolOutcome,
        _output: &str,
    ) {
    }
    /// A call that cannot run (unknown tool, bad arguments) or was denied: it never started.
    /// By default reported as a call with its raw argument text followed by its `rejected`
    /// result.
    fn on_tool_rejected(
        &self,
        call_id: &str,
        tool: &str,
        side_effect: SideEffectClass,
        raw_input: &Value,
        error: &str,
    ) {
        self.on_tool_call(call_id, tool, side_effect, raw_input);
        self.on_tool_result(call_id, tool, side_effect, ToolOutcome::Rejected, error);
    }
    /// A tool call waits for an approval decision (an ask to the user or the parent); time
    /// spent waiting is not idleness.
    fn on_approval_pending(&self, _call_id: &str, _tool: &str) {}
    /// A tool call was decided (`tool_decision` is in the log); follows `on_approval_pending`
    /// when there was one.
    fn on_tool_decision(&self, _call_id: &str, _tool: &str, _verdict: &Verdict, _waited: bool) {}
    /// The provider client will retry after `delay`.
    fn on_retry(&self, _attempt: u32, _delay: Duration, _cause: &ProviderError) {}
    /// A child pod was spawned (`child_spawned` is in the log).
    fn on_child_spawned(&self, _child: &ChildSpawned) {}
    /// A child pod's process ended (`child_exited` is in the log).
    fn on_child_exited(&self, _child: &ChildExited) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl RunObserver for Quiet {}

/// One run's input.
#[derive(Debug, Clone)]
pub struct RunInput {
    pub text: String,
    pub trigger: RunTrigger,
    pub request_id: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Completed {
        text: String,
        turns: u32,
        /// `max_turns` when the turn budget ran out, else the stop reason's name (see
        /// [`RunCompleted::reason`]).
        reason: String,
        /// The normalized stop reason of the last model request.
        stop_reason: StopReason,
    },
    Errored {
        error: ProviderError,
        phase: RunPhase,
    },
    Interrupted {
        action: LifecycleAction,
        phase: RunPhase,
    },
}

impl RunOutcome {
    /// `completed`, `errored` or `interrupted`.
    pub fn label(&self) -> &'static str {
        match self {
            RunOutcome::Completed { .. } => "completed",
            RunOutcome::Errored { .. } => "errored",
            RunOutcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// A finished run and where its records are.
#[derive(Debug)]
pub struct RunReport {
    pub run_id: String,
    pub outcome: RunOutcome,
    pub log_path: PathBuf,
    pub trace_path: Option<PathBuf>,
    /// A problem with the trace sidecar (write failure, shed entries), stated for the user.
    pub trace_problem: Option<String>,
    /// What the run's model requests added up to (boxed: reports travel in enums).
    pub requests: Box<RequestTotals>,
}

/// What a run's model requests added up to.
#[derive(Debug, Default)]
pub struct RequestTotals {
    /// Token usage summed over the requests.
    pub usage: UsageTotals,
    /// Stream events the adapters could not map, by name.
    pub unhandled: BTreeMap<String, u64>,
}

/// Everything a pod needs besides its directory and manifest.
pub struct PodOptions {
    /// The directory relative scope entries and tool paths resolve against.
    pub work_dir: PathBuf,
    pub model: ModelConnection,
    pub control: RunControl,
    /// Decides the tool calls `[permissions]` leaves to a person or a parent.
    pub approvals: Approvals,
    /// Live telemetry export, fed every entry the pod's logs append (kept across a reload).
    pub telemetry: Option<Arc<LiveTelemetry>>,
    /// The W3C trace context the process was started in (`TRACEPARENT`, already checked):
    /// recorded on every run, and the trace the pod's children are put in.
    pub traceparent: Option<String>,
}

/// A pod with an open segment in this process.
pub struct Pod {
    dir: PodDir,
    info: PodInfo,
    manifest: Arc<Manifest>,
    scope: Arc<Scope>,
    segment_id: String,
    log: SessionLog,
    trace: Option<TraceHandle>,
    model: ModelConnection,
    tools: ToolRegistry,
    control: RunControl,
    approvals: Approvals,
    telemetry: Option<Arc<LiveTelemetry>>,
    traceparent: Option<String>,
    history: Vec<Message>,
    last_outcome: Option<&'static str>,
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("id", &self.info.id)
            .field("segment_id", &self.segment_id)
            .finish_non_exhaustive()
    }
}

impl Pod {
    /// Open a new segment for the pod in `dir` running `manifest`. Earlier segments' runs become
    /// the conversation history.
    pub fn start(dir: PodDir, manifest: Manifest, options: PodOptions) -> Result<Pod, CoreError> {
        // First: from here on no writer of this process keeps the key, and the pod keeps its
        // print for the export's check.
        crate::secrets::guard(dir.path(), &manifest)?;
        let history = history_from_segments(&dir)?;
        let info = dir.read_info()?;
        let segment_id = new_id();
        let mut log = SessionLog::create(&dir.segment_log_path(&segment_id))?;
        if let Some(live) = &options.telemetry {
            let live = live.clone();
            log = log.followed_by(Arc::new(move |entry| live.feed(entry)));
        }
        let session = &manifest.session;
        let trace = if session.record_event_trace {
            let trace = TraceHandle::create(
                &dir.segment_trace_path(&segment_id),
                session.trace_queue_capacity as usize,
            )?;
            trace.record(PendingEntry::now(TraceBody::Lifecycle(
                Marker::TraceStarted {
                    segment_id: segment_id.clone(),
                    pod_id: info.id.clone(),
                    format_version: TRACE_FORMAT_VERSION,
                },
            )));
            Some(trace)
        } else {
            None
        };
        let digest = pod_profile::manifest_digest(&manifest)?;
        log.append(LogBody::SegmentStarted(SegmentStarted {
            pod_id: info.id.clone(),
            segment_id: segment_id.clone(),
            profile: info.profile.clone(),
            manifest_digest: digest,
            pid: std::process::id(),
            format_version: LOG_FORMAT_VERSION,
            writer: format!("pods {}", env!("CARGO_PKG_VERSION")),
        }))?;
        let info = dir.update_info(|info| {
            info.state = PodState::Running;
            info.pid = Some(std::process::id());
        })?;
        let scope = Arc::new(Scope::new(&manifest.scope, &options.work_dir));
        let tools = ToolRegistry::builtin(&manifest.agent.tools);
        Ok(Pod {
            dir,
            info,
            manifest: Arc::new(manifest),
            scope,
            segment_id,
            log,
            trace,
            model: options.model,
            tools,
            control: options.control,
            approvals: options.approvals,
            telemetry: options.telemetry,
            traceparent: options.traceparent,
            history,
            last_outcome: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn dir(&self) -> &PodDir {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn segment_id(&self) -> &str {
        &self.segment_id
    }

    /// The filesystem scope this pod's tools are confined to (resolved against its work dir).
    pub fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    /// The session log, shared: lifecycle and child-supervision code append through it.
    pub fn log(&self) -> &SessionLog {
        &self.log
    }

    pub fn control(&self) -> &RunControl {
        &self.control
    }

    /// How the pod's tool calls are approved (kept across a reload).
    pub fn approvals(&self) -> &Approvals {
        &self.approvals
    }

    /// The pod's live telemetry export, when it has one (kept across a reload).
    pub fn telemetry(&self) -> Option<&Arc<LiveTelemetry>> {
        self.telemetry.as_ref()
    }

    /// The W3C trace context this pod's runs are recorded in, when it was started in one.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Offer an extra tool (e.g. `spawn_pod`) to the model. Tools named in `agent.tools` and
    /// registered here are both offered; registration is the pod owner's decision.
    pub fn register_tool(&mut self, tool: Arc<dyn crate::tools::Tool>) {
        self.tools.register(tool);
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// Run `input` to its end. `Err` only when the run could not be recorded (session log
    /// write failure) or the pod is misconfigured; provider failures and interruptions are
    /// outcomes.
    pub async fn run(
        &mut self,
        input: RunInput,
        observer: Arc<dyn RunObserver>,
    ) -> Result<RunReport, CoreError> {
        let run_id = new_id();
        self.log.append(LogBody::RunStarted(RunStarted {
            run_id: run_id.clone(),
            trigger: input.trigger.clone(),
            request_id: input.request_id.clone(),
            input: input.text.clone(),
            traceparent: self.traceparent.clone(),
        }))?;
        observer.on_run_started(&run_id);
        self.trace_marker(&run_id, Marker::RunStarted);
        self.history.push(Message::User {
            text: input.text.clone(),
        });
        let mut phase = RunPhase::default();
        let mut tally = RequestTotals::default();
        let result = self
            .run_turns(&run_id, &mut phase, &mut tally, observer)
            .await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                // The log could not be written: record what we can in the trace, then fail.
                self.trace_marker(
                    &run_id,
                    Marker::RunEnd {
                        outcome: "failed".into(),
                    },
                );
                if let Some(trace) = &self.trace
                    && let Err(trace_error) = trace.sync().await
                {
                    // The run fails with the log error; the trace's own failure is secondary.
                    tracing::warn!(error = %error_chain(&trace_error), "trace sidecar sync failed");
                }
                self.control.take();
                self.last_outcome = Some("failed");
                return Err(error);
            }
        };
        let terminal = match &outcome {
            RunOutcome::Completed {
                text,
                turns,
                reason,
                stop_reason,
            } => LogBody::RunCompleted(RunCompleted {
                run_id: run_id.clone(),
                turns: *turns,
                text: text.clone(),
                reason: reason.clone(),
                stop_reason: Some(stop_reason.clone()),
            }),
            RunOutcome::Errored { error, phase } => LogBody::RunErrored(RunErrored {
                run_id: run_id.clone(),
                error: error.clone(),
                phase: phase.clone(),
            }),
            RunOutcome::Interrupted { action, phase } => LogBody::RunInterrupted(RunInterrupted {
                run_id: run_id.clone(),
                reason: interrupt_reason(action.kind).to_owned(),
                action: Some(action.clone()),
                phase: phase.clone(),
            }),
        };
        let logged = self.log.append(terminal);
        // Whatever the outcome, an action that arrived during this run belongs to it: one that
        // came too late to interrupt it must not cut the next run short.
        self.control.take();
        self.trace_marker(
            &run_id,
            Marker::RunEnd {
                outcome: outcome.label().into(),
            },
        );
        let trace_problem = self.sync_trace().await;
        logged?;
        self.last_outcome = Some(outcome.label());
        Ok(RunReport {
            run_id,
            outcome,
            log_path: self.log.path().to_owned(),
            trace_path: self.trace.as_ref().map(|t| t.path().to_owned()),
            trace_problem,
            requests: Box::new(tally),
        })
    }

    /// Sync the trace; describe any problem for the user (never silently dropped).
    async fn sync_trace(&self) -> Option<String> {
        let trace = self.trace.as_ref()?;
        match trace.sync().await {
            Ok(stats) if stats.shed > 0 => Some(format!(
                "{} trace entries were shed (queue full; session.trace_queue_capacity = {}); shed markers in {} say where",
                stats.shed,
                self.manifest.session.trace_queue_capacity,
                trace.path().display()
            )),
            Ok(_) => None,
            Err(error) => Some(error_chain(&error)),
        }
    }

    fn trace_marker(&self, run_id: &str, marker: Marker) {
        if let Some(trace) = &self.trace {
            trace.record(PendingEntry::now(TraceBody::Lifecycle(marker)).run(run_id));
        }
    }

    /// Write `segment_closed` and the pod's state after this process, and sync the trace.
    pub async fn close(self, reason: &str) -> Result<(), CoreError> {
        if let Some(live) = &self.telemetry {
            let report = live.report();
            if report.has_problems() {
                self.log
                    .append(LogBody::TelemetryExportFailed(TelemetryExportFailed {
                        endpoint: report.endpoint,
                        spans_failed: report.spans_failed,
                        entries_dropped: report.entries_dropped,
                        error: report.first_error.unwrap_or_default(),
                    }))?;
            }
        }
        let logged = self.log.append(LogBody::SegmentClosed(SegmentClosed {
            reason: reason.to_owned(),
        }));
        let state = match self.last_outcome {
            Some("errored") | Some("failed") => PodState::Failed,
            _ => PodState::Stopped,
        };
        let updated = self.dir.update_info(|info| {
            info.state = state;
            info.pid = None;
        });
        if let Some(trace) = &self.trace {
            trace.sync().await?;
        }
        logged?;
        updated?;
        Ok(())
    }

    /// The outcome label of the last run in this segment.
    pub fn last_outcome(&self) -> Option<&'static str> {
        self.last_outcome
    }
}
