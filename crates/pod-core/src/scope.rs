//! The filesystem scope a pod's tools are confined to (`[scope]` in the manifest).
//!
//! Every path is resolved against the pod's working directory and canonicalized (symlinks
//! followed) before it is compared with the scope's roots, so a symlink pointing outside is
//! refused like any other outside path. Refusals are tool errors the model sees; the path
//! outside is never opened.

use std::path::{Component, Path, PathBuf};

use pod_profile::manifest::ScopeSection;

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
}

impl Scope {
    /// Resolve the manifest's scope against `work_dir`. Roots that do not exist (yet) are kept
    /// in their normalized absolute form.
    pub fn new(section: &ScopeSection, work_dir: &Path) -> Scope {
        let work_dir = canonical_or_normal(work_dir, Path::new("/"));
        let root = |entry: &String| canonical_or_normal(Path::new(entry), &work_dir);
        Scope {
            allow: section.allow.iter().map(root).collect(),
            deny: section.deny.iter().map(root).collect(),
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
mod tests {
    use super::*;

    fn scope(allow: &[&str], deny: &[&str], work: &Path) -> Scope {
        Scope::new(
            &ScopeSection {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                deny: deny.iter().map(|s| s.to_string()).collect(),
            },
            work,
        )
    }

    #[test]
    fn a_child_scope_through_a_symlink_is_not_covered() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(work.join("src")).unwrap();
        std::fs::create_dir_all(work.join("secret")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), work.join("lnk")).unwrap();
        std::os::unix::fs::symlink(work.join("secret"), work.join("src/peek")).unwrap();
        let parent = scope(&["."], &["secret"], &work);
        assert_eq!(parent.covers(&scope(&["src"], &[], &work)), Ok(()));
        let err = parent.covers(&scope(&["lnk"], &[], &work)).unwrap_err();
        assert!(err.contains("outside the parent's scope"), "{err}");
        assert!(err.contains("outside"), "{err}");
        let err = parent
            .covers(&scope(&["src/peek"], &[], &work))
            .unwrap_err();
        assert!(err.contains("inside the parent's denied"), "{err}");
    }

    #[test]
    fn inside_outside_deny_and_dotdot() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(work.join("src")).unwrap();
        std::fs::create_dir_all(work.join("secret")).unwrap();
        std::fs::write(work.join("src/a.rs"), "x").unwrap();
        std::fs::write(work.join("secret/k"), "x").unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "x").unwrap();
        let s = scope(&["."], &["secret"], &work);
        assert!(s.check("src/a.rs", Access::Read).is_ok());
        assert!(s.check("src/new.rs", Access::Write).is_ok());
        let err = s.check("../outside.txt", Access::Read).unwrap_err();
        assert!(err.contains("outside this pod's scope"), "{err}");
        assert!(s.check("src/../../outside.txt", Access::Read).is_err());
        assert!(
            s.check(
                &tmp.path().join("outside.txt").display().to_string(),
                Access::Read
            )
            .is_err()
        );
        assert!(
            s.check("secret/k", Access::Read)
                .unwrap_err()
                .contains("denied")
        );
        assert!(s.check("../new.txt", Access::Write).is_err());
        assert!(s.check("missing/dir/f", Access::Write).is_err());
    }

    #[test]
    fn symlink_escapes_are_refused_for_read_and_write() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(tmp.path().join("target.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("target.txt"), work.join("link")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), work.join("dirlink")).unwrap();
        let s = scope(&["."], &[], &work);
        assert!(s.check("link", Access::Read).is_err());
        assert!(s.check("link", Access::Write).is_err());
        assert!(s.check("dirlink/target.txt", Access::Read).is_err());
        assert!(s.check("dirlink/new.txt", Access::Write).is_err());
    }
}
