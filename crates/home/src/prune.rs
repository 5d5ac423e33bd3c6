//! Removing pods: `rm` (one pod, or a tree) and `prune` (finished trees by age and count).
//! Nothing is removed while a pod it would remove may still be running.

use crate::error::HomeError;
use crate::index::{PodIndex, PodRecord};
use crate::layout::{PodDir, PodHome};

/// A pod named in what `rm` and `prune` removed, would remove or kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodRef {
    pub id: String,
    /// `None` when `pod.json` is unreadable.
    pub name: Option<String>,
    /// The state `pod.json` records (`unknown` when unreadable).
    pub state: String,
    /// Why it was kept, for pods left in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a pod cannot be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("pod {id} is running (pid {pid}): stop it first (`pods stop {id}`)")]
    Running { id: String, pid: String },
    #[error(
        "pod {id} has {count} child pod(s) ({children}): remove them with it (`--tree`) or first"
    )]
    HasChildren {
        id: String,
        count: usize,
        children: String,
    },
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// What `prune` removes (or would remove) and what it keeps.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PrunePlan {
    /// Pods to remove, each tree's children before its root.
    pub remove: Vec<PodRef>,
    /// Pods kept, with the reason (running, too new, among the newest `--keep`, unreadable).
    pub keep: Vec<PodRef>,
}

/// What `prune` may remove: trees of finished pods (`older_than` their root's creation,
/// beyond the newest `keep` trees). Nothing of a tree is removed while one of its pods may
/// still be running.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneRule {
    pub older_than: Option<std::time::Duration>,
    pub keep: usize,
}

impl PodRecord {
    fn to_ref(&self, reason: Option<String>) -> PodRef {
        PodRef {
            id: self.id().to_owned(),
            name: self.name().map(str::to_owned),
            state: self
                .fields
                .as_ref()
                .ok()
                .and_then(|f| f.state.clone())
                .unwrap_or_else(|| "unknown".into()),
            reason,
        }
    }

    /// Why this pod must stay, if it must.
    fn held(&self) -> Option<String> {
        match &self.fields {
            Ok(fields) if self.may_be_live() => Some(format!(
                "running{}",
                fields
                    .pid
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            )),
            Ok(_) => None,
            Err(error) => Some(format!("pod.json unreadable: {error}")),
        }
    }
}

impl PodHome {
    /// Remove pod `dir` (with `tree`, and its descendants). Refused, removing nothing, when a
    /// pod to remove may be running, or when the pod has children and `tree` is false.
    pub fn remove(&self, dir: &PodDir, tree: bool) -> Result<Vec<PodRef>, RemoveError> {
        let index = PodIndex::load(self)?;
        let Some(root) = index.get(dir.id()) else {
            return Err(HomeError::PodNotFound {
                query: dir.id().to_owned(),
                home: self.root().to_owned(),
            }
            .into());
        };
        let children = index.children(dir.id());
        if !tree && !children.is_empty() {
            return Err(RemoveError::HasChildren {
                id: dir.id().to_owned(),
                count: children.len(),
                children: children.join(", "),
            });
        }
        // Children before their parents.
        let doomed: Vec<&PodRecord> = if tree {
            let ids = index.tree_bottom_up(root.id());
            ids.iter().filter_map(|id| index.get(id)).collect()
        } else {
            vec![root]
        };
        for pod in &doomed {
            match &pod.fields {
                Ok(fields) if pod.may_be_live() => {
                    return Err(RemoveError::Running {
                        id: pod.id().to_owned(),
                        pid: fields
                            .pid
                            .map_or_else(|| "not yet recorded".into(), |p| p.to_string()),
                    });
                }
                Ok(_) => {}
                // A pod whose state could not be read may be running: its error stops the
                // removal, and a pod.json readable by now is checked like the others.
                Err(_) => {
                    let info = pod.dir.read_info()?;
                    if crate::liveness::pod_is_live(&pod.dir, &info) {
                        return Err(RemoveError::Running {
                            id: pod.id().to_owned(),
                            pid: info
                                .pid
                                .map_or_else(|| "not yet recorded".into(), |p| p.to_string()),
                        });
                    }
                }
            }
        }
        let mut removed = Vec::new();
        for pod in doomed {
            remove_pod_dir(&pod.dir)?;
            removed.push(pod.to_ref(None));
        }
        Ok(removed)
    }

    /// What `prune` with `rule` would remove and keep; nothing is removed.
    pub fn plan_prune(&self, rule: PruneRule) -> Result<PrunePlan, HomeError> {
        let pods = PodIndex::load(self)?;
        // Roots, newest first (ids are time-ordered).
        let roots: Vec<&PodRecord> = pods
            .pods()
            .rev()
            .filter(|p| {
                p.parent_id()
                    .is_none_or(|parent| pods.get(parent).is_none())
            })
            .collect();
        let mut plan = PrunePlan::default();
        for (index, root) in roots.into_iter().enumerate() {
            // Children before their parents.
            let tree: Vec<&PodRecord> = pods
                .tree_bottom_up(root.id())
                .iter()
                .filter_map(|id| pods.get(id))
                .collect();
            let young = rule.older_than.and_then(|limit| {
                let created = root.fields.as_ref().ok()?.created.as_deref()?;
                let age = humantime::parse_rfc3339_weak(created).ok()?.elapsed().ok();
                // An unknown age is not old enough.
                age.is_none_or(|age| age < limit)
                    .then(|| format!("newer than {}", humantime::format_duration(limit)))
            });
            let reason = if index < rule.keep {
                Some(format!("among the newest {} tree(s) kept", rule.keep))
            } else if let Some(young) = young {
                Some(young)
            } else {
                tree.iter().find_map(|pod| {
                    pod.held().map(|why| {
                        if pod.dir == root.dir {
                            why
                        } else {
                            format!("pod {} in its tree is {why}", pod.id())
                        }
                    })
                })
            };
            match reason {
                Some(reason) => plan
                    .keep
                    .extend(tree.iter().map(|pod| pod.to_ref(Some(reason.clone())))),
                None => plan.remove.extend(tree.iter().map(|pod| pod.to_ref(None))),
            }
        }
        Ok(plan)
    }

    /// Remove what [`PodHome::plan_prune`] plans, checking each pod's liveness again right
    /// before removing it; a pod that started meanwhile moves to `keep`.
    pub fn prune(&self, rule: PruneRule) -> Result<PrunePlan, HomeError> {
        let mut plan = self.plan_prune(rule)?;
        let mut removed = Vec::new();
        for pod in std::mem::take(&mut plan.remove) {
            let dir = PodDir::open(&self.pods_dir().join(&pod.id));
            if let Some(why) = PodRecord::read(dir.clone()).held() {
                plan.keep.push(PodRef {
                    reason: Some(why),
                    ..pod
                });
                continue;
            }
            remove_pod_dir(&dir)?;
            removed.push(pod);
        }
        plan.remove = removed;
        Ok(plan)
    }
}

fn remove_pod_dir(dir: &PodDir) -> Result<(), HomeError> {
    std::fs::remove_dir_all(dir.path()).map_err(HomeError::io("remove pod directory", dir.path()))
}
