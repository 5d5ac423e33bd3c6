//! `pod-home` owns the pods home on disk and everything read back from it, without a runtime:
//!
//! - the layout ([`PodHome`], [`PodDir`]) and `pod.json` ([`PodDir::read_info`]; leniently,
//!   for listings, [`PodRecord`]);
//! - lookup by id, prefix or name, the pod tree and ancestors ([`PodIndex`]);
//! - liveness with the pid-reuse guard ([`liveness`]);
//! - safe reading (never blocking on a FIFO, bounded lines) and atomic writing ([`files`]);
//! - the session log read back ([`log_read`]), runs classified one way for `ls`, `show` and the
//!   export ([`runs`]), summaries ([`summary`]), conversations ([`conversation`]);
//! - key prints ([`keys`]) and removal ([`prune`]).
//!
//! Writing logs and running pods is `pod-core`'s job; the formats are `pod-protocol`'s.

pub mod conversation;
pub mod error;
pub mod files;
pub mod index;
pub mod keys;
pub mod layout;
pub mod liveness;
pub mod log_read;
pub mod prune;
pub mod runs;
pub mod summary;

pub use error::HomeError;
pub use index::{PodFields, PodIndex, PodRecord};
pub use layout::{PodDir, PodHome, SegmentFiles, opened_homes};
pub use liveness::Liveness;
pub use prune::{PodRef, PrunePlan, PruneRule, RemoveError};
pub use runs::RunOutcome;

/// Now, RFC 3339 with milliseconds, UTC: how every record of a pod home writes a time.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Lock `mutex`, recovering the data of a poisoned one: every lock here guards data that is
/// whole between statements, so a panic elsewhere leaves nothing half-written.
pub fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
