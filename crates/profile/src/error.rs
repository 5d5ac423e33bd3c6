//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong finding, resolving, validating, materializing or storing a
/// manifest. Each message names the file, profile or key involved; [`ProfileError::hint`] says
/// what would fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("profile directory {} does not exist", path.display())]
    MissingDir { path: PathBuf },

    #[error("TOML syntax error in {file} at line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: unknown key `{key}`{}", location(file, *line), suggestion_text(suggestion))]
    UnknownKey {
        file: String,
        /// The line in `file`, when the key was found on one.
        line: Option<usize>,
        key: String,
        suggestion: Option<String>,
    },

    #[error("{}: key `{key}` has the wrong type: {message}", location(file, *line))]
    Type {
        file: String,
        /// The line in `file`, when the key was found on one.
        line: Option<usize>,
        key: String,
        message: String,
    },

    #[error("invalid value for `{key}` (from {origin}): {message}")]
    InvalidValue {
        origin: String,
        key: String,
        message: String,
    },

    #[error("invalid {what} `{text}`: {message}")]
    BadAssignment {
        what: &'static str,
        text: String,
        message: String,
    },

    #[error("no profile named `{name}`{}", suggestion_text(suggestion))]
    ProfileNotFound {
        name: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },

    #[error("profile `{missing}` not found, extended by the chain {}", chain.join(" -> "))]
    MissingParent { missing: String, chain: Vec<String> },

    #[error("`extends` cycle: {}", chain.join(" -> "))]
    ExtendsCycle { chain: Vec<String> },

    #[error("parent may not spawn: max_depth 0 ({source_detail})")]
    SpawnDepthExhausted { source_detail: String },

    #[error("profile `{child}` is not in the parent's spawn.allowed_profiles [{}]", allowed.join(", "))]
    ChildNotAllowed { child: String, allowed: Vec<String> },

    #[error("requested scope path `{path}` is wider than the parent's scope: {reason}")]
    ScopeWidened { path: String, reason: String },

    #[error("spawn request may not override `{key}`: {reason}")]
    OverrideNotAllowed { key: String, reason: String },

    #[error("unknown key `{key}`{}", suggestion_text(suggestion))]
    UnknownExplainKey {
        key: String,
        suggestion: Option<String>,
    },

    #[error("{} is not valid JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot render the manifest as TOML")]
    Render(#[source] toml::ser::Error),
}

fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
    }
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

impl ProfileError {
    /// What the user could do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            ProfileError::ProfileNotFound { available, .. } => Some(format!(
                "available profiles: {} (see `pods profile list`)",
                available.join(", ")
            )),
            ProfileError::MissingParent { missing, .. } => Some(format!(
                "create a profile `{missing}` or fix the `extends` that names it"
            )),
            ProfileError::ExtendsCycle { .. } => {
                Some("remove one `extends` so the chain ends at a profile without one".to_owned())
            }
            ProfileError::UnknownKey { .. } | ProfileError::UnknownExplainKey { .. } => Some(
                "keys are `section.key` with sections model, agent, scope, session, spawn, limits (see `pods profile show default`)".to_owned(),
            ),
            ProfileError::BadAssignment { .. } => Some(
                "write `section.key=value`; the value is TOML (true, 3, \"text\", [\"a\"]) and a bare word is a string".to_owned(),
            ),
            ProfileError::ChildNotAllowed { child, .. } => Some(format!(
                "add \"{child}\" to the parent profile's spawn.allowed_profiles"
            )),
            ProfileError::SpawnDepthExhausted { .. } => {
                Some("raise spawn.max_depth of the top-level pod's profile".to_owned())
            }
            ProfileError::ScopeWidened { .. } => Some(
                "a child's scope can only narrow the parent's: in the child profile or the spawn request, use paths inside the parent's scope.allow and outside its scope.deny".to_owned(),
            ),
            _ => None,
        }
    }
}
