//! What a span builder knows of a pod besides its log: its identity (`pod.json`), the trace it
//! belongs to, and the model section of its manifest.

use opentelemetry::trace::TraceId;
use pod_protocol::record::PodInfo;

/// The model a pod's manifest names (`[model]`): scheme and model, when it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFacts {
    pub scheme: Option<String>,
    pub model: Option<String>,
}

impl ModelFacts {
    /// Read leniently from a `manifest.toml`'s text: anything missing or unreadable is `None`.
    pub fn from_manifest(text: &str) -> ModelFacts {
        let Ok(value) = text.parse::<toml::Table>() else {
            return ModelFacts::default();
        };
        let model = value.get("model").and_then(toml::Value::as_table);
        let field = |key: &str| {
            model
                .and_then(|m| m.get(key))
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        };
        ModelFacts {
            scheme: field("scheme"),
            model: field("model"),
        }
    }
}

/// One pod as its spans need it.
#[derive(Debug, Clone)]
pub struct PodContext {
    pub pod_id: String,
    pub name: String,
    pub profile: String,
    /// The pod's process as `pod.json` records it: stands in for a segment that recorded no
    /// owner when an unfinished run is classified.
    pub pid: Option<u32>,
    /// The trace of the pod's tree ([`crate::ids::trace_id`] of the root pod's id).
    pub trace_id: TraceId,
    pub model: ModelFacts,
}

impl PodContext {
    /// The context of the pod `info` describes, in the tree rooted at `root_pod_id`.
    pub fn new(info: &PodInfo, root_pod_id: &str, model: ModelFacts) -> PodContext {
        PodContext {
            pod_id: info.id.clone(),
            name: info.name.clone(),
            profile: info.profile.clone(),
            pid: info.pid,
            trace_id: crate::ids::trace_id(root_pod_id),
            model,
        }
    }
}
