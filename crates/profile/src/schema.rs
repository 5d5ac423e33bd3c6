//! The manifest's leaf keys, and conversion between a [`Manifest`] and a flat map of
//! `section.key` → TOML value (the shape layers, provenance and policies work in).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::manifest::{
    AgentSection, LimitsSection, Manifest, ModelSection, Scheme, ScopeSection, SessionSection,
    SpawnSection,
};

/// Leaf values by dotted key (`session.record_event_trace`).
pub type Leaves = BTreeMap<String, toml::Value>;

/// A manifest with every optional field set. The struct literals are exhaustive on purpose: a
/// field added to the manifest does not compile here until it is listed, which puts it in
/// [`leaf_keys`] (so it is a known key) and in front of the inheritance-policy test.
fn full_example() -> Manifest {
    Manifest {
        model: ModelSection {
            scheme: Scheme::Replay,
            model: String::new(),
            base_url: Some(String::new()),
            api_key_env: Some(String::new()),
            temperature: Some(0.0),
            max_output_tokens: Some(0),
            cassette: Some(String::new()),
        },
        agent: AgentSection {
            instructions: String::new(),
            max_turns: 0,
            tools: Vec::new(),
        },
        scope: ScopeSection {
            allow: Vec::new(),
            deny: Vec::new(),
        },
        session: SessionSection {
            record_event_trace: false,
            trace_raw_sse: false,
            trace_max_frame_bytes: 0,
            trace_queue_capacity: 0,
        },
        spawn: SpawnSection {
            allowed_profiles: Vec::new(),
            max_depth: 0,
            max_children: 0,
        },
        limits: LimitsSection {
            first_event_timeout_ms: 0,
            idle_timeout_ms: 0,
            max_attempts: 0,
            retry_budget_ms: 0,
            spawn_ready_timeout_ms: 0,
            watchdog_ms: 0,
        },
    }
}

/// Every leaf key of the manifest schema, sorted.
pub fn leaf_keys() -> Vec<String> {
    flatten(&full_example())
        .map(|l| l.into_keys().collect())
        .unwrap_or_default()
}

/// The section names of the manifest.
pub fn sections() -> Vec<String> {
    let mut out: Vec<String> = leaf_keys()
        .iter()
        .filter_map(|k| k.split_once('.').map(|(s, _)| s.to_owned()))
        .collect();
    out.dedup();
    out
}

/// The closest known key to `key`, for "did you mean".
pub fn suggest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// The manifest as leaves; unset optional keys are absent.
pub fn flatten(manifest: &Manifest) -> Result<Leaves, toml::ser::Error> {
    let value = toml::Value::try_from(manifest)?;
    let mut out = Leaves::new();
    if let toml::Value::Table(sections) = value {
        for (section, body) in sections {
            if let toml::Value::Table(keys) = body {
                for (key, value) in keys {
                    out.insert(format!("{section}.{key}"), value);
                }
            }
        }
    }
    Ok(out)
}

/// Leaves back into nested tables (`{section: {key: value}}`).
pub fn unflatten(leaves: &Leaves) -> toml::Table {
    let mut root = toml::Table::new();
    for (dotted, value) in leaves {
        let (section, key) = dotted.split_once('.').unwrap_or((dotted.as_str(), ""));
        let entry = root
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(table) = entry {
            table.insert(key.to_owned(), value.clone());
        }
    }
    root
}

/// Leaves into a manifest (unset keys take their defaults).
pub fn to_manifest(leaves: &Leaves) -> Result<Manifest, toml::de::Error> {
    Manifest::deserialize(toml::Value::Table(unflatten(leaves)))
}

/// Parse a command-line or environment value as TOML; a bare word is a string.
pub fn parse_value(text: &str) -> toml::Value {
    let trimmed = text.trim();
    match toml::from_str::<toml::Table>(&format!("v = {trimmed}")) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_owned())),
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

/// A JSON value (from a spawn request) as TOML.
pub fn json_to_toml(value: &serde_json::Value) -> Option<toml::Value> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            toml::Value::Array(items.iter().filter_map(json_to_toml).collect())
        }
        serde_json::Value::Object(map) => toml::Value::Table(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_toml(v)?)))
                .collect(),
        ),
    })
}

/// A short rendering of a value for people (`true`, `3`, `"text"`, `["a", "b"]`).
pub fn render_value(value: &toml::Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_keys_cover_optional_fields_and_every_section() {
        let keys = leaf_keys();
        assert!(keys.contains(&"model.cassette".to_owned()));
        assert!(keys.contains(&"session.record_event_trace".to_owned()));
        assert!(keys.contains(&"limits.spawn_ready_timeout_ms".to_owned()));
        assert_eq!(
            sections(),
            ["agent", "limits", "model", "scope", "session", "spawn"]
        );
    }

    #[test]
    fn flatten_round_trips() {
        let manifest = Manifest::default();
        let leaves = flatten(&manifest).unwrap();
        assert!(
            !leaves.contains_key("model.cassette"),
            "unset optional is absent"
        );
        assert_eq!(to_manifest(&leaves).unwrap(), manifest);
    }

    #[test]
    fn values_parse_as_toml_and_bare_words_as_strings() {
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(parse_value("12"), toml::Value::Integer(12));
        assert_eq!(parse_value("gpt-5"), toml::Value::String("gpt-5".into()));
        assert_eq!(
            parse_value("[\"a\", \"b\"]"),
            toml::Value::Array(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn suggestion_finds_near_miss() {
        let keys = leaf_keys();
        assert_eq!(
            suggest("session.record_event_trac", &keys).as_deref(),
            Some("session.record_event_trace")
        );
        assert_eq!(suggest("zzz", &keys), None);
    }
}
