//! Classification: one [`ProviderError`] whatever way the failure arrived.

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{ErrorClass, ProviderError};
use crate::redact::clean_message;

/// Wordings providers use for an over-long prompt, sometimes without any code.
const CONTEXT_WORDINGS: &[&str] = &[
    "context_length_exceeded",
    "prompt is too long",
    "maximum context length",
    "context length",
    "context window",
    "input is too long",
    "too many input tokens",
    "exceeds the context",
    "exceeds the available context",
    "context size",
    "input token count",
];

/// An error from an HTTP response that was not a success.
pub fn from_http(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let text = String::from_utf8_lossy(body);
    let mut err = match serde_json::from_slice::<Value>(body) {
        Ok(v) => from_error_json(&v, Some(status)),
        Err(_) => {
            let msg = if text.trim().is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                format!("HTTP {status}: {}", text.trim())
            };
            let mut e = ProviderError::new(classify(None, &msg, Some(status)), msg);
            e.http_status = Some(status);
            e
        }
    };
    err.http_status = Some(status);
    if err.provider_request_id.is_none() {
        err.provider_request_id = header(headers, "x-request-id")
            .or_else(|| header(headers, "request-id"))
            .map(str::to_string);
    }
    if let Some(ms) = retry_after_ms(headers) {
        err.retry_after_ms = Some(ms);
    }
    err
}

/// The delay a response asks for: `retry-after-ms` (milliseconds) or `Retry-After` (seconds).
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    if let Some(v) = header(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && v.is_finite()
        && v >= 0.0
    {
        return Some(v as u64);
    }
    header(headers, "retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|secs| (secs * 1000.0) as u64)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An error from a JSON payload: an HTTP error body, an `error` SSE event (nested
/// `{"error":{…}}` or flat `{"type":"error","code":…,"message":…}`), a Chat data frame with a
/// top-level `error`, or a `response.failed`'s `response.error`.
pub fn from_error_json(value: &Value, status: Option<u16>) -> ProviderError {
    // Some gateways wrap the body in a one-element array.
    let value = match value {
        Value::Array(items) if !items.is_empty() => &items[0],
        v => v,
    };
    let inner = match value.get("error") {
        Some(e @ Value::Object(_)) => e,
        Some(Value::String(s)) => {
            let mut e = ProviderError::new(classify(None, s, status), s);
            e.http_status = status;
            return e;
        }
        _ => value,
    };
    let code = str_or_num(inner.get("code"))
        .filter(|c| !c.is_empty() && !c.chars().all(|c| c.is_ascii_digit()))
        .or_else(|| str_or_num(inner.get("type")).filter(|t| t != "error"))
        .or_else(|| str_or_num(inner.get("status")));
    let numeric_code = inner
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let mut message = inner
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    // OpenRouter keeps the upstream's words in metadata.raw.
    if let Some(raw) = inner.pointer("/metadata/raw").and_then(Value::as_str) {
        message = format!("{message}: {raw}");
    }
    let status_for_class = status.or(numeric_code);
    let retry_delay = gemini_retry_delay(inner);
    let class = match gemini_reason(inner) {
        // Gemini says "exceeded your current quota" for per-minute limits too; a RetryInfo
        // delay means waiting helps, so it is a rate limit, not an exhausted quota.
        _ if code.as_deref() == Some("RESOURCE_EXHAUSTED") && retry_delay.is_some() => {
            ErrorClass::RateLimited
        }
        // A bad key arrives as 400 INVALID_ARGUMENT with this reason.
        Some("API_KEY_INVALID") => ErrorClass::Auth,
        _ => classify(code.as_deref(), &message, status_for_class),
    };
    let mut e = ProviderError::new(class, &message);
    e.code = code;
    e.http_status = status;
    e.provider_request_id = value
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|id| !id.contains("..."))
        .map(str::to_string);
    e.retry_after_ms = retry_delay;
    e
}

fn str_or_num(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `reason` of Gemini's `google.rpc.ErrorInfo` detail, e.g. `API_KEY_INVALID`.
fn gemini_reason(inner: &Value) -> Option<&str> {
    let details = inner.get("details")?.as_array()?;
    details
        .iter()
        .find_map(|d| d.get("reason").and_then(Value::as_str))
}

/// Gemini's `google.rpc.RetryInfo` detail: `"retryDelay": "12s"`.
fn gemini_retry_delay(inner: &Value) -> Option<u64> {
    let details = inner.get("details")?.as_array()?;
    details.iter().find_map(|d| {
        let delay = d.get("retryDelay")?.as_str()?;
        let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
        Some((secs * 1000.0) as u64)
    })
}

/// Decide the class: a specific provider code or type first (`rate_limit_exceeded`,
/// `exceed_context_size_error`, …), then the message wording (which also refines generic codes
/// such as `invalid_request_error` or `invalid_argument`), then generic codes, then the HTTP
/// status.
pub fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> ErrorClass {
    let lower_msg = message.to_ascii_lowercase();
    let code_l = code.map(str::to_ascii_lowercase).unwrap_or_default();
    let by_code = match code_l.as_str() {
        "context_length_exceeded"
        | "exceed_context_size_error"
        | "context_window_exceeded"
        | "model_context_window_exceeded" => Some(ErrorClass::ContextLengthExceeded),
        "insufficient_quota" | "billing_hard_limit_reached" | "quota_exceeded" => {
            Some(ErrorClass::QuotaExceeded)
        }
        "rate_limit_exceeded" | "rate_limit_error" | "rate_limited" | "tokens" | "requests" => {
            Some(ErrorClass::RateLimited)
        }
        "resource_exhausted" => Some(if lower_msg.contains("quota") {
            ErrorClass::QuotaExceeded
        } else {
            ErrorClass::RateLimited
        }),
        "overloaded_error"
        | "overloaded"
        | "unavailable"
        | "server_is_overloaded"
        | "slow_down" => Some(ErrorClass::Overloaded),
        "authentication_error" | "invalid_api_key" | "unauthenticated" | "unauthorized" => {
            Some(ErrorClass::Auth)
        }
        "permission_error" | "permission_denied" | "forbidden" => Some(ErrorClass::Permission),
        "not_found_error" | "model_not_found" | "not_found" => Some(ErrorClass::NotFound),
        "content_filter" | "content_policy_violation" | "invalid_prompt" => {
            Some(ErrorClass::ContentFilter)
        }
        "api_error" | "server_error" | "internal_error" | "internal" | "internal_server_error" => {
            Some(ErrorClass::ServerError)
        }
        "tool_use_failed" => Some(ErrorClass::InvalidRequest),
        _ => None,
    };
    if let Some(c) = by_code {
        return c;
    }
    if CONTEXT_WORDINGS
        .iter()
        .any(|w| code_l.contains(w) || lower_msg.contains(w))
    {
        return ErrorClass::ContextLengthExceeded;
    }
    if lower_msg.contains("exceeded your current quota") {
        return ErrorClass::QuotaExceeded;
    }
    // Codes that only say "the request was wrong"; the wording above may say more.
    if matches!(
        code_l.as_str(),
        "request_too_large" | "invalid_argument" | "invalid_value" | "invalid_parameter"
    ) {
        return ErrorClass::InvalidRequest;
    }
    match status {
        Some(401) => ErrorClass::Auth,
        Some(403) => ErrorClass::Permission,
        Some(404) => ErrorClass::NotFound,
        Some(408) => ErrorClass::Transport,
        Some(429) => ErrorClass::RateLimited,
        Some(503 | 529) => ErrorClass::Overloaded,
        Some(s) if s >= 500 => ErrorClass::ServerError,
        Some(s) if s >= 400 => ErrorClass::InvalidRequest,
        _ if code_l == "invalid_request_error" => ErrorClass::InvalidRequest,
        _ => ErrorClass::ServerError,
    }
}

/// A broken transport (connect, read, TLS). reqwest errors can carry the URL; only the message
/// chain is kept, cleaned.
pub fn transport(what: &str, err: &(dyn std::error::Error + 'static)) -> ProviderError {
    let mut msg = format!("{what}: {err}");
    let mut src = err.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ProviderError {
        message: clean_message(&msg, None),
        ..ProviderError::new(ErrorClass::Transport, "")
    }
}
