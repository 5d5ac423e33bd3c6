//! The pod runtime: one segment of a pod's life in this process, and the agent loop.
//!
//! [`Pod::start`] opens a new segment (session log, optional trace sidecar) in an existing pod
//! directory for a manifest — a top-level pod and a child pod start the same way. [`Pod::run`]
//! runs one input to its end: provider stream → assistant output → tool calls → tool results →
//! next request, until the model ends its turn, `agent.max_turns` is reached, the provider
//! fails (`run_errored`), or a lifecycle action arrives through [`RunControl`]
//! (`run_interrupted`). [`Pod::close`] writes `segment_closed` and the pod's final state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use serde_json::Value;

use pod_profile::Manifest;
use pod_provider::event::{StopReason, Usage};
use pod_provider::{
    Message, Milestone, ModelRequest, ProviderError, RawFrame, RawResponse, RequestInfo,
    StreamEvent, StreamObserver, ToolCall,
};
use pod_trace::{
    Marker, PendingEntry, RawResponseHead, RawSseFrame, TRACE_FORMAT_VERSION, TraceBody,
    TraceHandle,
};

use crate::control_handle::RunControl;
use crate::error::{CoreError, error_chain};
use crate::home::PodDir;
use crate::lifecycle::{interrupt_reason, new_id};
use crate::model::ModelConnection;
use crate::record::{
    AssistantMessage, ChildExited, ChildSpawned, LOG_FORMAT_VERSION, LifecycleAction, LogBody,
    PodInfo, PodState, ProviderRequestFinished, ProviderRequestStarted, RequestedToolCall,
    RunCompleted, RunErrored, RunInterrupted, RunPhase, RunStarted, RunTrigger, SegmentClosed,
    SegmentStarted, SideEffectClass, ToolCallFinished, ToolCallStarted, ToolExecutionPhase,
    ToolOutcome,
};
use crate::scope::Scope;
use crate::session_log::{SessionLog, read_segment};
use crate::summary::UsageTotals;
use crate::tools::{ToolContext, ToolRegistry};

/// The most tool output kept in a `tool_call_finished` entry.
pub const TOOL_OUTPUT_LOG_MAX_BYTES: usize = 16 * 1024;

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
    /// A tool call started (`tool_call_started` is in the log). A call that cannot run is
    /// reported here too, with its raw argument text as a JSON string, just before its result.
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
        let log = SessionLog::create(&dir.segment_log_path(&segment_id))?;
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

    /// The session log, shared: lifecycle and child-supervision code append through it.
    /// The filesystem scope this pod's tools are confined to (resolved against its work dir).
    pub fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    pub fn log(&self) -> &SessionLog {
        &self.log
    }

    pub fn control(&self) -> &RunControl {
        &self.control
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

    async fn run_turns(
        &mut self,
        run_id: &str,
        phase: &mut RunPhase,
        tally: &mut RequestTotals,
        observer: Arc<dyn RunObserver>,
    ) -> Result<RunOutcome, CoreError> {
        let max_turns = self.manifest.agent.max_turns.max(1);
        let mut last_text = String::new();
        let mut last_stop = StopReason::ToolCalls;
        for turn in 1..=max_turns {
            if let Some(action) = self.control.governing() {
                return Ok(RunOutcome::Interrupted {
                    action,
                    phase: phase.clone(),
                });
            }
            let request = ModelRequest {
                model: self.model.model.clone(),
                instructions: self.manifest.agent.instructions.clone(),
                messages: self.history.clone(),
                tools: self.tools.specs(),
                max_output_tokens: self.manifest.model.max_output_tokens,
                temperature: self.manifest.model.temperature,
            };
            self.log
                .append(LogBody::ProviderRequestStarted(ProviderRequestStarted {
                    run_id: run_id.to_owned(),
                    turn,
                    attempt: 1,
                    scheme: self.model.scheme_label.clone(),
                    model: self.model.model.clone(),
                }))?;
            let tap = Arc::new(Tap {
                trace: self.trace.clone(),
                run_id: Arc::from(run_id),
                turn,
                attempt: AtomicU32::new(1),
                raw: self.manifest.session.trace_raw_sse,
                max_frame: self.manifest.session.trace_max_frame_bytes as usize,
                log: self.log.clone(),
                log_error: Mutex::new(None),
                scheme_label: self.model.scheme_label.clone(),
                model: self.model.model.clone(),
                sent_at: Mutex::new(None),
                observer: observer.clone(),
                batch: Mutex::new(Vec::new()),
            });
            let streamed = self
                .stream_turn(&request, &tap, phase, observer.as_ref())
                .await;
            if let Some(trace) = &self.trace {
                trace.flush().await;
            }
            if let Some(error) = tap.take_log_error() {
                return Err(error);
            }
            let Streamed {
                text,
                reasoning,
                calls,
                end,
                usage,
                unhandled,
            } = streamed;
            let (end_name, stop_reason) = match &end {
                StreamEnd::Done { stop_reason } => ("completed", Some(stop_reason.clone())),
                StreamEnd::Error(_) => ("errored", None),
                StreamEnd::Interrupted(_) => ("interrupted", None),
            };
            tally.usage.add(usage.as_ref());
            let usage_seen = usage.clone();
            for (event, count) in &unhandled {
                *tally.unhandled.entry(event.clone()).or_insert(0) += count;
            }
            self.log
                .append(LogBody::ProviderRequestFinished(ProviderRequestFinished {
                    run_id: run_id.to_owned(),
                    turn,
                    attempt: tap.attempt.load(Ordering::Relaxed),
                    end: end_name.to_owned(),
                    stop_reason,
                    usage,
                    unhandled,
                }))?;
            observer.on_request_finished(turn, usage_seen.as_ref());
            if !text.is_empty() || !calls.is_empty() || !reasoning.is_empty() {
                self.log
                    .append(LogBody::AssistantMessage(AssistantMessage {
                        run_id: run_id.to_owned(),
                        turn,
                        text: text.clone(),
                        reasoning: reasoning.iter().map(|r| r.text.as_str()).collect(),
                        tool_calls: calls
                            .iter()
                            .map(|c| RequestedToolCall {
                                call_id: c.call_id.clone(),
                                tool: c.name.clone(),
                                arguments: c.arguments.clone(),
                            })
                            .collect(),
                    }))?;
                observer.on_turn_end(run_id, turn);
                self.history.push(Message::Assistant {
                    text: text.clone(),
                    reasoning,
                    tool_calls: calls.clone(),
                });
            }
            match end {
                StreamEnd::Error(error) => {
                    return Ok(RunOutcome::Errored {
                        error,
                        phase: phase.clone(),
                    });
                }
                StreamEnd::Interrupted(action) => {
                    return Ok(RunOutcome::Interrupted {
                        action,
                        phase: phase.clone(),
                    });
                }
                StreamEnd::Done { stop_reason } => {
                    last_text = text;
                    if calls.is_empty() {
                        return Ok(RunOutcome::Completed {
                            text: last_text,
                            turns: turn,
                            reason: legacy_reason(&stop_reason),
                            stop_reason,
                        });
                    }
                    last_stop = stop_reason;
                }
            }
            for call in calls {
                if let Some(action) = self
                    .run_tool(run_id, &call, phase, observer.as_ref())
                    .await?
                {
                    // The unfinished call gets an error result so a resumed conversation stays
                    // well-formed.
                    self.history.push(Message::ToolResult {
                        call_id: call.call_id.clone(),
                        output: "the run was interrupted before this tool call finished".into(),
                        is_error: true,
                    });
                    return Ok(RunOutcome::Interrupted {
                        action,
                        phase: phase.clone(),
                    });
                }
            }
        }
        Ok(RunOutcome::Completed {
            text: last_text,
            turns: max_turns,
            reason: "max_turns".into(),
            stop_reason: last_stop,
        })
    }

    async fn stream_turn(
        &self,
        request: &ModelRequest,
        tap: &Arc<Tap>,
        phase: &mut RunPhase,
        observer: &dyn RunObserver,
    ) -> Streamed {
        let mut out = Streamed::default();
        let mut stream = self
            .model
            .client
            .stream(request, Some(tap.clone() as Arc<dyn StreamObserver>));
        let mut first = true;
        let mut open: Vec<(u32, ToolCall)> = Vec::new();
        loop {
            // An event the client already has is taken at once; only when it must wait on the
            // network does interruption get its chance (the client tells the observer when a
            // read is drained, which is when presenters write what they gathered).
            let ready = if self.control.governing().is_some() {
                None
            } else {
                stream.next().now_or_never()
            };
            let event = match ready {
                Some(event) => event,
                None => {
                    tokio::select! {
                        biased;
                        () = self.control.interrupted() => {
                            if let Some(action) = self.control.governing() {
                                tap.record(TraceBody::Lifecycle(Marker::StreamEnd { outcome: "interrupted".into() }));
                                out.end = StreamEnd::Interrupted(action);
                                break;
                            }
                            continue;
                        }
                        event = stream.next() => event,
                    }
                }
            };
            let Some(event) = event else {
                // The client promises a terminal event; its absence is a broken stream.
                out.end = StreamEnd::Error(ProviderError {
                    class: pod_provider::ErrorClass::StreamClosedBeforeCompletion,
                    code: None,
                    http_status: None,
                    provider_request_id: None,
                    retry_after_ms: None,
                    retryable: false,
                    message: "the provider stream ended without a terminal event".into(),
                });
                break;
            };
            if first {
                first = false;
                observer.on_first_event();
            }
            if !matches!(event, StreamEvent::Error(_)) {
                phase.provider_progress_seen = true;
            }
            match &event {
                StreamEvent::TextDelta(delta) => {
                    if !delta.text.is_empty() {
                        phase.visible_output_seen = true;
                    }
                    observer.on_text(&delta.text);
                    out.text.push_str(&delta.text);
                }
                StreamEvent::ReasoningDelta(delta) => {
                    observer.on_reasoning(&delta.text);
                    out.reasoning.push(delta.clone());
                }
                StreamEvent::ToolCallStart(start) => open.push((
                    start.index,
                    ToolCall {
                        call_id: start.call_id.clone(),
                        name: start.name.clone(),
                        arguments: String::new(),
                    },
                )),
                StreamEvent::ToolCallDelta(delta) => {
                    if let Some((_, call)) = open.iter_mut().find(|(i, _)| *i == delta.index) {
                        call.arguments.push_str(&delta.arguments);
                    }
                }
                StreamEvent::ToolCallEnd(end) => {
                    if let Some((_, call)) = open.iter_mut().find(|(i, _)| *i == end.index) {
                        call.arguments = end.arguments.clone();
                    }
                }
                StreamEvent::Usage(usage) => merge_usage(&mut out.usage, usage),
                StreamEvent::Unhandled(unhandled) => {
                    *out.unhandled.entry(unhandled.event.clone()).or_insert(0) += 1;
                }
                _ => {}
            }
            let terminal = match &event {
                StreamEvent::Completed(done) => Some(StreamEnd::Done {
                    stop_reason: done.stop_reason.clone(),
                }),
                StreamEvent::Incomplete(incomplete) => Some(StreamEnd::Done {
                    stop_reason: incomplete_reason(&incomplete.reason),
                }),
                StreamEvent::Error(error) => Some(StreamEnd::Error(error.clone())),
                _ => None,
            };
            tap.record(TraceBody::Stream { event });
            if let Some(end) = terminal {
                out.end = end;
                break;
            }
        }
        tap.send_batch();
        out.calls = open.into_iter().map(|(_, call)| call).collect();
        out
    }

    /// Run one tool call; `Some(action)` when the run was interrupted during it.
    async fn run_tool(
        &mut self,
        run_id: &str,
        call: &ToolCall,
        phase: &mut RunPhase,
        observer: &dyn RunObserver,
    ) -> Result<Option<LifecycleAction>, CoreError> {
        let tool = self.tools.get(&call.name).cloned();
        let side_effect = tool
            .as_ref()
            .map_or(crate::record::SideEffectClass::ReadOnly, |t| {
                t.side_effect()
            });
        let parsed: Result<Value, String> = if call.arguments.trim().is_empty() {
            Ok(Value::Object(Default::default()))
        } else {
            serde_json::from_str(&call.arguments)
                .map_err(|e| format!("the arguments are not valid JSON: {e}"))
        };
        // A call that cannot run is answered with an error and never counts as started: no
        // side effect, nothing for a retry to repeat.
        let (tool, input) = match (tool, parsed) {
            (Some(tool), Ok(input)) => (tool, input),
            (None, _) => {
                let error = format!(
                    "unknown tool `{}`; available: {}",
                    call.name,
                    self.tools.names().join(", ")
                );
                return self.reject(run_id, call, side_effect, error, observer);
            }
            (Some(_), Err(error)) => {
                return self.reject(run_id, call, side_effect, error, observer);
            }
        };
        self.log.append(LogBody::ToolCallStarted(ToolCallStarted {
            run_id: run_id.to_owned(),
            call_id: call.call_id.clone(),
            tool: call.name.clone(),
            side_effect,
            input: input.clone(),
        }))?;
        observer.on_tool_call(&call.call_id, &call.name, side_effect, &input);
        phase.tool_execution = ToolExecutionPhase::Started;
        if !phase.side_effects_started.contains(&side_effect) {
            phase.side_effects_started.push(side_effect);
        }
        let ctx = ToolContext {
            pod_id: self.info.id.clone(),
            pod_dir: self.dir.path().to_owned(),
            scope: self.scope.clone(),
            manifest: self.manifest.clone(),
            log: self.log.clone(),
            run_id: run_id.to_owned(),
            call_id: call.call_id.clone(),
        };
        let result: Result<String, String> = {
            let call = tool.call(&ctx, input);
            tokio::select! {
                biased;
                () = self.control.interrupted() => {
                    // The tool future is dropped unfinished: the phase says `started`.
                    if let Some(action) = self.control.governing() {
                        return Ok(Some(action));
                    }
                    Err("the tool call was interrupted".to_owned())
                }
                result = call => result.map_err(|e| e.0),
            }
        };
        let (outcome, output, is_error) = match result {
            Ok(output) => (ToolOutcome::Ok, output, false),
            Err(error) => (ToolOutcome::Error, error, true),
        };
        observer.on_tool_result(&call.call_id, &call.name, side_effect, outcome, &output);
        self.log
            .append(LogBody::ToolCallFinished(ToolCallFinished {
                run_id: run_id.to_owned(),
                call_id: call.call_id.clone(),
                tool: call.name.clone(),
                side_effect,
                outcome,
                output: bounded(&output, TOOL_OUTPUT_LOG_MAX_BYTES),
            }))?;
        phase.tool_execution = ToolExecutionPhase::Completed;
        self.history.push(Message::ToolResult {
            call_id: call.call_id.clone(),
            output,
            is_error,
        });
        Ok(None)
    }

    /// Answer a call that cannot run with `error` (a `rejected` result): it never started, so
    /// it adds no side effect and leaves the tool phase as it was.
    fn reject(
        &mut self,
        run_id: &str,
        call: &ToolCall,
        side_effect: crate::record::SideEffectClass,
        error: String,
        observer: &dyn RunObserver,
    ) -> Result<Option<LifecycleAction>, CoreError> {
        observer.on_tool_call(
            &call.call_id,
            &call.name,
            side_effect,
            &Value::String(call.arguments.clone()),
        );
        observer.on_tool_result(
            &call.call_id,
            &call.name,
            side_effect,
            ToolOutcome::Rejected,
            &error,
        );
        self.log
            .append(LogBody::ToolCallFinished(ToolCallFinished {
                run_id: run_id.to_owned(),
                call_id: call.call_id.clone(),
                tool: call.name.clone(),
                side_effect,
                outcome: ToolOutcome::Rejected,
                output: bounded(&error, TOOL_OUTPUT_LOG_MAX_BYTES),
            }))?;
        self.history.push(Message::ToolResult {
            call_id: call.call_id.clone(),
            output: error,
            is_error: true,
        });
        Ok(None)
    }

    fn trace_marker(&self, run_id: &str, marker: Marker) {
        if let Some(trace) = &self.trace {
            trace.record(PendingEntry::now(TraceBody::Lifecycle(marker)).run(run_id));
        }
    }

    /// Write `segment_closed` and the pod's state after this process, and sync the trace.
    pub async fn close(self, reason: &str) -> Result<(), CoreError> {
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

fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes total]", &text[..end], text.len())
}

/// The `reason` of `run_completed` for readers that predate `stop_reason`.
fn legacy_reason(stop: &StopReason) -> String {
    match stop {
        StopReason::Incomplete { raw } | StopReason::Other { raw } => {
            format!("{}: {raw}", stop.name())
        }
        other => other.name().to_owned(),
    }
}

/// The stop reason of a legacy `incomplete` event (the provider's reason as it said it).
fn incomplete_reason(reason: &str) -> StopReason {
    match reason {
        "max_output_tokens" | "max_tokens" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        raw => StopReason::Incomplete {
            raw: raw.to_owned(),
        },
    }
}

/// Usage events of one stream are cumulative and may each carry only some fields (Anthropic
/// sends input at the start and output at the end): the latest value of each field wins.
fn merge_usage(total: &mut Option<Usage>, usage: &Usage) {
    let total = total.get_or_insert_with(Usage::default);
    let take = |slot: &mut Option<u64>, value: Option<u64>| {
        if value.is_some() {
            *slot = value;
        }
    };
    take(&mut total.input_tokens, usage.input_tokens);
    take(&mut total.output_tokens, usage.output_tokens);
    take(&mut total.cached_input_tokens, usage.cached_input_tokens);
    take(&mut total.reasoning_tokens, usage.reasoning_tokens);
}

struct Streamed {
    text: String,
    reasoning: Vec<pod_provider::event::ReasoningDelta>,
    calls: Vec<ToolCall>,
    end: StreamEnd,
    usage: Option<Usage>,
    unhandled: BTreeMap<String, u64>,
}

impl Default for Streamed {
    fn default() -> Self {
        Streamed {
            text: String::new(),
            reasoning: Vec::new(),
            calls: Vec::new(),
            // Replaced by every path out of the stream loop.
            end: StreamEnd::Done {
                stop_reason: StopReason::EndTurn,
            },
            usage: None,
            unhandled: BTreeMap::new(),
        }
    }
}

enum StreamEnd {
    Done { stop_reason: StopReason },
    Error(ProviderError),
    Interrupted(LifecycleAction),
}

/// The stream observer of one model request: trace markers, raw frames, retry notices and the
/// `provider_request_started` entries of retried attempts.
struct Tap {
    trace: Option<TraceHandle>,
    run_id: Arc<str>,
    turn: u32,
    attempt: AtomicU32,
    raw: bool,
    max_frame: usize,
    log: SessionLog,
    /// A log write that failed inside a callback, surfaced by the run after the stream.
    log_error: Mutex<Option<CoreError>>,
    scheme_label: String,
    model: String,
    sent_at: Mutex<Option<Instant>>,
    observer: Arc<dyn RunObserver>,
    /// Trace entries gathered since the last network read: queued as one batch.
    batch: Mutex<Vec<PendingEntry>>,
}

/// The most trace entries a [`Tap`] gathers before queueing them, drained read or not.
const TRACE_BATCH: usize = 1024;

impl Tap {
    fn record(&self, body: TraceBody) {
        self.record_for(self.attempt.load(Ordering::Relaxed), body);
    }

    fn record_for(&self, attempt: u32, body: TraceBody) {
        if let Some(trace) = &self.trace {
            let entry = PendingEntry::now(body)
                .run(self.run_id.clone())
                .request(self.turn, attempt);
            if let Ok(mut batch) = self.batch.lock() {
                batch.push(entry);
                if batch.len() >= TRACE_BATCH {
                    trace.record_batch(&mut batch);
                }
            }
        }
    }

    /// Queue the gathered trace entries.
    fn send_batch(&self) {
        if let (Some(trace), Ok(mut batch)) = (&self.trace, self.batch.lock()) {
            trace.record_batch(&mut batch);
        }
    }

    fn take_log_error(&self) -> Option<CoreError> {
        self.log_error.lock().ok().and_then(|mut e| e.take())
    }
}

impl Drop for Tap {
    /// A stream dropped midway still queues what it gathered.
    fn drop(&mut self) {
        self.send_batch();
    }
}

impl StreamObserver for Tap {
    fn on_request_built(&self, info: &RequestInfo) {
        self.attempt.store(info.attempt, Ordering::Relaxed);
        if info.attempt > 1 {
            let logged = self
                .log
                .append(LogBody::ProviderRequestStarted(ProviderRequestStarted {
                    run_id: self.run_id.to_string(),
                    turn: self.turn,
                    attempt: info.attempt,
                    scheme: self.scheme_label.clone(),
                    model: self.model.clone(),
                }));
            if let (Err(error), Ok(mut slot)) = (logged, self.log_error.lock()) {
                slot.get_or_insert(error);
            }
        }
        self.record_for(
            info.attempt,
            TraceBody::Lifecycle(Marker::RequestBuilt {
                endpoint: pod_trace::redact_url(&info.url),
                body_bytes: info.body_bytes,
                messages: info.message_count,
                tools: info.tool_count,
            }),
        );
    }

    fn on_milestone(&self, attempt: u32, milestone: &Milestone) {
        let marker = match milestone {
            Milestone::RequestSent => {
                if let Ok(mut sent) = self.sent_at.lock() {
                    *sent = Some(Instant::now());
                }
                Marker::StreamOpenStart
            }
            Milestone::HeadersReceived { status } => Marker::StreamOpenOk {
                http_status: *status,
            },
            Milestone::FirstByte => Marker::FirstByte,
            Milestone::FirstEvent => Marker::FirstEvent {
                after_ms: self
                    .sent_at
                    .lock()
                    .ok()
                    .and_then(|s| *s)
                    .map(|s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)),
            },
            Milestone::OpenError { status, class } => Marker::StreamOpenError {
                http_status: *status,
                class: *class,
            },
            Milestone::IdleTimeout => Marker::IdleTimeout,
            Milestone::StreamEnd { outcome } => Marker::StreamEnd {
                outcome: outcome.clone(),
            },
        };
        self.record_for(attempt, TraceBody::Lifecycle(marker));
    }

    fn on_retry_scheduled(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.record_for(
            attempt,
            TraceBody::Lifecycle(Marker::RetryScheduled {
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                cause: cause.clone(),
            }),
        );
        // The wait comes next: what led to it is in the trace meanwhile.
        self.send_batch();
        self.observer.on_retry(attempt, delay, cause);
    }

    fn wants_raw_frames(&self) -> bool {
        self.raw && self.trace.is_some()
    }

    fn on_read_drained(&self) {
        self.send_batch();
        self.observer.on_read_drained();
    }

    fn on_raw_frame(&self, attempt: u32, frame: &RawFrame) {
        let event = (!frame.event.is_empty()).then(|| frame.event.clone());
        self.record_for(
            attempt,
            TraceBody::RawSse(RawSseFrame::bounded(event, &frame.data, self.max_frame)),
        );
    }

    fn on_raw_response(&self, attempt: u32, response: &RawResponse) {
        self.record_for(
            attempt,
            TraceBody::RawResponse(RawResponseHead::bounded(
                response.scheme,
                response.status,
                response.headers.clone(),
                response.body.as_deref(),
                self.max_frame,
            )),
        );
    }
}

/// Rebuild the conversation from a pod's earlier segments: inputs, assistant messages and tool
/// results in order. Tool calls that never got a result (the run ended first) are answered with
/// an error result so the conversation stays well-formed for the provider.
pub fn history_from_segments(dir: &PodDir) -> Result<Vec<Message>, CoreError> {
    let mut history = Vec::new();
    let mut unanswered: Vec<String> = Vec::new();
    let close_unanswered = |history: &mut Vec<Message>, unanswered: &mut Vec<String>| {
        for call_id in unanswered.drain(..) {
            history.push(Message::ToolResult {
                call_id,
                output: "the run ended before this tool call finished".into(),
                is_error: true,
            });
        }
    };
    for segment in dir.segments()? {
        for entry in read_segment(&segment.log)?.entries {
            match entry.body {
                LogBody::RunStarted(run) => {
                    close_unanswered(&mut history, &mut unanswered);
                    history.push(Message::User { text: run.input });
                }
                LogBody::AssistantMessage(message) => {
                    close_unanswered(&mut history, &mut unanswered);
                    unanswered = message
                        .tool_calls
                        .iter()
                        .map(|c| c.call_id.clone())
                        .collect();
                    history.push(Message::Assistant {
                        text: message.text,
                        reasoning: Vec::new(),
                        tool_calls: message
                            .tool_calls
                            .into_iter()
                            .map(|c| ToolCall {
                                call_id: c.call_id,
                                name: c.tool,
                                arguments: c.arguments,
                            })
                            .collect(),
                    });
                }
                LogBody::ToolCallFinished(finished) => {
                    unanswered.retain(|id| *id != finished.call_id);
                    history.push(Message::ToolResult {
                        call_id: finished.call_id,
                        output: finished.output,
                        is_error: finished.outcome != ToolOutcome::Ok,
                    });
                }
                _ => {}
            }
        }
    }
    close_unanswered(&mut history, &mut unanswered);
    Ok(history)
}
