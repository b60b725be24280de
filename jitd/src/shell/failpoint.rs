//! Crash injection for tests: `JITD_FAILPOINT=<name>` makes the process abort at the named step,
//! so tests can prove that a crash between any two steps of installing or removing a grant
//! converges at the next reconcile. Compiled in only for unit tests and the `failpoints` cargo
//! feature (integration tests); a release build has no way to trigger it.

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
