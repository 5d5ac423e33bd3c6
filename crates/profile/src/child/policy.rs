//! The inheritance policy of every manifest key, and how each kind of policy decides a key of a
//! child's manifest from its parent's and its own profile's.

use serde::Serialize;

use crate::error::ProfileError;
use crate::manifest::{Provenance, ResolvedManifest, SourceKind};
use crate::resolve::{self, Resolution};
use crate::schema::{self, Leaves};

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
    /// The stricter of the parent's value and the child profile chain's: a permission
    /// (`allow` < `ask` < `deny`, per tool for a table of them) or a switch that grants
    /// something when `true`. A child is never more permissive than its parent.
    Strictest,
}

/// The inheritance policy of every leaf key, one row per key. A key without a row has no
/// policy, which the test `every_leaf_key_has_a_policy` turns into a failure.
pub const POLICIES: &[(&str, InheritPolicy)] = &[
    ("agent.instructions", InheritPolicy::ChildOnly),
    ("agent.max_turns", InheritPolicy::ChildOnly),
    ("agent.shell_network", InheritPolicy::Strictest),
    (
        "agent.shell_output_bytes",
        InheritPolicy::InheritUnlessChildSets,
    ),
    (
        "agent.shell_timeout_ms",
        InheritPolicy::InheritUnlessChildSets,
    ),
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
    // MCP servers are the parent's unless the child profile declares its own set.
    ("mcp.servers", InheritPolicy::InheritUnlessChildSets),
    ("model.api_key_env", InheritPolicy::ModelGroup),
    ("model.auth", InheritPolicy::ModelGroup),
    ("model.base_url", InheritPolicy::ModelGroup),
    ("model.cassette", InheritPolicy::ModelGroup),
    ("model.max_output_tokens", InheritPolicy::ModelGroup),
    ("model.model", InheritPolicy::ModelGroup),
    ("model.scheme", InheritPolicy::ModelGroup),
    ("model.temperature", InheritPolicy::ModelGroup),
    ("permissions.local_write", InheritPolicy::Strictest),
    ("permissions.network", InheritPolicy::Strictest),
    ("permissions.process", InheritPolicy::Strictest),
    ("permissions.read_only", InheritPolicy::Strictest),
    ("permissions.spawn", InheritPolicy::Strictest),
    ("permissions.tools", InheritPolicy::Strictest),
    ("permissions.unknown", InheritPolicy::Strictest),
    ("scope.allow", InheritPolicy::NarrowOnly),
    ("scope.deny", InheritPolicy::NarrowOnly),
    ("session.record_event_trace", InheritPolicy::Sticky),
    ("session.trace_max_frame_bytes", InheritPolicy::Sticky),
    ("session.trace_queue_capacity", InheritPolicy::Sticky),
    ("session.trace_raw_sse", InheritPolicy::Sticky),
    ("spawn.allowed_profiles", InheritPolicy::ChildOnly),
    ("spawn.max_children", InheritPolicy::CappedByParent),
    ("spawn.max_depth", InheritPolicy::Decrement),
    // A tree reports to one place, with the same headers, whatever its children's profiles say.
    ("telemetry.capture_content", InheritPolicy::Sticky),
    ("telemetry.headers_env", InheritPolicy::Sticky),
    ("telemetry.otlp_endpoint", InheritPolicy::Sticky),
    ("telemetry.protocol", InheritPolicy::Sticky),
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

/// One key of the child's manifest as a policy decided it.
pub(super) struct Decision {
    /// `None`: the key stays unset.
    pub(super) value: Option<toml::Value>,
    pub(super) provenance: Provenance,
}

impl InheritPolicy {
    /// Decide `key` of the child's manifest under this policy.
    pub(super) fn decide(self, from: &Sources<'_>, key: &str) -> Decision {
        match self {
            InheritPolicy::Sticky | InheritPolicy::InheritUnlessChildSets => sticky(from, key),
            InheritPolicy::ModelGroup => model_group(from, key),
            InheritPolicy::ChildOnly => from.child_value(key),
            // The narrowing itself follows the per-key pass: it works on whole lists.
            InheritPolicy::NarrowOnly => from.parent_value(key),
            InheritPolicy::Decrement => decrement(from, key),
            InheritPolicy::CappedByParent => capped_by_parent(from, key),
            InheritPolicy::Strictest => strictest(from, key),
        }
    }
}

/// [`InheritPolicy::Strictest`]: the parent's value, or the child chain's where that is
/// stricter. When both are as strict, the parent's provenance stands.
fn strictest(from: &Sources<'_>, key: &str) -> Decision {
    let parent = from.parent_value(key);
    if !from.chain_sets(key) {
        return parent;
    }
    let child = from.child_value(key);
    let (Some(theirs), Some(own)) = (&parent.value, &child.value) else {
        return parent;
    };
    let merged = stricter(theirs, own);
    if &merged == theirs && theirs != own {
        // The child profile asked for more than the parent has: say so where it is refused.
        let mut parent = parent;
        parent.provenance.detail = format!(
            "{}; the child profile's {own} would widen it",
            parent.provenance.detail
        );
        parent
    } else if &merged == theirs {
        parent
    } else if &merged == own {
        child
    } else {
        // A table of per-tool permissions that takes entries from both.
        let mut provenance = child.provenance;
        provenance.detail = format!(
            "{}, merged with the parent {}'s entries (the stricter of each)",
            provenance.detail, from.parent_pod_id
        );
        Decision {
            value: Some(merged),
            provenance,
        }
    }
}

/// The stricter of two values of a [`InheritPolicy::Strictest`] key.
fn stricter(parent: &toml::Value, child: &toml::Value) -> toml::Value {
    use toml::Value;
    match (parent, child) {
        (Value::Boolean(a), Value::Boolean(b)) => Value::Boolean(*a && *b),
        (Value::String(a), Value::String(b)) => {
            let rank = |p: &str| ["allow", "ask", "deny"].iter().position(|r| *r == p);
            match (rank(a), rank(b)) {
                (Some(x), Some(y)) if y > x => child.clone(),
                _ => parent.clone(),
            }
        }
        (Value::Table(a), Value::Table(b)) => {
            let mut merged = a.clone();
            for (tool, own) in b {
                let value = match a.get(tool) {
                    Some(theirs) => stricter(theirs, own),
                    None => own.clone(),
                };
                merged.insert(tool.clone(), value);
            }
            Value::Table(merged)
        }
        _ => parent.clone(),
    }
}

/// [`InheritPolicy::Sticky`] and [`InheritPolicy::InheritUnlessChildSets`]: the child's value
/// when its profile chain sets the key, else the parent's.
fn sticky(from: &Sources<'_>, key: &str) -> Decision {
    if from.chain_sets(key) {
        from.child_value(key)
    } else {
        from.parent_value(key)
    }
}

/// [`InheritPolicy::ModelGroup`]: the child's value when its profile chain names a model or a
/// scheme, else the parent's, the same way for every `model.*` key.
fn model_group(from: &Sources<'_>, key: &str) -> Decision {
    if from.chain_sets("model.model") || from.chain_sets("model.scheme") {
        from.child_value(key)
    } else {
        from.parent_value(key)
    }
}

/// [`InheritPolicy::Decrement`]: the parent's value minus one, or the child profile's own when
/// its chain sets a lower one.
fn decrement(from: &Sources<'_>, key: &str) -> Decision {
    let allowed = from.parent_integer(key).unwrap_or(0).saturating_sub(1);
    match from.child_integer(key) {
        Some(own) if from.chain_sets(key) && own < allowed => from.child_value(key),
        _ => from.parent_adjusted(key, allowed, &format!("decremented to {allowed}")),
    }
}

/// [`InheritPolicy::CappedByParent`]: the child's value, or the parent's when the child's is
/// higher.
fn capped_by_parent(from: &Sources<'_>, key: &str) -> Decision {
    match (from.child_integer(key), from.parent_integer(key)) {
        (Some(own), Some(cap)) if own > cap => {
            from.parent_adjusted(key, cap, &format!("capping the child's {own}"))
        }
        _ => from.child_value(key),
    }
}

/// What the policies decide from: the parent's manifest and the child profile's own resolution
/// (with the history of every layer that set each key), both also as flat leaves.
pub(super) struct Sources<'a> {
    pub(super) parent: &'a ResolvedManifest,
    pub(super) parent_pod_id: &'a str,
    parent_leaves: Leaves,
    pub(super) child: Resolution,
    child_leaves: Leaves,
}

impl<'a> Sources<'a> {
    pub(super) fn new(
        parent: &'a ResolvedManifest,
        parent_pod_id: &'a str,
        child: Resolution,
    ) -> Result<Sources<'a>, ProfileError> {
        let parent_leaves = schema::flatten(&parent.manifest).map_err(ProfileError::Render)?;
        let child_leaves =
            schema::flatten(&child.resolved.manifest).map_err(ProfileError::Render)?;
        Ok(Sources {
            parent,
            parent_pod_id,
            parent_leaves,
            child,
            child_leaves,
        })
    }

    /// Whether the child's profile chain (builtin or profile files, not defaults, config files
    /// or env) sets `key`.
    pub(super) fn chain_sets(&self, key: &str) -> bool {
        self.child.history.get(key).is_some_and(|values| {
            values
                .iter()
                .any(|v| matches!(v.provenance.kind, SourceKind::Builtin | SourceKind::Profile))
        })
    }

    /// Where the child's own resolution took `key` from.
    pub(super) fn child_source(&self, key: &str) -> Provenance {
        self.child
            .resolved
            .provenance
            .get(key)
            .cloned()
            .unwrap_or_else(resolve::unknown_source)
    }

    /// The child's own value of `key`.
    fn child_value(&self, key: &str) -> Decision {
        Decision {
            value: self.child_leaves.get(key).cloned(),
            provenance: self
                .child
                .resolved
                .provenance
                .get(key)
                .cloned()
                .unwrap_or_else(resolve::unset_default),
        }
    }

    /// The parent's value of `key`.
    fn parent_value(&self, key: &str) -> Decision {
        Decision {
            value: self.parent_leaves.get(key).cloned(),
            provenance: self.inherited(key),
        }
    }

    /// `value` in place of the parent's value of `key`, the provenance saying why.
    fn parent_adjusted(&self, key: &str, value: i64, why: &str) -> Decision {
        let mut provenance = self.inherited(key);
        provenance.detail = format!("{}, {why}", provenance.detail);
        Decision {
            value: Some(toml::Value::Integer(value)),
            provenance,
        }
    }

    fn inherited(&self, key: &str) -> Provenance {
        Provenance {
            kind: SourceKind::Parent,
            detail: format!("inherited from parent {}", self.parent_pod_id),
            from: Some(Box::new(
                self.parent
                    .provenance
                    .get(key)
                    .cloned()
                    .unwrap_or_else(resolve::unknown_source),
            )),
        }
    }

    fn parent_integer(&self, key: &str) -> Option<i64> {
        self.parent_leaves
            .get(key)
            .and_then(toml::Value::as_integer)
    }

    fn child_integer(&self, key: &str) -> Option<i64> {
        self.child_leaves.get(key).and_then(toml::Value::as_integer)
    }
}
