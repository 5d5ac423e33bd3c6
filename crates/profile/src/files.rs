//! Storing a materialized manifest in a pod directory: `manifest.toml` and `provenance.json`,
//! each written atomically.

use pod_home::files::ReplaceError;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ProfileError;
use crate::manifest::{Manifest, ProvenanceMap, ResolvedManifest};

/// File name of the manifest in a pod directory.
pub const MANIFEST_FILE: &str = "manifest.toml";
/// File name of the provenance in a pod directory.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// The manifest as the TOML text written to `manifest.toml`.
pub fn manifest_toml(manifest: &Manifest) -> Result<String, ProfileError> {
    toml::to_string(manifest).map_err(ProfileError::Render)
}

/// `sha256:<hex>` of the manifest's `manifest.toml` text.
pub fn manifest_digest(manifest: &Manifest) -> Result<String, ProfileError> {
    let text = manifest_toml(manifest)?;
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// Write `manifest.toml` and `provenance.json` into `dir` (which must exist). Each file is
/// written to a temporary file in the same directory, synced, renamed over the target, and the
/// directory is synced, so a reader sees the old file or the new one, never a torn one.
pub fn write_manifest_files(dir: &Path, resolved: &ResolvedManifest) -> Result<(), ProfileError> {
    let manifest = manifest_toml(&resolved.manifest)?;
    let provenance = serde_json::to_string_pretty(&resolved.provenance).map_err(|source| {
        ProfileError::Json {
            path: dir.join(PROVENANCE_FILE),
            source,
        }
    })?;
    write_atomic(dir, MANIFEST_FILE, manifest.as_bytes())?;
    write_atomic(dir, PROVENANCE_FILE, format!("{provenance}\n").as_bytes())?;
    Ok(())
}

/// Read `path` only if it is a regular file (symlinks followed): a FIFO or a device in a pod
/// directory would block the reader or never end.
fn read_regular(path: &Path) -> std::io::Result<String> {
    let file_type = std::fs::metadata(path)?.file_type();
    if !file_type.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket, device or directory)",
        ));
    }
    std::fs::read_to_string(path)
}

/// Read what [`write_manifest_files`] wrote.
pub fn read_manifest_files(dir: &Path) -> Result<ResolvedManifest, ProfileError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = read_regular(&manifest_path).map_err(|source| ProfileError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|err| {
        let line = err
            .span()
            .map(|s| text.get(..s.start).unwrap_or(&text).matches('\n').count() + 1)
            .unwrap_or(0);
        ProfileError::Syntax {
            file: manifest_path.display().to_string(),
            line,
            column: 0,
            message: err.message().to_owned(),
        }
    })?;
    let provenance_path = dir.join(PROVENANCE_FILE);
    let bytes = read_regular(&provenance_path).map_err(|source| ProfileError::Read {
        path: provenance_path.clone(),
        source,
    })?;
    let provenance: ProvenanceMap =
        serde_json::from_slice(bytes.as_bytes()).map_err(|source| ProfileError::Json {
            path: provenance_path,
            source,
        })?;
    Ok(ResolvedManifest {
        manifest,
        provenance,
    })
}

/// Read the manifest files of a pod that ran with `previous` and whose `manifest.toml` may have
/// been edited since (a reload). Every key whose value is no longer the one materialized gets
/// provenance kind `unknown` (the edit's author was not recorded) and `provenance.json` is
/// rewritten to say so; the keys that changed are returned.
pub fn reread_manifest_files(
    dir: &Path,
    previous: &Manifest,
) -> Result<(ResolvedManifest, Vec<String>), ProfileError> {
    let mut resolved = read_manifest_files(dir)?;
    let before = crate::schema::flatten(previous).map_err(ProfileError::Render)?;
    let after = crate::schema::flatten(&resolved.manifest).map_err(ProfileError::Render)?;
    let changed: Vec<String> = crate::schema::leaf_keys()
        .into_iter()
        .filter(|key| before.get(key) != after.get(key))
        .collect();
    if changed.is_empty() {
        return Ok((resolved, changed));
    }
    for key in &changed {
        resolved.provenance.insert(
            key.clone(),
            crate::manifest::Provenance {
                kind: crate::manifest::SourceKind::Unknown,
                detail: format!(
                    "{MANIFEST_FILE} edited after materialization; who set this value was not recorded"
                ),
                from: None,
            },
        );
    }
    let provenance = serde_json::to_string_pretty(&resolved.provenance).map_err(|source| {
        ProfileError::Json {
            path: dir.join(PROVENANCE_FILE),
            source,
        }
    })?;
    write_atomic(dir, PROVENANCE_FILE, format!("{provenance}\n").as_bytes())?;
    Ok((resolved, changed))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ProfileError> {
    let target = dir.join(name);
    pod_home::files::replace_with(&target, |out| out.write_all(bytes)).map_err(|error| {
        let source = match error {
            ReplaceError::Write(source) | ReplaceError::Io(source) => source,
        };
        ProfileError::Write {
            path: target.clone(),
            source,
        }
    })
}
