//! Deterministic ids: every process that knows a pod's records computes the same trace and span
//! ids for them, so the spans of a tree agree without any coordination — after the fact from
//! files, or live from each pod's own process.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
pub use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
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

/// The trace and span a W3C `traceparent` names, when it is well formed (version, 32 and 16
/// lowercase hex digits, neither all zeros, flags), as OpenTelemetry's W3C propagator reads it.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    // The propagator takes shorter ids as if zero-padded; the W3C format has fixed widths.
    let widths: Vec<usize> = value.trim().split('-').map(str::len).take(4).collect();
    if widths != [2, 32, 16, 2] {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span();
    let found = span.span_context();
    found
        .is_valid()
        .then(|| (found.trace_id(), found.span_id()))
}

/// The trace a pod is in: the one of the `traceparent` it was started in, or else the one of
/// its tree's root pod.
pub fn pod_trace_id(traceparent: Option<&str>, root_pod_id: &str) -> TraceId {
    traceparent
        .and_then(parse_traceparent)
        .map_or_else(|| trace_id(root_pod_id), |(trace, _)| trace)
}

/// The `traceparent` a pod hands the child that its tool call `call_id` spawns: the pod's trace
/// and that call's `execute_tool` span, sampled.
pub fn child_traceparent(trace: TraceId, pod_id: &str, call_id: &str) -> String {
    traceparent(trace, tool_span(pod_id, call_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_w3c_traceparent_reads_and_round_trips() {
        let (trace, span) = parse_traceparent(GOOD).expect("well formed");
        assert_eq!(trace.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span.to_string(), "b7ad6b7169203331");
        assert_eq!(traceparent(trace, span), GOOD);
        // An unsampled parent and a later version with more fields are still a context.
        assert!(parse_traceparent(&GOOD.replace("-01", "-00")).is_some());
        assert!(parse_traceparent(&format!("01{}-later", &GOOD[2..])).is_some());
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_pod_is_in_the_trace_it_was_started_in_else_its_roots() {
        let root = "0193a1b2-0000-7000-8000-000000000001";
        assert_eq!(pod_trace_id(None, root), trace_id(root));
        assert_eq!(pod_trace_id(Some("junk"), root), trace_id(root));
        assert_eq!(
            pod_trace_id(Some(GOOD), root).to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let handed = child_traceparent(trace_id(root), root, "call_1");
        assert_eq!(
            parse_traceparent(&handed),
            Some((trace_id(root), tool_span(root, "call_1")))
        );
    }
}
