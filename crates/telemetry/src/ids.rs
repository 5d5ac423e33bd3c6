//! Deterministic ids: every process that knows a pod's records computes the same trace and span
//! ids for them, so the spans of a tree agree without any coordination — after the fact from
//! files, or live from each pod's own process.

use opentelemetry::trace::{SpanId, TraceId};
use sha2::{Digest, Sha256};

/// The trace of a tree: the 16 bytes of its root pod's id (a UUID). An id that is not a UUID
/// (hand-made directories) gets the first 16 bytes of its SHA-256 instead.
pub fn trace_id(root_pod_id: &str) -> TraceId {
    let hex: String = root_pod_id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && let Ok(value) = u128::from_str_radix(&hex, 16)
        && value != 0
    {
        return TraceId::from_bytes(value.to_be_bytes());
    }
    let digest = Sha256::digest(root_pod_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    TraceId::from_bytes(bytes)
}

/// The span named by `key`: the first 8 bytes of SHA-256 over it.
pub fn span_id(key: &str) -> SpanId {
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    SpanId::from_bytes(bytes)
}

/// The `invoke_agent` span of run `run_id` of pod `pod_id`.
pub fn run_span(pod_id: &str, run_id: &str) -> SpanId {
    span_id(&format!("{pod_id}/run/{run_id}"))
}

/// The `chat` span of one attempt of one model request.
pub fn chat_span(pod_id: &str, run_id: &str, turn: u32, attempt: u32) -> SpanId {
    span_id(&format!("{pod_id}/chat/{run_id}/{turn}/{attempt}"))
}

/// The `execute_tool` span of tool call `call_id` of pod `pod_id`; a child pod started by that
/// call computes it from its run's trigger to find its parent span.
pub fn tool_span(pod_id: &str, call_id: &str) -> SpanId {
    span_id(&format!("{pod_id}/tool/{call_id}"))
}

/// The W3C `traceparent` of span `span_id` in trace `trace_id` (sampled): what a live parent
/// hands a child it spawns.
pub fn traceparent(trace_id: TraceId, span_id: SpanId) -> String {
    format!("00-{trace_id}-{span_id}-01")
}
