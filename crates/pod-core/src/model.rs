//! Connecting a manifest's `[model]` to a provider client: the wire scheme, the endpoint, the API
//! key (read from the environment variable the manifest names, never stored), timeouts and
//! retries from `[limits]`, and for `scheme = "replay"` an in-process replay server on loopback
//! serving the manifest's cassette.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pod_profile::{Auth, Manifest, Scheme};
use pod_provider::{ApiKey, Cassette, Client, ClientConfig, ReplayServer, RetryPolicy, WireScheme};

use crate::error::CoreError;

/// Cassettes shipped with pods, by `builtin:NAME`.
const BUILTIN_CASSETTES: &[(&str, &str)] = &[
    (
        "demo",
        include_str!("../../../profiles/cassettes/demo.json"),
    ),
    (
        "demo-child",
        include_str!("../../../profiles/cassettes/demo-child.json"),
    ),
];

/// The text of a builtin cassette.
pub fn builtin_cassette(name: &str) -> Option<&'static str> {
    BUILTIN_CASSETTES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// A ready provider client for one pod, and the replay server it talks to (if any), which stops
/// when this is dropped.
pub struct ModelConnection {
    pub(crate) client: Arc<Client>,
    pub(crate) scheme: WireScheme,
    pub(crate) model: String,
    /// `replay` or the wire scheme name, for the log.
    pub(crate) scheme_label: String,
    _replay: Option<ReplayServer>,
}

impl std::fmt::Debug for ModelConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConnection")
            .field("scheme", &self.scheme)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The API key variable the manifest uses: `model.api_key_env`, else the scheme's convention:
/// the first of its variables that is set, else its first (Gemini: `GEMINI_API_KEY`, then
/// `GOOGLE_API_KEY`). `None` for replay without an explicit variable and for `auth = "none"`.
pub fn api_key_var(manifest: &Manifest) -> Option<String> {
    if manifest.model.auth == Auth::None {
        return None;
    }
    if let Some(name) = &manifest.model.api_key_env {
        return Some(name.clone());
    }
    let names = wire_scheme(manifest.model.scheme)?.api_key_envs();
    let set = names.iter().find(|n| std::env::var_os(n).is_some());
    Some(set.unwrap_or(&names[0]).to_string())
}

/// Fill `model.base_url` and `model.api_key_env` left unset with what a run of this scheme
/// uses (its endpoint, its key variable unless `auth = "none"`), with provenance
/// `scheme_default`: what is shown is what a run would do. Replay has no such defaults (its
/// cassette is served on loopback).
pub fn with_scheme_defaults(resolved: &mut pod_profile::ResolvedManifest) {
    let model = &mut resolved.manifest.model;
    let Some(scheme) = wire_scheme(model.scheme) else {
        return;
    };
    let name = model.scheme.as_str();
    let mut fill = |slot: &mut Option<String>, key: &str, value: &str| {
        if slot.is_none() {
            *slot = Some(value.to_owned());
            resolved.provenance.insert(
                key.to_owned(),
                pod_profile::Provenance {
                    kind: pod_profile::SourceKind::SchemeDefault,
                    detail: format!("scheme default of {name}"),
                    from: None,
                },
            );
        }
    };
    fill(
        &mut model.base_url,
        "model.base_url",
        scheme.default_base_url(),
    );
    // With `auth = "none"` no key variable is read, so none is shown.
    if model.auth == Auth::Key {
        fill(
            &mut model.api_key_env,
            "model.api_key_env",
            scheme.default_api_key_env(),
        );
    }
}

/// The wire scheme a manifest scheme speaks (`None` for replay: its cassette names one).
pub fn wire_scheme(scheme: Scheme) -> Option<WireScheme> {
    match scheme {
        Scheme::OpenaiResponses => Some(WireScheme::OpenaiResponses),
        Scheme::OpenaiChat => Some(WireScheme::OpenaiChat),
        Scheme::AnthropicMessages => Some(WireScheme::AnthropicMessages),
        Scheme::Gemini => Some(WireScheme::Gemini),
        Scheme::Replay => None,
    }
}

impl ModelConnection {
    /// Check the manifest can reach its provider and build the client. `work_dir` resolves a
    /// relative cassette path (profiles normally make it absolute).
    pub async fn connect(
        manifest: &Manifest,
        work_dir: &Path,
    ) -> Result<ModelConnection, CoreError> {
        let model = &manifest.model;
        let key_var = api_key_var(manifest);
        let api_key = key_var.as_deref().and_then(ApiKey::from_env);
        let (scheme, base_url, replay) = match wire_scheme(model.scheme) {
            Some(scheme) => {
                if api_key.is_none() && model.auth != Auth::None {
                    let var = key_var.unwrap_or_default();
                    return Err(CoreError::Config {
                        message: format!(
                            "no API key: environment variable {var} is not set (model.scheme = \"{}\")",
                            model.scheme.as_str()
                        ),
                        source: None,
                    });
                }
                let base = model
                    .base_url
                    .clone()
                    .unwrap_or_else(|| scheme.default_base_url().to_owned());
                (scheme, base, None)
            }
            None => {
                let cassette = load_cassette(model.cassette.as_deref(), work_dir)?;
                let scheme = cassette.scheme;
                let server = ReplayServer::start(cassette).map_err(|source| CoreError::Config {
                    message: "could not start the replay server".into(),
                    source: Some(Box::new(source)),
                })?;
                (scheme, server.base_url(), Some(server))
            }
        };
        let limits = &manifest.limits;
        let mut config = ClientConfig::new(scheme)
            .with_base_url(base_url)
            .with_api_key(api_key);
        config.first_event_timeout = Duration::from_millis(limits.first_event_timeout_ms);
        config.idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
        config.max_response_bytes = limits.max_response_bytes;
        // 0 means no bound on how long one response may stream.
        config.max_response_time =
            (limits.max_response_ms > 0).then(|| Duration::from_millis(limits.max_response_ms));
        config.retry = RetryPolicy {
            max_attempts: limits.max_attempts.max(1),
            budget: Duration::from_millis(limits.retry_budget_ms),
            ..RetryPolicy::default()
        };
        let client = Client::new(config).map_err(|source| CoreError::Config {
            message: "could not build the provider client".into(),
            source: Some(Box::new(source)),
        })?;
        Ok(ModelConnection {
            client: Arc::new(client),
            scheme,
            model: model.model.clone(),
            scheme_label: model.scheme.as_str().to_owned(),
            _replay: replay,
        })
    }
}

fn load_cassette(cassette: Option<&str>, work_dir: &Path) -> Result<Cassette, CoreError> {
    let Some(cassette) = cassette else {
        return Err(CoreError::config(
            "model.scheme = \"replay\" needs model.cassette (a file path or builtin:NAME)",
        ));
    };
    if let Some(name) = cassette.strip_prefix("builtin:") {
        let text = builtin_cassette(name).ok_or_else(|| {
            let known: Vec<&str> = BUILTIN_CASSETTES.iter().map(|(n, _)| *n).collect();
            CoreError::config(format!(
                "model.cassette = \"{cassette}\": no builtin cassette named `{name}` (builtin: {})",
                known.join(", ")
            ))
        })?;
        return Cassette::from_json(text, work_dir).map_err(|source| CoreError::Config {
            message: format!("builtin cassette `{name}` is invalid"),
            source: Some(Box::new(source)),
        });
    }
    let path = work_dir.join(cassette);
    Cassette::load(&path).map_err(|source| CoreError::Config {
        message: format!("model.cassette: could not load {}", path.display()),
        source: Some(Box::new(source)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn response_bounds_reach_the_client_from_the_manifest() {
        let mut manifest = Manifest::default();
        manifest.model.scheme = Scheme::Replay;
        manifest.model.cassette = Some("builtin:demo".into());
        manifest.limits.max_response_bytes = 12_345;
        manifest.limits.max_response_ms = 0;
        let conn = ModelConnection::connect(&manifest, Path::new("/"))
            .await
            .expect("connects");
        let config = conn.client.config();
        assert_eq!(config.max_response_bytes, 12_345);
        assert_eq!(config.max_response_time, None, "0 means no bound");

        manifest.limits.max_response_ms = 750;
        let conn = ModelConnection::connect(&manifest, Path::new("/"))
            .await
            .expect("connects");
        assert_eq!(
            conn.client.config().max_response_time,
            Some(Duration::from_millis(750))
        );
    }
}
