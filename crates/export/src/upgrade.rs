//! Reading export documents of every schema this project has defined, into the current one.
//!
//! Schema 1 carried pods with run summaries (outcome, times, provider error, interrupt with its
//! action) and incidents with a cause and a summary. Everything schema 2 added is reported as
//! missing in the upgraded document (`missing_provenance`, `pods[].missing`, `integrity: null`,
//! `redaction.mode: "unknown"`) — never filled with defaults that would read as facts.
//!
//! Schema 3 only adds to schema 2, and what it adds follows from a schema-2 document: a schema-2
//! exporter never reported an unreadable terminal entry (`runs[].unreadable_terminal` stays
//! absent), copied in-flight tool inputs whole (`input_bytes` is the length of the input's
//! compact JSON text, `input_truncated` is false) and stopped at the first unreadable log, so
//! every log it lists was read (`integrity[].read_error` is null).
//!
//! Schema 4 only adds to schema 3: stop reasons, usage, unhandled-event counts and rejected tool
//! calls, which a schema-3 (or -2) exporter never read from the logs; they stay null (unknown).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::chain::{ActionIndex, explain};
use crate::document::{
    ActionDoc, ErrorDoc, ExportDocument, FORMAT_NAME, InterruptDoc, OriginDoc, Outcome, PodDoc,
    Redaction, RedactionMode, RunDoc, SCHEMA_VERSION, ToolInfo,
};
use crate::error::ExportError;

/// Read a document of any known schema (`path` is only used in errors).
pub fn upgrade(bytes: &[u8], path: &Path) -> Result<ExportDocument, ExportError> {
    let not_doc = |source| ExportError::NotADocument {
        path: path.to_path_buf(),
        source,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(not_doc)?;
    let format = value.get("format").and_then(Value::as_str).unwrap_or("");
    if format != FORMAT_NAME {
        return Err(ExportError::WrongFormat {
            path: path.to_path_buf(),
            found: format.to_owned(),
        });
    }
    let version = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match version {
        1 => Ok(from_v1(serde_json::from_value(value).map_err(not_doc)?)),
        2 | 3 => {
            let mut value = value;
            if version == 2 {
                whole_tool_inputs(&mut value);
            }
            // What schema 4 adds (stop reasons, usage, unhandled events, rejected tool calls)
            // was never recorded by a schema-2 or -3 exporter: those fields read as null.
            let mut doc: ExportDocument = serde_json::from_value(value).map_err(not_doc)?;
            doc.schema_version = SCHEMA_VERSION;
            doc.upgraded_from = Some(u32::try_from(version).unwrap_or(SCHEMA_VERSION));
            Ok(doc)
        }
        v if v == u64::from(SCHEMA_VERSION) => serde_json::from_value(value).map_err(not_doc),
        found => Err(ExportError::UnknownSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}

/// Schema 2 copied in-flight tool inputs whole: give each its length and mark it uncut.
fn whole_tool_inputs(doc: &mut Value) {
    let Some(pods) = doc.get_mut("pods").and_then(Value::as_array_mut) else {
        return;
    };
    let runs = pods
        .iter_mut()
        .filter_map(|p| p.get_mut("runs").and_then(Value::as_array_mut))
        .flatten();
    let calls = runs
        .filter_map(|r| r.get_mut("tools_in_flight").and_then(Value::as_array_mut))
        .flatten();
    for call in calls.filter_map(Value::as_object_mut) {
        // A call without `input` is not a schema-2 call: left for the parse to refuse.
        let Some(bytes) = call.get("input").map(|input| input.to_string().len()) else {
            continue;
        };
        call.entry("input_bytes").or_insert(Value::from(bytes));
        call.entry("input_truncated").or_insert(Value::Bool(false));
    }
}

#[derive(Debug, Deserialize)]
struct V1Document {
    exported_at: String,
    tool: ToolInfo,
    root_pod_id: String,
    #[serde(default)]
    tree: bool,
    pods: Vec<V1Pod>,
}

#[derive(Debug, Deserialize)]
struct V1Pod {
    id: String,
    name: String,
    profile: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    runs: Vec<V1Run>,
}

#[derive(Debug, Deserialize)]
struct V1Run {
    run_id: String,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    ended_at: Option<String>,
    outcome: Outcome,
    #[serde(default)]
    error: Option<V1Error>,
    #[serde(default)]
    interrupt: Option<V1Interrupt>,
}

#[derive(Debug, Deserialize)]
struct V1Error {
    class: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    http_status: Option<u16>,
    #[serde(default)]
    provider_request_id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V1Interrupt {
    reason: String,
    #[serde(default)]
    action: Option<V1Action>,
}

#[derive(Debug, Deserialize)]
struct V1Action {
    action_id: String,
    kind: String,
    started_at: String,
    origin: OriginDoc,
}

fn from_v1(v1: V1Document) -> ExportDocument {
    let ids: BTreeMap<String, Option<String>> = v1
        .pods
        .iter()
        .map(|p| (p.id.clone(), p.parent_id.clone()))
        .collect();
    let mut pods = Vec::new();
    let mut incidents = Vec::new();
    let index = ActionIndex::default();
    for pod in v1.pods {
        let mut ancestors = Vec::new();
        let mut current = pod.parent_id.clone();
        while let Some(parent) = current {
            if ancestors.contains(&parent) {
                break;
            }
            current = ids.get(&parent).cloned().flatten();
            ancestors.push(parent);
        }
        ancestors.reverse();
        let runs: Vec<RunDoc> = pod
            .runs
            .into_iter()
            .map(|r| run_from_v1(&pod.id, r))
            .collect();
        for run in &runs {
            if matches!(
                run.outcome,
                Outcome::ProviderError | Outcome::Interrupted | Outcome::Crashed
            ) {
                incidents.push(explain(run, &pod.name, &index));
            }
        }
        pods.push(PodDoc {
            id: pod.id,
            name: pod.name,
            profile: pod.profile,
            parent_id: pod.parent_id,
            // Schema 1 listed only the exported pods: ancestors outside it are not known.
            ancestors,
            created: None,
            state: None,
            recorded_state: None,
            manifest: None,
            provenance: None,
            segments: Vec::new(),
            runs,
            missing: ["created", "state", "manifest", "provenance", "segments"]
                .map(str::to_owned)
                .to_vec(),
        });
    }
    ExportDocument {
        format: FORMAT_NAME.to_owned(),
        schema_version: SCHEMA_VERSION,
        exported_at: v1.exported_at,
        tool: v1.tool,
        upgraded_from: Some(1),
        root_pod_id: v1.root_pod_id,
        tree: v1.tree,
        redaction: Redaction {
            mode: RedactionMode::Unknown,
            secrets_checked: Vec::new(),
            replaced: BTreeMap::new(),
        },
        pods,
        incidents,
        integrity: None,
        unreadable_pods: Vec::new(),
    }
}

fn run_from_v1(pod_id: &str, r: V1Run) -> RunDoc {
    let mut missing = ["phase", "retry_safety", "provider_requests", "tool_calls"]
        .map(str::to_owned)
        .to_vec();
    let interrupt = r.interrupt.map(|i| {
        match &i.action {
            Some(a) => {
                missing.push("interrupt.action.affects".to_owned());
                missing.push("interrupt.action.caused_by".to_owned());
                if let OriginDoc::Unknown { missing: facts } = &a.origin {
                    missing.extend(facts.iter().map(|f| format!("interrupt.origin.{f}")));
                }
            }
            None => {
                missing.push("interrupt.action".to_owned());
                missing.push("interrupt.origin".to_owned());
            }
        }
        InterruptDoc {
            reason: i.reason,
            action: i.action.map(|a| ActionDoc {
                action_id: a.action_id,
                kind: a.kind,
                started_at: a.started_at,
                affects: Vec::new(),
                origin: a.origin,
                reason: None,
                caused_by: None,
            }),
        }
    });
    if r.outcome == Outcome::Crashed {
        missing.push("crash_evidence".to_owned());
    }
    RunDoc {
        run_id: r.run_id,
        pod_id: pod_id.to_owned(),
        segment_id: None,
        started_at: r.started_at,
        ended_at: r.ended_at,
        outcome: r.outcome,
        trigger: None,
        request_id: None,
        input: None,
        output: None,
        provider_requests: None,
        model: None,
        stop_reason: None,
        stop_raw: None,
        stop_statement: None,
        truncated: None,
        usage: None,
        unhandled_events: None,
        tool_calls_rejected: None,
        tool_decisions: Vec::new(),
        error: r.error.map(|e| ErrorDoc {
            class: e.class,
            code: e.code,
            http_status: e.http_status,
            provider_request_id: e.provider_request_id,
            retryable: None,
            message: e.message,
        }),
        interrupt,
        crash_evidence: None,
        phase: None,
        tool_calls_started: None,
        tool_calls_finished: None,
        tools_in_flight: Vec::new(),
        retry_safety: None,
        missing_provenance: missing,
        unreadable_terminal: None,
    }
}
