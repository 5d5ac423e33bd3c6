//! A pod, or a pod and its descendants, read from the home into spans: one trace, rooted at the
//! top of the pod's tree, whichever pod of it was asked for.

use std::path::Path;

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::SpanData;

use pod_home::PodHome;
use pod_home::PodIndex;
use pod_home::log_read::{LogItem, LogReader};

use crate::builder::SpanBuilder;
use crate::content::Content;
use crate::error::TelemetryError;
use crate::pod::{ModelFacts, PodContext};

/// The spans of some pods of a home, and what was found on the way.
#[derive(Debug)]
pub struct Batch {
    /// The trace of the spans: the tree's, or the outer trace its root recorded being started in.
    pub trace_id: TraceId,
    /// The pods read, top down.
    pub pods: Vec<String>,
    pub spans: Vec<SpanData>,
    /// Problems in the logs (torn tails, unparseable lines), `pod_id: problem`; the entries
    /// around them were used.
    pub problems: Vec<String>,
}

/// The pod `query` names in `home` (id, id prefix or name), with `tree` its descendants too.
pub fn read_pods(
    home: &Path,
    query: &str,
    tree: bool,
    content: &Content,
) -> Result<Batch, TelemetryError> {
    let home = PodHome::at(home);
    let index = PodIndex::load(&home)?;
    let pod = index.find(query)?;
    let root = index
        .ancestors(pod.id())
        .into_iter()
        .next()
        .unwrap_or_else(|| pod.id().to_owned());
    let ids = if tree {
        index.tree(pod.id())
    } else {
        vec![pod.id().to_owned()]
    };
    let mut batch = Batch {
        trace_id: crate::ids::trace_id(&root),
        pods: Vec::new(),
        spans: Vec::new(),
        problems: Vec::new(),
    };
    for id in ids {
        let Some(record) = index.get(&id) else {
            continue;
        };
        let dir = &record.dir;
        let info = dir.read_info()?;
        let manifest_path = dir.manifest_path();
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(TelemetryError::ReadFile {
                    path: manifest_path,
                    source,
                });
            }
        };
        let context = PodContext::new(&info, &root, ModelFacts::from_manifest(&manifest));
        let mut builder = SpanBuilder::new(context, content.clone());
        for segment in dir.segments()? {
            for item in LogReader::open(&segment.log)? {
                match item? {
                    LogItem::Entry(entry) => builder.feed(&entry, &mut batch.spans),
                    LogItem::Problem(problem) => batch.problems.push(format!("{id}: {problem}")),
                }
            }
        }
        builder.finish(&mut batch.spans);
        batch.pods.push(id);
    }
    // A root started inside an outer trace recorded it: its spans are in that trace.
    if let Some(first) = batch.spans.first() {
        batch.trace_id = first.span_context.trace_id();
    }
    Ok(batch)
}
