//! The import rules of docs/architecture.md, checked: a layer never imports one above it, and
//! the shell's concerns never reach into the daemon that orchestrates them.

use std::path::Path;

/// (folder under src/, paths its code must never name)
/// Nothing in the product reaches the fuzz targets' facade (`fuzzing/`, absent from releases)
/// or the fleet benchmark's simulator (`fleet_sim/`, only with the `fleet-sim` feature).
const RULES: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "crate::shell",
            "crate::config",
            "crate::cli",
            "crate::fuzzing",
            "crate::fleet_sim",
        ],
    ),
    (
        "config",
        &[
            "crate::shell",
            "crate::cli",
            "crate::fuzzing",
            "crate::fleet_sim",
        ],
    ),
    (
        "shell",
        &["crate::cli", "crate::fuzzing", "crate::fleet_sim"],
    ),
    ("cli", &["crate::fuzzing", "crate::fleet_sim"]),
    ("shell/host", &["crate::shell::daemon"]),
    ("shell/audit", &["crate::shell::daemon"]),
    ("shell/notify", &["crate::shell::daemon"]),
    ("shell/fleet", &["crate::shell::daemon"]),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read the source tree") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (folder, forbidden) in RULES {
        let mut files = Vec::new();
        sources(&src.join(folder), &mut files);
        assert!(
            !files.is_empty(),
            "src/{folder} has no sources: update RULES"
        );
        for (file, text) in &files {
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for path in *forbidden {
                    if line.contains(path) {
                        broken.push(format!("{file}:{}: {}", n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against docs/architecture.md:\n{}",
        broken.join("\n")
    );
}
