//! Resolving the program of a command line the way the user means it, before it is sent:
//! a bare name is looked up in PATH; a name with a slash must already be absolute. jitd checks
//! the result again; this only spares the user from typing /usr/bin/.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn resolve(argv: &[String]) -> Result<Vec<String>, String> {
    let Some(program) = argv.first() else {
        return Err("no command given: put it after `--`, e.g. -- systemctl restart nginx".into());
    };
    if program.is_empty() {
        return Err("the command is empty".into());
    }
    let resolved = if program.contains('/') {
        if !program.starts_with('/') {
            return Err(format!(
                "{program:?} is a relative path: name the program by its absolute path or by a name found in PATH"
            ));
        }
        program.clone()
    } else {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        path.split(':')
            .filter(|dir| dir.starts_with('/'))
            .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
            .find(|candidate| is_executable(Path::new(candidate)))
            .ok_or_else(|| format!("{program:?} was not found in PATH: give its absolute path"))?
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

    #[test]
    fn names_are_found_in_path_and_relative_paths_refused() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
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
    }
}
