//! `pod-protocol` owns every format that crosses a process or a file, as data: the session log's
//! records ([`record`]) with borrowed readings of the frequent ones ([`borrowed`]), the normalized provider stream event ([`event`]) and error ([`error`]),
//! the wire scheme names ([`scheme`]), trace sidecar entries ([`trace`]), the control socket's
//! messages ([`control`]) and the readiness line a spawned pod prints ([`ready`]), the `run --json` event stream ([`run_events`]), what a run's records add up to ([`report`]), and the text rules
//! every record follows ([`text`]). It holds no I/O and no runtime: the crates that write, send
//! and read these shapes depend on it, and on nothing of each other's for them.
//!
//! Names of kinds, classes and tags come from the derives once (serde for JSON, strum for the
//! same names as `&'static str`); a test checks the two agree for every variant.

pub mod borrowed;
pub mod control;
pub mod error;
pub mod event;
pub mod ready;
pub mod record;
pub mod report;
pub mod run_events;
pub mod scheme;
pub mod text;
pub mod trace;

pub use error::{ERROR_MESSAGE_MAX_BYTES, ErrorClass, ProviderError};
pub use event::{StopReason, StreamEvent, Usage};
pub use scheme::WireScheme;

#[cfg(test)]
#[path = "names_tests.rs"]
mod names_tests;
