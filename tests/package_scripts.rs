//! The package's maintainer scripts run as dpkg runs them, against a private root
//! (`DPKG_ROOT`): what `apt purge` keeps and what it deletes. (The prerm's PAM checks are in
//! pam_setup.rs; the whole package is exercised in the VM stories.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jit_tests::{text, workspace_root, TempDir};

const AUDIT_FILES: [&str; 3] = ["audit.log", "audit.head", "audit-00000000000000000042.log"];

/// A root holding what jitd leaves behind: state with an audit trail (with a rotated file), a
/// request record, one of jitd's drop-ins and an administrator's own.
fn installed_root() -> TempDir {
    let root = TempDir::new("purge");
    let state = root.path().join("var/lib/jitd");
    std::fs::create_dir_all(state.join("requests")).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in AUDIT_FILES {
        std::fs::write(state.join(name), format!("evidence in {name}\n")).unwrap();
    }
    std::fs::write(state.join("requests/k3v9q0x2ab.json"), "{}").unwrap();
    let sudoers = root.path().join("etc/sudoers.d");
    std::fs::create_dir_all(&sudoers).unwrap();
    std::fs::write(sudoers.join("jit_k3v9q0x2ab"), "").unwrap();
    std::fs::write(sudoers.join("admins"), "").unwrap();
    root
}

fn purge(root: &Path, purge_audit: Option<&str>) -> Output {
    let mut c = Command::new("sh");
    c.arg(workspace_root().join("packaging/debian/postrm"))
        .arg("purge")
        .env("DPKG_ROOT", root)
        .env_remove("JIT_PURGE_AUDIT");
    if let Some(v) = purge_audit {
        c.env("JIT_PURGE_AUDIT", v);
    }
    c.output().unwrap()
}

fn kept_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("var/backups"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// The attack (an accident, or a cover-up): `apt purge jit` deleted the audit log without a
/// word. Now the trail is moved aside, root-only, and purge says where.
#[test]
fn purge_keeps_the_audit_trail_and_says_where() {
    let root = installed_root();
    let out = purge(root.path(), None);
    assert!(out.status.success(), "{out:?}");
    let kept = kept_dirs(root.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let dir = &kept[0];
    let said = text(&out.stdout);
    assert!(
        said.contains("kept") && said.contains(&dir.display().to_string()),
        "{said}"
    );
    for name in AUDIT_FILES {
        assert_eq!(
            std::fs::read_to_string(dir.join(name)).unwrap(),
            format!("evidence in {name}\n")
        );
    }
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the kept trail is root's alone");
    assert!(
        !dir.join("requests").exists(),
        "only the audit trail is kept"
    );
    assert!(!root.path().join("var/lib/jitd").exists());
    let sudoers = root.path().join("etc/sudoers.d");
    assert!(!sudoers.join("jit_k3v9q0x2ab").exists());
    assert!(
        sudoers.join("admins").exists(),
        "only jitd's own drop-ins go"
    );
}

#[test]
fn purge_deletes_the_trail_only_when_asked_with_jit_purge_audit_1() {
    let root = installed_root();
    // Anything but exactly 1 keeps it.
    let out = purge(root.path(), Some("yes"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(kept_dirs(root.path()).len(), 1);

    let root = installed_root();
    let out = purge(root.path(), Some("1"));
    assert!(out.status.success(), "{out:?}");
    assert!(kept_dirs(root.path()).is_empty());
    assert!(!root.path().join("var/lib/jitd").exists());
    assert!(
        text(&out.stdout).contains("JIT_PURGE_AUDIT=1"),
        "it says what it deleted: {out:?}"
    );
}

#[test]
fn a_trail_that_cannot_be_moved_is_left_in_place_not_deleted() {
    let root = installed_root();
    // /var/backups cannot be made: something else is in its place.
    std::fs::write(root.path().join("var/backups"), "").unwrap();
    let out = purge(root.path(), None);
    assert!(out.status.success(), "a purge still completes: {out:?}");
    let state = root.path().join("var/lib/jitd");
    for name in AUDIT_FILES {
        assert!(state.join(name).exists(), "{name} was deleted: {out:?}");
    }
    assert!(
        text(&out.stderr).contains("left in place"),
        "it says so: {out:?}"
    );
}

/// Nothing to keep: purge on a host where jitd never ran says nothing about a trail.
#[test]
fn purge_without_state_is_quiet() {
    let root = TempDir::new("purge-empty");
    let out = purge(root.path(), None);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
