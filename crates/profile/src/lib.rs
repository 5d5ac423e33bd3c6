//! Profiles, layered configuration with per-field provenance, the runtime manifest, and child
//! materialization for pods.
//!
//! This crate owns: finding profiles ([`Catalog::discover`]: builtins embedded from the
//! repository's `profiles/*.toml`, the user dir `$XDG_CONFIG_HOME/pods/profiles`, the project
//! dir `.pods/profiles` found walking up from the working directory, and `--profile-dir`s);
//! resolving one into a [`ResolvedManifest`] whose every leaf key carries a [`Provenance`];
//! validating it; deciding a child pod's manifest ([`materialize_child`]) from one policy table
//! ([`policy`]); and storing a manifest in a pod directory ([`write_manifest_files`]). It does
//! not run pods, talk to providers or print anything: the CLI presents, `pod-core` spawns.
//!
//! **Precedence of a profile name** found in several places, highest first: a later
//! `--profile-dir` > an earlier `--profile-dir` > project > user > builtin. The winner's
//! [`CatalogEntry::shadows`] lists the others. A profile whose `extends` names its own name
//! extends the file it shadows (a user `default.toml` with `extends = "default"` tweaks the
//! builtin); any other repeated name in a chain is a cycle.
//!
//! **Layers**, lowest first: compiled defaults < user config (`$XDG_CONFIG_HOME/pods/config.toml`)
//! < project config (`.pods/config.toml`) < the profile chain (`extends`, base first) <
//! environment (`PODS_SECTION__KEY`, e.g. `PODS_SESSION__RECORD_EVENT_TRACE=true`) < `--set
//! section.key=value`. Values from env and `--set` are TOML (`true`, `3`, `["a"]`); a bare word
//! is a string. Only `PODS_*` names with a double underscore are configuration, so `PODS_HOME`
//! and other single-underscore names stay free for other uses. Config files are manifest-shaped
//! without `extends`/`description`. A relative `model.cassette` resolves against the directory
//! of the file that set it (one from env or `--set` stays as written, relative to the pod's
//! working directory); `builtin:NAME` stays as written. The layers are merged and type-checked
//! by figment, each under its own metadata, so a type error names the file, env var or `--set`
//! that set the bad value; the per-layer history `explain` shows, the exact source inside an
//! `extends` chain and line numbers are kept by this crate.
//!
//! **Provenance** details: `path:line: section.key` for files (builtins as `profiles/NAME.toml`;
//! the line is left out when the key is written in a form the line scan does not find),
//! with `(extended by coder.toml)` when the file was reached through `extends`; the env var
//! name; `--set TEXT`; `compiled default` (or `compiled default: unset` for an unset optional);
//! for children `inherited from parent POD` with the parent's own entry in `from`, or `spawn
//! request from parent POD: KEY`. A source that was never recorded has kind `unknown`; it is
//! not guessed.
//!
//! **Validation** ([`validate`], run by every resolution) refuses values that would only fail
//! at run time, naming the key and where it was set: a replay `model.cassette` that is not a
//! regular file, a `model.api_key_env` that is not a variable name (empty, `A=B`, other
//! characters), a `model.base_url` that is not an http(s) URL, `model.auth = "none"` (a provider
//! that takes no key) together with a `model.api_key_env`. Credentials in `model.base_url`
//! (`user:password@`, a query such as `?key=`) are refused, not stripped, so they never reach
//! `manifest.toml`; the error does not repeat them.
//!
//! **Child policies** ([`InheritPolicy`]): `session.*` sticky (parent's value unless the child
//! profile chain or the spawn request sets it); `model.*` one group (the child's whole section
//! when its chain sets `model.model` or `model.scheme`, else the parent's); `limits.*` inherited
//! unless the child chain sets them; `agent.*` and `spawn.allowed_profiles` the child's;
//! `scope.*` the parent's, only narrowed by the request; `spawn.max_depth` the parent's − 1
//! (a child profile may lower it); `spawn.max_children` the child's, capped at the parent's.
//! A spawn request may override `session.*`, `agent.max_turns` and `agent.instructions`; its
//! [`ScopeRequest`] may replace `allow` with paths inside the parent's scope (outside its deny
//! list) and add `deny` entries. A new key in `session`, `model` or `limits` takes its section's
//! policy; a new key elsewhere fails the `every_leaf_key_has_a_policy` test until it has one.
//!
//! ```no_run
//! use pod_profile::{Catalog, Discovery, Overrides, SpawnRequest, materialize_child};
//! # fn main() -> Result<(), pod_profile::ProfileError> {
//! let catalog = Catalog::discover(&Discovery {
//!     cwd: std::env::current_dir().unwrap_or_default(),
//!     user_config_dir: Discovery::user_config_dir_from_env(),
//!     profile_dirs: vec![],
//! })?;
//! let parent = catalog.resolve("coder", &Overrides::default())?;
//! let request = SpawnRequest { task: "review".into(), ..SpawnRequest::default() };
//! let child = materialize_child(&catalog, &parent, "<parent>", "reviewer", &request, &[])?;
//! assert_eq!(child.manifest.session.record_event_trace, parent.manifest.session.record_event_trace);
//! # Ok(()) }
//! ```

mod child;
mod discovery;
mod error;
mod files;
pub mod manifest;
mod resolve;
pub mod schema;

pub use child::{
    InheritPolicy, POLICIES, ScopeRequest, SpawnRequest, materialize_child, policy,
    request_may_override,
};
pub use discovery::{Catalog, CatalogEntry, Discovery, Origin, ProfileSource};
pub use error::ProfileError;
pub use files::{
    MANIFEST_FILE, PROVENANCE_FILE, manifest_digest, manifest_toml, read_manifest_files,
    reread_manifest_files, write_manifest_files,
};
pub use manifest::{
    Auth, Manifest, McpSection, McpServer, Permission, PermissionsSection, Provenance,
    ProvenanceMap, ResolvedManifest, Ruling, Scheme, SideEffectClass, SourceKind,
    TelemetryProtocol, TelemetrySection,
};
pub use resolve::{Explanation, LayerValue, Overrides, Resolution, explain, validate};
