//! The normalized stream event: what every wire scheme's adapter produces.

use serde::{Deserialize, Serialize};

use crate::error::ProviderError;

/// One normalized event from a provider stream.
///
/// Serialized with `type` as the tag in snake_case, e.g. `{"type":"text_delta","text":"Hi"}`.
/// The set is closed for matching inside this workspace but marked `non_exhaustive` so new kinds
/// (e.g. for Gemini) can be added without breaking downstream crates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// The provider accepted the request and started a response.
    Started(Started),
    /// A fragment of visible assistant text.
    TextDelta(TextDelta),
    /// A fragment of reasoning (summary or raw), or an opaque reasoning payload to send back.
    ReasoningDelta(ReasoningDelta),
    /// A tool call begins.
    ToolCallStart(ToolCallStart),
    /// A fragment of a tool call's JSON arguments.
    ToolCallDelta(ToolCallDelta),
    /// A tool call's arguments are complete.
    ToolCallEnd(ToolCallEnd),
    /// Token usage as reported by the provider.
    Usage(Usage),
    /// The response ended by the provider's decision; `stop_reason` says whether cleanly.
    Completed(Completed),
    /// Legacy: the response ended early by the provider's decision. No adapter emits it any
    /// more (such ends are `Completed` with a truncating [`StopReason`]); kept so that old traces
    /// still read.
    Incomplete(Incomplete),
    /// The request or stream failed; always the last event of a stream.
    Error(ProviderError),
    /// Something the adapter does not understand, kept so that nothing is silently dropped.
    Unhandled(Unhandled),
}

impl StreamEvent {
    /// Whether this event carries model output (text, reasoning or a tool call). Retries are only
    /// allowed while no such event has been produced.
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta(_)
                | StreamEvent::ReasoningDelta(_)
                | StreamEvent::ToolCallStart(_)
                | StreamEvent::ToolCallDelta(_)
                | StreamEvent::ToolCallEnd(_)
        )
    }

    /// The `type` tag of this event as it appears in JSON.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Started {
    /// The provider's id for this response (`resp_…`, `chatcmpl-…`, `msg_…`), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextDelta {
    /// Choice index for multi-choice streams (Chat `n > 1`); 0 otherwise.
    #[serde(default)]
    pub choice: u32,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningKind {
    /// A human-readable summary of the reasoning.
    Summary,
    /// Raw reasoning text (e.g. Anthropic thinking, DeepSeek `reasoning_content`).
    Raw,
    /// Opaque payload only needed to send the reasoning back (signature, encrypted content,
    /// redacted thinking).
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningDelta {
    #[serde(default)]
    pub choice: u32,
    pub kind: ReasoningKind,
    #[serde(default)]
    pub text: String,
    /// Signature or encrypted content that must be sent back with the reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallStart {
    #[serde(default)]
    pub choice: u32,
    /// Position of the call in the response; the key that ties deltas and end to this start.
    pub index: u32,
    pub call_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub choice: u32,
    pub index: u32,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallEnd {
    #[serde(default)]
    pub choice: u32,
    pub index: u32,
    /// The complete JSON argument string, exactly as the provider sent it.
    pub arguments: String,
}

/// Token usage of one response, normalized across schemes.
///
/// - `input_tokens`: the whole prompt, cached part included, on every scheme. (OpenAI's
///   `input_tokens`/`prompt_tokens` already count it; Anthropic's `input_tokens` does not, so
///   its `cache_read_input_tokens` and `cache_creation_input_tokens` are added.)
/// - `cached_input_tokens`: the part of `input_tokens` read from the provider's prompt cache.
/// - `output_tokens`: everything generated, reasoning included.
/// - `reasoning_tokens`: the part of `output_tokens` spent on reasoning, when reported.
///
/// `None` means the provider did not say, never zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// Why the model stopped, normalized across schemes.
///
/// Only `EndTurn` and `ToolCalls` are clean finishes; every other reason means the answer may be
/// cut short or withheld and is reported as such (see [`StopReason::is_truncated`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndTurn,
    /// The model stopped to have tools called.
    ToolCalls,
    /// The answer was cut at the output-token limit (Chat `length`, Anthropic `max_tokens`,
    /// Responses `incomplete` with `max_output_tokens`).
    MaxTokens,
    /// The model refused.
    Refusal,
    /// The provider's content filter withheld or cut the answer.
    ContentFilter,
    /// The provider marked the response incomplete for another reason, given as it said it.
    Incomplete { raw: String },
    /// Anything else, with the provider's own wording.
    Other { raw: String },
}

impl StopReason {
    /// The snake_case name of the reason, as in JSON.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Whether the answer is not a clean finish (cut, filtered, refused or of unknown cause).
    pub fn is_truncated(&self) -> bool {
        !matches!(self, StopReason::EndTurn | StopReason::ToolCalls)
    }

    /// A plain statement of what the reason means for the answer, for people.
    pub fn statement(&self) -> String {
        match self {
            StopReason::EndTurn => "the model ended its turn".to_owned(),
            StopReason::ToolCalls => "the model stopped to call tools".to_owned(),
            StopReason::MaxTokens => "the answer was cut at the output-token limit".to_owned(),
            StopReason::Refusal => "the model refused to answer".to_owned(),
            StopReason::ContentFilter => {
                "the provider's content filter withheld or cut the answer".to_owned()
            }
            StopReason::Incomplete { raw } => {
                format!("the provider marked the answer incomplete ({raw})")
            }
            StopReason::Other { raw } => {
                format!("the model stopped for a reason pods does not know ({raw})")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    #[serde(default)]
    pub choice: u32,
    pub stop_reason: StopReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incomplete {
    /// The provider's reason, e.g. `max_output_tokens`, `content_filter`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unhandled {
    /// The SSE `event:` name, or the JSON `type` for data-only streams.
    pub event: String,
    /// The start of the data, at most [`UNHANDLED_PREVIEW_BYTES`] bytes (on a char boundary).
    pub preview: String,
    /// The length of the whole data in bytes.
    pub original_len: usize,
}

/// How much of an unhandled event's data is kept.
pub const UNHANDLED_PREVIEW_BYTES: usize = 256;
