//! The API key newtype: it can be used, never printed.

/// An API key. `Debug` and `Display` print `[redacted]`; the value is only reachable through
/// [`ApiKey::expose`], which the request builder calls when setting the auth header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(value: impl Into<String>) -> ApiKey {
        ApiKey(value.into())
    }

    /// Read the key from the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<ApiKey> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Some(ApiKey(v.trim().to_string())),
            _ => None,
        }
    }

    /// The secret value. Only for building the auth header and for redacting it from text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}
