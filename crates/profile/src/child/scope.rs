//! Scope narrowing: a child's `scope.allow` and `scope.deny` start as its parent's and may only
//! narrow, first by the child profile's own `[scope]`, then by the spawn request.

use std::path::{Component, Path, PathBuf};

use super::policy::Sources;
use super::{Draft, ScopeRequest};
use crate::error::ProfileError;
use crate::manifest::{Provenance, ScopeSection, SourceKind};
use crate::schema;

/// Narrow the scope by the child profile's own `[scope]`, when its chain sets one.
pub(super) fn narrow_by_profile(
    from: &Sources<'_>,
    child_profile: &str,
    draft: &mut Draft,
) -> Result<(), ProfileError> {
    let profile_allow = from.chain_sets("scope.allow");
    let profile_deny = from.chain_sets("scope.deny");
    if !profile_allow && !profile_deny {
        return Ok(());
    }
    let own = &from.child.resolved.manifest.scope;
    let asked = ScopeRequest {
        allow: profile_allow.then(|| own.allow.clone()),
        deny: if profile_deny {
            own.deny.clone()
        } else {
            Vec::new()
        },
    };
    narrow_scope(
        &from.parent.manifest.scope,
        &asked,
        &format!("child profile `{child_profile}`"),
        &|key| from.child_source(key),
        draft,
    )
}

/// Narrow the scope (as the child profile left it) by the spawn request's.
pub(super) fn narrow_by_request(
    from: &Sources<'_>,
    requested: &ScopeRequest,
    draft: &mut Draft,
) -> Result<(), ProfileError> {
    let current = schema::to_manifest(&draft.leaves)
        .map(|m| m.scope)
        .unwrap_or_else(|_| from.parent.manifest.scope.clone());
    let from_request = |key: &str| Provenance {
        kind: SourceKind::SpawnRequest,
        detail: format!(
            "spawn request from parent {}: {key} (narrowed)",
            from.parent_pod_id
        ),
        from: None,
    };
    narrow_scope(
        &current,
        requested,
        "the spawn request",
        &from_request,
        draft,
    )
}

/// Apply a requested scope: every allowed path must lie inside the current scope; the current
/// deny list always stays.
fn narrow_scope(
    current: &ScopeSection,
    requested: &ScopeRequest,
    asked_by: &str,
    source: &dyn Fn(&str) -> Provenance,
    draft: &mut Draft,
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
        draft.set(
            "scope.allow",
            toml::Value::Array(allow.iter().cloned().map(toml::Value::String).collect()),
            source("scope.allow"),
        );
    }
    if deny != current.deny {
        draft.set(
            "scope.deny",
            toml::Value::Array(deny.into_iter().map(toml::Value::String).collect()),
            source("scope.deny"),
        );
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
