//! The configuration and policy loader: `jitd.toml` and one drop-in beside it, as arbitrary
//! text, loaded through the same `Config::load` as `jitd serve` and `jitd check-config`.
//!
//! Properties: loading never panics, whatever the files say; an error names one of the two
//! files; a policy that loads answers `explain` and `decide` for a few requests without
//! panicking (time zones, hour ranges and weekdays are evaluated at two fixed instants).
//!
//! Input: the main file's text, then optionally a NUL and the drop-in's text (invalid UTF-8
//! replaced, so that the fuzzer spends its time in TOML rather than in UTF-8 errors).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use jit_proto::Target;
use libfuzzer_sys::fuzz_target;

/// A directory of this process's own in tmpfs when there is one: two file writes per input.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = scratch_base();
        let dir = base.join(format!("jit-fuzz-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Where the scratch directory goes: `JIT_FUZZ_SCRATCH` (run-smoke and run-long point it at a
/// directory they remove afterwards: libFuzzer exits without running destructors), else tmpfs.
fn scratch_base() -> PathBuf {
    match std::env::var_os("JIT_FUZZ_SCRATCH") {
        Some(dir) => PathBuf::from(dir),
        None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (main, drop_in) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let dir = scratch();
    let path = dir.join("jitd.toml");
    let drop_dir = dir.join("jitd.toml.d");
    let drop_path = drop_dir.join("10-roles.toml");
    std::fs::write(&path, String::from_utf8_lossy(main).as_bytes()).unwrap();
    match drop_in {
        Some(text) => {
            let _ = std::fs::create_dir(&drop_dir);
            std::fs::write(&drop_path, String::from_utf8_lossy(text).as_bytes()).unwrap();
        }
        None => {
            let _ = std::fs::remove_file(&drop_path);
            let _ = std::fs::remove_dir(&drop_dir);
        }
    }

    let sudo = |argv: &[&str]| Target::Sudo {
        command: argv.iter().map(|s| s.to_string()).collect(),
    };
    let asks = [
        (Target::Ssh, None),
        (sudo(&["/usr/bin/systemctl", "restart", "nginx"]), None),
        (sudo(&["/usr/bin/id"]), Some("web-restart")),
        (sudo(&["/bin/cat", "/var/log/../../etc/shadow"]), None),
        (Target::Ssh, Some("oncall")),
    ];
    // A Wednesday mid-morning and a Sunday night, in UTC.
    let nows = [
        Utc.with_ymd_and_hms(2030, 1, 2, 10, 30, 0).unwrap(),
        Utc.with_ymd_and_hms(2030, 1, 6, 23, 59, 59).unwrap(),
    ];
    if let Err(e) = jitd::fuzzing::load_config(&path, &asks, &nows) {
        let names_a_file =
            e.contains(&*path.to_string_lossy()) || e.contains(&*drop_dir.to_string_lossy());
        assert!(names_a_file, "the error names no file: {e}");
    }
});
