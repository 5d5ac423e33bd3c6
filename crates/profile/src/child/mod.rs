//! Child materialization: the manifest a child pod gets from its profile, its parent and the
//! spawn request, decided per key by one policy table.

mod policy;
mod scope;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::discovery::Catalog;
use crate::error::ProfileError;
use crate::manifest::{Provenance, ProvenanceMap, ResolvedManifest, ScopeSection, SourceKind};
use crate::resolve::{self, Overrides};
use crate::schema::{self, Leaves};

use policy::Sources;
pub use policy::{InheritPolicy, POLICIES, policy, request_may_override};

/// What a parent asks for when it spawns a child (`spawn_pod {profile, task, scope?, overrides?}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub task: String,
    /// Narrows the parent's scope; never widens it.
    #[serde(default)]
    pub scope: Option<ScopeRequest>,
    /// Dotted key → value, only for keys whose policy allows a spawn-request override.
    #[serde(default)]
    pub overrides: BTreeMap<String, serde_json::Value>,
}

/// The scope a spawn request asks for (`{"allow": [...], "deny": [...]}`). Without `allow` the
/// child keeps the parent's allow list; `deny` entries are added to the parent's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequest {
    /// Paths the child may use; each must lie inside the parent's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Paths added to the parent's deny list.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl From<ScopeSection> for ScopeRequest {
    fn from(scope: ScopeSection) -> Self {
        ScopeRequest {
            allow: Some(scope.allow),
            deny: scope.deny,
        }
    }
}

/// Materialize the manifest of a child spawned with `child_profile` by a parent running with
/// `parent`. `env` is the environment layer of the child's own resolution (see
/// [`Overrides::env`]).
///
/// Each key is first decided by its [`InheritPolicy`]; then the scope narrows (child profile,
/// then spawn request) and the spawn request's overrides apply.
pub fn materialize_child(
    catalog: &Catalog,
    parent: &ResolvedManifest,
    parent_pod_id: &str,
    child_profile: &str,
    request: &SpawnRequest,
    env: &[(String, String)],
) -> Result<ResolvedManifest, ProfileError> {
    check_may_spawn(parent, child_profile)?;
    let child = catalog.resolve_with_history(
        child_profile,
        &Overrides {
            sets: Vec::new(),
            env: env.to_vec(),
            model: None,
        },
    )?;
    let from = Sources::new(parent, parent_pod_id, child)?;

    let mut draft = Draft::default();
    for key in schema::leaf_keys() {
        let Some(rule) = policy(&key) else {
            return Err(ProfileError::OverrideNotAllowed {
                key,
                reason: "the key has no inheritance policy".to_owned(),
            });
        };
        let decision = rule.decide(&from, &key);
        if let Some(value) = decision.value {
            draft.leaves.insert(key.clone(), value);
        }
        draft.provenance.insert(key, decision.provenance);
    }
    scope::narrow_by_profile(&from, child_profile, &mut draft)?;
    if let Some(requested) = &request.scope {
        scope::narrow_by_request(&from, requested, &mut draft)?;
    }
    apply_overrides(&request.overrides, parent_pod_id, &mut draft)?;

    let manifest = schema::to_manifest(&draft.leaves).map_err(|err| ProfileError::Type {
        file: format!("child manifest of `{child_profile}`"),
        line: None,
        key: String::new(),
        message: err.message().to_owned(),
    })?;
    let resolved = ResolvedManifest {
        manifest,
        provenance: draft.provenance,
    };
    resolve::validate(&resolved)?;
    Ok(resolved)
}

/// The child manifest while it is being decided: leaf values and where each came from.
#[derive(Default)]
struct Draft {
    leaves: Leaves,
    provenance: ProvenanceMap,
}

impl Draft {
    fn set(&mut self, key: &str, value: toml::Value, provenance: Provenance) {
        self.leaves.insert(key.to_owned(), value);
        self.provenance.insert(key.to_owned(), provenance);
    }
}

/// Whether `parent` may spawn a child with `child_profile` at all.
fn check_may_spawn(parent: &ResolvedManifest, child_profile: &str) -> Result<(), ProfileError> {
    let parent_spawn = &parent.manifest.spawn;
    if parent_spawn.max_depth == 0 {
        return Err(ProfileError::SpawnDepthExhausted {
            source_detail: parent
                .provenance
                .get("spawn.max_depth")
                .map(|p| p.detail.clone())
                .unwrap_or_else(|| "compiled default".to_owned()),
        });
    }
    if !parent_spawn
        .allowed_profiles
        .iter()
        .any(|p| p == child_profile)
    {
        return Err(ProfileError::ChildNotAllowed {
            child: child_profile.to_owned(),
            allowed: parent_spawn.allowed_profiles.clone(),
        });
    }
    Ok(())
}

/// Apply the spawn request's explicit overrides: known keys that a request may set
/// ([`request_may_override`]), each type-checked on its own.
fn apply_overrides(
    overrides: &BTreeMap<String, serde_json::Value>,
    parent_pod_id: &str,
    draft: &mut Draft,
) -> Result<(), ProfileError> {
    let known = schema::leaf_keys();
    for (key, json) in overrides {
        if !known.contains(key) {
            let hint = schema::suggest(key, &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(ProfileError::OverrideNotAllowed {
                key: key.clone(),
                reason: format!("not a manifest key{hint}"),
            });
        }
        if !request_may_override(key) {
            return Err(ProfileError::OverrideNotAllowed {
                key: key.clone(),
                reason: "only session.*, agent.max_turns and agent.instructions may be overridden by a spawn request".to_owned(),
            });
        }
        let Some(value) = schema::json_to_toml(json) else {
            return Err(ProfileError::OverrideNotAllowed {
                key: key.clone(),
                reason: "null is not a value".to_owned(),
            });
        };
        let mut probe = Leaves::new();
        probe.insert(key.clone(), value.clone());
        if let Err(err) = schema::to_manifest(&probe) {
            return Err(ProfileError::Type {
                file: format!("spawn request from parent {parent_pod_id}"),
                line: None,
                key: key.clone(),
                message: err.message().to_owned(),
            });
        }
        draft.set(
            key,
            value,
            Provenance {
                kind: SourceKind::SpawnRequest,
                detail: format!("spawn request from parent {parent_pod_id}: {key}"),
                from: None,
            },
        );
    }
    Ok(())
}
