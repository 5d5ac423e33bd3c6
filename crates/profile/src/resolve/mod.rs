//! Layering: defaults < user config < project config < profile chain (base first) < env <
//! `--set` < options of their own (`-m/--model`), with per-leaf provenance and the history
//! `explain` shows. Each source becomes a `layer`; the merged manifest is then checked by
//! [`validate`](validate()).

mod layer;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

use crate::discovery::{Catalog, Origin, ProfileSource};
use crate::error::ProfileError;
use crate::manifest::{Manifest, Provenance, ProvenanceMap, ResolvedManifest, SourceKind};
use crate::schema;

use layer::{Layer, command_line_layer, env_layer, parse_file, set_layer};
pub use validate::validate;

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

fn default_provenance() -> Provenance {
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
    fn chain_layers(&self, name: &str, root: &ProfileSource) -> Result<Vec<Layer>, ProfileError> {
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
    fn config_layers(&self) -> Result<Vec<Layer>, ProfileError> {
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
fn resolve_layers(layers: &[Layer]) -> Result<Resolution, ProfileError> {
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

fn provenance_from_history(history: &BTreeMap<String, Vec<LayerValue>>) -> ProvenanceMap {
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
