//! The key a pod runs with, kept from every file and recognisable everywhere.
//!
//! When a pod's segment starts, the value of its manifest's key variable (`model.api_key_env`,
//! else the scheme's default) is registered with [`pod_trace::scrub`], so the session log, the
//! trace and the tool layer replace it wherever it turns up. The pod directory keeps, in
//! `keys.json` (mode 0600), what is needed to recognise the key without the key: its length, a
//! salted SHA-256 of it and a rolling hash keyed by that salt ([`KeyPrint`]). An export checks
//! its document against those prints wherever it runs, without the key variable being set.
//! The key itself is never written.

use std::path::{Path, PathBuf};

use crate::error::CoreError;

pub use pod_home::keys::{KEYS_FILE, KeyFile, KeyPrint, read_key_file};

fn forms(value: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![("raw", value.to_owned())];
    let escaped = serde_json::to_string(value).unwrap_or_default();
    if let Some(inner) = escaped.strip_prefix('"').and_then(|e| e.strip_suffix('"'))
        && inner != value
    {
        out.push(("json", inner.to_owned()));
    }
    out
}

/// The key variable `manifest` names and its value in this process's environment, as the
/// provider client reads it (trimmed), when set.
fn configured_key(manifest: &pod_profile::Manifest) -> Option<(String, String)> {
    let var = crate::model::api_key_var(manifest)?;
    let value = std::env::var(&var).ok()?;
    let value = value.trim().to_owned();
    (value.len() >= pod_trace::scrub::MIN_SECRET_LEN).then_some((var, value))
}

/// The value of the key `manifest` names, when this process has it (to keep it out of anything
/// built from records before they are scrubbed, e.g. telemetry content).
pub(crate) fn key_value(manifest: &pod_profile::Manifest) -> Option<String> {
    configured_key(manifest).map(|(_, value)| value)
}

/// Register the key `manifest` names with the scrubber and keep its prints in the pod
/// directory `dir` (added once per distinct key).
pub fn guard(dir: &Path, manifest: &pod_profile::Manifest) -> Result<(), CoreError> {
    let Some((var, value)) = configured_key(manifest) else {
        return Ok(());
    };
    pod_trace::scrub::register_secret(&value);
    let path = dir.join(KEYS_FILE);
    let mut file = read_key_file(&path)?.unwrap_or(KeyFile {
        format: 1,
        keys: Vec::new(),
    });
    if file
        .keys
        .iter()
        .any(|k| k.form == "raw" && k.matches(value.as_bytes()))
    {
        return Ok(());
    }
    let salt = random_salt()?;
    for (form, bytes) in forms(&value) {
        file.keys
            .push(KeyPrint::new(&var, form, bytes.as_bytes(), &salt));
    }
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|source| {
        CoreError::Home(pod_home::HomeError::Parse {
            what: "keys.json",
            path: path.clone(),
            source,
        })
    })?;
    bytes.push(b'\n');
    Ok(pod_home::files::write_atomic(&path, &bytes)?)
}

fn random_salt() -> Result<[u8; 16], CoreError> {
    use std::io::Read;
    let path = PathBuf::from("/dev/urandom");
    let mut salt = [0u8; 16];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(CoreError::io("read random bytes from", &path))?;
    Ok(salt)
}
