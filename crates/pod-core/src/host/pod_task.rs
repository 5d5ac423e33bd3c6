//! The task the pod runs on: it takes runs and reloads in order from the host loop, reports
//! how each ended, and closes the pod's segment when the host loop lets it go.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::affected::affected;
use super::forced::record_task_failure;
use super::progress::Progress;
use crate::children::Children;
use crate::home::PodDir;
use crate::record::{LifecycleAction, LifecycleKind, PodState};
use crate::runtime::{Pod, RunInput, RunObserver, RunReport};
use crate::{CoreError, error_chain};

pub(super) struct Job {
    pub(super) input: RunInput,
    pub(super) observer: Arc<dyn RunObserver>,
}

/// What the pod task does next, in order.
pub(super) enum Work {
    Run(Job),
    /// After the current run: close the segment and open a new one with the manifest re-read
    /// from the pod directory (see [`reload`] for why it is not re-materialized).
    Reload {
        work_dir: std::path::PathBuf,
    },
}

/// What the pod task reports back, about the run the host loop gave it last.
pub(super) enum Ended {
    /// The run ended; `Err` when it could not be recorded (the pod task then ends).
    Run(Result<RunReport, CoreError>),
    /// A reload could not open the new segment; the pod task has ended.
    ReloadFailed(CoreError),
    /// The run panicked. The pod task recorded `action` (and the run's interruption by it) and
    /// ends, marking the pod failed.
    Faulted {
        action: LifecycleAction,
        detail: String,
    },
}

/// What the pod task shares with the host loop.
#[derive(Clone)]
pub(super) struct TaskCtx {
    pub(super) progress: Arc<Progress>,
    pub(super) pod_id: String,
    pub(super) dir: PodDir,
    pub(super) children: Option<Arc<Children>>,
}

impl TaskCtx {
    /// The pods an action of `kind` on this pod affects (see [`affected`]).
    pub(super) fn affects(&self, kind: LifecycleKind) -> Vec<String> {
        affected(kind, &self.pod_id, &self.dir, &self.children)
    }
}

pub(super) async fn pod_task(
    mut pod: Pod,
    mut jobs: mpsc::Receiver<Work>,
    done: mpsc::Sender<Ended>,
    closed: oneshot::Sender<Result<(), CoreError>>,
    ctx: TaskCtx,
) {
    let mut faulted = false;
    while let Some(work) = jobs.recv().await {
        let job = match work {
            Work::Run(job) => job,
            Work::Reload { work_dir } => {
                match reload(pod, &work_dir).await {
                    Ok(reloaded) => {
                        pod = reloaded;
                        ctx.progress.set_tools(&pod);
                    }
                    Err(error) => {
                        // The old segment is closed and no new one could start.
                        if let Err(marked) = ctx.dir.update_info(|info| {
                            info.state = PodState::Failed;
                            info.pid = None;
                        }) {
                            tracing::error!(error = %error_chain(&marked), "cannot update pod.json");
                        }
                        let _ = done.send(Ended::ReloadFailed(error)).await;
                        let _ = closed.send(Ok(()));
                        return;
                    }
                }
                continue;
            }
        };
        // A panic inside the run (the runtime, a tool, an observer) must not leave the host
        // waiting for a run that will never report: it ends the run as failed, recorded.
        let run = std::panic::AssertUnwindSafe(pod.run(job.input, job.observer))
            .catch_unwind()
            .await;
        match run {
            Ok(report) => {
                let failed = report.is_err();
                let _ = done.send(Ended::Run(report)).await;
                if failed {
                    break;
                }
            }
            Err(payload) => {
                let detail = format!("the run panicked: {}", panic_text(payload.as_ref()));
                tracing::error!(%detail, "the pod stops");
                let action = record_task_failure(pod.log(), &ctx, &detail, true);
                let _ = done.send(Ended::Faulted { action, detail }).await;
                faulted = true;
                break;
            }
        }
    }
    // The segment closes with the outcome of its last run (`completed`, `errored`,
    // `interrupted`, `failed`), or `stopped` when it ran none.
    let reason = if faulted {
        "failed"
    } else {
        pod.last_outcome().unwrap_or("stopped")
    };
    let dir = pod.dir().clone();
    let mut result = pod.close(reason).await;
    if faulted {
        let marked = dir.update_info(|info| {
            info.state = PodState::Failed;
            info.pid = None;
        });
        result = result.and(marked.map(|_| ()).map_err(CoreError::from));
    }
    let _ = closed.send(result);
}

/// Close the pod's segment and open a new one with the manifest re-read from its directory
/// (the new `segment_started` records its digest). Tools registered besides the builtins
/// (the child tools, the MCP servers' tools) stay registered: the MCP servers keep running.
///
/// `reload` re-reads `manifest.toml` rather than re-materializing the manifest from the
/// profile, for these reasons:
/// - a child's manifest was materialized by its parent from the parent's resolved manifest and
///   the spawn request (task, scope, overrides); the child process has neither, and resolving
///   its profile again on its own could widen it beyond what the parent allowed (its scope,
///   `[spawn]` limits and inherited settings must stay within the parent's);
/// - a pod continued with `pods resume` no longer has the inputs of its first resolution (the
///   `--set` list, the `PODS_*` environment, the project profiles of the directory it started
///   in);
/// - the child registry of a pod (its `[spawn]` limits, the manifest its children inherit
///   from, the scope they must stay inside) is fixed when the pod starts, so a manifest
///   re-materialized with a different `[spawn]` or `[scope]` would be applied only in part.
///
/// So `manifest.toml` stays the one description of what the pod runs with: an edit to it
/// takes effect at the next reload (except for what the child registry fixed at start, as
/// above), and every field whose value the edit changed gets provenance `unknown` in
/// `provenance.json` (who edited it is not recorded). To run with a changed profile, start a
/// new pod.
async fn reload(pod: Pod, work_dir: &std::path::Path) -> Result<Pod, CoreError> {
    let dir = pod.dir().clone();
    let control = pod.control().clone();
    let approvals = pod.approvals().clone();
    let telemetry = pod.telemetry().cloned();
    let traceparent = pod.traceparent().map(str::to_owned);
    let extra: Vec<Arc<dyn crate::tools::Tool>> = crate::children::SPAWN_TOOLS
        .iter()
        .map(|(name, _)| *name)
        .chain(
            pod.tools()
                .names()
                .into_iter()
                .filter(|name| crate::tools::mcp::is_mcp_tool(name)),
        )
        .filter_map(|name| pod.tools().get(name).cloned())
        .collect();
    let previous = pod.manifest().clone();
    pod.close("reloaded").await?;
    let (resolved, edited) =
        pod_profile::reread_manifest_files(dir.path(), &previous).map_err(|e| {
            CoreError::Config {
                message: format!("cannot reload the manifest of pod {}", dir.id()),
                source: Some(Box::new(e)),
            }
        })?;
    if !edited.is_empty() {
        tracing::info!(pod = %dir.id(), ?edited, "reloaded manifest differs from the materialized one");
    }
    let model = crate::model::ModelConnection::connect(&resolved.manifest, work_dir).await?;
    let mut pod = Pod::start(
        dir,
        resolved.manifest,
        crate::runtime::PodOptions {
            work_dir: work_dir.to_owned(),
            model,
            control,
            approvals,
            telemetry,
            traceparent,
        },
    )?;
    for tool in extra {
        pod.register_tool(tool);
    }
    Ok(pod)
}

/// Text of a panic payload.
pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}
