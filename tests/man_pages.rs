//! The hand-written man pages in packaging/man (pam_jit(8), jitd.toml(5), jit-pam-setup(8)):
//! man renders each without a warning, lexgrog finds its whatis line (lintian checks both), and
//! jit-pam-setup(8) documents exactly the script's commands and options. (The keys of
//! jitd.toml(5) and the arguments of pam_jit(8) are compared with the code in jitd and
//! pam_jit themselves.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jit_tests::{text, workspace_root, TempDir};

fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("packaging/man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 3, "{pages:?}");
    pages
}

/// `man` as lintian runs it on a package's pages (its warnings become lintian warnings).
fn render(page: &Path) -> Output {
    Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .env("MANROFFSEQ", "")
        .env("MANWIDTH", "80")
        .output()
        .expect("run man (tests/run installs man-db)")
}

#[test]
fn every_page_renders_without_warnings() {
    for page in pages() {
        let out = render(&page);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}\n{}",
            page.display(),
            out.status,
            text(&out.stderr)
        );
        let out = Command::new("lexgrog").arg(&page).output().unwrap();
        assert!(
            out.status.success(),
            "{}: lexgrog finds no NAME line: {}",
            page.display(),
            text(&out.stdout)
        );
    }
}

/// The check above sees what it is looking for: a page with a mistake in it warns.
#[test]
fn a_page_with_a_mistake_warns() {
    let dir = TempDir::new("man");
    let page = dir.path().join("broken.8");
    std::fs::write(
        &page,
        ".TH BROKEN 8\n.SH NAME\nbroken \\- a page\n.SH DESCRIPTION\n.NOSUCHMACRO x\n",
    )
    .unwrap();
    let out = render(&page);
    assert!(
        text(&out.stderr).contains("NOSUCHMACRO"),
        "no warning: {out:?}"
    );
}

/// The `.TP` entries' first words between `.\" commands:` and `.\" end`.
fn documented_commands(page: &str) -> BTreeSet<String> {
    let region = page
        .split("\n.\\\" commands:\n")
        .nth(1)
        .and_then(|r| r.split("\n.\\\" end\n").next())
        .expect("a `.\\\" commands:` … `.\\\" end` region");
    let lines: Vec<&str> = region.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == ".TP")
        .filter_map(|pair| pair[1].split_whitespace().nth(1))
        // roff writes a command's hyphen as `\-` (a plain `-` may print as a dash).
        .map(|w| w.trim_matches('"').replace("\\-", "-"))
        .collect()
}

#[test]
fn jit_pam_setup_8_documents_the_scripts_commands_and_options() {
    let script = std::fs::read_to_string(workspace_root().join("packaging/jit-pam-setup")).unwrap();
    let page =
        std::fs::read_to_string(workspace_root().join("packaging/man/jit-pam-setup.8")).unwrap();
    // The commands are the patterns of the script's last `case "${1:-}" in`, its dispatch.
    let dispatch = script
        .rsplit("case \"${1:-}\" in\n")
        .next()
        .and_then(|d| d.split("\nesac").next())
        .unwrap();
    let commands: BTreeSet<String> = dispatch
        .lines()
        .filter_map(|l| l.trim_start().split_once(')'))
        .map(|(pattern, _)| pattern.to_string())
        .filter(|p| p != "*")
        .collect();
    assert!(commands.contains("enable"), "{dispatch}");
    assert_eq!(
        documented_commands(&page),
        commands,
        "packaging/man/jit-pam-setup.8 (left) and packaging/jit-pam-setup (right)"
    );
    // Every option and target its usage line names appears in the page (roff writes - as \-).
    let usage = script
        .lines()
        .find(|l| l.contains("echo \"usage: jit-pam-setup"))
        .unwrap();
    for word in usage
        .split(|c: char| c.is_whitespace() || c == '|' || c == '[' || c == ']' || c == '"')
        .filter(|w| w.starts_with("--") || *w == "sudo" || *w == "sshd")
    {
        assert!(
            page.contains(&word.replace('-', "\\-")),
            "jit-pam-setup(8) does not mention {word}"
        );
    }
}
