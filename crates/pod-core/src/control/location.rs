//! Where a pod's control socket lives: the private per-user socket directory, the socket's
//! name in it, and the `control.sock` link in the pod directory that points there.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

use crate::children::ChildError;

/// Name in a pod directory that says where its control socket is: a symbolic link to it (or,
/// in pods of older versions, the socket itself).
pub const CONTROL_SOCKET: &str = "control.sock";

/// Longest socket path the kernel accepts: `sun_path` holds 108 bytes with the final NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Longest socket file name [`socket_name`] makes: 36 (pod id) + 1 + 12 (digest) + 5 (`.sock`).
pub const MAX_SOCKET_NAME: usize = 54;

/// A socket nobody serves is removed by the sweep only when it is at least this old, so that a
/// socket just bound (and not yet listening) is never taken for a stale one.
pub(super) const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The directory control sockets are bound in, created `0700` if missing:
/// `$XDG_RUNTIME_DIR/pods` when `XDG_RUNTIME_DIR` is set (and absolute), else
/// `/tmp/pods-<uid>`; also `/tmp/pods-<uid>` when the runtime directory's path is too long for
/// socket paths. The directory must be a real directory owned by this user (a wider mode is
/// narrowed to `0700`). A runtime directory that is set but unusable is an error, not a reason
/// to go elsewhere unannounced: the error names the directory, why, and what to do.
pub fn socket_dir() -> Result<PathBuf, ChildError> {
    let uid = rustix::process::getuid().as_raw();
    let fallback = PathBuf::from(format!("/tmp/pods-{uid}"));
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("pods"))
        .filter(|dir| dir.as_os_str().len() + 1 + MAX_SOCKET_NAME <= MAX_SOCKET_PATH);
    let (dir, fix) = match runtime {
        Some(dir) => (
            dir,
            "fix it, or unset XDG_RUNTIME_DIR to use /tmp/pods-<uid>",
        ),
        None => (
            fallback,
            "remove it, or set XDG_RUNTIME_DIR to a private directory",
        ),
    };
    match private_dir(&dir, uid) {
        Ok(()) => Ok(dir),
        Err(why) => Err(ChildError::SocketDir {
            detail: format!("{}: {why}; {fix}", dir.display()),
        }),
    }
}

/// Make sure `dir` is a directory of `uid`'s that nobody else can enter.
fn private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(format!("cannot create it: {error}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect it: {e}"))?;
    if !meta.file_type().is_dir() {
        return Err("it is not a directory (a symlink or file is in the way)".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "it belongs to uid {}, not to this user (uid {uid})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!(
                "its mode is {:o} and cannot be narrowed to 700: {e}",
                meta.mode() & 0o777
            )
        })?;
    }
    Ok(())
}

/// The socket file name of the pod in `pod_dir`: its id (the directory name, at most 36
/// characters of it) and the first 12 hex digits of the SHA-256 of the directory's absolute
/// path, so that pods of the same id in two homes never share a socket.
pub fn socket_name(pod_dir: &Path) -> String {
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(pod_dir).unwrap_or_else(|_| pod_dir.to_owned());
    let digest = sha2::Sha256::digest(absolute.as_os_str().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let id: String = pod_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(36)
        .collect();
    format!("{id}-{hex}.sock")
}

/// The socket a client of the pod in `pod_dir` connects to: the target of its `control.sock`
/// link, or `control.sock` itself (a pod of an older version, or a pod not running).
pub fn locate_socket(pod_dir: &Path) -> PathBuf {
    let link = pod_dir.join(CONTROL_SOCKET);
    match std::fs::read_link(&link) {
        Ok(target) if target.is_absolute() => target,
        Ok(target) => pod_dir.join(target),
        Err(_) => link,
    }
}

/// Check that control sockets can be bound for pods in `home`: the socket directory is usable,
/// a socket path fits, and a probe socket binds there. Returns what was checked.
pub fn check_socket_dir(home: &Path) -> Result<String, ChildError> {
    let dir = socket_dir()?;
    // A pod id is 36 characters; the name does not depend on the home's length.
    let example = home.join("pods").join("0".repeat(36));
    let path = dir.join(socket_name(&example));
    let length = path.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(ChildError::SocketDir {
            detail: format!(
                "{}: a socket path there is {length} bytes, over the limit of {MAX_SOCKET_PATH}",
                dir.display()
            ),
        });
    }
    let probe = dir.join(format!("doctor-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    let bound = std::os::unix::net::UnixListener::bind(&probe);
    let _ = std::fs::remove_file(&probe);
    bound.map_err(|source| ChildError::Socket {
        path: probe.clone(),
        source,
    })?;
    Ok(format!(
        "{} is private to this user; socket paths are {length} bytes (limit {MAX_SOCKET_PATH})",
        dir.display()
    ))
}

/// Remove the sockets in `dir` that nobody serves any more (left by pods that were killed).
pub(super) async fn sweep_stale(dir: &Path, min_age: std::time::Duration) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if !meta.file_type().is_socket() || !old {
            continue;
        }
        if let Err(error) = UnixStream::connect(&path).await
            && error.kind() == std::io::ErrorKind::ConnectionRefused
        {
            tracing::debug!(path = %path.display(), "removing a stale control socket");
            let _ = std::fs::remove_file(&path);
        }
    }
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), ChildError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ChildError::Socket {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Point `link` (`control.sock` in the pod directory) at `socket`, replacing it atomically.
pub(super) fn record_location(link: &Path, socket: &Path) -> Result<(), ChildError> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{CONTROL_SOCKET}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let made = std::os::unix::fs::symlink(socket, &tmp).and_then(|()| std::fs::rename(&tmp, link));
    if let Err(source) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(ChildError::Socket {
            path: link.to_owned(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
