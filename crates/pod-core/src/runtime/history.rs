//! The conversation of a pod's earlier segments, rebuilt from their session logs.

use pod_provider::{Message, ToolCall};

use crate::error::CoreError;
use crate::home::PodDir;
use crate::record::{LogBody, ToolOutcome};
use crate::session_log::read_segment;

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
