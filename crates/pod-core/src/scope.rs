//! The filesystem scope a pod's tools are confined to (`[scope]` in the manifest).
//!
//! Every path is resolved against the pod's working directory and canonicalized (symlinks
//! followed) before it is compared with the scope's roots, so a symlink pointing outside is
//! refused like any other outside path. Refusals are tool errors the model sees; the path
//! outside is never opened.
//!
//! Whatever the manifest allows, the places that decide what a pod may do are never reachable
//! by its tools: the pods home (every pod directory, with its manifest, logs and pod.json), the
//! user config dir, the `--profile-dir`s and every project `.pods` directory at or above the
//! working directory. Otherwise a pod could write its own manifest (or a profile) and widen its
//! scope at the next run. This process registers those places with [`protect`] and
//! [`protect_discovery`]; every [`Scope`] built afterwards refuses them.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use pod_profile::manifest::ScopeSection;

/// Directories this process's tools may never touch, as registered (absolute, not yet
/// canonical: a home may not exist when it is registered). Homes are listed separately because
/// each of their pod directories is protected too, wherever a symlink puts it.
struct Protected {
    homes: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

static PROTECTED: Mutex<Protected> = Mutex::new(Protected {
    homes: Vec::new(),
    dirs: Vec::new(),
});

/// Where the pods project directory is looked for (see `pod_profile::Discovery`).
const PROJECT_DIR: &str = ".pods";

fn register(list: impl FnOnce(&mut Protected) -> &mut Vec<PathBuf>, path: &Path) {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let path = normalize(&path);
    // A poisoned lock still holds a usable list: registering only ever pushes.
    let mut protected = pod_home::locked(&PROTECTED);
    let list = list(&mut protected);
    if !list.contains(&path) {
        list.push(path);
    }
}

/// Protect a pods home (and every pod directory in it) from this process's tools.
pub fn protect_home(home: &Path) {
    register(|p| &mut p.homes, home);
}

/// Protect a directory (and everything below it) from this process's tools.
pub fn protect(dir: &Path) {
    register(|p| &mut p.dirs, dir);
}

/// Protect every place profiles and config are discovered from: the user config dir, the
/// `--profile-dir`s and the project `.pods` directories at or above `discovery.cwd`.
pub fn protect_discovery(discovery: &pod_profile::Discovery) {
    if let Some(dir) = &discovery.user_config_dir {
        protect(dir);
    }
    for dir in &discovery.profile_dirs {
        protect(dir);
    }
    for dir in discovery.cwd.ancestors() {
        protect(&dir.join(PROJECT_DIR));
    }
}

/// The canonical protected roots for a scope whose working directory is `work_dir`.
fn protected_roots(work_dir: &Path) -> Vec<PathBuf> {
    let (homes, dirs) = {
        let protected = pod_home::locked(&PROTECTED);
        (protected.homes.clone(), protected.dirs.clone())
    };
    // Every home this process opened, registered by `pod-home` as it opens them.
    let homes: Vec<PathBuf> = homes.into_iter().chain(pod_home::opened_homes()).collect();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut add = |path: &Path| {
        let root = canonical_or_normal(path, Path::new("/"));
        if !roots.contains(&root) {
            roots.push(root);
        }
    };
    for home in &homes {
        add(home);
        // A pod directory that is a real directory lies inside the home already; only one
        // that is a symlink can put a pod elsewhere.
        if let Ok(listing) = std::fs::read_dir(home.join("pods")) {
            for entry in listing.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    add(&entry.path());
                }
            }
        }
    }
    for dir in &dirs {
        add(dir);
    }
    for dir in work_dir.ancestors() {
        add(&dir.join(PROJECT_DIR));
    }
    roots
}

/// What a tool wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The path must exist.
    Read,
    /// The path may not exist yet; its parent directory must.
    Write,
}

/// Canonical allow and deny roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    work_dir: PathBuf,
    allow: Vec<PathBuf>,
    deny: Vec<PathBuf>,
    /// Pod state and profile directories: refused whatever `allow` says.
    protected: Vec<PathBuf>,
}

impl Scope {
    /// Resolve the manifest's scope against `work_dir`. Roots that do not exist (yet) are kept
    /// in their normalized absolute form. The directories registered with [`protect`],
    /// [`protect_home`] and [`protect_discovery`] so far are refused by this scope.
    pub fn new(section: &ScopeSection, work_dir: &Path) -> Scope {
        let work_dir = canonical_or_normal(work_dir, Path::new("/"));
        let root = |entry: &String| canonical_or_normal(Path::new(entry), &work_dir);
        Scope {
            allow: section.allow.iter().map(root).collect(),
            deny: section.deny.iter().map(root).collect(),
            protected: protected_roots(&work_dir),
            work_dir,
        }
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    pub fn allow(&self) -> &[PathBuf] {
        &self.allow
    }

    /// The canonical path a tool may use for `requested`, or the reason it may not (text for the
    /// model).
    pub fn check(&self, requested: &str, access: Access) -> Result<PathBuf, String> {
        if requested.is_empty() {
            return Err("path is empty".into());
        }
        let lexical = normalize(&self.work_dir.join(requested));
        let resolved = match access {
            Access::Read => std::fs::canonicalize(&lexical)
                .map_err(|e| format!("{requested}: {}", describe_io(&e)))?,
            Access::Write => {
                let name = lexical
                    .file_name()
                    .ok_or_else(|| format!("{requested}: not a file path"))?;
                let parent = lexical.parent().unwrap_or(Path::new("/"));
                let parent = std::fs::canonicalize(parent)
                    .map_err(|e| format!("{requested}: parent directory: {}", describe_io(&e)))?;
                let target = parent.join(name);
                match std::fs::symlink_metadata(&target) {
                    // An existing symlink is followed and its target checked as well.
                    Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(&target)
                        .map_err(|e| format!("{requested}: {}", describe_io(&e)))?,
                    _ => target,
                }
            }
        };
        if let Some(root) = self
            .protected
            .iter()
            .find(|root| resolved.starts_with(root))
        {
            return Err(format!(
                "{requested}: inside {}, which holds pod state or profiles; no tool may read or write there, whatever the scope allows",
                root.display()
            ));
        }
        if !self.allow.iter().any(|root| resolved.starts_with(root)) {
            return Err(format!(
                "{requested}: outside this pod's scope (allowed: {})",
                self.allow
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.deny.iter().any(|root| resolved.starts_with(root)) {
            return Err(format!("{requested}: denied by this pod's scope"));
        }
        Ok(resolved)
    }
}

impl Scope {
    /// Whether `child` is no wider than this scope once symlinks are followed: every root it
    /// allows lies inside one of ours and outside our denied roots. The manifest-level check
    /// compares paths as written; this one catches a path that is a symlink to elsewhere.
    pub fn covers(&self, child: &Scope) -> Result<(), String> {
        for root in &child.allow {
            if !self.allow.iter().any(|ours| root.starts_with(ours)) {
                return Err(format!(
                    "{} is outside the parent's scope (allowed: {})",
                    root.display(),
                    self.allow
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(denied) = self.deny.iter().find(|ours| root.starts_with(ours)) {
                return Err(format!(
                    "{} is inside the parent's denied {}",
                    root.display(),
                    denied.display()
                ));
            }
        }
        Ok(())
    }
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

fn canonical_or_normal(path: &Path, base: &Path) -> PathBuf {
    let joined = normalize(&base.join(path));
    std::fs::canonicalize(&joined).unwrap_or(joined)
}

/// Remove `.` and resolve `..` lexically (used before canonicalization, and for paths that do
/// not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
