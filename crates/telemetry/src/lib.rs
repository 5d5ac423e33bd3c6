//! `pod-telemetry` turns a pod tree into OpenTelemetry spans by the GenAI semantic conventions:
//! an `invoke_agent {pod}` span per run, a `chat {model}` span per model request attempt and an
//! `execute_tool {tool}` span per tool call, with what only pods knows as `pods.*` attributes
//! (run outcomes, lifecycle actions and their origins, crash evidence). Spans are a pure
//! function of a pod's session log (plus `pod.json` and the manifest's model): the
//! [`SpanBuilder`] is fed entries one at a time, so the same spans come from files after the
//! fact ([`read_pods`]) or from a live log, and their ids are deterministic ([`ids`]), so a
//! tree's processes agree on one trace without talking to each other.
//!
//! A running pod exports the same spans live ([`LiveExport`]): its session log's entries go to a
//! builder on a thread of its own, which sends what completes without ever holding the pod up.
//!
//! Content (prompts, outputs, tool arguments and results) is left out unless asked for
//! ([`Content`]). Rendering as OTLP JSON ([`render_json`]) and sending over OTLP/HTTP with
//! protobuf ([`push`]) are here too; reading the pods home is `pod-home`'s, the record formats
//! `pod-protocol`'s, and choosing what to send the CLI's.
//!
//! ```no_run
//! use pod_telemetry::{Content, read_pods, render_json, resource};
//!
//! let batch = read_pods("/home/me/.local/state/pods".as_ref(), "coder", true, &Content::Off)?;
//! let json = render_json(batch.spans, &resource(None))?;
//! # Ok::<(), pod_telemetry::TelemetryError>(())
//! ```

mod builder;
mod content;
mod error;
pub mod ids;
mod live;
mod metrics;
pub mod names;
mod otlp;
mod pod;
mod push;
mod tree;

pub use builder::SpanBuilder;
pub use content::{Content, DEFAULT_PREVIEW_BYTES};
pub use error::TelemetryError;
pub use live::{LIVE_QUEUE_ENTRIES, LiveExport, LiveReport, OnProblem};
pub use metrics::metrics_endpoint;
pub use opentelemetry_sdk::Resource;
pub use opentelemetry_sdk::trace::SpanData;
pub use otlp::{DEFAULT_SERVICE_NAME, render_json, request, resource};
pub use pod::{ModelFacts, PodContext};
pub use push::{
    DEFAULT_ENDPOINT, PushReport, PushTarget, SPANS_PER_REQUEST, exporter, headers_from_env, push,
    resolve_endpoint,
};
pub use tree::{Batch, read_pods};
