//! A pod's conversation read back from its session logs, run by run: the input, what the model
//! said (text and reasoning), each tool call with its arguments and a bounded result, the
//! children it spawned, and how each run ended (stop reason or error, usage). `pods log`
//! presents it; its JSON shape is documented in `docs/LOG.md`.

use serde::Serialize;
use serde_json::Value;

use pod_protocol::record::{Decision, DecisionSource, LogBody, SideEffectClass, ToolOutcome};
use pod_protocol::report::{StopFacts, UsageTotals};

use crate::error::HomeError;
use crate::index::PodIndex;
use crate::layout::{PodDir, PodHome};
use crate::log_read::{LogProblem, read_segment};
use crate::runs::{RunOutcome, SegmentRuns};

/// The version of the shape [`Conversation`] serializes to (`docs/LOG.md`).
pub const LOG_SHAPE_VERSION: u32 = 2;

/// The most characters of a tool result a transcript keeps; `result_chars` tells the whole.
pub const RESULT_MAX_CHARS: usize = 2000;

/// One pod's conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub pod_id: String,
    pub name: String,
    pub profile: String,
    pub parent_id: Option<String>,
    /// Levels below the pod the transcript was asked for (0 for that pod).
    pub depth: usize,
    pub runs: Vec<RunTranscript>,
    /// Log problems (a torn last line, a gap in `seq`), each with its file and line.
    pub problems: Vec<String>,
}

/// One run, in the order things happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunTranscript {
    pub run_id: String,
    pub segment_id: String,
    pub started: String,
    /// `cli`, `control_request` or `parent_pod`.
    pub trigger: String,
    pub input: String,
    pub items: Vec<Item>,
    /// `completed`, `provider_error`, `interrupted`, `crashed` or `running` (see
    /// [`RunOutcome`]).
    pub outcome: RunOutcome,
    /// For completed runs: why the model stopped (`stop_reason`, `stop_raw`, `truncated`,
    /// `stop_statement`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopFacts>,
    /// For completed runs the completion reason (`end_turn`, `max_turns`, …); for interrupted
    /// ones the interruption's (`stopped`, `cancelled`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    pub usage: UsageTotals,
}

/// Why a run errored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunError {
    pub class: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub message: String,
}

/// Whether a tool call was allowed to run, and who decided (a `tool_decision` entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionView {
    pub decision: Decision,
    pub source: DecisionSource,
    pub detail: String,
}

impl DecisionView {
    /// Worth showing beside the call (see [`pod_protocol::record::decision_is_notable`]).
    pub fn notable(&self) -> bool {
        pod_protocol::record::decision_is_notable(self.decision, self.source)
    }

    /// `denied by config: permissions.process = "ask", and there is no terminal …`.
    pub fn describe(&self) -> String {
        format!(
            "{} by {}: {}",
            self.decision.as_str(),
            self.source.as_str(),
            self.detail
        )
    }
}

/// One step of a run; `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// A model turn's message.
    Assistant {
        turn: u32,
        text: String,
        /// The reasoning text as recorded (empty when the model gave none).
        reasoning: String,
    },
    /// A tool call, from its start (or its rejection) to its result.
    ToolCall {
        call_id: String,
        tool: String,
        /// `None` for a rejected call (it never ran).
        side_effect: Option<SideEffectClass>,
        /// The arguments as parsed JSON, or the raw string when they were not JSON.
        arguments: Value,
        /// `ok`, `error`, `rejected`, or `None` while it has no recorded end.
        outcome: Option<ToolOutcome>,
        /// The start of what the model was given back, at most [`RESULT_MAX_CHARS`].
        result: String,
        /// Characters of the whole recorded result.
        result_chars: usize,
        /// The approval policy's decision, when the log records one.
        #[serde(skip_serializing_if = "Option::is_none")]
        decision: Option<DecisionView>,
    },
    /// A child pod this run spawned.
    ChildSpawned {
        call_id: String,
        child_pod_id: String,
        profile: String,
    },
    /// A child's process ended.
    ChildExited {
        child_pod_id: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        expected: bool,
    },
}

/// The conversation of the pod in `dir`.
pub fn read_conversation(dir: &PodDir) -> Result<Conversation, HomeError> {
    let info = dir.read_info()?;
    let mut runs: Vec<RunTranscript> = Vec::new();
    let mut problems = Vec::new();
    let files = dir.segments()?;
    let last = files.len().saturating_sub(1);
    for (number, segment) in files.into_iter().enumerate() {
        let read = read_segment(&segment.log)?;
        problems.extend(read.problems.iter().map(LogProblem::to_string));
        let first_run = runs.len();
        let mut segment_runs = SegmentRuns::new(number < last);
        for entry in read.entries {
            segment_runs.observe(&entry.ts, &entry.body);
            if let LogBody::RunStarted(run) = &entry.body {
                runs.push(RunTranscript {
                    run_id: run.run_id.clone(),
                    segment_id: segment.segment_id.clone(),
                    started: entry.ts.clone(),
                    trigger: run.trigger.kind().to_owned(),
                    input: run.input.clone(),
                    items: Vec::new(),
                    // Decided below, with the segment read.
                    outcome: RunOutcome::Running,
                    stop: None,
                    reason: None,
                    error: None,
                    usage: UsageTotals::default(),
                });
                continue;
            }
            // Entries outside a run (a lifecycle action between runs) are not conversation.
            let Some(run) = runs.last_mut() else {
                continue;
            };
            apply(run, entry.body);
        }
        for run in &mut runs[first_run..] {
            if let Some(outcome) = segment_runs.unfinished(&run.run_id, info.pid) {
                run.outcome = outcome;
            }
        }
    }
    Ok(Conversation {
        pod_id: info.id,
        name: info.name,
        profile: info.profile,
        parent_id: info.parent_id,
        depth: 0,
        runs,
        problems,
    })
}

/// The conversation of `dir` and, after it, each of its descendants' (depth first, children in
/// the order they were spawned; children the log does not name come last, oldest first).
pub fn read_conversation_tree(
    home: &PodHome,
    dir: &PodDir,
) -> Result<Vec<Conversation>, HomeError> {
    let index = PodIndex::load(home)?;
    let mut out = Vec::new();
    push_tree(&index, dir, 0, &mut out)?;
    Ok(out)
}

fn push_tree(
    index: &PodIndex,
    dir: &PodDir,
    depth: usize,
    out: &mut Vec<Conversation>,
) -> Result<(), HomeError> {
    let mut conversation = read_conversation(dir)?;
    conversation.depth = depth;
    let spawned: Vec<String> = conversation
        .runs
        .iter()
        .flat_map(|r| &r.items)
        .filter_map(|item| match item {
            Item::ChildSpawned { child_pod_id, .. } => Some(child_pod_id.clone()),
            _ => None,
        })
        .collect();
    let mut children = index.children(dir.id());
    // Spawn order first; ids (time-ordered) break ties for the unnamed.
    children.sort_by_key(|id| {
        spawned
            .iter()
            .position(|spawned| spawned == id)
            .unwrap_or(usize::MAX)
    });
    out.push(conversation);
    for child in children {
        // Records whose parents loop would recurse forever.
        if out.iter().any(|c| c.pod_id == child) {
            continue;
        }
        if let Some(pod) = index.get(child) {
            push_tree(index, &pod.dir, depth + 1, out)?;
        }
    }
    Ok(())
}

fn apply(run: &mut RunTranscript, body: LogBody) {
    match body {
        LogBody::AssistantMessage(message) => {
            let requested = message.tool_calls;
            run.items.push(Item::Assistant {
                turn: message.turn,
                text: message.text,
                reasoning: message.reasoning,
            });
            // Calls the model asked for, in its order; a started or rejected entry fills each.
            for call in requested {
                run.items.push(Item::ToolCall {
                    call_id: call.call_id,
                    tool: call.tool,
                    side_effect: None,
                    arguments: arguments_value(&call.arguments),
                    outcome: None,
                    result: String::new(),
                    result_chars: 0,
                    decision: None,
                });
            }
        }
        LogBody::ToolDecision(decided) => {
            let view = DecisionView {
                decision: decided.decision,
                source: decided.source,
                detail: decided.detail,
            };
            match find_call(run, &decided.call_id) {
                Some(Item::ToolCall { decision, .. }) => *decision = Some(view),
                _ => run.items.push(Item::ToolCall {
                    call_id: decided.call_id,
                    tool: decided.tool,
                    side_effect: None,
                    arguments: Value::Null,
                    outcome: None,
                    result: String::new(),
                    result_chars: 0,
                    decision: Some(view),
                }),
            }
        }
        LogBody::ToolCallStarted(started) => match find_call(run, &started.call_id) {
            Some(Item::ToolCall {
                side_effect,
                arguments,
                ..
            }) => {
                *side_effect = Some(started.side_effect);
                *arguments = started.input;
            }
            _ => run.items.push(Item::ToolCall {
                call_id: started.call_id,
                tool: started.tool,
                side_effect: Some(started.side_effect),
                arguments: started.input,
                outcome: None,
                result: String::new(),
                result_chars: 0,
                decision: None,
            }),
        },
        LogBody::ToolCallFinished(finished) => {
            let chars = finished.output.chars().count();
            let kept: String = finished.output.chars().take(RESULT_MAX_CHARS).collect();
            match find_call(run, &finished.call_id) {
                Some(Item::ToolCall {
                    outcome,
                    result,
                    result_chars,
                    side_effect,
                    ..
                }) => {
                    *outcome = Some(finished.outcome);
                    *result = kept;
                    *result_chars = chars;
                    if finished.outcome != ToolOutcome::Rejected {
                        side_effect.get_or_insert(finished.side_effect);
                    }
                }
                _ => run.items.push(Item::ToolCall {
                    call_id: finished.call_id,
                    tool: finished.tool,
                    side_effect: (finished.outcome != ToolOutcome::Rejected)
                        .then_some(finished.side_effect),
                    arguments: Value::Null,
                    outcome: Some(finished.outcome),
                    result: kept,
                    result_chars: chars,
                    decision: None,
                }),
            }
        }
        LogBody::ChildSpawned(child) => run.items.push(Item::ChildSpawned {
            call_id: child.call_id,
            child_pod_id: child.child_pod_id,
            profile: child.profile,
        }),
        LogBody::ChildExited(child) => run.items.push(Item::ChildExited {
            child_pod_id: child.child_pod_id,
            exit_code: child.exit_code,
            signal: child.signal,
            expected: child.expected,
        }),
        LogBody::ProviderRequestFinished(finished) if finished.run_id == run.run_id => {
            run.usage.add(finished.usage.as_ref());
        }
        LogBody::RunCompleted(done) if done.run_id == run.run_id => {
            run.outcome = RunOutcome::Completed;
            run.reason = Some(done.reason);
            run.stop = Some(StopFacts::of(done.stop_reason.as_ref()));
        }
        LogBody::RunErrored(failed) if failed.run_id == run.run_id => {
            run.outcome = RunOutcome::ProviderError;
            run.error = Some(RunError {
                class: failed.error.class.as_str().to_owned(),
                code: failed.error.code,
                http_status: failed.error.http_status,
                message: failed.error.message,
            });
        }
        LogBody::RunInterrupted(stopped) if stopped.run_id == run.run_id => {
            run.outcome = RunOutcome::Interrupted;
            run.reason = Some(stopped.reason);
        }
        _ => {}
    }
}

/// The tool-call item of this run with `call_id` that has no recorded end yet.
fn find_call<'a>(run: &'a mut RunTranscript, call_id: &str) -> Option<&'a mut Item> {
    run.items.iter_mut().rev().find(
        |item| matches!(item, Item::ToolCall { call_id: id, outcome: None, .. } if id == call_id),
    )
}

fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}
