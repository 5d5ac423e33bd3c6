//! Layering: defaults < user config < project config < profile chain (base first) < env <
//! `--set` < options of their own (`-m/--model`), with per-leaf provenance and the history
//! `explain` shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

use crate::discovery::{Catalog, Origin, ProfileSource};
use crate::error::ProfileError;
use crate::manifest::{
    Auth, Manifest, Provenance, ProvenanceMap, ResolvedManifest, Scheme, SourceKind,
};
use crate::schema::{self, Leaves};

/// What the command line and the environment add on top of the files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `section.key=value` texts; the value is parsed as TOML, a bare word is a string.
    pub sets: Vec<String>,
    /// Environment variables, passed in explicitly. Only `PODS_SECTION__KEY` names (with a
    /// double underscore) are configuration; other `PODS_*` names such as `PODS_HOME` are
    /// reserved for other uses and ignored here.
    pub env: Vec<(String, String)>,
    /// `-m/--model`: `model.model` for this run, over every other layer (provenance
    /// `command_line`).
    pub model: Option<String>,
}

/// One layer's value of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerValue {
    pub value: toml::Value,
    pub provenance: Provenance,
}

/// A resolved manifest plus, per key, every layer that set it (lowest first; the last one won).
#[derive(Debug, Clone)]
pub struct Resolution {
    pub resolved: ResolvedManifest,
    pub history: BTreeMap<String, Vec<LayerValue>>,
}

/// The answer of `pods profile explain`: the value, its source, and what it overrode.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub key: String,
    pub value: Option<toml::Value>,
    pub provenance: Provenance,
    /// Layers that also set the key and lost, highest first.
    pub overridden: Vec<LayerValue>,
}

/// Explain one key of a resolution.
pub fn explain(resolution: &Resolution, key: &str) -> Result<Explanation, ProfileError> {
    let known = schema::leaf_keys();
    if !known.iter().any(|k| k == key) {
        return Err(ProfileError::UnknownExplainKey {
            key: key.to_owned(),
            suggestion: schema::suggest(key, &known),
        });
    }
    let leaves = schema::flatten(&resolution.resolved.manifest).map_err(ProfileError::Render)?;
    let provenance = resolution
        .resolved
        .provenance
        .get(key)
        .cloned()
        .unwrap_or_else(unknown_source);
    let mut overridden: Vec<LayerValue> = resolution.history.get(key).cloned().unwrap_or_default();
    overridden.pop();
    overridden.reverse();
    Ok(Explanation {
        key: key.to_owned(),
        value: leaves.get(key).cloned(),
        provenance,
        overridden,
    })
}

pub(crate) fn default_provenance() -> Provenance {
    Provenance {
        kind: SourceKind::Default,
        detail: "compiled default".to_owned(),
        from: None,
    }
}

pub(crate) fn unknown_source() -> Provenance {
    Provenance {
        kind: SourceKind::Unknown,
        detail: "source not recorded".to_owned(),
        from: None,
    }
}

pub(crate) fn unset_default() -> Provenance {
    Provenance {
        kind: SourceKind::Default,
        detail: "compiled default: unset".to_owned(),
        from: None,
    }
}

/// One layer of configuration.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) kind: SourceKind,
    /// Names the layer in figment metadata and errors (a file path, "environment", "--set").
    pub(crate) label: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) leaves: Leaves,
    /// Provenance detail per key.
    pub(crate) details: BTreeMap<String, String>,
    /// For files: the line each key is set on, where a plain scan finds it.
    pub(crate) lines: BTreeMap<String, usize>,
}

impl Layer {
    fn provenance(&self, key: &str) -> Provenance {
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

/// A layer handed to figment under its own metadata, so extraction errors name their source.
struct LayerProvider<'a>(&'a Layer);

impl Provider for LayerProvider<'_> {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.0.label.clone());
        match &self.0.path {
            Some(path) => metadata.source(figment::Source::File(path.clone())),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value = figment::value::Value::serialize(schema::unflatten(&self.0.leaves))?;
        let dict = value.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

impl Catalog {
    /// Resolve profile `name` through every layer.
    pub fn resolve(
        &self,
        name: &str,
        overrides: &Overrides,
    ) -> Result<ResolvedManifest, ProfileError> {
        Ok(self.resolve_with_history(name, overrides)?.resolved)
    }

    /// Resolve profile `name`, keeping every layer's value of every key (for `explain`).
    pub fn resolve_with_history(
        &self,
        name: &str,
        overrides: &Overrides,
    ) -> Result<Resolution, ProfileError> {
        let entry = self.require(name)?;
        let source = entry.source.clone();
        self.resolve_source(name, &source, overrides)
    }

    /// Resolve the profile in `path` (which may extend catalog profiles), e.g. for `validate`.
    pub fn resolve_file(
        &self,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Resolution, ProfileError> {
        let source = ProfileSource::from_file(path)?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("profile")
            .to_owned();
        self.resolve_source(&name, &source, overrides)
    }

    /// The profile layers of the chain starting at `name`, base first.
    pub(crate) fn chain_layers(
        &self,
        name: &str,
        root: &ProfileSource,
    ) -> Result<Vec<Layer>, ProfileError> {
        // Walk up the `extends` chain: (name, source, parsed layer, extends).
        let mut chain: Vec<(String, ProfileSource, Layer)> = Vec::new();
        let mut names: Vec<String> = vec![name.to_owned()];
        let mut current = root.clone();
        loop {
            let kind = match current.origin {
                Origin::Builtin => SourceKind::Builtin,
                _ => SourceKind::Profile,
            };
            let (layer, extends) = parse_file(
                current.text()?,
                &current.path.display().to_string(),
                kind,
                Some(&current.base_dir()),
                true,
            )?;
            let this_name = names.last().cloned().unwrap_or_default();
            chain.push((this_name.clone(), current.clone(), layer));
            let Some(parent) = extends else { break };
            // A profile that extends its own name extends the file it shadows (a user
            // `default.toml` with `extends = "default"` tweaks the builtin).
            let next = if parent == this_name {
                self.get(&parent).and_then(|entry| {
                    std::iter::once(&entry.source)
                        .chain(&entry.shadows)
                        .skip_while(|s| s.path != current.path)
                        .nth(1)
                        .cloned()
                })
            } else if names.contains(&parent) {
                None
            } else {
                match self.get(&parent) {
                    Some(entry) => Some(entry.source.clone()),
                    None => {
                        return Err(ProfileError::MissingParent {
                            missing: parent,
                            chain: names,
                        });
                    }
                }
            };
            names.push(parent);
            match next {
                Some(source) => current = source,
                None => return Err(ProfileError::ExtendsCycle { chain: names }),
            }
        }
        // Details: a value from a profile reached through `extends` says who extended it.
        let file_names: Vec<String> = chain
            .iter()
            .map(|(_, source, _)| {
                source
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let mut layers = Vec::new();
        for (index, (_, _, mut layer)) in chain.into_iter().enumerate() {
            if index > 0 {
                let via: Vec<String> = file_names[..index]
                    .iter()
                    .rev()
                    .map(|f| format!("extended by {f}"))
                    .collect();
                for detail in layer.details.values_mut() {
                    detail.push_str(&format!(" ({})", via.join(", ")));
                }
            }
            layers.push(layer);
        }
        layers.reverse();
        Ok(layers)
    }

    /// The user and project config layers.
    pub(crate) fn config_layers(&self) -> Result<Vec<Layer>, ProfileError> {
        self.configs
            .iter()
            .map(|config| {
                let base = config.path.parent().map(Path::to_path_buf);
                parse_file(
                    &config.text,
                    &config.path.display().to_string(),
                    config.kind,
                    base.as_deref(),
                    false,
                )
                .map(|(layer, _)| layer)
            })
            .collect()
    }

    fn resolve_source(
        &self,
        name: &str,
        source: &ProfileSource,
        overrides: &Overrides,
    ) -> Result<Resolution, ProfileError> {
        let mut layers = self.config_layers()?;
        layers.extend(self.chain_layers(name, source)?);
        layers.push(env_layer(&overrides.env)?);
        layers.push(set_layer(&overrides.sets)?);
        layers.push(command_line_layer(overrides.model.as_deref()));
        resolve_layers(&layers)
    }
}

/// Merge layers over the compiled defaults, type-check through figment, record provenance and
/// history, and check values.
pub(crate) fn resolve_layers(layers: &[Layer]) -> Result<Resolution, ProfileError> {
    let mut figment = Figment::from(figment::providers::Serialized::defaults(Manifest::default()));
    for layer in layers {
        figment = figment.merge(LayerProvider(layer));
    }
    let manifest: Manifest = figment.extract().map_err(|err| type_error(err, layers))?;

    let defaults = schema::flatten(&Manifest::default()).map_err(ProfileError::Render)?;
    let mut history: BTreeMap<String, Vec<LayerValue>> = BTreeMap::new();
    for key in schema::leaf_keys() {
        let mut values = Vec::new();
        if let Some(value) = defaults.get(&key) {
            values.push(LayerValue {
                value: value.clone(),
                provenance: default_provenance(),
            });
        }
        for layer in layers {
            if let Some(value) = layer.leaves.get(&key) {
                values.push(LayerValue {
                    value: value.clone(),
                    provenance: layer.provenance(&key),
                });
            }
        }
        history.insert(key, values);
    }
    let provenance = provenance_from_history(&history);
    let resolved = ResolvedManifest {
        manifest,
        provenance,
    };
    validate(&resolved)?;
    Ok(Resolution { resolved, history })
}

pub(crate) fn provenance_from_history(
    history: &BTreeMap<String, Vec<LayerValue>>,
) -> ProvenanceMap {
    history
        .iter()
        .map(|(key, values)| {
            let provenance = values
                .last()
                .map(|v| v.provenance.clone())
                .unwrap_or_else(unset_default);
            (key.clone(), provenance)
        })
        .collect()
}

/// A figment extraction error, named by the layer (file, env var or `--set`) that set the key.
fn type_error(err: figment::Error, layers: &[Layer]) -> ProfileError {
    let key = err.path.join(".");
    let label = err.metadata.as_ref().map(|m| m.name.to_string());
    let layer = layers
        .iter()
        .rev()
        .find(|layer| Some(&layer.label) == label.as_ref() && layer.leaves.contains_key(&key));
    let line = layer.and_then(|layer| layer.lines.get(&key).copied());
    let file = layer
        .map(|layer| match &layer.path {
            // A file: its path (the key is in the message already).
            Some(_) => layer.label.clone(),
            // Env or --set: the variable or the `--set` text.
            None => layer
                .details
                .get(&key)
                .cloned()
                .unwrap_or_else(|| layer.label.clone()),
        })
        .or(label)
        .unwrap_or_else(|| "configuration".to_owned());
    ProfileError::Type {
        file,
        line,
        key,
        message: err.kind.to_string(),
    }
}

/// Parse one TOML file into a layer, rejecting unknown keys. Returns the `extends` name too
/// when `profile` is set (profiles may have `extends` and `description`; config files may not).
pub(crate) fn parse_file(
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
pub(crate) fn env_layer(env: &[(String, String)]) -> Result<Layer, ProfileError> {
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
pub(crate) fn set_layer(sets: &[String]) -> Result<Layer, ProfileError> {
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
pub(crate) fn command_line_layer(model: Option<&str>) -> Layer {
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

/// Value checks that types alone cannot express. Errors name the source of the bad value.
pub fn validate(resolved: &ResolvedManifest) -> Result<(), ProfileError> {
    let m = &resolved.manifest;
    let fail = |key: &str, message: String| -> Result<(), ProfileError> {
        let mut origin = resolved
            .provenance
            .get(key)
            .map(|p| p.detail.clone())
            .unwrap_or_else(|| "compiled default".to_owned());
        // `--set key=value` names its source by its text; these values may hold a credential.
        if matches!(key, "model.base_url" | "model.api_key_env")
            && let Some(at) = origin.strip_prefix("--set ").and_then(|t| t.find('='))
        {
            origin.truncate("--set ".len() + at + 1);
            origin.push('…');
        }
        Err(ProfileError::InvalidValue {
            origin,
            key: key.to_owned(),
            message,
        })
    };
    if m.model.model.trim().is_empty() {
        return fail("model.model", "must name a model".to_owned());
    }
    if m.model.scheme == Scheme::Replay && m.model.cassette.is_none() {
        return fail(
            "model.scheme",
            "scheme \"replay\" needs model.cassette (a file path or builtin:NAME)".to_owned(),
        );
    }
    if m.model.scheme == Scheme::Replay
        && let Some(cassette) = m.model.cassette.as_deref()
        && !cassette.starts_with("builtin:")
    {
        let path = Path::new(cassette);
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return fail(
                    "model.cassette",
                    format!(
                        "{} is not a regular file; name a cassette JSON file (or builtin:NAME)",
                        path.display()
                    ),
                );
            }
            Err(e) => {
                return fail(
                    "model.cassette",
                    format!(
                        "cannot read {}: {e}; name an existing cassette JSON file (or builtin:NAME)",
                        path.display()
                    ),
                );
            }
        }
    }
    if m.model.auth == Auth::None && m.model.api_key_env.is_some() {
        return fail(
            "model.auth",
            "is \"none\" but model.api_key_env names a key variable; remove one of them \
             (auth = \"none\" sends no key)"
                .to_owned(),
        );
    }
    if let Some(var) = m.model.api_key_env.as_deref()
        && let Err(why) = check_env_name(var)
    {
        return fail(
            "model.api_key_env",
            format!(
                "{why}; name the environment variable that holds the key, e.g. OPENAI_API_KEY \
                 (letters, digits and `_`, not starting with a digit), never the key itself"
            ),
        );
    }
    if let Some(url) = m.model.base_url.as_deref()
        && let Err(why) = check_base_url(url)
    {
        return fail("model.base_url", why);
    }
    if let Some(t) = m.model.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return fail("model.temperature", format!("{t} is outside 0.0..=2.0"));
    }
    if m.model.max_output_tokens == Some(0) {
        return fail("model.max_output_tokens", "must be at least 1".to_owned());
    }
    if m.agent.max_turns < 1 {
        return fail("agent.max_turns", "must be at least 1".to_owned());
    }
    if !m.spawn.allowed_profiles.is_empty() && m.spawn.max_children < 1 {
        return fail(
            "spawn.max_children",
            "must be at least 1 when spawn.allowed_profiles is not empty".to_owned(),
        );
    }
    const FRAME: std::ops::RangeInclusive<u32> = 256..=16 * 1024 * 1024;
    if !FRAME.contains(&m.session.trace_max_frame_bytes) {
        return fail(
            "session.trace_max_frame_bytes",
            format!(
                "{} is outside 256..=16777216",
                m.session.trace_max_frame_bytes
            ),
        );
    }
    if m.session.trace_queue_capacity < 1 {
        return fail(
            "session.trace_queue_capacity",
            "must be at least 1".to_owned(),
        );
    }
    let limits = [
        (
            "limits.first_event_timeout_ms",
            m.limits.first_event_timeout_ms,
        ),
        ("limits.idle_timeout_ms", m.limits.idle_timeout_ms),
        ("limits.max_attempts", u64::from(m.limits.max_attempts)),
        ("limits.retry_budget_ms", m.limits.retry_budget_ms),
        (
            "limits.spawn_ready_timeout_ms",
            m.limits.spawn_ready_timeout_ms,
        ),
        ("limits.max_response_bytes", m.limits.max_response_bytes),
        ("limits.shutdown_grace_ms", m.limits.shutdown_grace_ms),
    ];
    for (key, value) in limits {
        if value == 0 {
            return fail(key, "must be greater than 0".to_owned());
        }
    }
    Ok(())
}

/// Whether `name` can be an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.contains('=') {
        // Never echoed: `NAME=value` may hold the key itself.
        return Err("contains `=`, so it is not a variable name (is it `NAME=value`?)".to_owned());
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{}` is not an environment variable name",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Whether `url` is an http(s) URL a provider client can use, without credentials in it.
/// Refused rather than stripped: a URL that needs them would only fail later, and the stored
/// manifest must never hold them. Error messages never repeat the credential.
fn check_base_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = match ["https://", "http://"]
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        Some(p) => &url[p.len()..],
        None => {
            return Err(
                "is not an http(s) URL; write the endpoint root, e.g. https://api.openai.com/v1"
                    .to_owned(),
            );
        }
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters; write a plain http(s) URL".to_owned());
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(
            "carries credentials (`user:password@`), which would be stored in manifest.toml; \
             remove them and put the key in the variable named by model.api_key_env"
                .to_owned(),
        );
    }
    if rest.contains(['?', '#']) {
        return Err(
            "has a query string or fragment (e.g. `?key=`), which would be stored in \
             manifest.toml and breaks the path the scheme appends; remove it and put the key in \
             the variable named by model.api_key_env"
                .to_owned(),
        );
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(h, _)| h);
    if host.is_empty() {
        return Err("has no host; write e.g. https://api.openai.com/v1".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_base_urls_are_checked() {
        for ok in ["OPENAI_API_KEY", "_K", "k2"] {
            assert!(check_env_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A=B", "1KEY", "MY-KEY", "KEY NAME", "ключ"] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
        assert!(
            !check_env_name("OPENAI_API_KEY=sk-secret")
                .unwrap_err()
                .contains("sk-secret")
        );
        for ok in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:8080",
            "HTTPS://Example.com/v1/",
            "http://[::1]:11434/v1",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "not a url",
            "ftp://host/v1",
            "https://",
            "https://:8080/v1",
            "https://user:pa55@proxy.example/v1",
            "https://proxy.example/v1?key=SECRET",
            "https://proxy.example/v1?api_key=SECRET",
            "https://host/v1#frag",
            "https://host/v 1",
        ] {
            let err = check_base_url(bad).expect_err(bad);
            assert!(!err.contains("SECRET") && !err.contains("pa55"), "{err}");
        }
    }

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
