//! Layers: the values one source sets (a config or profile file, the environment, `--set`,
//! options of their own), each with the provenance of every key it sets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ProfileError;
use crate::manifest::{Provenance, SourceKind};
use crate::schema::{self, Leaves};

/// One layer of configuration.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    pub(super) kind: SourceKind,
    /// Names the layer in figment metadata and errors (a file path, "environment", "--set").
    pub(super) label: String,
    pub(super) path: Option<PathBuf>,
    pub(super) leaves: Leaves,
    /// Provenance detail per key.
    pub(super) details: BTreeMap<String, String>,
    /// For files: the line each key is set on, where a plain scan finds it.
    pub(super) lines: BTreeMap<String, usize>,
}

impl Layer {
    pub(super) fn provenance(&self, key: &str) -> Provenance {
        Provenance {
            kind: self.kind,
            detail: self
                .details
                .get(key)
                .cloned()
                .unwrap_or_else(|| format!("{}: {key}", self.label)),
            from: None,
        }
    }
}

/// Parse one TOML file into a layer, rejecting unknown keys. Returns the `extends` name too
/// when `profile` is set (profiles may have `extends` and `description`; config files may not).
pub(super) fn parse_file(
    text: &str,
    label: &str,
    kind: SourceKind,
    base_dir: Option<&Path>,
    profile: bool,
) -> Result<(Layer, Option<String>), ProfileError> {
    let table: toml::Table = toml::from_str(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((0, 0));
        ProfileError::Syntax {
            file: label.to_owned(),
            line,
            column,
            message: err.message().to_owned(),
        }
    })?;
    let known = schema::leaf_keys();
    let mut top_known = schema::sections();
    if profile {
        top_known.extend(["extends".to_owned(), "description".to_owned()]);
    }
    let mut leaves = Leaves::new();
    let mut details = BTreeMap::new();
    let mut lines = BTreeMap::new();
    let mut extends = None;
    for (top, value) in table {
        if profile && (top == "extends" || top == "description") {
            let Some(text) = value.as_str() else {
                return Err(ProfileError::Type {
                    file: label.to_owned(),
                    line: key_line(text, None, &top),
                    key: top,
                    message: format!("expected a string, found {}", value.type_str()),
                });
            };
            if top == "extends" {
                extends = Some(text.to_owned());
            }
            continue;
        }
        if !top_known.contains(&top) {
            let mut candidates = top_known.clone();
            candidates.extend(known.iter().cloned());
            return Err(ProfileError::UnknownKey {
                file: label.to_owned(),
                line: key_line(text, None, &top),
                suggestion: schema::suggest(&top, &candidates),
                key: top,
            });
        }
        let toml::Value::Table(keys) = value else {
            return Err(ProfileError::Type {
                file: label.to_owned(),
                line: key_line(text, None, &top),
                message: format!("expected a table [{top}], found {}", value.type_str()),
                key: top,
            });
        };
        for (key, value) in keys {
            let dotted = format!("{top}.{key}");
            if !known.contains(&dotted) {
                return Err(ProfileError::UnknownKey {
                    file: label.to_owned(),
                    line: key_line(text, Some(&top), &key),
                    suggestion: schema::suggest(&dotted, &known),
                    key: dotted,
                });
            }
            let value = resolve_relative(&dotted, value, base_dir);
            // `file:line: key` (the line when the key is written in a way the scan finds).
            match key_line(text, Some(&top), &key) {
                Some(line) => {
                    details.insert(dotted.clone(), format!("{label}:{line}: {dotted}"));
                    lines.insert(dotted.clone(), line);
                }
                None => {
                    details.insert(dotted.clone(), format!("{label}: {dotted}"));
                }
            }
            leaves.insert(dotted, value);
        }
    }
    Ok((
        Layer {
            kind,
            label: label.to_owned(),
            path: Some(PathBuf::from(label)),
            leaves,
            details,
            lines,
        },
        extends,
    ))
}

/// `model.cassette` relative paths resolve against the directory of the file that set them;
/// `builtin:NAME` stays as it is.
fn resolve_relative(key: &str, value: toml::Value, base_dir: Option<&Path>) -> toml::Value {
    if key != "model.cassette" {
        return value;
    }
    match (&value, base_dir) {
        (toml::Value::String(path), Some(base))
            if !path.starts_with("builtin:") && Path::new(path).is_relative() =>
        {
            toml::Value::String(base.join(path).display().to_string())
        }
        _ => value,
    }
}

/// The line (1-based) a key is set on: `key = …` under `[section]`, `section.key = …` at the
/// top, or the `[key]` header / `key = …` for a top-level key. A plain scan, enough for the
/// profile files people write; `None` when the key is written some other way.
fn key_line(text: &str, section: Option<&str>, key: &str) -> Option<usize> {
    let mut current: Option<&str> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.split(']').next().unwrap_or("").trim();
            if section.is_none() && name == key {
                return Some(index + 1);
            }
            current = Some(name);
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs: String = lhs
            .split('.')
            .map(|part| part.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join(".");
        let found = match (section, current) {
            (Some(section), Some(current)) => current == section && lhs == key,
            (Some(section), None) => lhs == format!("{section}.{key}"),
            (None, None) => lhs == key,
            (None, Some(_)) => false,
        };
        if found {
            return Some(index + 1);
        }
    }
    None
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Check a dotted key against the schema.
fn known_key(key: &str, what: &'static str, text: &str) -> Result<(), ProfileError> {
    let known = schema::leaf_keys();
    if known.iter().any(|k| k == key) {
        return Ok(());
    }
    Err(ProfileError::UnknownKey {
        file: format!("{what} `{text}`"),
        line: None,
        key: key.to_owned(),
        suggestion: schema::suggest(key, &known),
    })
}

/// `PODS_SECTION__KEY` variables as a layer.
pub(super) fn env_layer(env: &[(String, String)]) -> Result<Layer, ProfileError> {
    let mut leaves = Leaves::new();
    let mut details = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("PODS_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let dotted = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
        known_key(&dotted, "environment variable", name)?;
        leaves.insert(dotted.clone(), schema::parse_value(value));
        details.insert(dotted, name.clone());
    }
    Ok(Layer {
        kind: SourceKind::Env,
        label: "environment".to_owned(),
        path: None,
        leaves,
        details,
        lines: BTreeMap::new(),
    })
}

/// `--set section.key=value` texts as a layer.
pub(super) fn set_layer(sets: &[String]) -> Result<Layer, ProfileError> {
    let mut leaves = Leaves::new();
    let mut details = BTreeMap::new();
    for text in sets {
        let Some((key, value)) = text.split_once('=') else {
            return Err(ProfileError::BadAssignment {
                what: "--set",
                text: text.clone(),
                message: "expected `section.key=value`".to_owned(),
            });
        };
        let key = key.trim();
        known_key(key, "--set", text)?;
        leaves.insert(key.to_owned(), schema::parse_value(value));
        details.insert(key.to_owned(), format!("--set {text}"));
    }
    Ok(Layer {
        kind: SourceKind::Cli,
        label: "--set".to_owned(),
        path: None,
        leaves,
        details,
        lines: BTreeMap::new(),
    })
}

/// The keys the command line sets through options of their own (`-m/--model`) as a layer.
pub(super) fn command_line_layer(model: Option<&str>) -> Layer {
    let mut leaves = Leaves::new();
    let mut details = BTreeMap::new();
    if let Some(model) = model {
        leaves.insert(
            "model.model".to_owned(),
            toml::Value::String(model.to_owned()),
        );
        details.insert("model.model".to_owned(), format!("--model {model}"));
    }
    Layer {
        kind: SourceKind::CommandLine,
        label: "command line".to_owned(),
        path: None,
        leaves,
        details,
        lines: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_line_finds_keys_in_tables_dotted_and_at_the_top() {
        let text = "extends = \"x\"\nsession.trace_raw_sse = true\n\n[agent] # comment\nmax_turns = 3\n\"tools\" = []\n[session]\nrecord_event_trace = true\n";
        assert_eq!(key_line(text, None, "extends"), Some(1));
        assert_eq!(key_line(text, Some("session"), "trace_raw_sse"), Some(2));
        assert_eq!(key_line(text, None, "agent"), Some(4));
        assert_eq!(key_line(text, Some("agent"), "max_turns"), Some(5));
        assert_eq!(key_line(text, Some("agent"), "tools"), Some(6));
        assert_eq!(
            key_line(text, Some("session"), "record_event_trace"),
            Some(8)
        );
        assert_eq!(key_line(text, Some("agent"), "record_event_trace"), None);
    }
}
