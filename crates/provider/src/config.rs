//! Client configuration: where to send requests, timeouts, retries and limits.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::safe_url::DisplaySafeUrl;
use crate::scheme::WireScheme;
use crate::secret::ApiKey;

/// The default bound on one response's body: 128 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 128 * 1024 * 1024;

/// How a [`crate::Client`] talks to one provider.
///
/// `Debug` shows the base URL without userinfo, query or fragment, and never the key.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub scheme: WireScheme,
    /// Endpoint root, e.g. `https://api.openai.com/v1`; the scheme appends its path.
    pub base_url: DisplaySafeUrl,
    pub api_key: Option<ApiKey>,
    /// How long to wait, from sending the request, for the first SSE event.
    pub first_event_timeout: Duration,
    /// How long to wait, once the first event has arrived, for the next one. Measured between
    /// decoded events: keep-alives (SSE comments, blank lines, empty `data:` lines, scheme pings
    /// such as Anthropic `ping`, Chat chunks with empty `choices` and nothing else) and
    /// usage-only reports do not reset it.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest single SSE event accepted; a bigger one ends the stream as `malformed_stream`.
    pub max_event_bytes: usize,
    /// The most body bytes one response may send; past it the stream ends as
    /// `response_too_large`. Counted per attempt, keep-alives included.
    pub max_response_bytes: u64,
    /// How long one response may stream, from sending the request; past it the stream ends as
    /// `response_timeout`. `None`: no bound (the idle timeout still applies).
    pub max_response_time: Option<Duration>,
}

impl ClientConfig {
    /// Defaults for `scheme`, pointing at the provider's public endpoint, without a key.
    pub fn new(scheme: WireScheme) -> ClientConfig {
        ClientConfig {
            scheme,
            base_url: DisplaySafeUrl::new(scheme.default_base_url()),
            api_key: None,
            first_event_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            max_event_bytes: 16 * 1024 * 1024,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_response_time: None,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> ClientConfig {
        self.base_url = DisplaySafeUrl::new(base_url);
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
/// (uniform in `0..cap`); a provider's `Retry-After` / `retry-after-ms` replaces the computed
/// delay exactly. No retry is scheduled once `budget` (total time since the first attempt, including the
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

    /// The longest computed wait after attempt `attempt` (1-based) failed:
    /// `base_delay * 2^(attempt-1)`, at most `max_delay`.
    pub fn backoff_cap(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The wait after attempt `attempt` failed, given a jitter sample in `[0, 1)`: the
    /// provider's ask (`retry_after_ms`) when there is one, else `jitter * backoff_cap(attempt)`.
    /// A sample outside `[0, 1)` (or NaN) is clamped into it.
    pub fn delay_with_jitter(
        &self,
        attempt: u32,
        retry_after_ms: Option<u64>,
        jitter: f64,
    ) -> Duration {
        if let Some(ms) = retry_after_ms {
            return Duration::from_millis(ms);
        }
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let cap = self.backoff_cap(attempt);
        match u64::try_from(cap.as_nanos()) {
            // Whole nanoseconds, strictly below the cap.
            Ok(total) if total > 0 => {
                Duration::from_nanos(((total as f64 * jitter) as u64).min(total - 1))
            }
            Ok(_) => Duration::ZERO,
            // Caps beyond u64 nanoseconds (centuries) need no nanosecond precision.
            Err(_) => Duration::try_from_secs_f64(cap.as_secs_f64() * jitter).unwrap_or(cap),
        }
    }

    /// [`RetryPolicy::delay_with_jitter`] with a fresh random sample: what the client waits.
    pub fn delay(&self, attempt: u32, retry_after_ms: Option<u64>) -> Duration {
        self.delay_with_jitter(attempt, retry_after_ms, jitter_sample())
    }
}

/// A uniform sample in `[0, 1)`. Each `RandomState` gets fresh keys, so hashing nothing with it
/// yields an unpredictable 64-bit value; the top 53 bits make the fraction.
fn jitter_sample() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
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
