//! Locking that survives a panicked holder: the data plane's maps stay usable after a bug.

use std::sync::{Mutex, MutexGuard};

/// Locks shared bookkeeping; a poisoned lock is still consistent (every critical section
/// leaves the index valid between statements that can panic), so it is recovered.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
