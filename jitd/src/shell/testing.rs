//! Test fixtures shared by the enforcement tests: real Unix users, scratch directories and
//! unique ids, each cleaned up on drop so a failing test leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// An id unique across concurrently running tests and test processes: `[a-z0-9]` only.
pub fn unique_id(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{nanos:x}", std::process::id())
}

/// A real Unix user, deleted on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
}

impl TestUser {
    /// Creates `name` with `useradd --badname` (Debian's useradd refuses dotted names without it).
    pub fn create(name: &str) -> TestUser {
        let _ = Command::new("userdel").arg(name).output();
        let out = Command::new("useradd")
            .args(["--badname", "-M", "-s", "/bin/sh", name])
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let uid = nix::unistd::User::from_name(name)
            .expect("getpwnam")
            .expect("user exists after useradd")
            .uid
            .as_raw();
        TestUser {
            name: name.to_owned(),
            uid,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A scratch directory, removed with its contents on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_id(&format!("jitd-{tag}-")));
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `argv` as `user` through `runuser`, returning (success, stdout, stderr).
pub fn run_as(user: &str, argv: &[&str]) -> (bool, String, String) {
    let out = Command::new("runuser")
        .args(["-u", user, "--"])
        .args(argv)
        .output()
        .expect("run runuser");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A drop-in directory included by its own top-level sudoers file: stories about broken
/// configurations run here so other tests on the machine never see a broken /etc/sudoers.d.
pub struct ScratchSudoers {
    pub tmp: TempDir,
}

impl ScratchSudoers {
    pub fn new() -> ScratchSudoers {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TempDir::new("sudoers");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        for d in [tmp.path(), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let main = tmp.path().join("sudoers");
        std::fs::write(&main, format!("@includedir {}\n", dir.display())).unwrap();
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o440)).unwrap();
        ScratchSudoers { tmp }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("d")
    }

    pub fn sudoers(&self) -> crate::shell::host::sudoers::SudoersDir {
        scratch_sudoers_at(self.tmp.path())
    }
}

/// The drop-in directory of a [`ScratchSudoers`] rooted at `root` (also from another process).
pub fn scratch_sudoers_at(root: &Path) -> crate::shell::host::sudoers::SudoersDir {
    crate::shell::host::sudoers::SudoersDir::new(root.join("d"))
        .with_main_config(root.join("sudoers"))
}
