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

use std::io::Write;

use memchr::memmem;

use crate::document::{
    ActionDoc, ChainLink, ExportDocument, Incident, OriginDoc, PodDoc, ProvenanceDoc, Redaction,
    RedactionMode, RunDoc,
};
use crate::error::ExportError;
use pod_home::keys::KeyPrint;

/// Environment variables checked for key values even when no manifest names them.
pub const DEFAULT_KEY_ENVS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

/// Values shorter than this are not searched for: they would match ordinary text and no real
/// API key is that short.
pub const MIN_SECRET_LEN: usize = 8;

/// A secret the export refuses to contain, and the variable it came from: its value (from this
/// shell's environment) or, for a pod's key, the print the pod kept (`keys.json`), which
/// recognises the key without it. `Debug` never shows a value.
#[derive(Clone)]
pub struct Secret {
    pub env_var: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    Value(String),
    Print(KeyPrint),
}

impl Secret {
    /// The value `value` of variable `env_var`.
    pub fn new(env_var: impl Into<String>, value: impl Into<String>) -> Secret {
        Secret {
            env_var: env_var.into(),
            matcher: Matcher::Value(value.into()),
        }
    }

    /// A key known by its print only.
    pub fn recorded(print: KeyPrint) -> Secret {
        Secret {
            env_var: print.env_var.clone(),
            matcher: Matcher::Print(print),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.matcher {
            Matcher::Value(_) => "[redacted]",
            Matcher::Print(_) => "[recorded print]",
        };
        f.debug_struct("Secret")
            .field("env_var", &self.env_var)
            .field("value", &kind)
            .finish()
    }
}

/// Add the `recorded` prints to `secrets`, except those a value in `secrets` already finds
/// (the exporting shell has the same key), so each key is searched for once.
pub fn merge_recorded(secrets: &mut Vec<Secret>, recorded: Vec<Secret>) {
    for print in recorded {
        let Matcher::Print(p) = &print.matcher else {
            secrets.push(print);
            continue;
        };
        let covered = secrets.iter().any(|s| match &s.matcher {
            Matcher::Value(value) => p.form == "raw" && p.matches(value.as_bytes()),
            Matcher::Print(_) => false,
        });
        let escaped_of_covered = p.form == "json"
            && secrets.iter().any(|s| {
                matches!(&s.matcher, Matcher::Value(v)
                    if serde_json::to_string(v).is_ok_and(|e| p.matches(e.trim_matches('"').as_bytes())))
            });
        if !covered && !escaped_of_covered {
            secrets.push(print);
        }
    }
}

/// The keys the pods of `home` ran with, as their prints (`<pod>/keys.json`): the check they
/// allow does not depend on this shell having the key variables. Pods from before prints were
/// kept have none (their export is checked against this shell's variables only). A print file
/// that cannot be read is an error naming it: the export cannot be checked without it.
pub fn secrets_recorded(home: &std::path::Path) -> Result<Vec<Secret>, ExportError> {
    let pods = home.join("pods");
    let listing = match std::fs::read_dir(&pods) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ExportError::ReadFile { path: pods, source }),
    };
    let mut seen = std::collections::HashSet::new();
    let mut secrets = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| ExportError::ReadFile {
            path: pods.clone(),
            source,
        })?;
        let path = entry.path().join(pod_home::keys::KEYS_FILE);
        let file = pod_home::keys::read_key_file(&path).map_err(|error| ExportError::ReadFile {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                pod_protocol::text::error_chain(&error),
            ),
        })?;
        for print in file.map(|f| f.keys).unwrap_or_default() {
            if seen.insert((print.salt.clone(), print.sha256.clone())) {
                secrets.push(Secret::recorded(print));
            }
        }
    }
    Ok(secrets)
}

/// Names of the key variables relevant to `doc`: the defaults plus every manifest's
/// `model.api_key_env`.
pub fn key_env_names(doc: &ExportDocument) -> Vec<String> {
    key_env_names_of(doc.pods.iter().filter_map(|p| p.manifest.as_ref()))
}

/// The secrets to refuse: the values of `names` that `lookup` finds.
pub fn secrets_from(names: &[String], lookup: impl Fn(&str) -> Option<String>) -> Vec<Secret> {
    names
        .iter()
        .filter_map(|name| lookup(name).map(|value| Secret::new(name.clone(), value)))
        .collect()
}

/// The byte strings to search for: each value raw and JSON-escaped (values shorter than
/// [`MIN_SECRET_LEN`] are skipped), and the prints.
fn needles(secrets: &[Secret]) -> (Vec<(String, String)>, Vec<KeyPrint>) {
    let mut values = Vec::new();
    let mut prints = Vec::new();
    for secret in secrets {
        match &secret.matcher {
            Matcher::Value(value) => {
                if value.len() < MIN_SECRET_LEN {
                    continue;
                }
                let escaped = serde_json::to_string(value).unwrap_or_default();
                let escaped = escaped.trim_matches('"').to_owned();
                if escaped != *value {
                    values.push((secret.env_var.clone(), escaped));
                }
                values.push((secret.env_var.clone(), value.clone()));
            }
            Matcher::Print(print) => prints.push(print.clone()),
        }
    }
    (values, prints)
}

/// Fail if any secret occurs in `bytes`, raw or JSON-escaped.
pub fn check_secrets(bytes: &[u8], secrets: &[Secret]) -> Result<(), ExportError> {
    let (values, prints) = needles(secrets);
    for (env_var, needle) in &values {
        if memchr::memmem::find(bytes, needle.as_bytes()).is_some() {
            return Err(ExportError::SecretInOutput {
                env_var: env_var.clone(),
            });
        }
    }
    if let Some(print) = prints.iter().find(|p| p.found_in(bytes)) {
        return Err(ExportError::SecretInOutput {
            env_var: print.env_var.clone(),
        });
    }
    Ok(())
}

/// Replace content with placeholders, in place, and record what was replaced.
pub fn sanitize(doc: &mut ExportDocument) {
    let mut r = Redactor::default();
    for pod in &mut doc.pods {
        r.pod_head(pod);
        for run in &mut pod.runs {
            r.run(run);
        }
    }
    for incident in &mut doc.incidents {
        r.incident(incident);
    }
    r.finish(&mut doc.redaction);
}

/// Names of the key variables: the defaults plus each `model.api_key_env` of `manifests`.
pub(crate) fn key_env_names_of<'a>(manifests: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_KEY_ENVS.iter().map(|s| (*s).to_owned()).collect();
    for manifest in manifests {
        if let Some(name) = manifest
            .pointer("/model/api_key_env")
            .and_then(Value::as_str)
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// A secret found in rendered bytes, carried inside an [`std::io::Error`] by [`SecretGuard`].
#[derive(Debug)]
pub(crate) struct SecretFound {
    pub env_var: String,
}

impl fmt::Display for SecretFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the output contains the value of ${}", self.env_var)
    }
}

impl std::error::Error for SecretFound {}

/// The secret an I/O error from a [`SecretGuard`] stands for, if it is one.
pub(crate) fn secret_found(error: &std::io::Error) -> Option<&SecretFound> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<SecretFound>())
}

/// Bytes [`SecretGuard`] gathers before searching them (and passing them on).
pub const GUARD_CHUNK: usize = 256 * 1024;

/// A writer that searches everything written through it for the secrets' values (raw and
/// JSON-escaped) before passing it on, chunk by chunk. A value that straddles two chunks is
/// found: the last (longest value − 1) bytes of each chunk are searched again with the next.
/// On a match the write fails with an error that the export turns into
/// [`ExportError::SecretInOutput`]; what was passed on before must then be discarded — the
/// guard only ever writes to a place that is not the final destination.
pub struct SecretGuard<W: Write> {
    inner: W,
    needles: Vec<(String, memmem::Finder<'static>)>,
    prints: Vec<KeyPrint>,
    overlap: usize,
    chunk: usize,
    /// Bytes not searched yet, after `carried` bytes already searched and passed on.
    buf: Vec<u8>,
    carried: usize,
    written: u64,
}

impl<W: Write> SecretGuard<W> {
    pub fn new(inner: W, secrets: &[Secret]) -> Self {
        Self::with_chunk(inner, secrets, GUARD_CHUNK)
    }

    /// With a chunk size of `chunk` bytes (tests use small ones).
    pub fn with_chunk(inner: W, secrets: &[Secret], chunk: usize) -> Self {
        let (values, prints) = needles(secrets);
        let needles: Vec<(String, memmem::Finder<'static>)> = values
            .into_iter()
            .map(|(env_var, form)| (env_var, memmem::Finder::new(form.as_bytes()).into_owned()))
            .collect();
        let overlap = needles
            .iter()
            .map(|(_, f)| f.needle().len())
            .chain(prints.iter().map(|p| p.len))
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        let chunk = chunk.max(1);
        SecretGuard {
            inner,
            needles,
            prints,
            overlap,
            chunk,
            buf: Vec::with_capacity(chunk + overlap),
            carried: 0,
            written: 0,
        }
    }

    /// Bytes passed on so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Search what is gathered, pass on what was not passed on yet, keep the overlap.
    fn search_and_pass(&mut self) -> std::io::Result<()> {
        if self.buf.len() == self.carried {
            return Ok(());
        }
        for (env_var, finder) in &self.needles {
            if finder.find(&self.buf).is_some() {
                return Err(std::io::Error::other(SecretFound {
                    env_var: env_var.clone(),
                }));
            }
        }
        if let Some(print) = self.prints.iter().find(|p| p.found_in(&self.buf)) {
            return Err(std::io::Error::other(SecretFound {
                env_var: print.env_var.clone(),
            }));
        }
        self.inner.write_all(&self.buf[self.carried..])?;
        self.written += (self.buf.len() - self.carried) as u64;
        let keep = self.overlap.min(self.buf.len());
        let cut = self.buf.len() - keep;
        self.buf.drain(..cut);
        self.carried = keep;
        Ok(())
    }

    /// Search the rest and return the inner writer (flushed).
    pub fn finish(mut self) -> std::io::Result<W> {
        self.search_and_pass()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SecretGuard<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() - self.carried >= self.chunk {
            self.search_and_pass()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.search_and_pass()?;
        self.inner.flush()
    }
}

#[derive(Default)]
pub(crate) struct Redactor {
    /// Each distinct value by kind and the first 16 bytes of its SHA-256 (not the value: a
    /// streamed export must not hold every prompt it has seen), to its number.
    seen: HashMap<(&'static str, [u8; 16]), u64>,
    counts: BTreeMap<String, u64>,
}

impl Redactor {
    /// A pod's manifest and provenance (its runs go through [`Redactor::run`]).
    pub(crate) fn pod_head(&mut self, pod: &mut PodDoc) {
        if let Some(manifest) = &mut pod.manifest {
            sanitize_manifest(self, manifest);
        }
        if let Some(provenance) = &mut pod.provenance {
            for p in provenance.values_mut() {
                sanitize_provenance(self, p);
            }
        }
    }

    pub(crate) fn run(&mut self, run: &mut RunDoc) {
        self.opt(&mut run.input, "prompt");
        self.opt(&mut run.output, "output");
        if let Some(error) = &mut run.error {
            self.opt(&mut error.message, "error_message");
        }
        if let Some(action) = run.interrupt.as_mut().and_then(|i| i.action.as_mut()) {
            sanitize_action(self, action);
        }
        for call in &mut run.tools_in_flight {
            self.value(&mut call.input, "tool_input");
        }
    }

    pub(crate) fn incident(&mut self, incident: &mut Incident) {
        for link in &mut incident.chain {
            if let ChainLink::Origin { origin, .. } = link {
                sanitize_origin(self, origin);
            }
        }
        for origin in [&mut incident.nearest_origin, &mut incident.root_origin]
            .into_iter()
            .flatten()
        {
            sanitize_origin(self, origin);
        }
    }

    /// Mark `redaction` sanitized and add what was replaced.
    pub(crate) fn finish(self, redaction: &mut Redaction) {
        redaction.mode = RedactionMode::Sanitized;
        for (kind, n) in self.counts {
            *redaction.replaced.entry(kind).or_insert(0) += n;
        }
    }

    fn text(&mut self, value: &str, kind: &'static str) -> String {
        if value.is_empty() || is_placeholder(value) {
            return value.to_owned();
        }
        let digest = Sha256::digest(value.as_bytes());
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        if kind == "path" {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                self.seen.entry((kind, fingerprint))
            {
                entry.insert(0);
                *self.counts.entry(kind.to_owned()).or_insert(0) += 1;
            }
            let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            return format!("[redacted:path:{hex}]");
        }
        let n = match self.seen.get(&(kind, fingerprint)) {
            Some(n) => *n,
            None => {
                let count = self.counts.entry(kind.to_owned()).or_insert(0);
                *count += 1;
                self.seen.insert((kind, fingerprint), *count);
                *count
            }
        };
        format!("[redacted:{kind}:{n}]")
    }

    fn string(&mut self, value: &mut String, kind: &'static str) {
        *value = self.text(value, kind);
    }

    fn opt(&mut self, value: &mut Option<String>, kind: &'static str) {
        if let Some(v) = value {
            self.string(v, kind);
        }
    }

    /// A JSON value replaced by one placeholder for its whole text.
    fn value(&mut self, value: &mut Value, kind: &'static str) {
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
        OriginDoc::Unverified { claimed, why, .. } => {
            sanitize_origin(r, claimed);
            r.string(why, "text");
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
