//! The provider error taxonomy: one type for every way a request can fail, as the session log,
//! the trace and a child's result carry it.

use serde::{Deserialize, Serialize};

/// What kind of failure this is, independent of how it arrived (HTTP status, SSE error event,
/// `response.failed`, an error object inside a data frame, or a broken transport).
///
/// Classification reads a specific provider code or type first, then the message wording, then
/// the HTTP status (see `pod_provider::classify`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorClass {
    /// The prompt does not fit the model's context (OpenAI `context_length_exceeded`, Anthropic
    /// "prompt is too long", llama.cpp `exceed_context_size_error`, …).
    ContextLengthExceeded,
    RateLimited,
    QuotaExceeded,
    Overloaded,
    Auth,
    Permission,
    NotFound,
    InvalidRequest,
    ServerError,
    /// No event within the first-event or idle timeout (keep-alives and empty chunks do not
    /// count as events).
    IdleTimeout,
    /// The response stream ended early: the body ended, or the connection broke, after the
    /// response headers and before the scheme's terminal event. One class whatever the HTTP
    /// framing (an early EOF of a close-delimited body, a cut chunked or length-delimited body,
    /// a reset) — retryable while no output has been shown.
    StreamClosedBeforeCompletion,
    /// The stream's bytes do not follow the scheme: a frame that is not valid JSON (retryable:
    /// before any output a retry is safe and a cut frame is usually transient), an event over
    /// `max_event_bytes`, or a body that is not an event stream (not retryable).
    MalformedStream,
    /// The request could not be sent or no response headers came back (connect, TLS, send).
    /// A connection that breaks once the response has started is
    /// `stream_closed_before_completion`.
    Transport,
    ContentFilter,
    /// The response body passed `max_response_bytes`; never retried.
    ResponseTooLarge,
    /// The response streamed for longer than `max_response_ms`; never retried.
    ResponseTimeout,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: &'static [ErrorClass] = <ErrorClass as strum::VariantArray>::VARIANTS;

    /// The snake_case name used in JSON, logs and the CLI.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified provider failure. Serializable: this exact shape is what the session log's
/// `run_errored`, the trace sidecar and `wait_pod` carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}{}: {message}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The provider's own code or type, e.g. `context_length_exceeded`, `overloaded_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The provider's request id (`x-request-id`, `request-id`, or one from the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_request_id: Option<String>,
    /// How long the provider asked us to wait, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    pub retryable: bool,
    /// Bounded to [`ERROR_MESSAGE_MAX_BYTES`], with secrets stripped.
    pub message: String,
}

/// The longest error message kept, in bytes.
pub const ERROR_MESSAGE_MAX_BYTES: usize = 2048;

impl ErrorClass {
    /// Whether a failure of this class may succeed when the same request is sent again.
    /// `context_length_exceeded`, `auth`, `invalid_request` (and the other request-shaped
    /// classes) never do.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Overloaded
                | ErrorClass::ServerError
                | ErrorClass::IdleTimeout
                | ErrorClass::StreamClosedBeforeCompletion
                | ErrorClass::Transport
        )
    }
}

impl ProviderError {
    /// An error of `class` with a bounded, secret-stripped `message`; `retryable` follows the
    /// class.
    pub fn new(class: ErrorClass, message: impl AsRef<str>) -> ProviderError {
        ProviderError {
            class,
            code: None,
            http_status: None,
            provider_request_id: None,
            retry_after_ms: None,
            retryable: class.is_retryable(),
            message: crate::text::clean_message(message.as_ref(), None),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> ProviderError {
        self.code = Some(code.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> ProviderError {
        self.http_status = Some(status);
        self
    }

    /// Strip the value of `secret` (the API key in use) from the message.
    pub fn redact_secret(mut self, secret: &str) -> ProviderError {
        self.message = crate::text::clean_message(&self.message, Some(secret));
        self
    }
}
