//! `pod-export` reads pod homes — the files pods leave behind, current and older formats — and
//! turns them into one versioned document that says what happened to every run and what caused
//! every interruption: run outcomes (`completed`, `provider_error`, `interrupted`, `crashed`,
//! `running`), each run's phase and retry safety, incident chains from a run through its
//! lifecycle action and origin (across cascades into ancestor pods), crash evidence, log
//! integrity, and redaction (a secret check on every export, `sanitize` on request). It never
//! needs a live pod. Writing the logs is `pod-core`'s job; parsing arguments and choosing
//! where output goes is the CLI's.
//!
//! Logs are streamed and so is the document: [`ExportPlan::write_to`] writes each pod as soon
//! as its logs are read and each run as soon as it is final, through a secret check, so memory
//! is bounded by the runs still open in one log (plus the incidents and one integrity entry per
//! log), not by the size of the logs or the number of runs. [`export`] builds the same document
//! in memory. The wire format and its versions are described in `FORMAT.md` next to this crate.
//!
//! ```no_run
//! use pod_export::{ExportRequest, Format, prepare, secrets_from, write_file_atomically};
//!
//! let request = ExportRequest {
//!     home: "/home/me/.local/state/pods".into(),
//!     pod: "0193a1b2".into(),
//!     tree: true,
//!     sanitize: false,
//! };
//! let plan = prepare(&request)?;
//! let secrets = secrets_from(&plan.key_env_names(), |name| std::env::var(name).ok());
//! write_file_atomically("incident.json".as_ref(), |out| {
//!     plan.write_to(Format::Json, &secrets, out, &mut |progress| eprintln!("{progress:?}"))
//! })?;
//! # Ok::<(), pod_export::ExportError>(())
//! ```

mod chain;
pub mod document;
mod error;
mod mapping;
mod output;
mod plan;
mod redact;
mod render;
mod retry;
mod scan;
mod stream;
mod upgrade;

pub use document::{ExportDocument, FORMAT_NAME, SCHEMA_VERSION};
pub use error::ExportError;
pub use output::{write_file_atomically, write_stdout_checked};
pub use plan::{ExportPlan, ExportRequest, ExportStats, Progress, export, prepare, tool_info};
pub use redact::{
    DEFAULT_KEY_ENVS, GUARD_CHUNK, MIN_SECRET_LEN, Secret, SecretGuard, check_secrets,
    key_env_names, merge_recorded, sanitize, secrets_from, secrets_recorded,
};
pub use render::{Format, render_checked, render_json, render_markdown, render_markdown_with_logs};
pub use upgrade::upgrade;
