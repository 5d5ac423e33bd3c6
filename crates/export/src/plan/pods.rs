//! The pods of a home as an export sees them: every `pod.json` read leniently, the one asked
//! for found by id, prefix or name, its ancestors, and each pod's head in the document (its
//! `pod.json` facts, manifest and provenance).

use std::collections::BTreeMap;
use std::path::PathBuf;

use pod_home::{HomeError, PodIndex, PodRecord};

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
    /// Ancestor ids from the root of its tree down to its parent.
    pub(super) ancestors: Vec<String>,
}

/// Every readable `pod.json` under `pods/`, and the paths of unreadable ones with why.
pub(super) type LoadedPods = (BTreeMap<String, PodEntry>, Vec<(PathBuf, String)>);

/// The home's pods as `pod-home` reads them (leniently), split into the readable ones and the
/// `pod.json` files that could not be read.
pub(super) fn load_pods(index: &PodIndex) -> LoadedPods {
    let mut pods = BTreeMap::new();
    let mut unreadable = Vec::new();
    for record in index.pods() {
        match &record.fields {
            Ok(fields) => {
                let pod = PodEntry {
                    dir: record.dir.path().to_owned(),
                    id: record.id().to_owned(),
                    name: fields.name.clone(),
                    profile: fields.profile.clone(),
                    parent_id: fields.parent_id.clone(),
                    created: fields.created.clone(),
                    pid: fields.pid,
                    state: fields.state.clone(),
                    ancestors: index.ancestors(record.id()),
                };
                pods.insert(pod.id.clone(), pod);
            }
            Err(error) => unreadable.push((record.dir.info_path(), error.clone())),
        }
    }
    for (path, error) in &unreadable {
        tracing::warn!(path = %path.display(), %error, "skipping a pod with an unreadable pod.json");
    }
    (pods, unreadable)
}

/// The pod `query` means (see [`PodIndex::find`]), as the export's error when there is none.
pub(super) fn resolve<'a>(index: &'a PodIndex, query: &str) -> Result<&'a PodRecord, ExportError> {
    index.find(query).map_err(|error| match error {
        HomeError::PodNotFound { query, home } => ExportError::PodNotFound { query, home },
        HomeError::AmbiguousPod { query, candidates } => ExportError::AmbiguousPod {
            query,
            candidates: candidates.join(", "),
        },
        other => ExportError::Home(other),
    })
}

pub(super) fn pod_doc(pod: &PodEntry) -> PodDoc {
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
        ancestors: pod.ancestors.clone(),
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
