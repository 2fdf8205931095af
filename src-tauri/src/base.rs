//! The bottom of the shell: locking plain-data mutexes, and the time since launch.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Lock a std mutex, ignoring poisoning (a panicked holder left plain data behind).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static LAUNCHED: OnceLock<Instant> = OnceLock::new();

/// Time since [`crate::run`] began (since the first call, under the mock runtime).
pub fn since_launch() -> Duration {
    LAUNCHED.get_or_init(Instant::now).elapsed()
}
