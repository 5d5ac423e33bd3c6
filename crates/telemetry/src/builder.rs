//! The span builder: a state machine fed a pod's session-log entries in order, one at a time,
//! that hands out each span as soon as it is complete. The same entries give the same spans
//! whether they are read from files long after or fed live as the log appends them.
//!
//! A span is complete when its entry says so (`tool_call_finished`, a run's terminal entry). A
//! model request's `chat` span waits for the entry after `provider_request_finished`: the
//! assistant message it produced (content) or the run's error (its class). At the end of input
//! [`SpanBuilder::finish`] closes what is still open the way `pod_home::runs` classifies it:
//! `running` while the segment's owner lives, `crashed` (with the evidence) otherwise.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use pod_home::Liveness;
use pod_home::runs::{RunOutcome, SegmentOwner};
use pod_protocol::record::{
    LifecycleAction, LogBody, LogEntry, Origin, ProviderRequestFinished, RetryCause, RunTrigger,
};

use crate::content::Content;
use crate::ids;
use crate::names as n;
use crate::pod::PodContext;

/// Builds the spans of one pod from its log entries (all its segments, in order).
#[derive(Debug)]
pub struct SpanBuilder {
    pod: PodContext,
    content: Content,
    scope: InstrumentationScope,
    owner: SegmentOwner,
    runs: Vec<OpenRun>,
    /// The last entry of the current segment: where a crashed run's evidence ends.
    last: Option<LastEntry>,
}

#[derive(Debug, Clone)]
struct LastEntry {
    seq: u64,
    kind: &'static str,
    ts: String,
    at: SystemTime,
}

/// A span begun and not yet complete.
#[derive(Debug)]
struct Pending {
    name: String,
    kind: SpanKind,
    /// The run's trace: the one its recorded `traceparent` names, else the tree's.
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    parent_is_remote: bool,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
}

#[derive(Debug)]
struct OpenRun {
    run_id: String,
    span: Pending,
    /// Attempts started and not finished, by (turn, attempt).
    chats: Vec<(u32, u32, Pending)>,
    /// The request that just finished, waiting for its assistant message or the run's error.
    finished_chat: Option<FinishedChat>,
    /// Tool calls begun (decided or started) and not finished, by call id.
    tools: Vec<(String, Pending)>,
    /// Kinds of the lifecycle actions that reached the pod while this run was active.
    actions_seen: Vec<String>,
    turns: u32,
}

#[derive(Debug)]
struct FinishedChat {
    turn: u32,
    span: Pending,
    end: SystemTime,
    status: Status,
}

impl SpanBuilder {
    pub fn new(pod: PodContext, content: Content) -> SpanBuilder {
        let scope = InstrumentationScope::builder("pods")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        SpanBuilder {
            pod,
            content,
            scope,
            owner: SegmentOwner::default(),
            runs: Vec::new(),
            last: None,
        }
    }

    pub fn pod(&self) -> &PodContext {
        &self.pod
    }

    /// Whether a run is still open (started, no terminal entry yet).
    pub fn has_open_runs(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Take in the next entry of the pod's log; spans it completes are pushed onto `out`.
    pub fn feed(&mut self, entry: &LogEntry, out: &mut Vec<SpanData>) {
        let at = humantime::parse_rfc3339_weak(&entry.ts)
            .ok()
            .or(self.last.as_ref().map(|l| l.at))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if let LogBody::SegmentStarted(_) = &entry.body {
            // Runs a previous segment left open: another process took the pod over.
            self.owner.later_segment = true;
            self.close_unfinished(None, out);
            self.owner = SegmentOwner::default();
        }
        self.owner.observe(&entry.ts, &entry.body);
        self.apply(&entry.body, at, out);
        self.last = Some(LastEntry {
            seq: entry.seq,
            kind: entry.body.kind(),
            ts: entry.ts.clone(),
            at,
        });
    }

    /// The end of input: every run still open is closed as `running` (its segment's owner is
    /// alive) or `crashed` (it is not, or that cannot be told), as `pod_home::runs` decides.
    pub fn finish(&mut self, out: &mut Vec<SpanData>) {
        self.close_unfinished(self.pod.pid, out);
    }

    fn apply(&mut self, body: &LogBody, at: SystemTime, out: &mut Vec<SpanData>) {
        match body {
            LogBody::RunStarted(started) => {
                let run = self.start_run(started, at);
                self.runs.push(run);
            }
            LogBody::ProviderRequestStarted(request) => {
                let Some(i) = self.run_index(&request.run_id) else {
                    return;
                };
                self.flush_chat(i, out);
                // An earlier attempt of the same request still open was retried.
                let (retried, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.runs[i].chats)
                    .into_iter()
                    .partition(|(turn, attempt, _)| {
                        *turn == request.turn && *attempt < request.attempt
                    });
                self.runs[i].chats = kept;
                for (_, attempt, mut span) in retried {
                    // The new attempt's entry says why the one just before it failed.
                    let cause = request
                        .retry_of
                        .as_ref()
                        .filter(|_| attempt + 1 == request.attempt);
                    let status = retried_attempt(&mut span, cause);
                    out.push(self.complete(span, at, status));
                }
                let trace_id = self.runs[i].span.trace_id;
                let chat = self.start_chat(request, trace_id, at);
                self.runs[i]
                    .chats
                    .push((request.turn, request.attempt, chat));
            }
            LogBody::ProviderRequestFinished(finished) => {
                let Some(i) = self.run_index(&finished.run_id) else {
                    return;
                };
                self.flush_chat(i, out);
                self.finish_chat(i, finished, at, out);
            }
            LogBody::AssistantMessage(message) => {
                let Some(i) = self.run_index(&message.run_id) else {
                    return;
                };
                let run = &mut self.runs[i];
                run.turns = run.turns.max(message.turn);
                if let Some(chat) = run
                    .finished_chat
                    .as_mut()
                    .filter(|c| c.turn == message.turn)
                {
                    let output = serde_json::json!({
                        "role": "assistant",
                        "text": message.text,
                        "tool_calls": message.tool_calls.iter().map(|c| serde_json::json!({
                            "id": c.call_id, "name": c.tool, "arguments": c.arguments,
                        })).collect::<Vec<_>>(),
                    });
                    if let Some(text) = self.content.preview(&output.to_string()) {
                        chat.span
                            .attributes
                            .push(KeyValue::new(n::OUTPUT_MESSAGES, text));
                    }
                }
                // A request that failed waits on for the run's error, which names its class.
                if !run
                    .finished_chat
                    .as_ref()
                    .is_some_and(|c| matches!(c.status, Status::Error { .. }))
                {
                    self.flush_chat(i, out);
                }
            }
            LogBody::ToolDecision(decision) => {
                let Some(i) = self.run_index(&decision.run_id) else {
                    return;
                };
                self.flush_chat(i, out);
                let tool = self.tool(i, &decision.call_id, &decision.tool, at);
                tool.attributes.extend([
                    KeyValue::new(n::TOOL_SIDE_EFFECT, decision.side_effect.as_str()),
                    KeyValue::new(n::TOOL_DECISION, decision.decision.as_str()),
                    KeyValue::new(n::TOOL_DECISION_SOURCE, decision.source.as_str()),
                ]);
            }
            LogBody::ToolCallStarted(started) => {
                let Some(i) = self.run_index(&started.run_id) else {
                    return;
                };
                self.flush_chat(i, out);
                let arguments = self.content.preview(&started.input.to_string());
                let tool = self.tool(i, &started.call_id, &started.tool, at);
                set(tool, n::TOOL_SIDE_EFFECT, started.side_effect.as_str());
                if let Some(arguments) = arguments {
                    tool.attributes
                        .push(KeyValue::new(n::TOOL_CALL_ARGUMENTS, arguments));
                }
            }
            LogBody::ChildSpawned(spawned) => {
                if let Some(i) = self.run_index(&spawned.run_id)
                    && let Some((_, tool)) = self.runs[i]
                        .tools
                        .iter_mut()
                        .find(|(id, _)| *id == spawned.call_id)
                {
                    tool.attributes.push(KeyValue::new(
                        n::TOOL_CHILD_POD_ID,
                        spawned.child_pod_id.clone(),
                    ));
                }
            }
            LogBody::ToolCallFinished(finished) => {
                let Some(i) = self.run_index(&finished.run_id) else {
                    return;
                };
                self.flush_chat(i, out);
                let result = self.content.preview(&finished.output);
                let tool = self.tool(i, &finished.call_id, &finished.tool, at);
                set(tool, n::TOOL_SIDE_EFFECT, finished.side_effect.as_str());
                tool.attributes
                    .push(KeyValue::new(n::TOOL_OUTCOME, finished.outcome.as_str()));
                if let Some(result) = result {
                    tool.attributes
                        .push(KeyValue::new(n::TOOL_CALL_RESULT, result));
                }
                let status = match finished.outcome {
                    pod_protocol::record::ToolOutcome::Ok => Status::Unset,
                    other => Status::error(other.as_str()),
                };
                let run = &mut self.runs[i];
                if let Some(k) = run.tools.iter().position(|(id, _)| *id == finished.call_id) {
                    let (_, span) = run.tools.remove(k);
                    out.push(self.complete(span, at, status));
                }
            }
            LogBody::LifecycleAction(recorded) => {
                if let Some(run_id) = &recorded.active_run_id
                    && let Some(i) = self.run_index(run_id)
                {
                    let kind = recorded.action.kind.as_str().to_owned();
                    self.runs[i].actions_seen.push(kind);
                }
            }
            LogBody::RunCompleted(done) => {
                let Some(i) = self.run_index(&done.run_id) else {
                    return;
                };
                let mut attributes = vec![
                    KeyValue::new(n::RUN_OUTCOME, RunOutcome::Completed.as_str()),
                    KeyValue::new(n::RUN_TURNS, i64::from(done.turns)),
                ];
                let stop = done
                    .stop_reason
                    .as_ref()
                    .map(|s| s.name().to_owned())
                    .unwrap_or_else(|| done.reason.clone());
                attributes.push(KeyValue::new(n::RUN_STOP_REASON, stop));
                if let Some(text) = self.content.preview(&done.text) {
                    attributes.push(KeyValue::new(n::OUTPUT_MESSAGES, text));
                }
                self.end_run(i, at, attributes, Vec::new(), Status::Unset, None, out);
            }
            LogBody::RunErrored(failed) => {
                let Some(i) = self.run_index(&failed.run_id) else {
                    return;
                };
                let error = &failed.error;
                let class = error.class.as_str();
                let mut attributes = vec![
                    KeyValue::new(n::RUN_OUTCOME, RunOutcome::ProviderError.as_str()),
                    KeyValue::new(n::ERROR_TYPE, class),
                    KeyValue::new(n::ERROR_RETRYABLE, error.retryable),
                ];
                if let Some(code) = &error.code {
                    attributes.push(KeyValue::new(n::ERROR_CODE, code.clone()));
                }
                if let Some(status) = error.http_status {
                    attributes.push(KeyValue::new(n::ERROR_HTTP_STATUS, i64::from(status)));
                }
                let chat_error = attributes[1..].to_vec();
                self.end_run(
                    i,
                    at,
                    attributes,
                    Vec::new(),
                    Status::error(class.to_owned()),
                    Some(chat_error),
                    out,
                );
            }
            LogBody::RunInterrupted(stopped) => {
                let Some(i) = self.run_index(&stopped.run_id) else {
                    return;
                };
                let mut attributes = vec![
                    KeyValue::new(n::RUN_OUTCOME, RunOutcome::Interrupted.as_str()),
                    KeyValue::new(n::RUN_STOP_REASON, stopped.reason.clone()),
                ];
                let mut events = Vec::new();
                if let Some(action) = &stopped.action {
                    let described = self.action_attributes(action);
                    let action_at = humantime::parse_rfc3339_weak(&action.started_at).unwrap_or(at);
                    events.push(Event::new(
                        n::EVENT_LIFECYCLE_ACTION,
                        action_at,
                        described.clone(),
                        0,
                    ));
                    attributes.extend(described);
                }
                self.end_run(i, at, attributes, events, Status::Unset, None, out);
            }
            _ => {}
        }
    }

    fn run_index(&self, run_id: &str) -> Option<usize> {
        self.runs.iter().position(|r| r.run_id == run_id)
    }

    fn start_run(&self, started: &pod_protocol::record::RunStarted, at: SystemTime) -> OpenRun {
        let pod = &self.pod;
        let outer = started
            .traceparent
            .as_deref()
            .and_then(ids::parse_traceparent);
        let trace_id = outer.map_or(pod.trace_id, |(trace, _)| trace);
        // A child's run hangs under the parent's tool call that started it (the same span its
        // traceparent names for the first run; a later `send_to_pod` run names its own call);
        // a root run under the outer span it was started in, if any.
        let (parent, remote) = match (&started.trigger, outer) {
            (
                RunTrigger::ParentPod {
                    parent_pod_id,
                    tool_call_id,
                },
                _,
            ) => (ids::tool_span(parent_pod_id, tool_call_id), true),
            (_, Some((_, span))) => (span, true),
            (_, None) => (SpanId::INVALID, false),
        };
        let mut attributes = vec![
            KeyValue::new(n::OPERATION_NAME, n::OP_INVOKE_AGENT),
            KeyValue::new(n::AGENT_ID, pod.pod_id.clone()),
            KeyValue::new(n::AGENT_NAME, pod.name.clone()),
            KeyValue::new(n::CONVERSATION_ID, pod.pod_id.clone()),
            KeyValue::new(n::POD_PROFILE, pod.profile.clone()),
            KeyValue::new(n::RUN_ID, started.run_id.clone()),
            KeyValue::new(n::RUN_TRIGGER, started.trigger.kind()),
        ];
        attributes
            .extend(self.model_attributes(pod.model.scheme.as_deref(), pod.model.model.as_deref()));
        if let Some(input) = self.content.preview(&started.input) {
            let message = serde_json::json!([{"role": "user", "text": input}]);
            attributes.push(KeyValue::new(n::INPUT_MESSAGES, message.to_string()));
        }
        OpenRun {
            run_id: started.run_id.clone(),
            span: Pending {
                name: format!("{} {}", n::OP_INVOKE_AGENT, pod.name),
                kind: SpanKind::Internal,
                trace_id,
                span_id: ids::run_span(&pod.pod_id, &started.run_id),
                parent,
                parent_is_remote: remote,
                start: at,
                attributes,
                events: Vec::new(),
            },
            chats: Vec::new(),
            finished_chat: None,
            tools: Vec::new(),
            actions_seen: Vec::new(),
            turns: 0,
        }
    }

    fn model_attributes(&self, scheme: Option<&str>, model: Option<&str>) -> Vec<KeyValue> {
        let mut attributes = Vec::new();
        if let Some(scheme) = scheme {
            attributes.push(KeyValue::new(
                n::PROVIDER_NAME,
                n::provider_name(scheme).to_owned(),
            ));
            attributes.push(KeyValue::new(n::SCHEME, scheme.to_owned()));
        }
        if let Some(model) = model {
            attributes.push(KeyValue::new(n::REQUEST_MODEL, model.to_owned()));
        }
        attributes
    }

    fn start_chat(
        &self,
        request: &pod_protocol::record::ProviderRequestStarted,
        trace_id: TraceId,
        at: SystemTime,
    ) -> Pending {
        let run_span = ids::run_span(&self.pod.pod_id, &request.run_id);
        let mut attributes = vec![KeyValue::new(n::OPERATION_NAME, n::OP_CHAT)];
        attributes.extend(self.model_attributes(Some(&request.scheme), Some(&request.model)));
        attributes.extend([
            KeyValue::new(n::CONVERSATION_ID, self.pod.pod_id.clone()),
            KeyValue::new(n::RUN_ID, request.run_id.clone()),
            KeyValue::new(n::REQUEST_TURN, i64::from(request.turn)),
            KeyValue::new(n::REQUEST_ATTEMPT, i64::from(request.attempt)),
        ]);
        Pending {
            name: format!("{} {}", n::OP_CHAT, request.model),
            kind: SpanKind::Client,
            trace_id,
            span_id: ids::chat_span(
                &self.pod.pod_id,
                &request.run_id,
                request.turn,
                request.attempt,
            ),
            parent: run_span,
            parent_is_remote: false,
            start: at,
            attributes,
            events: Vec::new(),
        }
    }

    /// A model request's stream ended: its span waits for what the next entry says.
    fn finish_chat(
        &mut self,
        i: usize,
        finished: &ProviderRequestFinished,
        at: SystemTime,
        out: &mut Vec<SpanData>,
    ) {
        let run = &mut self.runs[i];
        let Some(k) = run
            .chats
            .iter()
            .position(|(turn, attempt, _)| *turn == finished.turn && *attempt == finished.attempt)
        else {
            return;
        };
        let (_, _, mut span) = run.chats.remove(k);
        // Earlier attempts of the request that are still open were retried.
        let (retried, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut run.chats)
            .into_iter()
            .partition(|(turn, _, _)| *turn == finished.turn);
        run.chats = kept;
        span.attributes
            .push(KeyValue::new(n::REQUEST_END, finished.end.clone()));
        if let Some(stop) = &finished.stop_reason {
            span.attributes.push(KeyValue::new(
                n::RESPONSE_FINISH_REASONS,
                Value::Array(vec![StringValue::from(stop.name().to_owned())].into()),
            ));
        }
        if let Some(usage) = &finished.usage {
            let counts = [
                (n::USAGE_INPUT_TOKENS, usage.input_tokens),
                (n::USAGE_OUTPUT_TOKENS, usage.output_tokens),
                (n::USAGE_CACHE_READ_INPUT_TOKENS, usage.cached_input_tokens),
                (n::USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens),
            ];
            for (key, count) in counts {
                if let Some(count) = count {
                    let count = i64::try_from(count).unwrap_or(i64::MAX);
                    span.attributes.push(KeyValue::new(key, count));
                }
            }
        }
        if let Some(ms) = finished.time_to_first_chunk_ms {
            span.attributes.extend([
                KeyValue::new(n::RESPONSE_TIME_TO_FIRST_CHUNK, ms as f64 / 1000.0),
                KeyValue::new(
                    n::REQUEST_TIME_TO_FIRST_CHUNK_MS,
                    i64::try_from(ms).unwrap_or(i64::MAX),
                ),
            ]);
        }
        if let Some(id) = &finished.response_id {
            span.attributes
                .push(KeyValue::new(n::RESPONSE_ID, id.clone()));
        }
        if let Some(model) = &finished.response_model {
            span.attributes
                .push(KeyValue::new(n::RESPONSE_MODEL, model.clone()));
        }
        if !finished.unhandled.is_empty() {
            let total: u64 = finished.unhandled.values().sum();
            span.attributes.push(KeyValue::new(
                n::REQUEST_UNHANDLED_EVENTS,
                i64::try_from(total).unwrap_or(i64::MAX),
            ));
        }
        let status = match finished.end.as_str() {
            "completed" | "interrupted" => Status::Unset,
            other => Status::error(other.to_owned()),
        };
        for (_, _, mut earlier) in retried {
            let status = retried_attempt(&mut earlier, None);
            out.push(self.complete(earlier, span.start, status));
        }
        self.runs[i].finished_chat = Some(FinishedChat {
            turn: finished.turn,
            span,
            end: at,
            status,
        });
    }

    /// Hand out the finished request waiting for its next entry.
    fn flush_chat(&mut self, i: usize, out: &mut Vec<SpanData>) {
        if let Some(chat) = self.runs[i].finished_chat.take() {
            out.push(self.complete(chat.span, chat.end, chat.status));
        }
    }

    /// The open tool span of `call_id`, begun now if it was not.
    fn tool(&mut self, i: usize, call_id: &str, tool: &str, at: SystemTime) -> &mut Pending {
        let run = &self.runs[i];
        let run_span = run.span.span_id;
        let trace_id = run.span.trace_id;
        let k = match run.tools.iter().position(|(id, _)| id == call_id) {
            Some(k) => k,
            None => {
                let span = Pending {
                    name: format!("{} {tool}", n::OP_EXECUTE_TOOL),
                    kind: SpanKind::Internal,
                    trace_id,
                    span_id: ids::tool_span(&self.pod.pod_id, call_id),
                    parent: run_span,
                    parent_is_remote: false,
                    start: at,
                    attributes: vec![
                        KeyValue::new(n::OPERATION_NAME, n::OP_EXECUTE_TOOL),
                        KeyValue::new(n::TOOL_NAME, tool.to_owned()),
                        KeyValue::new(n::TOOL_CALL_ID, call_id.to_owned()),
                        KeyValue::new(n::TOOL_TYPE, "function"),
                    ],
                    events: Vec::new(),
                };
                self.runs[i].tools.push((call_id.to_owned(), span));
                self.runs[i].tools.len() - 1
            }
        };
        &mut self.runs[i].tools[k].1
    }

    fn action_attributes(&self, action: &LifecycleAction) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new(n::LIFECYCLE_ACTION_ID, action.action_id.clone()),
            KeyValue::new(n::LIFECYCLE_KIND, action.kind.as_str()),
            KeyValue::new(n::LIFECYCLE_ORIGIN, action.origin.kind()),
        ];
        if let Some(detail) = origin_detail(&action.origin) {
            attributes.push(KeyValue::new(n::LIFECYCLE_ORIGIN_DETAIL, detail));
        }
        if let Some(caused_by) = &action.caused_by {
            attributes.extend([
                KeyValue::new(n::LIFECYCLE_CAUSED_BY_POD, caused_by.pod_id.clone()),
                KeyValue::new(n::LIFECYCLE_CAUSED_BY_ACTION, caused_by.action_id.clone()),
                KeyValue::new(n::LIFECYCLE_CAUSED_BY_KIND, caused_by.kind.as_str()),
            ]);
        }
        // Free text given with the action is content.
        if let Some(reason) = action
            .reason
            .as_deref()
            .and_then(|r| self.content.preview(r))
        {
            attributes.push(KeyValue::new(n::LIFECYCLE_REASON, reason));
        }
        attributes
    }

    /// End run `i` at `at`: its waiting request first (with `chat_error` when the run failed
    /// on it), then whatever of it is still open, then the run's own span.
    #[allow(clippy::too_many_arguments)]
    fn end_run(
        &mut self,
        i: usize,
        at: SystemTime,
        attributes: Vec<KeyValue>,
        events: Vec<Event>,
        status: Status,
        chat_error: Option<Vec<KeyValue>>,
        out: &mut Vec<SpanData>,
    ) {
        let mut run = self.runs.remove(i);
        if let Some(mut chat) = run.finished_chat.take() {
            if let Some(error) = &chat_error {
                chat.span.attributes.extend(error.iter().cloned());
                chat.status = status.clone();
            }
            out.push(self.complete(chat.span, chat.end, chat.status));
        }
        let unfinished_status = match &status {
            Status::Error { .. } => status.clone(),
            _ => Status::Unset,
        };
        for (_, _, mut span) in run.chats.drain(..) {
            if let Some(error) = &chat_error {
                span.attributes.extend(error.iter().cloned());
            }
            span.attributes.push(KeyValue::new(n::UNFINISHED, true));
            out.push(self.complete(span, at, unfinished_status.clone()));
        }
        for (_, mut span) in run.tools.drain(..) {
            span.attributes.push(KeyValue::new(n::UNFINISHED, true));
            out.push(self.complete(span, at, unfinished_status.clone()));
        }
        if run.turns > 0 && !attributes.iter().any(|kv| kv.key.as_str() == n::RUN_TURNS) {
            run.span
                .attributes
                .push(KeyValue::new(n::RUN_TURNS, i64::from(run.turns)));
        }
        run.span.attributes.extend(attributes);
        run.span.events.extend(events);
        out.push(self.complete(run.span, at, status));
    }

    /// Close every open run as `running` or `crashed`, from this segment's owner.
    fn close_unfinished(&mut self, pod_pid: Option<u32>, out: &mut Vec<SpanData>) {
        if self.runs.is_empty() {
            return;
        }
        let liveness = self.owner.liveness(pod_pid);
        let outcome = RunOutcome::unfinished(&liveness);
        let last = self.last.clone();
        let at = last.as_ref().map_or(SystemTime::UNIX_EPOCH, |l| l.at);
        while !self.runs.is_empty() {
            let mut attributes = vec![KeyValue::new(n::RUN_OUTCOME, outcome.as_str())];
            let mut events = Vec::new();
            let status = if outcome == RunOutcome::Crashed {
                let (owner, detail) = match &liveness {
                    Liveness::Gone(detail) => ("gone", detail.clone()),
                    Liveness::Unknown(detail) => ("unknown", detail.clone()),
                    Liveness::Alive => ("alive", String::new()),
                };
                let mut evidence = vec![
                    KeyValue::new(n::CRASH_OWNER, owner),
                    KeyValue::new(n::CRASH_DETAIL, detail.clone()),
                ];
                if let Some(pid) = self.owner.pid.or(pod_pid) {
                    evidence.push(KeyValue::new(n::CRASH_OWNER_PID, i64::from(pid)));
                }
                if let Some(last) = &last {
                    evidence.extend([
                        KeyValue::new(
                            n::CRASH_LAST_SEQ,
                            i64::try_from(last.seq).unwrap_or(i64::MAX),
                        ),
                        KeyValue::new(n::CRASH_LAST_ENTRY_KIND, last.kind),
                        KeyValue::new(n::CRASH_LAST_ENTRY_AT, last.ts.clone()),
                    ]);
                }
                let seen = &self.runs[0].actions_seen;
                if !seen.is_empty() {
                    let kinds: Vec<StringValue> =
                        seen.iter().cloned().map(StringValue::from).collect();
                    evidence.push(KeyValue::new(
                        n::CRASH_ACTIONS_SEEN,
                        Value::Array(kinds.into()),
                    ));
                }
                events.push(Event::new(n::EVENT_CRASH, at, evidence.clone(), 0));
                attributes.extend(evidence);
                Status::error(format!("crashed: {detail}"))
            } else {
                Status::Unset
            };
            self.end_run(0, at, attributes, events, status, None, out);
        }
    }

    fn complete(&self, span: Pending, end: SystemTime, status: Status) -> SpanData {
        let mut events = SpanEvents::default();
        events.events = span.events;
        SpanData {
            span_context: SpanContext::new(
                span.trace_id,
                span.span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: span.parent,
            parent_span_is_remote: span.parent_is_remote,
            span_kind: span.kind,
            name: Cow::Owned(span.name),
            start_time: span.start,
            end_time: end.max(span.start),
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

/// Mark `span` as an attempt the client retried, with the failure that caused the retry and
/// the wait when the next attempt's entry recorded them; its status.
fn retried_attempt(span: &mut Pending, cause: Option<&RetryCause>) -> Status {
    span.attributes
        .push(KeyValue::new(n::REQUEST_RETRIED, true));
    let Some(cause) = cause else {
        return Status::error("attempt failed; retried");
    };
    let class = cause.class.as_str();
    span.attributes.extend([
        KeyValue::new(n::ERROR_TYPE, class),
        KeyValue::new(
            n::REQUEST_RETRY_DELAY_MS,
            i64::try_from(cause.delay_ms).unwrap_or(i64::MAX),
        ),
    ]);
    if let Some(code) = &cause.code {
        span.attributes
            .push(KeyValue::new(n::ERROR_CODE, code.clone()));
    }
    if let Some(status) = cause.http_status {
        span.attributes
            .push(KeyValue::new(n::ERROR_HTTP_STATUS, i64::from(status)));
    }
    if let Some(ms) = cause.retry_after_ms {
        span.attributes.push(KeyValue::new(
            n::REQUEST_RETRY_AFTER_MS,
            i64::try_from(ms).unwrap_or(i64::MAX),
        ));
    }
    Status::error(format!("{class}; retried"))
}

/// Replace or add attribute `key`.
fn set(span: &mut Pending, key: &'static str, value: &'static str) {
    span.attributes.retain(|kv| kv.key.as_str() != key);
    span.attributes.push(KeyValue::new(key, value));
}

/// The one fact that says which command, signal, pod or request an origin was.
fn origin_detail(origin: &Origin) -> Option<String> {
    match origin {
        Origin::Cli { command, .. } => Some(command.clone()),
        Origin::ControlRequest { client, .. } => Some(client.clone()),
        Origin::Signal { signal } => Some(signal.clone()),
        Origin::ParentPod {
            parent_pod_id,
            tool_call_id,
        } => Some(format!("{parent_pod_id}/{tool_call_id}")),
        Origin::Watchdog { idle_ms } => Some(format!("idle {idle_ms} ms")),
        Origin::Runtime { detail } => Some(detail.clone()),
        Origin::Unknown { missing } => Some(format!("missing: {}", missing.join(", "))),
        Origin::Unverified(unverified) => Some(format!("unverified: {}", unverified.why)),
    }
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
