//! Redaction: the secret check every export passes, and `--sanitize`.
//!
//! Secrets (API keys) are never written by the runtime; the export checks again on the rendered
//! bytes and refuses to emit a document containing a configured key's value.
//!
//! Sanitizing replaces content (prompts, outputs, tool inputs, free text, paths) with stable
//! placeholders: the same value gets the same placeholder everywhere in one document, so a
//! reader can still see that two runs had the same prompt. Ids, timestamps, classes, codes,
//! counts and tool names are kept.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::document::{
    ActionDoc, ChainLink, ExportDocument, OriginDoc, ProvenanceDoc, RedactionMode,
};
use crate::error::ExportError;

/// Environment variables checked for key values even when no manifest names them.
pub const DEFAULT_KEY_ENVS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
];

/// Values shorter than this are not searched for: they would match ordinary text and no real
/// API key is that short.
pub const MIN_SECRET_LEN: usize = 8;

/// A secret value and the variable it came from. `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret {
    pub env_var: String,
    pub value: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("env_var", &self.env_var)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// Names of the key variables relevant to `doc`: the defaults plus every manifest's
/// `model.api_key_env`.
pub fn key_env_names(doc: &ExportDocument) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_KEY_ENVS.iter().map(|s| (*s).to_owned()).collect();
    for pod in &doc.pods {
        if let Some(name) = pod
            .manifest
            .as_ref()
            .and_then(|m| m.pointer("/model/api_key_env"))
            .and_then(Value::as_str)
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// The secrets to refuse: the values of `names` that `lookup` finds.
pub fn secrets_from(names: &[String], lookup: impl Fn(&str) -> Option<String>) -> Vec<Secret> {
    names
        .iter()
        .filter_map(|name| {
            lookup(name).map(|value| Secret {
                env_var: name.clone(),
                value,
            })
        })
        .collect()
}

/// Fail if any secret's value occurs in `bytes`, raw or JSON-escaped.
pub fn check_secrets(bytes: &[u8], secrets: &[Secret]) -> Result<(), ExportError> {
    for secret in secrets {
        if secret.value.len() < MIN_SECRET_LEN {
            continue;
        }
        let escaped = serde_json::to_string(&secret.value).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for needle in [secret.value.as_str(), escaped] {
            if memchr::memmem::find(bytes, needle.as_bytes()).is_some() {
                return Err(ExportError::SecretInOutput {
                    env_var: secret.env_var.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Replace content with placeholders, in place, and record what was replaced.
pub fn sanitize(doc: &mut ExportDocument) {
    let mut r = Redactor::default();
    for pod in &mut doc.pods {
        if let Some(manifest) = &mut pod.manifest {
            sanitize_manifest(&mut r, manifest);
        }
        if let Some(provenance) = &mut pod.provenance {
            for p in provenance.values_mut() {
                sanitize_provenance(&mut r, p);
            }
        }
        for run in &mut pod.runs {
            r.opt(&mut run.input, "prompt");
            r.opt(&mut run.output, "output");
            if let Some(error) = &mut run.error {
                r.opt(&mut error.message, "error_message");
            }
            if let Some(action) = run.interrupt.as_mut().and_then(|i| i.action.as_mut()) {
                sanitize_action(&mut r, action);
            }
            for call in &mut run.tools_in_flight {
                r.value(&mut call.input, "tool_input");
            }
        }
    }
    for incident in &mut doc.incidents {
        for link in &mut incident.chain {
            if let ChainLink::Origin { origin, .. } = link {
                sanitize_origin(&mut r, origin);
            }
        }
        for origin in [&mut incident.nearest_origin, &mut incident.root_origin]
            .into_iter()
            .flatten()
        {
            sanitize_origin(&mut r, origin);
        }
    }
    doc.redaction.mode = RedactionMode::Sanitized;
    for (kind, n) in r.counts {
        *doc.redaction.replaced.entry(kind).or_insert(0) += n;
    }
}

#[derive(Default)]
struct Redactor {
    seen: HashMap<(String, String), String>,
    counts: BTreeMap<String, u64>,
}

impl Redactor {
    fn text(&mut self, value: &str, kind: &str) -> String {
        if value.is_empty() || is_placeholder(value) {
            return value.to_owned();
        }
        let key = (kind.to_owned(), value.to_owned());
        if let Some(p) = self.seen.get(&key) {
            return p.clone();
        }
        let n = self.counts.entry(kind.to_owned()).or_insert(0);
        *n += 1;
        let placeholder = if kind == "path" {
            let digest = Sha256::digest(value.as_bytes());
            let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            format!("[redacted:path:{hex}]")
        } else {
            format!("[redacted:{kind}:{n}]")
        };
        self.seen.insert(key, placeholder.clone());
        placeholder
    }

    fn string(&mut self, value: &mut String, kind: &str) {
        *value = self.text(value, kind);
    }

    fn opt(&mut self, value: &mut Option<String>, kind: &str) {
        if let Some(v) = value {
            self.string(v, kind);
        }
    }

    /// A JSON value replaced by one placeholder for its whole text.
    fn value(&mut self, value: &mut Value, kind: &str) {
        let text = match &*value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *value = Value::String(self.text(&text, kind));
    }
}

fn is_placeholder(value: &str) -> bool {
    value.starts_with("[redacted:") && value.ends_with(']')
}

fn sanitize_manifest(r: &mut Redactor, manifest: &mut Value) {
    if let Some(v) = manifest.pointer_mut("/agent/instructions") {
        r.value(v, "prompt");
    }
    for pointer in ["/model/cassette", "/model/base_url"] {
        if let Some(v) = manifest.pointer_mut(pointer) {
            r.value(v, "path");
        }
    }
    for pointer in ["/scope/allow", "/scope/deny"] {
        if let Some(Value::Array(items)) = manifest.pointer_mut(pointer) {
            for item in items {
                r.value(item, "path");
            }
        }
    }
}

/// Provenance details name files (hashed), `--set` text (may hold a value: replaced), env var
/// names, parent ids and defaults (kept).
fn sanitize_provenance(r: &mut Redactor, p: &mut ProvenanceDoc) {
    match p.kind.as_str() {
        "default" | "env" | "parent" | "spawn_request" => {}
        "builtin" | "user" | "project" | "profile" => r.string(&mut p.detail, "path"),
        _ => r.string(&mut p.detail, "text"),
    }
    if let Some(from) = &mut p.from {
        sanitize_provenance(r, from);
    }
}

fn sanitize_action(r: &mut Redactor, action: &mut ActionDoc) {
    r.opt(&mut action.reason, "text");
    sanitize_origin(r, &mut action.origin);
}

fn sanitize_origin(r: &mut Redactor, origin: &mut OriginDoc) {
    match origin {
        OriginDoc::Cli { command, .. } => r.string(command, "command"),
        OriginDoc::Runtime { detail } => r.string(detail, "text"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_and_counts_distinct_values() {
        let mut r = Redactor::default();
        let a = r.text("write the report", "prompt");
        let b = r.text("something else", "prompt");
        let c = r.text("write the report", "prompt");
        assert_eq!(a, "[redacted:prompt:1]");
        assert_eq!(b, "[redacted:prompt:2]");
        assert_eq!(a, c);
        assert_eq!(r.counts["prompt"], 2);
    }

    #[test]
    fn paths_are_hashed_not_numbered() {
        let mut r = Redactor::default();
        let p = r.text("/home/alice/secret-project", "path");
        assert!(p.starts_with("[redacted:path:"), "{p}");
        assert!(!p.contains("alice"));
        assert_eq!(p.len(), "[redacted:path:]".len() + 12);
        assert_eq!(p, r.text("/home/alice/secret-project", "path"));
        assert_ne!(p, r.text("/home/bob", "path"));
    }

    #[test]
    fn secret_check_finds_raw_and_escaped_values_and_never_prints_them() {
        let secret = Secret {
            env_var: "OPENAI_API_KEY".into(),
            value: "sk-test-\"quoted\"-123".into(),
        };
        let escaped = format!(
            "{{\"x\":{}}}",
            serde_json::to_string(&secret.value).unwrap()
        );
        let err = check_secrets(escaped.as_bytes(), std::slice::from_ref(&secret)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("OPENAI_API_KEY"));
        assert!(!message.contains("sk-test"));
        assert!(!format!("{secret:?}").contains("sk-test"));
        assert!(check_secrets(b"clean output", &[secret]).is_ok());
    }

    #[test]
    fn short_values_are_not_searched() {
        let secret = Secret {
            env_var: "X".into(),
            value: "a".into(),
        };
        assert!(check_secrets(b"a a a", &[secret]).is_ok());
    }
}
