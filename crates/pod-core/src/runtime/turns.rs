//! The agent loop of one run: a model request per turn, its stream recorded, the tool calls it
//! asks for run, until the model ends its turn, the turn budget runs out, the provider fails or
//! a lifecycle action interrupts.

use std::sync::Arc;

use pod_provider::event::StopReason;
use pod_provider::{Message, ModelRequest};

use super::stream::{StreamEnd, Streamed};
use super::{Pod, RequestTotals, RunObserver, RunOutcome};
use crate::error::CoreError;
use crate::record::{
    AssistantMessage, LogBody, ProviderRequestFinished, ProviderRequestStarted, RequestedToolCall,
    RunPhase,
};

impl Pod {
    pub(super) async fn run_turns(
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
                    retry_of: None,
                }))?;
            let tap = self.tap(run_id, turn, observer.clone());
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
                started,
            } = streamed;
            let attempt = tap.attempt();
            let started = started
                .filter(|(said_by, _)| *said_by == attempt)
                .map(|(_, started)| started)
                .unwrap_or_default();
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
                    attempt,
                    end: end_name.to_owned(),
                    stop_reason,
                    usage,
                    unhandled,
                    time_to_first_chunk_ms: tap.time_to_first_chunk_ms(),
                    response_id: started.response_id,
                    response_model: started.model,
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
