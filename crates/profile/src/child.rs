//! Child materialization: the manifest a child pod gets from its profile, its parent and the
//! spawn request, decided per key by one policy table.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::discovery::Catalog;
use crate::error::ProfileError;
use crate::manifest::{Provenance, ProvenanceMap, ResolvedManifest, ScopeSection, SourceKind};
use crate::resolve::{self, Overrides, Resolution};
use crate::schema::{self, Leaves};

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

/// How a key of a child's manifest is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InheritPolicy {
    /// The parent's value, unless the child profile chain (builtin or profile files) or the spawn
    /// request sets the key. Defaults, config files and env never replace the parent's value.
    Sticky,
    /// Like `Sticky`, but a spawn request may not override it.
    InheritUnlessChildSets,
    /// `model.*` moves as one group: the whole section is the child's when its profile chain
    /// sets `model.model` or `model.scheme`, else the whole section is the parent's (so a scheme
    /// never ends up with another provider's base URL, key variable or cassette).
    ModelGroup,
    /// The child profile's value.
    ChildOnly,
    /// The parent's value; the child profile's own setting and then the spawn request may
    /// narrow it, never widen it.
    NarrowOnly,
    /// The parent's value minus one; a child profile may lower it, never raise it.
    Decrement,
    /// The child profile's value, capped at the parent's.
    CappedByParent,
}

/// The inheritance policy of every leaf key, one row per key. A key without a row has no
/// policy, which the test `every_leaf_key_has_a_policy` turns into a failure.
pub const POLICIES: &[(&str, InheritPolicy)] = &[
    ("agent.instructions", InheritPolicy::ChildOnly),
    ("agent.max_turns", InheritPolicy::ChildOnly),
    ("agent.tools", InheritPolicy::ChildOnly),
    (
        "limits.first_event_timeout_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    (
        "limits.idle_timeout_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    ("limits.max_attempts", InheritPolicy::InheritUnlessChildSets),
    (
        "limits.retry_budget_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    (
        "limits.spawn_ready_timeout_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    ("limits.watchdog_ms", InheritPolicy::InheritUnlessChildSets),
    (
        "limits.max_response_bytes",
        InheritPolicy::InheritUnlessChildSets,
    ),
    (
        "limits.max_response_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    (
        "limits.shutdown_grace_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
    ("model.api_key_env", InheritPolicy::ModelGroup),
    ("model.auth", InheritPolicy::ModelGroup),
    ("model.base_url", InheritPolicy::ModelGroup),
    ("model.cassette", InheritPolicy::ModelGroup),
    ("model.max_output_tokens", InheritPolicy::ModelGroup),
    ("model.model", InheritPolicy::ModelGroup),
    ("model.scheme", InheritPolicy::ModelGroup),
    ("model.temperature", InheritPolicy::ModelGroup),
    ("scope.allow", InheritPolicy::NarrowOnly),
    ("scope.deny", InheritPolicy::NarrowOnly),
    ("session.record_event_trace", InheritPolicy::Sticky),
    ("session.trace_max_frame_bytes", InheritPolicy::Sticky),
    ("session.trace_queue_capacity", InheritPolicy::Sticky),
    ("session.trace_raw_sse", InheritPolicy::Sticky),
    ("spawn.allowed_profiles", InheritPolicy::ChildOnly),
    ("spawn.max_children", InheritPolicy::CappedByParent),
    ("spawn.max_depth", InheritPolicy::Decrement),
];

/// The inheritance policy of `key`, from [`POLICIES`].
pub fn policy(key: &str) -> Option<InheritPolicy> {
    POLICIES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, policy)| *policy)
}

/// Whether a spawn request may set `key` explicitly.
pub fn request_may_override(key: &str) -> bool {
    key.starts_with("session.") || matches!(key, "agent.max_turns" | "agent.instructions")
}

/// Materialize the manifest of a child spawned with `child_profile` by a parent running with
/// `parent`. `env` is the environment layer of the child's own resolution (see
/// [`Overrides::env`]).
pub fn materialize_child(
    catalog: &Catalog,
    parent: &ResolvedManifest,
    parent_pod_id: &str,
    child_profile: &str,
    request: &SpawnRequest,
    env: &[(String, String)],
) -> Result<ResolvedManifest, ProfileError> {
    let parent_spawn = &parent.manifest.spawn;
    if parent_spawn.max_depth == 0 {
        return Err(ProfileError::SpawnDepthExhausted {
            source_detail: detail_of(parent, "spawn.max_depth"),
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
    let child = catalog.resolve_with_history(
        child_profile,
        &Overrides {
            sets: Vec::new(),
            env: env.to_vec(),
            model: None,
        },
    )?;
    let parent_leaves = schema::flatten(&parent.manifest).map_err(ProfileError::Render)?;
    let child_leaves = schema::flatten(&child.resolved.manifest).map_err(ProfileError::Render)?;
    let chain_sets = |key: &str| chain_sets(&child, key);
    let inherited = |key: &str| Provenance {
        kind: SourceKind::Parent,
        detail: format!("inherited from parent {parent_pod_id}"),
        from: Some(Box::new(
            parent
                .provenance
                .get(key)
                .cloned()
                .unwrap_or_else(resolve::unknown_source),
        )),
    };
    let child_names_model = chain_sets("model.model") || chain_sets("model.scheme");

    let mut leaves = Leaves::new();
    let mut provenance = ProvenanceMap::new();
    let take_child = |key: &str, leaves: &mut Leaves, provenance: &mut ProvenanceMap| {
        if let Some(v) = child_leaves.get(key) {
            leaves.insert(key.to_owned(), v.clone());
        }
        let p = child.resolved.provenance.get(key).cloned();
        provenance.insert(key.to_owned(), p.unwrap_or_else(resolve::unset_default));
    };
    let take_parent = |key: &str, leaves: &mut Leaves, provenance: &mut ProvenanceMap| {
        if let Some(v) = parent_leaves.get(key) {
            leaves.insert(key.to_owned(), v.clone());
        }
        provenance.insert(key.to_owned(), inherited(key));
    };

    for key in schema::leaf_keys() {
        let Some(rule) = policy(&key) else {
            return Err(ProfileError::OverrideNotAllowed {
                key,
                reason: "the key has no inheritance policy".to_owned(),
            });
        };
        match rule {
            InheritPolicy::Sticky | InheritPolicy::InheritUnlessChildSets => {
                if chain_sets(&key) {
                    take_child(&key, &mut leaves, &mut provenance);
                } else {
                    take_parent(&key, &mut leaves, &mut provenance);
                }
            }
            InheritPolicy::ModelGroup => {
                if child_names_model {
                    take_child(&key, &mut leaves, &mut provenance);
                } else {
                    take_parent(&key, &mut leaves, &mut provenance);
                }
            }
            InheritPolicy::ChildOnly => take_child(&key, &mut leaves, &mut provenance),
            InheritPolicy::NarrowOnly => take_parent(&key, &mut leaves, &mut provenance),
            InheritPolicy::Decrement => {
                let allowed = parent_leaves
                    .get(&key)
                    .and_then(toml::Value::as_integer)
                    .unwrap_or(0)
                    .saturating_sub(1);
                let own = child_leaves.get(&key).and_then(toml::Value::as_integer);
                match own {
                    Some(own) if chain_sets(&key) && own < allowed => {
                        take_child(&key, &mut leaves, &mut provenance);
                    }
                    _ => {
                        leaves.insert(key.clone(), toml::Value::Integer(allowed));
                        let mut p = inherited(&key);
                        p.detail = format!("{}, decremented to {allowed}", p.detail);
                        provenance.insert(key.clone(), p);
                    }
                }
            }
            InheritPolicy::CappedByParent => {
                let cap = parent_leaves.get(&key).and_then(toml::Value::as_integer);
                let own = child_leaves.get(&key).and_then(toml::Value::as_integer);
                match (own, cap) {
                    (Some(own), Some(cap)) if own > cap => {
                        leaves.insert(key.clone(), toml::Value::Integer(cap));
                        let mut p = inherited(&key);
                        p.detail = format!("{}, capping the child's {own}", p.detail);
                        provenance.insert(key.clone(), p);
                    }
                    _ => take_child(&key, &mut leaves, &mut provenance),
                }
            }
        }
    }

    // Scope narrows in two steps, each within what the step before allowed: the child profile's
    // own `[scope]` (when its chain sets one), then the spawn request's.
    let profile_allow = chain_sets("scope.allow");
    let profile_deny = chain_sets("scope.deny");
    if profile_allow || profile_deny {
        let own = &child.resolved.manifest.scope;
        let asked = ScopeRequest {
            allow: profile_allow.then(|| own.allow.clone()),
            deny: if profile_deny {
                own.deny.clone()
            } else {
                Vec::new()
            },
        };
        let from_profile = |key: &str| {
            child
                .resolved
                .provenance
                .get(key)
                .cloned()
                .unwrap_or_else(resolve::unknown_source)
        };
        narrow_scope(
            &parent.manifest.scope,
            &asked,
            &format!("child profile `{child_profile}`"),
            &from_profile,
            &mut leaves,
            &mut provenance,
        )?;
    }
    if let Some(scope) = &request.scope {
        let current = schema::to_manifest(&leaves)
            .map(|m| m.scope)
            .unwrap_or_else(|_| parent.manifest.scope.clone());
        let from_request = |key: &str| Provenance {
            kind: SourceKind::SpawnRequest,
            detail: format!("spawn request from parent {parent_pod_id}: {key} (narrowed)"),
            from: None,
        };
        narrow_scope(
            &current,
            scope,
            "the spawn request",
            &from_request,
            &mut leaves,
            &mut provenance,
        )?;
    }

    let known = schema::leaf_keys();
    for (key, json) in &request.overrides {
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
        leaves.insert(key.clone(), value);
        provenance.insert(
            key.clone(),
            Provenance {
                kind: SourceKind::SpawnRequest,
                detail: format!("spawn request from parent {parent_pod_id}: {key}"),
                from: None,
            },
        );
    }

    let manifest = schema::to_manifest(&leaves).map_err(|err| ProfileError::Type {
        file: format!("child manifest of `{child_profile}`"),
        line: None,
        key: String::new(),
        message: err.message().to_owned(),
    })?;
    let resolved = ResolvedManifest {
        manifest,
        provenance,
    };
    resolve::validate(&resolved)?;
    Ok(resolved)
}

/// Whether the child's profile chain (builtin or profile files, not defaults, config files or
/// env) sets `key`.
fn chain_sets(child: &Resolution, key: &str) -> bool {
    child.history.get(key).is_some_and(|values| {
        values
            .iter()
            .any(|v| matches!(v.provenance.kind, SourceKind::Builtin | SourceKind::Profile))
    })
}

fn detail_of(resolved: &ResolvedManifest, key: &str) -> String {
    resolved
        .provenance
        .get(key)
        .map(|p| p.detail.clone())
        .unwrap_or_else(|| "compiled default".to_owned())
}

/// Apply a requested scope: every allowed path must lie inside the parent's scope; the parent's
/// deny list always stays.
fn narrow_scope(
    current: &ScopeSection,
    requested: &ScopeRequest,
    asked_by: &str,
    source: &dyn Fn(&str) -> Provenance,
    leaves: &mut Leaves,
    provenance: &mut ProvenanceMap,
) -> Result<(), ProfileError> {
    let allow = requested.allow.as_deref().unwrap_or_default();
    for path in allow {
        let wanted = normalize(path)?;
        let mut inside = false;
        for allow in &current.allow {
            if within(&wanted, &normalize(allow)?) {
                inside = true;
            }
        }
        if !inside {
            return Err(ProfileError::ScopeWidened {
                path: path.clone(),
                reason: format!(
                    "asked by {asked_by}, not inside any of scope.allow [{}]",
                    current.allow.join(", ")
                ),
            });
        }
        for deny in &current.deny {
            if within(&wanted, &normalize(deny)?) {
                return Err(ProfileError::ScopeWidened {
                    path: path.clone(),
                    reason: format!("asked by {asked_by}, inside scope.deny entry `{deny}`"),
                });
            }
        }
    }
    let mut deny = current.deny.clone();
    for extra in &requested.deny {
        if !deny.contains(extra) {
            deny.push(extra.clone());
        }
    }
    if let Some(allow) = &requested.allow {
        leaves.insert(
            "scope.allow".to_owned(),
            toml::Value::Array(allow.iter().cloned().map(toml::Value::String).collect()),
        );
        provenance.insert("scope.allow".to_owned(), source("scope.allow"));
    }
    if deny != current.deny {
        leaves.insert(
            "scope.deny".to_owned(),
            toml::Value::Array(deny.into_iter().map(toml::Value::String).collect()),
        );
        provenance.insert("scope.deny".to_owned(), source("scope.deny"));
    }
    Ok(())
}

/// Whether `path` is `base` or below it. An absolute and a relative path are never inside one
/// another (relative paths are relative to the pod's working directory, unknown here).
fn within(path: &Path, base: &Path) -> bool {
    path.is_absolute() == base.is_absolute() && path.starts_with(base)
}

/// Lexically normalize a scope path (`.` dropped, `..` applied); a relative path that climbs
/// above the working directory is refused.
fn normalize(path: &str) -> Result<PathBuf, ProfileError> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() && Path::new(path).is_absolute() {
                    return Err(ProfileError::ScopeWidened {
                        path: path.to_owned(),
                        reason: "climbs above the directory it starts from".to_owned(),
                    });
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}
