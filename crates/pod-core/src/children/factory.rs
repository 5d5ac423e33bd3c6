//! From a `spawn_pod` request to a running child: the `[spawn]` limits, the child's
//! materialized manifest in a new pod directory, the launch, and the rollback of all of it when
//! a step fails before the child is live.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChildError, Children};
use crate::error::error_chain;
use crate::record::{ChildSpawned, LogBody};

/// `spawn_pod` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnArgs {
    /// Child profile name.
    pub profile: String,
    /// The task handed to the child as its first run.
    pub task: String,
    /// Narrower filesystem scope for the child (`{"allow": [...], "deny": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// Manifest overrides by dotted key (`{"session.record_event_trace": false}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<BTreeMap<String, Value>>,
    /// A name for the child; the other child tools accept it in place of the pod id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A child's pod directory, written and ready to launch.
#[derive(Debug, Clone)]
pub struct PreparedChild {
    pub pod_id: String,
    pub name: String,
    pub dir: PathBuf,
    pub profile: String,
    /// `limits.spawn_ready_timeout_ms` of the parent's manifest.
    pub ready_timeout: Duration,
}

/// Materializes a child manifest and writes its pod directory (`manifest.toml`,
/// `provenance.json`, `pod.json` naming the parent). An error here is a refusal the model sees
/// (unknown profile, scope escalation, forbidden override).
pub trait ChildFactory: Send + Sync {
    fn prepare(&self, args: &SpawnArgs) -> Result<PreparedChild, ChildError>;
}

impl Children {
    /// `spawn_pod`: check limits, prepare, launch, hand over the task.
    pub async fn spawn(
        &self,
        run_id: &str,
        call_id: &str,
        args: SpawnArgs,
    ) -> Result<Value, ChildError> {
        if !self
            .limits
            .allowed_profiles
            .iter()
            .any(|p| p == &args.profile)
        {
            let allowed = if self.limits.allowed_profiles.is_empty() {
                "none (spawn.allowed_profiles is empty)".to_owned()
            } else {
                self.limits.allowed_profiles.join(", ")
            };
            return Err(ChildError::SpawnRefused(format!(
                "profile `{}` is not in spawn.allowed_profiles; allowed: {allowed}",
                args.profile
            )));
        }
        if self.limits.max_depth == 0 {
            return Err(ChildError::SpawnRefused(
                "spawn depth exhausted: spawn.max_depth is 0 for this pod, so it may not spawn children"
                    .to_owned(),
            ));
        }
        let live = self.live_count();
        if live >= self.limits.max_children as usize {
            return Err(ChildError::SpawnRefused(format!(
                "{live} children are live and spawn.max_children is {}; wait for or stop one first",
                self.limits.max_children
            )));
        }
        let prepared = self.factory.prepare(&args)?;
        // The child's runs hang under this call's span, in this pod's trace.
        let traceparent =
            pod_telemetry::ids::child_traceparent(self.trace_id, &self.parent_pod_id, call_id);
        let process = match self
            .launcher
            .launch(
                &prepared.pod_id,
                &prepared.dir,
                prepared.ready_timeout,
                Some(&traceparent),
            )
            .await
        {
            Ok(process) => process,
            Err(error) => {
                remove_dir(&prepared.dir);
                return Err(error);
            }
        };
        match self.register(process, &prepared, call_id, &args.task).await {
            Ok((child, request_id)) => {
                (self.record)(LogBody::ChildSpawned(ChildSpawned {
                    run_id: run_id.to_owned(),
                    call_id: call_id.to_owned(),
                    child_pod_id: child.pod_id.clone(),
                    profile: child.profile.clone(),
                    pid: child.pid,
                }));
                Ok(json!({
                    "pod_id": child.pod_id,
                    "name": child.name,
                    "profile": child.profile,
                    "request_id": request_id,
                }))
            }
            Err((mut process, error)) => {
                process.kill().await;
                remove_dir(&prepared.dir);
                Err(error)
            }
        }
    }
}

/// The [`ChildFactory`] of a real pod: the profile crate's child materialization, then a new pod
/// directory in the home with the materialized `manifest.toml` + `provenance.json` and a
/// `pod.json` naming the parent.
pub struct ProfileChildFactory {
    pub catalog: pod_profile::Catalog,
    pub parent: pod_profile::ResolvedManifest,
    pub parent_pod_id: String,
    /// The parent's resolved scope: a child's scope must stay inside it with symlinks followed.
    pub parent_scope: Arc<crate::scope::Scope>,
    pub home: crate::home::PodHome,
    /// Environment layer for the child's own resolution (`PODS_SECTION__KEY` pairs).
    pub env: Vec<(String, String)>,
}

impl ChildFactory for ProfileChildFactory {
    fn prepare(&self, args: &SpawnArgs) -> Result<PreparedChild, ChildError> {
        let scope = match &args.scope {
            None => None,
            Some(value) => Some(serde_json::from_value(value.clone()).map_err(|e| {
                ChildError::SpawnRefused(format!(
                    "invalid `scope` (expected {{\"allow\": [...], \"deny\": [...]}}): {e}"
                ))
            })?),
        };
        let request = pod_profile::SpawnRequest {
            task: args.task.clone(),
            scope,
            overrides: args.overrides.clone().unwrap_or_default(),
        };
        let resolved = pod_profile::materialize_child(
            &self.catalog,
            &self.parent,
            &self.parent_pod_id,
            &args.profile,
            &request,
            &self.env,
        )
        .map_err(|e| ChildError::SpawnRefused(error_chain(&e)))?;
        // Children run in the parent's working directory.
        let child_scope =
            crate::scope::Scope::new(&resolved.manifest.scope, self.parent_scope.work_dir());
        self.parent_scope.covers(&child_scope).map_err(|e| {
            ChildError::SpawnRefused(format!("requested scope is wider than the parent's: {e}"))
        })?;
        let dir = self
            .home
            .create_pod_in(
                args.name.as_deref(),
                &args.profile,
                Some(&self.parent_pod_id),
                self.parent_scope.work_dir(),
            )
            .map_err(|e| ChildError::SpawnRefused(error_chain(&e)))?;
        let name = match dir.read_info() {
            Ok(info) => info.name,
            Err(_) => dir.id().to_owned(),
        };
        if let Err(e) = pod_profile::write_manifest_files(dir.path(), &resolved) {
            remove_dir(dir.path());
            return Err(ChildError::SpawnRefused(error_chain(&e)));
        }
        Ok(PreparedChild {
            pod_id: dir.id().to_owned(),
            name,
            dir: dir.path().to_owned(),
            profile: args.profile.clone(),
            ready_timeout: Duration::from_millis(
                self.parent.manifest.limits.spawn_ready_timeout_ms,
            ),
        })
    }
}

fn remove_dir(dir: &std::path::Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove child pod dir after failed spawn");
    }
}
