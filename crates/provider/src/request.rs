//! The provider-neutral request: what the agent loop asks for, before an adapter turns it into a
//! wire body.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::event::ReasoningDelta;

/// One model call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelRequest {
    pub model: String,
    /// System instructions; empty means none.
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    User {
        text: String,
    },
    Assistant {
        #[serde(default)]
        text: String,
        /// Reasoning as received, so signatures / encrypted content can be sent back.
        #[serde(default)]
        reasoning: Vec<ReasoningDelta>,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        output: String,
        #[serde(default)]
        is_error: bool,
    },
}

/// A tool call the model made, as sent back in a later request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub call_id: String,
    pub name: String,
    /// The JSON argument string exactly as the model produced it.
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

impl Message {
    /// Whether this is an assistant turn with nothing a provider accepts back: no text and no
    /// tool calls (an answer that was all reasoning, or empty).
    pub fn is_empty_assistant_turn(&self) -> bool {
        matches!(self, Message::Assistant { text, tool_calls, .. } if text.is_empty() && tool_calls.is_empty())
    }
}

impl ModelRequest {
    /// The conversation as every adapter sends it. An assistant turn with no text and no tool
    /// calls is left out with its reasoning (providers reject an empty assistant message, and
    /// reasoning alone cannot stand as a turn); the user turns it separated are then joined into
    /// one, separated by a blank line, so no two user turns follow each other. An empty
    /// signature is no signature.
    pub fn sendable_messages(&self) -> Vec<Cow<'_, Message>> {
        let mut out: Vec<Cow<'_, Message>> = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            match m {
                m if m.is_empty_assistant_turn() => {}
                Message::User { text } => match out.last_mut() {
                    Some(last) if matches!(**last, Message::User { .. }) => {
                        if let Message::User { text: prev } = last.to_mut() {
                            if !prev.is_empty() && !text.is_empty() {
                                prev.push_str("\n\n");
                            }
                            prev.push_str(text);
                        }
                    }
                    _ => out.push(Cow::Borrowed(m)),
                },
                Message::Assistant { reasoning, .. }
                    if reasoning.iter().any(|r| r.signature.as_deref() == Some("")) =>
                {
                    let mut owned = m.clone();
                    if let Message::Assistant { reasoning, .. } = &mut owned {
                        for r in reasoning.iter_mut() {
                            if r.signature.as_deref() == Some("") {
                                r.signature = None;
                            }
                        }
                    }
                    out.push(Cow::Owned(owned));
                }
                m => out.push(Cow::Borrowed(m)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ReasoningKind;

    fn user(t: &str) -> Message {
        Message::User { text: t.into() }
    }

    fn thinking(sig: Option<&str>) -> Message {
        Message::Assistant {
            text: String::new(),
            reasoning: vec![ReasoningDelta {
                choice: 0,
                kind: ReasoningKind::Raw,
                text: "pondering".into(),
                signature: sig.map(str::to_string),
            }],
            tool_calls: vec![],
        }
    }

    #[test]
    fn an_all_reasoning_turn_is_left_out_and_the_user_turns_around_it_joined() {
        let req = ModelRequest {
            messages: vec![user("first"), thinking(Some("SIG")), user("second")],
            ..ModelRequest::default()
        };
        let sent: Vec<Message> = req
            .sendable_messages()
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        assert_eq!(sent, vec![user("first\n\nsecond")]);
    }

    #[test]
    fn an_empty_signature_is_no_signature() {
        let mut turn = thinking(Some(""));
        if let Message::Assistant { text, .. } = &mut turn {
            *text = "answer".into();
        }
        let req = ModelRequest {
            messages: vec![user("q"), turn],
            ..ModelRequest::default()
        };
        let sent = req.sendable_messages();
        match &*sent[1] {
            Message::Assistant { reasoning, .. } => assert_eq!(reasoning[0].signature, None),
            other => panic!("{other:?}"),
        }
    }
}
