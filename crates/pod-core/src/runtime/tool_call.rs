//! Running one tool call the model asked for: the approval policy's decision recorded, the call
//! recorded as started, the tool run under the pod's scope (cut short by an interruption), and
//! its result recorded and handed back to the model; a call that cannot run, or is denied, is
//! rejected without starting.

use serde_json::Value;

use pod_provider::{Message, ToolCall};

use pod_profile::Permission;
use pod_protocol::control::ApprovalAsk;

use super::{Pod, RunObserver};
use crate::approval::Verdict;
use crate::error::CoreError;
use crate::lifecycle::new_id;
use crate::record::{
    Decision, DecisionSource, LifecycleAction, LogBody, RunPhase, SideEffectClass,
    ToolCallFinished, ToolCallStarted, ToolDecision, ToolExecutionPhase, ToolOutcome,
};
use crate::tools::ToolContext;

/// The most of a call's arguments shown to the person asked to approve it.
const APPROVAL_INPUT_MAX_BYTES: usize = 2048;

/// The most tool output kept in a `tool_call_finished` entry.
pub const TOOL_OUTPUT_LOG_MAX_BYTES: usize = 16 * 1024;

impl Pod {
    /// Run one tool call; `Some(action)` when the run was interrupted during it.
    pub(super) async fn run_tool(
        &mut self,
        run_id: &str,
        call: &ToolCall,
        phase: &mut RunPhase,
        observer: &dyn RunObserver,
    ) -> Result<Option<LifecycleAction>, CoreError> {
        let tool = self.tools.get(&call.name).cloned();
        let side_effect = tool
            .as_ref()
            .map_or(SideEffectClass::ReadOnly, |t| t.side_effect());
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
        let asks = self
            .manifest
            .permissions
            .for_tool(&call.name, side_effect)
            .permission
            == Permission::Ask;
        if asks {
            observer.on_approval_pending(&call.call_id, &call.name);
        }
        let (verdict, interrupted) = {
            let decide = self.decide(run_id, call, side_effect, &input);
            tokio::select! {
                biased;
                () = self.control.interrupted() => (Verdict {
                    decision: Decision::Denied,
                    source: DecisionSource::Config,
                    detail: "the run was interrupted while the call waited for approval"
                        .to_owned(),
                }, true),
                verdict = decide => (verdict, false),
            }
        };
        observer.on_tool_decision(&call.call_id, &call.name, &verdict, asks);
        // Recorded before an interruption ends the run too: the log says the call never ran.
        self.log.append(LogBody::ToolDecision(ToolDecision {
            run_id: run_id.to_owned(),
            call_id: call.call_id.clone(),
            tool: call.name.clone(),
            side_effect,
            decision: verdict.decision,
            source: verdict.source,
            detail: verdict.detail.clone(),
        }))?;
        if interrupted && let Some(action) = self.control.governing() {
            return Ok(Some(action));
        }
        if !verdict.allowed() {
            let error = format!(
                "the call was denied ({}: {}); it did not run",
                verdict.source.as_str(),
                verdict.detail
            );
            return self.reject(run_id, call, side_effect, error, observer);
        }
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

    /// The approval policy's decision on `call`, waiting for a person or the parent when
    /// `[permissions]` says `ask`.
    async fn decide(
        &self,
        run_id: &str,
        call: &ToolCall,
        side_effect: SideEffectClass,
        input: &Value,
    ) -> Verdict {
        let shown = serde_json::to_string(input).unwrap_or_default();
        let shown = pod_trace::scrub::scrub(&shown);
        let ask = ApprovalAsk {
            ask_id: new_id(),
            pod_id: self.info.id.clone(),
            pod_name: self.info.name.clone(),
            run_id: run_id.to_owned(),
            call_id: call.call_id.clone(),
            tool: call.name.clone(),
            side_effect,
            input: bounded(&shown, APPROVAL_INPUT_MAX_BYTES),
            why: String::new(),
        };
        self.approvals.decide(&self.manifest.permissions, ask).await
    }

    /// Answer a call that cannot run with `error` (a `rejected` result): it never started, so
    /// it adds no side effect and leaves the tool phase as it was.
    fn reject(
        &mut self,
        run_id: &str,
        call: &ToolCall,
        side_effect: SideEffectClass,
        error: String,
        observer: &dyn RunObserver,
    ) -> Result<Option<LifecycleAction>, CoreError> {
        observer.on_tool_rejected(
            &call.call_id,
            &call.name,
            side_effect,
            &Value::String(call.arguments.clone()),
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
}

fn bounded(text: &str, max: usize) -> String {
    let kept = pod_protocol::text::cut_at_char_boundary(text, max);
    if kept.len() == text.len() {
        return text.to_owned();
    }
    format!("{kept}… [{} bytes total]", text.len())
}
