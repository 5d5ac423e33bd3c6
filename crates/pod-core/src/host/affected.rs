//! The pods a lifecycle action affects: the pod itself and, when the action ends it, its live
//! descendants (named in the action's `affects`).

use std::sync::Arc;

use crate::children::Children;
use crate::error_chain;
use crate::home::{PodDir, PodHome};
use crate::lifecycle::ends_pod;
use crate::record::LifecycleKind;
use pod_home::PodIndex;

/// The pods an action of `kind` addressed to `pod_id` affects: the pod itself, and when the
/// action ends the pod (its children are then stopped with it), the live descendants known now
/// ([`live_descendants`]).
pub(super) fn affected(
    kind: LifecycleKind,
    pod_id: &str,
    dir: &PodDir,
    children: &Option<Arc<Children>>,
) -> Vec<String> {
    let mut affects = vec![pod_id.to_owned()];
    if ends_pod(kind) {
        affects.extend(live_descendants(dir, children));
    }
    affects
}

/// The live descendants of the pod in `dir`: its children still running according to its
/// registry and, below them, the pods of the same home whose `pod.json` names one of those as
/// parent and whose process is alive.
fn live_descendants(dir: &PodDir, children: &Option<Arc<Children>>) -> Vec<String> {
    let Some(children) = children else {
        return Vec::new();
    };
    let listed = children.list();
    let direct: Vec<String> = listed["children"]
        .as_array()
        .map(|kids| {
            kids.iter()
                .filter(|kid| kid["state"] != "exited")
                .filter_map(|kid| kid["pod_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if direct.is_empty() {
        return direct;
    }
    // `<home>/pods/<id>`: the home holds the grandchildren's directories too.
    match dir.path().parent().and_then(std::path::Path::parent) {
        Some(home) => descendants_below(&PodHome::at(home), direct),
        None => direct,
    }
}

/// `direct` (live children) followed by every live pod in `home` descending from one of them
/// ([`PodIndex::live_below`]).
pub(super) fn descendants_below(home: &PodHome, direct: Vec<String>) -> Vec<String> {
    match PodIndex::load(home) {
        Ok(index) => index.live_below(direct),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "cannot list pods for descendants");
            direct
        }
    }
}
