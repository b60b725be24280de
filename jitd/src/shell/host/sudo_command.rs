//! Which grant a sudo session belongs to. PAM does not tell the module the command, but the
//! session's process is sudo itself, whose command line ends with the command it runs. When a
//! user holds several sudo grants, this picks the one for that command, so ending one grant
//! never ends the command of another. A hint only: with no match the first grant is used.

use crate::core::model::Request;

/// The argv of `pid`, from /proc.
fn command_line(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// True when `sudo_argv` (e.g. `sudo -n -- /usr/bin/id -u`) ends with `command`, the program
/// matched by full path or, as sudo resolves it through PATH, by name.
fn runs(sudo_argv: &[String], command: &[String]) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    if sudo_argv.len() < command.len() + 1 {
        return false;
    }
    let tail = &sudo_argv[sudo_argv.len() - command.len()..];
    let name = program.rsplit('/').next().unwrap_or(program);
    (tail[0] == *program || tail[0] == name) && tail[1..] == *args
}

/// Among `candidates` (the holder's active sudo grants), the one whose command the sudo
/// process `pid` is running; otherwise the first.
pub fn pick<'a>(candidates: &[&'a Request], pid: u32) -> Option<&'a Request> {
    if candidates.len() > 1 {
        if let Some(argv) = command_line(pid) {
            if let Some(r) = candidates
                .iter()
                .find(|r| r.command().is_some_and(|c| runs(&argv, c)))
            {
                return Some(r);
            }
        }
    }
    candidates.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_sudo_command_line_names_the_grant() {
        let sudo = v(&["sudo", "-n", "--", "/usr/bin/id", "-u"]);
        assert!(runs(&sudo, &v(&["/usr/bin/id", "-u"])));
        assert!(runs(&v(&["sudo", "id", "-u"]), &v(&["/usr/bin/id", "-u"])));
        assert!(!runs(&sudo, &v(&["/usr/bin/id"])));
        assert!(!runs(&sudo, &v(&["/usr/bin/id", "-g"])));
        assert!(!runs(
            &v(&["/usr/bin/id", "-u"]),
            &v(&["/usr/bin/id", "-u"])
        ));
    }
}
