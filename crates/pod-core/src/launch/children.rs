//! What a pod needs to spawn children, and giving it to the pod.

use std::sync::Arc;
use std::time::Duration;

use pod_telemetry::ids::TraceId;

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
/// `trace_id` is the trace the pod is in, which its children join.
pub(super) fn attach_children(
    pod: &mut Pod,
    setup: ChildSetup,
    trace_id: TraceId,
) -> Option<Arc<Children>> {
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
