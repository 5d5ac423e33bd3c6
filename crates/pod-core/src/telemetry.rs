//! Live OpenTelemetry export of a running pod ([`pod_telemetry::LiveExport`]): whether it is on
//! and where it goes (`[telemetry]` and the standard `OTEL_*` variables), and the pod's part in
//! the tree's one trace. The session log feeds it every entry it appends (see
//! [`crate::SessionLog::followed_by`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pod_profile::Manifest;
use pod_protocol::record::PodInfo;
use pod_telemetry::ids::{self, TraceId};
use pod_telemetry::{
    Content, LiveExport, LiveReport, ModelFacts, PodContext, PushTarget, SpanBuilder,
};

use crate::home::PodDir;

/// How long one export request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an ending pod gives its last spans to reach a collector that has taken spans from
/// it before.
pub const END_GRACE: Duration = Duration::from_secs(3);

/// How long it gives them to one that has not (yet) taken any: it may never answer, and every
/// moment waited is the user's.
pub const END_GRACE_UNPROVEN: Duration = Duration::from_secs(1);

/// Where live export goes for `manifest`, or `None` when it is off: `OTEL_SDK_DISABLED=true`
/// turns it off; else `telemetry.otlp_endpoint` as given, else
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
/// `/v1/traces` appended; nothing set means no export (no default collector is assumed).
pub fn live_target(
    manifest: &Manifest,
    env: impl Fn(&str) -> Option<String>,
) -> Option<PushTarget> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let configured = manifest.telemetry.otlp_endpoint.as_deref();
    let any = configured.is_some()
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    if !any {
        return None;
    }
    Some(PushTarget {
        endpoint: pod_telemetry::resolve_endpoint(configured, &env),
        headers_env: manifest.telemetry.headers_env.clone(),
        resource: pod_telemetry::resource(set("OTEL_SERVICE_NAME").as_deref()),
        timeout: REQUEST_TIMEOUT,
    })
}

/// A pod's live export, and whether its trouble was told on stderr already.
#[derive(Debug)]
pub struct LiveTelemetry {
    export: LiveExport,
    told: Arc<AtomicBool>,
    pod_id: String,
}

impl LiveTelemetry {
    /// Start exporting the pod `info` describes, in `trace` ([`tree_trace`]), when `manifest`
    /// says so. A problem starting it is said on stderr and leaves the pod without it:
    /// telemetry never stops a pod.
    pub fn start(
        info: &PodInfo,
        manifest: &Manifest,
        trace: TraceId,
    ) -> Option<Arc<LiveTelemetry>> {
        let target = live_target(manifest, |name| std::env::var(name).ok())?;
        let mut context = PodContext::new(
            info,
            &info.id,
            ModelFacts {
                scheme: Some(manifest.model.scheme.as_str().to_owned()),
                model: Some(manifest.model.model.clone()),
            },
        );
        context.trace_id = trace;
        let content = if manifest.telemetry.capture_content {
            Content::capture(crate::secrets::key_value(manifest).into_iter().collect())
        } else {
            Content::Off
        };
        let told = Arc::new(AtomicBool::new(false));
        let teller = told.clone();
        let pod_id = info.id.clone();
        let hint = pod_id.clone();
        let on_problem = Box::new(move |sentence: &str| {
            if !teller.swap(true, Ordering::SeqCst) {
                say(sentence, &hint);
            }
        });
        match LiveExport::start(&target, SpanBuilder::new(context, content), on_problem) {
            Ok(export) => Some(Arc::new(LiveTelemetry {
                export,
                told,
                pod_id,
            })),
            Err(error) => {
                say(&crate::error_chain(&error), &info.id);
                None
            }
        }
    }

    /// Hand the export an entry the session log appended.
    pub fn feed(&self, entry: &pod_protocol::record::LogEntry) {
        self.export.feed(entry);
    }

    /// What was sent and lost so far.
    pub fn report(&self) -> LiveReport {
        self.export.report()
    }

    /// Give the last spans up to `grace` ([`END_GRACE`] for a pod of its own), or at most
    /// [`END_GRACE_UNPROVEN`] when the collector has not taken a span yet; trouble not told
    /// yet is told now.
    pub fn finish(&self, grace: Duration) -> LiveReport {
        let grace = if self.export.report().spans_sent > 0 {
            grace
        } else {
            grace.min(END_GRACE_UNPROVEN)
        };
        let report = self.export.finish(grace);
        if report.has_problems()
            && !self.told.swap(true, Ordering::SeqCst)
            && let Some(first) = &report.first_error
        {
            say(first, &self.pod_id);
        }
        report
    }
}

/// Tell the user once that spans did not reach the collector, and where they still are.
fn say(problem: &str, pod_id: &str) {
    eprintln!(
        "pods: {problem}; the run goes on, and its spans stay in the pod's files: \
         `pods telemetry push {pod_id} --tree` sends them later"
    );
}

/// The trace the pod in `dir` (`info` its `pod.json`) is in, which its spans and its children's
/// join: the one it was started in (`traceparent`, when well formed), else its tree's, named by
/// the root pod's id.
pub fn tree_trace(dir: &PodDir, info: &PodInfo, traceparent: Option<&str>) -> TraceId {
    match traceparent.and_then(ids::parse_traceparent) {
        Some((trace, _)) => trace,
        None => ids::trace_id(&root_pod_id(dir, info)),
    }
}

/// The id of the root of `info`'s tree: its parents' `pod.json`s, read up the chain (the pods of
/// a home are siblings), without reading the rest of the home. A parent that cannot be read
/// ends the chain at the last pod that could, and says so.
fn root_pod_id(dir: &PodDir, info: &PodInfo) -> String {
    let mut root = info.id.clone();
    let mut parent = info.parent_id.clone();
    let mut seen = std::collections::HashSet::from([root.clone()]);
    let pods = dir.path().parent().map(std::path::Path::to_path_buf);
    while let (Some(id), Some(pods)) = (parent, pods.as_ref()) {
        if !seen.insert(id.clone()) {
            break;
        }
        match PodDir::open(&pods.join(&id)).read_info() {
            Ok(info) => {
                root = info.id;
                parent = info.parent_id;
            }
            Err(error) => {
                tracing::warn!(pod = %root, parent = %id, error = %crate::error_chain(&error), "cannot read a parent's pod.json: the tree's trace is named after the last pod read");
                break;
            }
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn export_is_off_unless_an_endpoint_is_named_and_the_sdk_switch_wins() {
        let mut manifest = Manifest::default();
        assert!(live_target(&manifest, env(&[])).is_none());
        let generic = live_target(
            &manifest,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        );
        assert_eq!(
            generic.map(|t| t.endpoint).as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        manifest.telemetry.otlp_endpoint = Some("http://mine:4318/custom".into());
        let mine = live_target(
            &manifest,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        );
        assert_eq!(
            mine.map(|t| t.endpoint).as_deref(),
            Some("http://mine:4318/custom"),
            "a configured endpoint is used as given"
        );
        assert!(live_target(&manifest, env(&[("OTEL_SDK_DISABLED", "true")])).is_none());
    }

    const OUTER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_pod_is_in_the_trace_it_was_started_in_else_its_roots() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = crate::PodHome::at(tmp.path().join("home"));
        let create = |parent: Option<&str>| {
            home.create_pod_in(None, "p", parent, tmp.path())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let root = create(None);
        let kid = create(Some(root.id()));
        let grandkid = create(Some(kid.id()));
        let trace = |dir: &PodDir, traceparent| {
            let info = dir.read_info().unwrap_or_else(|e| panic!("{e}"));
            tree_trace(dir, &info, traceparent)
        };
        let outer = ids::parse_traceparent(OUTER).map(|(t, _)| t);
        assert_eq!(Some(trace(&grandkid, Some(OUTER))), outer);
        assert_eq!(trace(&root, None), ids::trace_id(root.id()));
        // Up the chain: a grandchild without a context is in its root's trace.
        assert_eq!(trace(&grandkid, None), ids::trace_id(root.id()));
        // A malformed context is no context.
        assert_eq!(trace(&kid, Some("00-junk-01")), ids::trace_id(root.id()));
        // A parent that cannot be read ends the chain at the last pod read.
        std::fs::remove_dir_all(root.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace(&grandkid, None), ids::trace_id(kid.id()));
    }
}
