//! `pod-export` reads pod homes — the files pods leave behind, current and older formats — and
//! turns them into one versioned document that says what happened to every run and what caused
//! every interruption: run outcomes (`completed`, `provider_error`, `interrupted`, `crashed`,
//! `running`), each run's phase and retry safety, incident chains from a run through its
//! lifecycle action and origin (across cascades into ancestor pods), crash evidence, log
//! integrity, and redaction (a secret check on every export, `sanitize` on request). It never
//! needs a live pod. Writing the logs is `pod-core`'s job; parsing arguments and choosing
//! where output goes is the CLI's.
//!
//! Logs are streamed: memory is bounded by the number of runs, not the size of the logs. The
//! document's wire format and its versions are described in `FORMAT.md` next to this crate.
//!
//! ```no_run
//! use pod_export::{ExportRequest, Format, export, key_env_names, render_checked, secrets_from};
//!
//! let request = ExportRequest {
//!     home: "/home/me/.local/state/pods".into(),
//!     pod: "0193a1b2".into(),
//!     tree: true,
//!     sanitize: false,
//! };
//! let mut doc = export(&request, &mut |progress| eprintln!("{progress:?}"))?;
//! let secrets = secrets_from(&key_env_names(&doc), |name| std::env::var(name).ok());
//! let bytes = render_checked(&mut doc, Format::Json, &secrets)?;
//! std::io::Write::write_all(&mut std::io::stdout(), &bytes).ok();
//! # Ok::<(), pod_export::ExportError>(())
//! ```

mod build;
mod chain;
pub mod document;
mod error;
mod liveness;
mod redact;
mod render;
mod scan;
mod upgrade;

pub use build::{ExportRequest, Progress, export, tool_info};
pub use document::{ExportDocument, FORMAT_NAME, SCHEMA_VERSION};
pub use error::ExportError;
pub use redact::{
    DEFAULT_KEY_ENVS, MIN_SECRET_LEN, Secret, check_secrets, key_env_names, sanitize, secrets_from,
};
pub use render::{Format, render_checked, render_json, render_markdown};
pub use upgrade::upgrade;
