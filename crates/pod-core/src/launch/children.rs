//! What a pod needs to spawn children, and giving it to the pod.

use std::sync::Arc;
use std::time::Duration;

use pod_home::PodIndex;
use pod_telemetry::ids::{self, TraceId};

use crate::children::Children;
use crate::record::LogBody;
use crate::runtime::{Pod, RunObserver};

/// What a pod needs to spawn children: where profiles are, its own resolved manifest, the home
/// its children's directories go in, and how to launch them.
pub struct ChildSetup {
    pub catalog: pod_profile::Catalog,
    pub resolved: pod_profile::ResolvedManifest,
    pub home: crate::home::PodHome,
    pub launcher: crate::children::Launcher,
    /// Hears of each child spawned and exited, as the session log records it.
    pub observer: Arc<dyn RunObserver>,
}

/// Give `pod` its children: when its manifest allows any child profile, register the child
/// tools (`spawn_pod`, `wait_pod`, `send_to_pod`, `stop_pod`, `list_pods`) and return the
/// registry the host cascades lifecycle actions through. `child_spawned` / `child_exited` go to
/// the pod's session log.
pub(super) fn attach_children(pod: &mut Pod, setup: ChildSetup) -> Option<Arc<Children>> {
    let spawn = pod.manifest().spawn.clone();
    if spawn.allowed_profiles.is_empty() {
        return None;
    }
    let pod_id = pod.id().to_owned();
    let log = pod.log().clone();
    let observer = setup.observer;
    let recorder: crate::children::Recorder = Arc::new(move |body| {
        match &body {
            LogBody::ChildSpawned(child) => observer.on_child_spawned(child),
            LogBody::ChildExited(child) => observer.on_child_exited(child),
            _ => {}
        }
        if let Err(error) = log.append(body) {
            tracing::error!(%error, "cannot record child supervision entry");
        }
    });
    let trace_id = trace_of(pod, &setup.home);
    let factory = crate::children::ProfileChildFactory {
        catalog: setup.catalog,
        parent: setup.resolved,
        parent_pod_id: pod_id.clone(),
        parent_scope: pod.scope().clone(),
        home: setup.home,
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("PODS_") && k.contains("__"))
            .collect(),
    };
    let grace = Duration::from_millis(pod.manifest().limits.shutdown_grace_ms);
    let children = Arc::new(
        Children::new(
            pod_id,
            spawn,
            setup.launcher,
            Arc::new(factory),
            recorder,
            grace,
        )
        .with_approver(pod.approvals().approver())
        .with_trace(trace_id),
    );
    for tool in crate::children::ChildTool::all(&children) {
        pod.register_tool(tool);
    }
    Some(children)
}

/// The trace `pod` is in, which its children join.
fn trace_of(pod: &Pod, home: &crate::home::PodHome) -> TraceId {
    let has_parent = pod
        .dir()
        .read_info()
        .is_ok_and(|info| info.parent_id.is_some());
    tree_trace(pod.traceparent(), pod.id(), has_parent, home)
}

/// The trace pod `pod_id` is in: the one it was started in (`traceparent`), else its tree's,
/// named by the root pod's id. A child always gets a trace from its parent; only a child
/// resumed on its own looks its root up in the home.
fn tree_trace(
    traceparent: Option<&str>,
    pod_id: &str,
    has_parent: bool,
    home: &crate::home::PodHome,
) -> TraceId {
    if let Some((trace, _)) = traceparent.and_then(ids::parse_traceparent) {
        return trace;
    }
    if !has_parent {
        return ids::trace_id(pod_id);
    }
    match PodIndex::load(home) {
        Ok(index) => {
            let root = index.ancestors(pod_id).into_iter().next();
            ids::trace_id(root.as_deref().unwrap_or(pod_id))
        }
        Err(error) => {
            tracing::warn!(%error, pod = pod_id, "cannot read the home to find the root of this pod's tree; its children's spans start a trace of their own");
            ids::trace_id(pod_id)
        }
    }
}

#[cfg(test)]
#[path = "children_tests.rs"]
mod tests;
