//! Test hooks, compiled in only for unit tests and the `failpoints` cargo feature (integration
//! tests); a release build has no way to trigger them.
//!
//! - Crash injection: `JITD_FAILPOINT=<name>` makes the process abort at the named step, so
//!   tests can prove that a crash between any two steps of installing or removing a grant
//!   converges at the next reconcile; or, at a [`stall`] point, stops that one thread there
//!   for the test to `kill -9` the process.
//! - The wall clock: `JITD_TEST_WALL_OFFSET=<file>` adds the whole seconds in that file to
//!   every reading of the wall clock ([`wall_now`]), so a test steps jitd's wall clock by
//!   hours (`date -s`, as far as jitd can tell) without setting the machine's.
//! - The reconciliation's period: `JITD_TEST_RECONCILE_MS=<ms>` instead of a minute
//!   ([`reconcile_every`]), so a test sees what a periodic reconciliation does without waiting
//!   for it.

use chrono::{DateTime, Utc};

/// Aborts the process (no unwinding, no destructors: as close to `kill -9` as a process can do
/// to itself) when the environment names this failpoint.
#[cfg(any(test, feature = "failpoints"))]
pub fn hit(name: &str) {
    if std::env::var_os("JITD_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("jitd: failpoint {name} hit, aborting");
        std::process::abort();
    }
}

#[cfg(not(any(test, feature = "failpoints")))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Stops the calling thread for good when the environment names this failpoint, so that a
/// test can `kill -9` the process with that thread caught between two steps while the others
/// go on (a crash at a moment no other thread's progress decides).
#[cfg(any(test, feature = "failpoints"))]
pub fn stall(name: &str) {
    if std::env::var_os("JITD_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("jitd: failpoint {name} hit, stalling this thread");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(not(any(test, feature = "failpoints")))]
#[inline(always)]
pub fn stall(_name: &str) {}

/// The wall clock (`CLOCK_REALTIME`), stepped by the offset a test keeps in the file named by
/// `JITD_TEST_WALL_OFFSET` (read at every call: the test changes it while jitd runs).
#[cfg(any(test, feature = "failpoints"))]
pub fn wall_now() -> DateTime<Utc> {
    let offset = std::env::var_os("JITD_TEST_WALL_OFFSET")
        .and_then(|file| std::fs::read_to_string(file).ok())
        .and_then(|text| text.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Utc::now() + chrono::Duration::seconds(offset)
}

#[cfg(not(any(test, feature = "failpoints")))]
#[inline(always)]
pub fn wall_now() -> DateTime<Utc> {
    Utc::now()
}

/// How often the scheduler reconciles the host with the records: `default`, or what
/// `JITD_TEST_RECONCILE_MS` says.
#[cfg(any(test, feature = "failpoints"))]
pub fn reconcile_every(default: std::time::Duration) -> std::time::Duration {
    std::env::var("JITD_TEST_RECONCILE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(default, std::time::Duration::from_millis)
}

#[cfg(not(any(test, feature = "failpoints")))]
#[inline(always)]
pub fn reconcile_every(default: std::time::Duration) -> std::time::Duration {
    default
}
