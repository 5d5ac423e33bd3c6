//! The W3C trace context a pod process is started in: `TRACEPARENT`, read once here and handed
//! to the launch, which records it on the pod's runs and hands the pod's trace on to its
//! children.

use pod_core::children::TRACEPARENT_ENV;

/// This process's `TRACEPARENT` when it is a well-formed W3C trace context. A malformed one is
/// ignored with a warning: it would put the pod's spans in no trace anyone can find.
pub fn traceparent_from_env() -> Option<String> {
    let value = std::env::var_os(TRACEPARENT_ENV)?;
    let text = value.to_string_lossy();
    let text = text.trim();
    if pod_telemetry::ids::parse_traceparent(text).is_some() {
        return Some(text.to_owned());
    }
    let shown: String = text.chars().take(80).collect();
    tracing::warn!(
        value = %shown,
        "ignoring {TRACEPARENT_ENV}: not a W3C trace context (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase, ids not all zero); the pod's spans get a trace of their own"
    );
    None
}
