//! The manifest's leaf keys, and conversion between a [`Manifest`] and a flat map of
//! `section.key` → TOML value (the shape layers, provenance and policies work in).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::manifest::{
    AgentSection, LimitsSection, Manifest, McpSection, ModelSection, PermissionsSection,
    ScopeSection, SessionSection, SpawnSection, TelemetrySection,
};

/// Leaf values by dotted key (`session.record_event_trace`).
pub type Leaves = BTreeMap<String, toml::Value>;

/// Every leaf key of the manifest schema, sorted: the field names serde's derive declares for
/// [`Manifest`] and for each section type, so a field added to any section is a known key (and
/// faces the inheritance-policy test) without being listed anywhere by hand.
pub fn leaf_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for &section in field_names::<Manifest>() {
        let fields = match section {
            "model" => field_names::<ModelSection>(),
            "agent" => field_names::<AgentSection>(),
            "scope" => field_names::<ScopeSection>(),
            "session" => field_names::<SessionSection>(),
            "spawn" => field_names::<SpawnSection>(),
            "limits" => field_names::<LimitsSection>(),
            "permissions" => field_names::<PermissionsSection>(),
            "mcp" => field_names::<McpSection>(),
            "telemetry" => field_names::<TelemetrySection>(),
            // A section without a type here has no keys; `every_section_has_leaf_keys` fails.
            _ => &[],
        };
        keys.extend(fields.iter().map(|field| format!("{section}.{field}")));
    }
    keys.sort();
    keys
}

/// The field names a derived `Deserialize` struct asks for, read by a deserializer that records
/// the `fields` list serde passes to `deserialize_struct` and then stops.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The recorder always ends in an error once it has the names; that error is expected.
    let _ = T::deserialize(FieldRecorder {
        fields: &mut fields,
    });
    fields
}

struct FieldRecorder<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> serde::Deserializer<'de> for FieldRecorder<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(serde::de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
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
    fn leaf_keys_cover_optional_fields() {
        let keys = leaf_keys();
        assert!(keys.contains(&"model.cassette".to_owned()));
        assert!(keys.contains(&"session.record_event_trace".to_owned()));
        assert!(keys.contains(&"limits.spawn_ready_timeout_ms".to_owned()));
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
