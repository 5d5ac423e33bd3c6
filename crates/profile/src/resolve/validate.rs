//! Value checks that types alone cannot express, run on every resolved manifest.

use std::path::Path;

use crate::error::ProfileError;
use crate::manifest::{Auth, ResolvedManifest, Scheme};

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
        && let Err(why) = check_url(url, "https://api.openai.com/v1", "model.api_key_env")
    {
        return fail("model.base_url", why);
    }
    if let Some(url) = m.telemetry.otlp_endpoint.as_deref()
        && let Err(why) = check_url(
            url,
            "https://collector.example:4318/v1/traces",
            "telemetry.headers_env",
        )
    {
        return fail("telemetry.otlp_endpoint", why);
    }
    for var in &m.telemetry.headers_env {
        if let Err(why) = check_env_name(var) {
            return fail(
                "telemetry.headers_env",
                format!("{why}; name the environment variables that hold the collector's headers"),
            );
        }
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

/// Whether `url` is an http(s) URL a client can use, without credentials in it (`example` is a
/// good one; secrets belong in the variables `secret_key` names).
/// Refused rather than stripped: a URL that needs them would only fail later, and the stored
/// manifest must never hold them. Error messages never repeat the credential.
fn check_url(url: &str, example: &str, secret_key: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = match ["https://", "http://"]
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        Some(p) => &url[p.len()..],
        None => {
            return Err(format!("is not an http(s) URL; write e.g. {example}"));
        }
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters; write a plain http(s) URL".to_owned());
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(format!(
            "carries credentials (`user:password@`), which would be stored in manifest.toml; \
             remove them and put the secret in the variable named by {secret_key}"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "has a query string or fragment (e.g. `?key=`), which would be stored in \
             manifest.toml; remove it and put the secret in the variable named by {secret_key}"
        ));
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(h, _)| h);
    if host.is_empty() {
        return Err(format!("has no host; write e.g. {example}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_base_urls_are_checked() {
        let check_base_url = |url| check_url(url, "https://api.openai.com/v1", "model.api_key_env");
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
}
