//! The trust check on real files: a root-owned directory made for each test under
//! /usr/local/lib (a temp dir under /tmp would itself be refused), and a real user to own things.

use super::*;
use crate::shell::testing::{unique_id, TestUser};
use std::os::unix::fs::{chown, symlink, PermissionsExt};

/// `/usr/local/lib/jitd-trust-<id>`, root:root 0755, removed on drop.
struct RootDir(PathBuf);

impl RootDir {
    fn new() -> RootDir {
        let path = Path::new("/usr/local/lib").join(unique_id("jitd-trust-"));
        fs::create_dir_all(&path).unwrap();
        chown(&path, Some(0), Some(0)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        RootDir(path)
    }

    /// A root-owned 0755 program at `rel`, with root-owned 0755 directories above it.
    fn program(&self, rel: &str) -> String {
        let path = self.0.join(rel);
        let mut dir = path.parent().unwrap().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        while dir != self.0 {
            chown(&dir, Some(0), Some(0)).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            dir.pop();
        }
        fs::write(&path, "#!/bin/sh\necho hello\n").unwrap();
        chown(&path, Some(0), Some(0)).unwrap();
        chmod(&path, 0o755);
        path.display().to_string()
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn chmod(path: impl AsRef<Path>, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn refused(program: &str) -> Untrusted {
    check(program).expect_err(&format!("{program} must be refused"))
}

#[test]
fn a_root_owned_program_in_root_owned_directories_is_trusted() {
    let base = RootDir::new();
    let prog = base.program("bin/hello");
    assert_eq!(check(&prog).unwrap(), PathBuf::from(&prog));
    // The system's own programs, also through Debian's /bin -> usr/bin symlink.
    assert!(check("/usr/bin/id").is_ok());
    let sh = check("/bin/sh").unwrap();
    assert!(sh.is_absolute() && !sh.starts_with("/bin"), "{sh:?}");
}

#[test]
fn a_program_owned_by_a_user_is_refused_naming_the_owner() {
    let base = RootDir::new();
    let alice = TestUser::create(&unique_id("jtt"));
    let prog = base.program("bin/hello");
    chown(&prog, Some(alice.uid), None).unwrap();
    let e = refused(&prog);
    assert_eq!(e.path, PathBuf::from(&prog));
    assert_eq!(e.problem, Problem::Owner { uid: alice.uid });
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "{prog} is writable by {} (owner uid {})",
            alice.name, alice.uid
        )),
        "{text}"
    );
    assert!(text.ends_with("jit grants only programs that only root can change"));
}

#[test]
fn a_group_or_world_writable_program_is_refused() {
    let base = RootDir::new();
    let prog = base.program("bin/hello");
    chmod(&prog, 0o775);
    let e = refused(&prog);
    assert!(matches!(
        e.problem,
        Problem::GroupWritable { mode: 0o775, .. }
    ));
    assert!(e.to_string().contains("is writable by group root"), "{e}");
    chmod(&prog, 0o757);
    assert_eq!(
        refused(&prog).problem,
        Problem::WorldWritable { mode: 0o757 }
    );
    chmod(&prog, 0o755);
    assert!(check(&prog).is_ok());
}

#[test]
fn a_writable_or_user_owned_directory_in_the_middle_of_the_path_is_refused() {
    let base = RootDir::new();
    let alice = TestUser::create(&unique_id("jtt"));
    let prog = base.program("opt/tool/bin/hello");
    let middle = base.0.join("opt/tool");
    chown(&middle, Some(alice.uid), None).unwrap();
    let e = refused(&prog);
    assert_eq!(e.path, middle);
    assert_eq!(e.problem, Problem::Owner { uid: alice.uid });
    chown(&middle, Some(0), None).unwrap();
    chmod(&middle, 0o775);
    assert_eq!(refused(&prog).path, middle);
    // Sticky and world-writable, like /tmp: the rule stays simple, refused as well.
    chmod(&middle, 0o1777);
    assert_eq!(
        refused(&prog).problem,
        Problem::WorldWritable { mode: 0o1777 }
    );
    chmod(&middle, 0o755);
    assert!(check(&prog).is_ok());
}

#[test]
fn a_root_owned_program_in_tmp_is_refused() {
    // /tmp itself is world-writable (sticky), so what is in it can be replaced by its owner.
    let dir = crate::shell::testing::TempDir::new("trust");
    let prog = dir.path().join("hello");
    fs::write(&prog, "#!/bin/sh\n").unwrap();
    chmod(&prog, 0o755);
    let e = refused(&prog.display().to_string());
    assert_eq!(e.path, std::env::temp_dir());
    assert!(matches!(e.problem, Problem::WorldWritable { .. }), "{e}");
}

#[test]
fn a_symlink_from_a_root_owned_path_to_a_user_owned_file_is_refused() {
    let base = RootDir::new();
    let alice = TestUser::create(&unique_id("jtt"));
    // alice's own directory and program, reached from a root-owned symlink.
    let home = base.0.join("home");
    fs::create_dir(&home).unwrap();
    chown(&home, Some(alice.uid), None).unwrap();
    let target = home.join("hello");
    fs::write(&target, "#!/bin/sh\n").unwrap();
    chown(&target, Some(alice.uid), None).unwrap();
    chmod(&target, 0o755);
    let bin = base.0.join("bin");
    fs::create_dir(&bin).unwrap();
    let link = bin.join("hello");
    symlink(&target, &link).unwrap();
    let link = link.display().to_string();
    let e = refused(&link);
    assert_eq!(e.path, home, "the first component alice controls: {e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{link} leads through {}, which is writable by",
            home.display()
        )),
        "{e}"
    );

    // The same with a relative link to a root-owned file is fine, and the file is returned.
    let good = base.program("lib/real");
    symlink("../lib/real", bin.join("good")).unwrap();
    assert_eq!(
        check(&bin.join("good").display().to_string()).unwrap(),
        PathBuf::from(good)
    );
}

#[test]
fn a_symlink_in_a_user_owned_directory_is_refused_even_to_a_trusted_file() {
    // alice cannot change the file, but she can point her link elsewhere after approval.
    let base = RootDir::new();
    let alice = TestUser::create(&unique_id("jtt"));
    let dir = base.0.join("links");
    fs::create_dir(&dir).unwrap();
    chown(&dir, Some(alice.uid), None).unwrap();
    symlink("/usr/bin/id", dir.join("id")).unwrap();
    assert_eq!(refused(&dir.join("id").display().to_string()).path, dir);
}

#[test]
fn missing_files_directories_and_proc_are_refused() {
    let base = RootDir::new();
    let missing = base.0.join("nope");
    assert!(matches!(
        refused(&missing.display().to_string()).problem,
        Problem::Unreadable(_)
    ));
    assert_eq!(
        refused(&base.0.display().to_string()).problem,
        Problem::NotAFile
    );
    let e = refused("/proc/self/exe");
    assert_eq!(e.problem, Problem::UnderProc);
    assert!(
        e.to_string().starts_with("/proc holds links that differ"),
        "{e}"
    );
    assert_eq!(refused("/dev/fd/0").problem, Problem::UnderProc);
    assert!(matches!(
        refused("relative/x").problem,
        Problem::Unreadable(_)
    ));
}
