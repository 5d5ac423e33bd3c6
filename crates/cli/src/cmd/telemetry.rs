//! `pods telemetry push`: a pod's (or a tree's) runs as OpenTelemetry spans, sent to an
//! OTLP/HTTP endpoint — presentation only; the spans and the sending are `pod-telemetry`'s.

use std::time::Duration;

use clap::{Args, Subcommand};
use pod_export::{
    ExportRequest, check_secrets, merge_recorded, prepare, secrets_from, secrets_recorded,
};
use pod_telemetry::{Batch, Content, PushTarget, Resource, TelemetryError, render_json, resource};

use crate::failure::{CmdResult, Exit, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    Push(PushArgs),
}

/// Send a pod's runs (with --tree its descendants' too) to an OpenTelemetry backend.
///
/// The runs are read from the pod's files and sent as GenAI spans: this works for a finished,
/// stopped, failed, crashed or running tree, and for one that ran without telemetry.
///
/// What is sent: one trace for the whole tree (its id is the root pod's id), an
/// `invoke_agent <pod>` span per run (outcome, stop reason, the lifecycle action that
/// interrupted it with its origin, crash evidence), a `chat <model>` span per model request
/// attempt (tokens, finish reason, error class) and an `execute_tool <tool>` span per tool
/// call (side-effect class, approval decision); a child's runs hang below the parent's
/// `spawn_pod` call. Prompts, outputs, tool arguments and results are not sent unless
/// --capture-content is given (then bounded, with API keys stripped). Nothing is sent if the
/// spans would contain an API key value (the check `pods export` makes).
///
/// Sent as OTLP/HTTP protobuf. Environment: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
/// given) or OTEL_EXPORTER_OTLP_ENDPOINT (`/v1/traces` appended) when --endpoint is not given,
/// else http://localhost:4318/v1/traces; OTEL_EXPORTER_OTLP_HEADERS (and ..._TRACES_HEADERS)
/// for headers, e.g. `authorization=Bearer …`; OTEL_SERVICE_NAME for `service.name` (default
/// `pods`).
///
/// Exit codes: 0 sent, 1 the backend refused or could not be reached (or a key was found),
/// 2 usage (no such pod, bad header variable). Spans, attributes and ids: docs/TELEMETRY.md.
#[derive(Debug, Args)]
#[command(after_help = PUSH_EXAMPLES)]
pub struct PushArgs {
    /// The pod: its id, a unique prefix of its id, or its name (the newest pod with that name).
    pod: String,

    /// Include every descendant pod (children, their children, …).
    #[arg(long)]
    tree: bool,

    /// The OTLP/HTTP traces endpoint, used as given (e.g. http://localhost:4318/v1/traces).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,

    /// Also send content: prompts, outputs, tool arguments and results (bounded previews, API
    /// keys stripped).
    #[arg(long)]
    capture_content: bool,

    /// A variable holding headers to send, as `name=value[,name=value…]` (repeatable).
    #[arg(long = "headers-env", value_name = "VAR")]
    headers_env: Vec<String>,

    /// Print a JSON summary (spans sent, trace id, endpoint) instead of a line for people.
    #[arg(long)]
    json: bool,
}

const PUSH_EXAMPLES: &str = "\
Examples:
  pods telemetry push coder --tree                  to $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces
  pods telemetry push 0193a1b2 --endpoint http://127.0.0.1:4318/v1/traces --json
  OTEL_EXPORTER_OTLP_HEADERS='x-project=agents' pods telemetry push coder --tree";

pub fn run(global: &GlobalArgs, command: TelemetryCommand) -> CmdResult {
    match command {
        TelemetryCommand::Push(args) => push(global, args),
    }
}

fn push(global: &GlobalArgs, args: PushArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let checked = read_checked(home.root(), &args.pod, args.tree, args.capture_content)?;
    let target = PushTarget {
        endpoint: pod_telemetry::resolve_endpoint(args.endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        }),
        headers_env: args.headers_env.clone(),
        resource: checked.resource,
        timeout: Duration::from_secs(10),
    };
    let batch = checked.batch;
    let trace_id = batch.trace_id.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::run_failed)?;
    let report = runtime
        .block_on(pod_telemetry::push(batch.spans, &target))
        .map_err(failure)?;
    if args.json {
        let summary = serde_json::json!({
            "spans": report.spans,
            "requests": report.requests,
            "trace_id": trace_id,
            "endpoint": report.endpoint,
            "pods": batch.pods,
        });
        println!("{summary}");
    } else {
        println!(
            "sent {} span(s) of {} pod(s) to {} (trace {trace_id})",
            report.spans,
            batch.pods.len(),
            report.endpoint
        );
    }
    Ok(Exit::Success)
}

/// Spans read from a home and checked for keys, with their resource and OTLP JSON.
pub struct Checked {
    pub batch: Batch,
    pub resource: Resource,
    pub json: Vec<u8>,
}

/// The spans of `pod` (with `tree` its descendants), content only with `capture`, refused if
/// they hold an API key value: the check every export makes (`pod_export`), on the spans' OTLP
/// JSON (which holds every string the protobuf request does), against the key variables the
/// pods' manifests name as set here and the prints of the keys the home's pods ran with.
pub fn read_checked(
    home: &std::path::Path,
    pod: &str,
    tree: bool,
    capture: bool,
) -> Result<Checked, Failure> {
    let plan = prepare(&ExportRequest {
        home: home.to_path_buf(),
        pod: pod.to_owned(),
        tree,
        sanitize: false,
    })
    .map_err(super::export::failure)?;
    let names = plan.key_env_names();
    let lookup = |name: &str| std::env::var(name).ok();
    let content = if capture {
        Content::capture(names.iter().filter_map(|name| lookup(name)).collect())
    } else {
        Content::Off
    };
    let batch = pod_telemetry::read_pods(home, pod, tree, &content).map_err(failure)?;
    for problem in &batch.problems {
        eprintln!("warning: {problem} (the entries around it were used)");
    }
    let resource = resource(lookup("OTEL_SERVICE_NAME").as_deref());
    let mut secrets = secrets_from(&names, lookup);
    merge_recorded(
        &mut secrets,
        secrets_recorded(home).map_err(super::export::failure)?,
    );
    let json = render_json(batch.spans.clone(), &resource).map_err(failure)?;
    check_secrets(&json, &secrets).map_err(super::export::failure)?;
    Ok(Checked {
        batch,
        resource,
        json,
    })
}

pub fn failure(error: TelemetryError) -> Failure {
    match error {
        TelemetryError::Home(pod_home_error) => {
            Failure::usage(pod_home_error).with_hint("`pods ls` lists the pods in this home")
        }
        TelemetryError::HeaderVariable { .. } => Failure::usage(error),
        TelemetryError::Exporter { .. } => {
            Failure::usage(error).with_hint("check --endpoint or OTEL_EXPORTER_OTLP_ENDPOINT")
        }
        other => Failure::run_failed(other),
    }
}
