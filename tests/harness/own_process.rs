//! Running one test alone in a process of its own, for tests that measure their process
//! (peak RSS, CPU time). A test binary runs its tests as threads of one process, so a figure
//! taken with `getrusage(RUSAGE_SELF)` counts every test running beside it.

use std::process::Command;

const CHILD: &str = "JIT_TEST_OWN_PROCESS";

/// Called first thing in such a test with its `module_path!()` and name. In the child it
/// returns true: the caller goes on and measures. In the parent it runs the test binary again
/// with just that test, asserts that the child ran it and passed, and returns false.
pub fn alone(module: &str, test: &str) -> bool {
    // module_path!() starts with the crate's name; libtest names tests without it.
    let path = match module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{test}"),
        None => test.to_string(),
    };
    if std::env::var(CHILD).as_deref() == Ok(path.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([path.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, &path)
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "{path} failed in its own process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child process did not run {path}:\n{stdout}"
    );
    false
}
