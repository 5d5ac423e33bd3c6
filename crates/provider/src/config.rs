//! Client configuration: where to send requests, timeouts, retries and limits.

use std::time::Duration;

use crate::scheme::WireScheme;
use crate::secret::ApiKey;

/// How a [`crate::Client`] talks to one provider.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub scheme: WireScheme,
    /// Endpoint root, e.g. `https://api.openai.com/v1`; the scheme appends its path.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// How long to wait, from sending the request, for the first SSE event.
    pub first_event_timeout: Duration,
    /// How long to wait between two reads of the stream once it has started.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest single SSE event accepted; a bigger one ends the stream as `malformed_stream`.
    pub max_event_bytes: usize,
}

impl ClientConfig {
    /// Defaults for `scheme`, pointing at the provider's public endpoint, without a key.
    pub fn new(scheme: WireScheme) -> ClientConfig {
        ClientConfig {
            scheme,
            base_url: scheme.default_base_url().to_string(),
            api_key: None,
            first_event_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            max_event_bytes: 16 * 1024 * 1024,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> ClientConfig {
        self.base_url = base_url.into();
        self
    }

    pub fn with_api_key(mut self, key: Option<ApiKey>) -> ClientConfig {
        self.api_key = key;
        self
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig::new(WireScheme::OpenaiResponses)
    }
}

/// When and how long to wait before sending a request again.
///
/// Delays are exponential (`base_delay * 2^(attempt-1)`, capped at `max_delay`) with full jitter
/// (uniform in `0..=delay`); a provider's `Retry-After` / `retry-after-ms` replaces the computed
/// delay. No retry is scheduled once `budget` (total time since the first attempt, including the
/// wait) would be exceeded.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub budget: Duration,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
        }
    }
}
