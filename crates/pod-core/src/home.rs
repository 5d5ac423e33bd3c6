//! The pods home as pod-core uses it: `pod-home`'s layout, files and removal, and vouching for a
//! manifest before a pod runs with it.

use sha2::{Digest, Sha256};

pub use pod_home::files::{LineRead, open_regular, read_line_bounded, sync_dir, write_atomic};
pub use pod_home::layout::{PodDir, PodHome, SegmentFiles};
pub use pod_home::liveness::{pod_is_live, process_started};
pub use pod_home::prune::{PodRef, PrunePlan, PruneRule, RemoveError};

use crate::error::CoreError;

/// The largest `manifest.toml` read to vouch for it.
const MANIFEST_MAX_BYTES: u64 = 16 << 20;

/// Refuse to run `manifest` (read from this pod's `manifest.toml`) unless it is the one the
/// pod last ran with. The recorded digest is of the manifest's canonical text, which is
/// what `manifest.toml` holds as written; it is accepted when it matches the file's bytes
/// (so a manifest written by an older version, whose canonical form lacked fields added
/// since, still resumes) or the canonical text of what the file says now (so reformatting
/// the file is not an edit). Any changed value is refused.
pub fn vouch_manifest(dir: &PodDir, manifest: &pod_profile::Manifest) -> Result<(), CoreError> {
    let Some(recorded) = dir.last_manifest_digest()? else {
        return Ok(());
    };
    let path = dir.manifest_path();
    let bytes = pod_home::files::read_regular(&path, MANIFEST_MAX_BYTES)
        .map_err(CoreError::io("read", &path))?;
    let as_written = format!("sha256:{}", pod_home::keys::hex(&Sha256::digest(&bytes)));
    let found = pod_profile::manifest_digest(manifest)?;
    if recorded == as_written || recorded == found {
        return Ok(());
    }
    Err(CoreError::config(format!(
        "{} was changed since pod {} last ran with it (recorded {recorded}, now {found}); \
         a pod only runs with the manifest it was given or one a `reload` accepted",
        path.display(),
        dir.id()
    )))
}

#[cfg(test)]
#[path = "home_tests.rs"]
mod tests;
