//! Locking a mutex that another thread may have poisoned.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `mutex`, taking the data even when a thread panicked while holding it: every mutex in
/// this crate guards data that is whole between statements (a list, a flag, a buffer), so a
/// panic elsewhere leaves nothing half written, and one failed task must not take the pod's
/// bookkeeping down with it.
pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
