//! Every pod of a home at a glance: each directory with its `pod.json` read leniently, and the
//! questions asked of them together — which pod a query means, a pod's tree, its ancestors.
//! `ls`, `rm`, `prune`, the host's cascades and the export all ask them here.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::Value;

use pod_protocol::record::PodState;

use crate::error::HomeError;
use crate::layout::{POD_JSON_MAX_BYTES, PodDir, PodHome};

/// What `pod.json` says, as far as it says it: a damaged or older file still lists, with the
/// fields it lacks as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFields {
    pub name: Option<String>,
    pub profile: Option<String>,
    pub parent_id: Option<String>,
    pub created: Option<String>,
    pub pid: Option<u32>,
    /// The recorded state as written (`running`, …).
    pub state: Option<String>,
}

impl PodFields {
    /// The recorded state, when it is one this build knows.
    pub fn pod_state(&self) -> Option<PodState> {
        let state = self.state.as_deref()?;
        serde_json::from_value(Value::String(state.to_owned())).ok()
    }

    fn from_json(value: &Value) -> PodFields {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        PodFields {
            name: text("name"),
            profile: text("profile"),
            parent_id: text("parent_id"),
            created: text("created"),
            pid: value
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            state: text("state"),
        }
    }
}

/// One pod directory and its `pod.json`: the fields, or why they could not be read.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub dir: PodDir,
    pub fields: Result<PodFields, String>,
}

impl PodRecord {
    /// Read the pod in `dir`; an unreadable `pod.json` is recorded, not an error.
    pub fn read(dir: PodDir) -> PodRecord {
        let fields = read_fields(&dir.info_path());
        PodRecord { dir, fields }
    }

    pub fn id(&self) -> &str {
        self.dir.id()
    }

    pub fn parent_id(&self) -> Option<&str> {
        self.fields.as_ref().ok()?.parent_id.as_deref()
    }

    pub fn name(&self) -> Option<&str> {
        self.fields.as_ref().ok()?.name.as_deref()
    }

    /// Whether the pod's process may still be running (see [`crate::liveness::state_is_live`]);
    /// a pod whose `pod.json` cannot be read may be.
    pub fn may_be_live(&self) -> bool {
        match &self.fields {
            Ok(f) => crate::liveness::state_is_live(
                &self.dir,
                f.pod_state(),
                f.pid,
                f.created.as_deref(),
            ),
            Err(_) => true,
        }
    }
}

fn read_fields(path: &Path) -> Result<PodFields, String> {
    let bytes = crate::files::read_regular(path, POD_JSON_MAX_BYTES).map_err(|e| e.to_string())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(PodFields::from_json(&value)),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// Every pod directory of a home that holds a `pod.json` (readable or not), by id. Ids are
/// time-ordered, so the order is oldest first.
#[derive(Debug, Clone, Default)]
pub struct PodIndex {
    root: std::path::PathBuf,
    pods: BTreeMap<String, PodRecord>,
}

impl PodIndex {
    /// Read every pod of `home`. A home without pods is an empty index.
    pub fn load(home: &PodHome) -> Result<PodIndex, HomeError> {
        let pods = home
            .pod_dirs()?
            .into_iter()
            .filter(|dir| dir.info_path().exists() || dir.info_path().is_symlink())
            .map(|dir| (dir.id().to_owned(), PodRecord::read(dir)))
            .collect();
        Ok(PodIndex {
            root: home.root().to_owned(),
            pods,
        })
    }

    pub fn get(&self, id: &str) -> Option<&PodRecord> {
        self.pods.get(id)
    }

    /// Every pod, oldest first.
    pub fn pods(&self) -> impl DoubleEndedIterator<Item = &PodRecord> {
        self.pods.values()
    }

    /// The pod `query` means: its full id, a unique id prefix, or its name (the newest pod with
    /// that name: names need not be unique, a model names its children).
    pub fn find(&self, query: &str) -> Result<&PodRecord, HomeError> {
        if let Some(pod) = self.pods.get(query) {
            return Ok(pod);
        }
        let mut matches: Vec<&PodRecord> = self
            .pods
            .values()
            .filter(|p| p.id().starts_with(query))
            .collect();
        if matches.is_empty() {
            matches = self
                .pods
                .values()
                .rev()
                .find(|p| p.name() == Some(query))
                .into_iter()
                .collect();
        }
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(HomeError::PodNotFound {
                query: query.to_owned(),
                home: self.root.clone(),
            }),
            many => Err(HomeError::AmbiguousPod {
                query: query.to_owned(),
                candidates: many.iter().map(|p| p.id().to_owned()).collect(),
            }),
        }
    }

    /// The ids of the pods whose `pod.json` names `id` as parent, oldest first.
    pub fn children(&self, id: &str) -> Vec<&str> {
        self.pods
            .values()
            .filter(|p| p.parent_id() == Some(id))
            .map(PodRecord::id)
            .collect()
    }

    /// `root` and every pod below it, top down: `root` first, then its children, then theirs
    /// (each generation oldest first). A pod is listed once even if the records loop.
    pub fn tree(&self, root: &str) -> Vec<String> {
        let mut tree = vec![root.to_owned()];
        let mut i = 0;
        while i < tree.len() {
            for child in self.children(&tree[i].clone()) {
                if !tree.iter().any(|id| id == child) {
                    tree.push(child.to_owned());
                }
            }
            i += 1;
        }
        tree
    }

    /// `root` and every pod below it, bottom up: each pod after all of its descendants
    /// (children oldest first), so removing in this order never leaves an orphan.
    pub fn tree_bottom_up(&self, root: &str) -> Vec<String> {
        fn visit(index: &PodIndex, id: &str, entered: &mut HashSet<String>, out: &mut Vec<String>) {
            // Entered once: records whose parents loop cannot recurse forever.
            if !entered.insert(id.to_owned()) {
                return;
            }
            for child in index.children(id) {
                visit(index, child, entered, out);
            }
            out.push(id.to_owned());
        }
        let mut out = Vec::new();
        visit(self, root, &mut HashSet::new(), &mut out);
        out
    }

    /// The ids of `id`'s ancestors, from the root of its tree down to its parent.
    pub fn ancestors(&self, id: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut seen = HashSet::from([id.to_owned()]);
        let mut current = self.get(id).and_then(PodRecord::parent_id);
        while let Some(parent) = current {
            if !seen.insert(parent.to_owned()) {
                break;
            }
            chain.push(parent.to_owned());
            current = self.get(parent).and_then(PodRecord::parent_id);
        }
        chain.reverse();
        chain
    }

    /// The pods below `ids` whose process may still be running, found through live pods
    /// only (a finished pod's children are its own business): `ids` first, then the rest.
    pub fn live_below(&self, ids: Vec<String>) -> Vec<String> {
        let mut found = ids.clone();
        let mut frontier = ids;
        while let Some(parent) = frontier.pop() {
            for child in self.children(&parent) {
                let live = self.get(child).is_some_and(|p| {
                    p.fields.as_ref().is_ok_and(|f| {
                        matches!(f.pod_state(), Some(PodState::Running | PodState::Idle))
                    }) && p.may_be_live()
                });
                if live && !found.iter().any(|id| id == child) {
                    found.push(child.to_owned());
                    frontier.push(child.to_owned());
                }
            }
        }
        found
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
