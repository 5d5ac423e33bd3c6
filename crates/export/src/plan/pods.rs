//! The pods of a home as an export sees them: every `pod.json` read leniently, the one asked
//! for found by id, prefix or name, its ancestors, and each pod's head in the document (its
//! `pod.json` facts, manifest and provenance).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::document::{PodDoc, ProvenanceDoc};
use crate::error::ExportError;

/// `pod.json`, read leniently: fields an older writer did not write are reported missing.
#[derive(Debug)]
pub(super) struct PodEntry {
    pub(super) dir: PathBuf,
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) parent_id: Option<String>,
    pub(super) created: Option<String>,
    pub(super) pid: Option<u32>,
    pub(super) state: Option<String>,
}

/// Every readable `pod.json` under `pods/`, and the paths of unreadable ones with why.
pub(super) type LoadedPods = (BTreeMap<String, PodEntry>, Vec<(PathBuf, String)>);

pub(super) fn load_pods(pods_dir: &Path) -> Result<LoadedPods, ExportError> {
    let read_dir = std::fs::read_dir(pods_dir).map_err(|source| ExportError::ReadFile {
        path: pods_dir.to_path_buf(),
        source,
    })?;
    let mut pods = BTreeMap::new();
    let mut unreadable = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|source| ExportError::ReadFile {
            path: pods_dir.to_path_buf(),
            source,
        })?;
        let dir = entry.path();
        let path = dir.join("pod.json");
        // Not a pod directory; a pod.json that is not a regular file is unreadable (below).
        if !path.exists() {
            continue;
        }
        let value = match pod_home::files::read_regular(&path, 1 << 20) {
            Ok(text) => match serde_json::from_slice::<Value>(&text) {
                Ok(value) if value.is_object() => value,
                Ok(_) => {
                    unreadable.push((path, "not a JSON object".to_owned()));
                    continue;
                }
                Err(e) => {
                    unreadable.push((path, e.to_string()));
                    continue;
                }
            },
            Err(e) => {
                unreadable.push((path, e.to_string()));
                continue;
            }
        };
        let text_field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let pod = PodEntry {
            id: text_field("id").unwrap_or(dir_name),
            name: text_field("name"),
            profile: text_field("profile"),
            parent_id: text_field("parent_id"),
            created: text_field("created"),
            pid: value
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            state: text_field("state"),
            dir,
        };
        pods.insert(pod.id.clone(), pod);
    }
    for (path, error) in &unreadable {
        tracing::warn!(path = %path.display(), %error, "skipping a pod with an unreadable pod.json");
    }
    Ok((pods, unreadable))
}

pub(super) fn resolve(
    all: &BTreeMap<String, PodEntry>,
    query: &str,
    home: &Path,
) -> Result<String, ExportError> {
    if all.contains_key(query) {
        return Ok(query.to_owned());
    }
    let by_prefix: Vec<&String> = all.keys().filter(|id| id.starts_with(query)).collect();
    // Names need not be unique: the newest pod with the name is meant, as everywhere (ids are
    // time-ordered and `all` is sorted by id).
    let by_name: Vec<&String> = all
        .values()
        .filter(|p| p.name.as_deref() == Some(query))
        .map(|p| &p.id)
        .next_back()
        .into_iter()
        .collect();
    let matches = if by_prefix.is_empty() {
        by_name
    } else {
        by_prefix
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ExportError::PodNotFound {
            query: query.to_owned(),
            home: home.to_path_buf(),
        }),
        many => Err(ExportError::AmbiguousPod {
            query: query.to_owned(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Ancestor ids from the root down to the parent.
pub(super) fn ancestors(all: &BTreeMap<String, PodEntry>, id: &str) -> Vec<String> {
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut current = all.get(id).and_then(|p| p.parent_id.clone());
    while let Some(parent) = current {
        if !seen.insert(parent.clone()) {
            break;
        }
        current = all.get(&parent).and_then(|p| p.parent_id.clone());
        chain.push(parent);
    }
    chain.reverse();
    chain
}

pub(super) fn pod_doc(pod: &PodEntry, all: &BTreeMap<String, PodEntry>) -> PodDoc {
    let mut missing = Vec::new();
    let mut need = |value: &Option<String>, fact: &str| {
        if value.is_none() {
            missing.push(fact.to_owned());
        }
        value.clone().unwrap_or_else(|| "unknown".to_owned())
    };
    let name = need(&pod.name, "pod.json:name");
    let profile = need(&pod.profile, "pod.json:profile");
    // Read only if regular (a FIFO would block the export) and of a sane size.
    let small = |name: &str| pod_home::files::read_regular(&pod.dir.join(name), 16 << 20);
    let text = small("manifest.toml").and_then(|bytes| {
        String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    });
    let manifest = match text {
        Ok(text) => match toml::from_str::<toml::Value>(&text) {
            Ok(v) => serde_json::to_value(v).ok(),
            Err(_) => {
                missing.push("manifest.toml (unparseable)".to_owned());
                None
            }
        },
        Err(error) => {
            missing.push(absent_or_unreadable("manifest.toml", &error));
            None
        }
    };
    let provenance = match small("provenance.json") {
        Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, ProvenanceDoc>>(&bytes) {
            Ok(p) => Some(p),
            Err(_) => {
                missing.push("provenance.json (unparseable)".to_owned());
                None
            }
        },
        Err(error) => {
            missing.push(absent_or_unreadable("provenance.json", &error));
            None
        }
    };
    // One answer with `pods ls`: a `running` pod whose process is gone crashed.
    let state = match pod.state.as_deref() {
        Some("running") if !pod.pid.is_some_and(pod_home::liveness::process_alive) => {
            Some("crashed".to_owned())
        }
        _ => pod.state.clone(),
    };
    let recorded_state = (state != pod.state).then(|| pod.state.clone()).flatten();
    PodDoc {
        id: pod.id.clone(),
        name,
        profile,
        parent_id: pod.parent_id.clone(),
        ancestors: ancestors(all, &pod.id),
        created: pod.created.clone(),
        state,
        recorded_state,
        manifest,
        provenance,
        segments: Vec::new(),
        runs: Vec::new(),
        missing,
    }
}

/// `file` when it is absent; `file (unreadable: why)` when it is there but could not be read.
fn absent_or_unreadable(file: &str, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        file.to_owned()
    } else {
        format!("{file} (unreadable: {error})")
    }
}
