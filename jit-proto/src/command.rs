//! Naming the program of a command line. A bare name is looked up in a fixed secure PATH, as
//! sudo's `secure_path` does, never in the requester's own PATH: with `~/bin` first in it,
//! `systemctl` would otherwise name the requester's own file. A name with a slash must already
//! be absolute. jitd resolves and checks the program itself whatever a client sends; clients use
//! this only to check the form early and to recognise a grant they already hold.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where jitd looks up a bare program name (sudo's usual `secure_path`).
pub const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Refuses what cannot name a program (nothing, empty, a relative path); a bare name or an
/// absolute path is returned unchanged.
pub fn check_form(argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("no command given: put it after `--`, e.g. -- systemctl restart nginx".into());
    };
    if program.is_empty() {
        return Err("the command is empty".into());
    }
    if program.contains('/') && !program.starts_with('/') {
        return Err(format!(
            "{program:?} is a relative path: name the program by its absolute path or by a name found in {SECURE_PATH}"
        ));
    }
    Ok(())
}

/// The first executable file named `name` in [`SECURE_PATH`], as an absolute path.
pub fn find_in_secure_path(name: &str) -> Result<String, String> {
    SECURE_PATH
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|candidate| is_executable(Path::new(candidate)))
        .ok_or_else(|| {
            format!(
                "{name:?} was not found in PATH (only {SECURE_PATH} is searched, never your own PATH): give its absolute path"
            )
        })
}

/// `argv` with a bare program name replaced by its absolute path in [`SECURE_PATH`].
pub fn resolve(argv: &[String]) -> Result<Vec<String>, String> {
    check_form(argv)?;
    let program = &argv[0];
    let resolved = if program.starts_with('/') {
        program.clone()
    } else {
        find_in_secure_path(program)?
    };
    let mut out = Vec::with_capacity(argv.len());
    out.push(resolved);
    out.extend_from_slice(&argv[1..]);
    Ok(out)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_found_in_the_secure_path_and_relative_paths_refused() {
        let r = resolve(&argv(&["sh", "-c", "x"])).unwrap();
        assert!(r[0].starts_with('/') && r[0].ends_with("/sh"), "{r:?}");
        assert_eq!(&r[1..], &argv(&["-c", "x"])[..]);
        assert_eq!(
            resolve(&argv(&["/bin/true"])).unwrap(),
            argv(&["/bin/true"])
        );
        assert!(resolve(&argv(&["../x"])).is_err());
        assert!(resolve(&argv(&["./run.sh"])).is_err());
        assert!(resolve(&argv(&["no-such-program-anywhere"])).is_err());
        assert!(resolve(&[]).is_err());
        assert!(check_form(&argv(&["id"])).is_ok());
        assert!(check_form(&argv(&[""])).is_err());
    }

    #[test]
    fn the_callers_path_is_never_searched() {
        // A program that exists only in a directory the caller could put first in PATH.
        let dir = std::env::temp_dir().join(format!("jit-proto-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("jit-only-here-{}", std::process::id());
        let prog = dir.join(&name);
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        // First in the caller's PATH, as `~/bin` often is. (Nothing else in this crate's
        // tests reads the environment.)
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", dir.display()));
        let found = resolve(&argv(&[&name]));
        let _ = std::fs::remove_dir_all(&dir);
        let e = found.expect_err("found outside the secure PATH");
        assert!(e.contains("not found in PATH"), "{e}");
        assert!(SECURE_PATH.split(':').all(|d| d.starts_with('/')));
    }
}
