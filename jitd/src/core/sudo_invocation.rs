//! What a sudo command line asks for, read from sudo's own argv. pam_jit runs inside sudo, so
//! the process asking jitd is the sudo about to run a command; binding the check to that
//! command is what stops a grant for `/usr/bin/true` from opening a standing
//! `NOPASSWD: ALL` rule (or `%sudo ALL`), a root shell included.
//!
//! The reading is strict: sudo's options are read as sudo 1.9's getopt reads them, and
//! anything that changes what runs or how — a shell (`-s`, `-i`), editing (`-e`, sudoedit),
//! another user or group (`-u postgres`, `-g`), the caller's environment (`-E`, `VAR=value`),
//! another directory or root (`-D`, `-R`), SELinux roles, an option this code does not know —
//! is refused: no grant covers it. The program must be named by its absolute path, as the
//! grant names it (jit-elevate does this): a bare name is resolved by sudo through
//! `secure_path` or, without it, the caller's own PATH, which jitd cannot see.

/// What the sudo process will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Runs exactly this argv as root.
    Run(Vec<String>),
    /// Runs nothing: `sudo -l` (list) or `sudo -v` (validate).
    NoCommand,
}

impl Invocation {
    /// Whether a sudo grant for `command` covers this invocation: the very argv, or any grant
    /// for a listing that runs nothing.
    pub fn covered_by(&self, command: &[String]) -> bool {
        match self {
            Invocation::Run(argv) => argv.as_slice() == command,
            Invocation::NoCommand => true,
        }
    }
}

/// Why no grant can cover a command line; the text is the denial's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

/// Options sudo accepts that change neither what runs nor as whom.
const HARMLESS_FLAGS: &[char] = &['A', 'B', 'b', 'H', 'k', 'N', 'n', 'P', 'S'];
/// Options with a value that change neither what runs nor as whom.
const HARMLESS_WITH_VALUE: &[char] = &['C', 'p', 'T'];

/// The short option a long one stands for (sudo 1.9's `long_opts`), `None` if unknown.
fn short_for(long: &str) -> Option<char> {
    Some(match long {
        "askpass" => 'A',
        "background" => 'b',
        "bell" => 'B',
        "close-from" => 'C',
        "chdir" => 'D',
        "preserve-env" => 'E',
        "edit" => 'e',
        "group" => 'g',
        "set-home" => 'H',
        "help" => 'h',
        "host" => 'h',
        "login" => 'i',
        "remove-timestamp" => 'K',
        "reset-timestamp" => 'k',
        "list" => 'l',
        "no-update" => 'N',
        "non-interactive" => 'n',
        "preserve-groups" => 'P',
        "prompt" => 'p',
        "chroot" => 'R',
        "role" => 'r',
        "stdin" => 'S',
        "shell" => 's',
        "type" => 't',
        "command-timeout" => 'T',
        "other-user" => 'U',
        "user" => 'u',
        "version" => 'V',
        "validate" => 'v',
        _ => return None,
    })
}

fn takes_value(opt: char) -> bool {
    matches!(
        opt,
        'C' | 'D' | 'g' | 'p' | 'R' | 'r' | 't' | 'T' | 'U' | 'u'
    )
}

/// What each refused option does, for the denial's reason.
fn refused_option(opt: char) -> Option<&'static str> {
    Some(match opt {
        's' => "-s runs a shell",
        'i' => "-i runs a login shell",
        'e' => "-e edits files as root",
        'E' => "-E keeps the caller's environment",
        'g' => "-g runs with another group",
        'D' => "-D runs in another directory",
        'R' => "-R runs in another root directory",
        'r' | 't' => "-r/-t change the SELinux role or type",
        'U' => "-U lists another user's rights",
        'h' => "-h names another host or asks for help",
        'K' => "-K removes the timestamp",
        'V' => "-V prints the version",
        _ => return None,
    })
}

/// A value of `-u` that means root.
fn is_root(user: &str) -> bool {
    user == "root" || user == "#0"
}

/// Reads sudo's argv (`argv[0]` included) into what it will run.
pub fn parse(argv: &[String]) -> Result<Invocation, Refusal> {
    let Some((program, rest)) = argv.split_first() else {
        return refuse("the sudo process has no command line");
    };
    if program.rsplit('/').next() == Some("sudoedit") {
        return refuse("sudoedit edits files as root: no grant covers it");
    }
    let mut listing = false;
    let mut i = 0;
    let mut option = |opt: char, value: Option<&str>| -> Result<(), Refusal> {
        if let Some(what) = refused_option(opt) {
            return refuse(format!("{what}: no grant covers it"));
        }
        match opt {
            'u' => {
                let user = value.unwrap_or_default();
                if !is_root(user) {
                    return refuse(format!("-u {user}: jit grants run commands as root only"));
                }
            }
            'l' | 'v' => listing = true,
            c if HARMLESS_FLAGS.contains(&c) || HARMLESS_WITH_VALUE.contains(&c) => {}
            c => return refuse(format!("-{c} is an option jit does not know: refused")),
        }
        Ok(())
    };
    while i < rest.len() {
        let arg = &rest[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(opt) = short_for(name) else {
                return refuse(format!("--{name} is an option jit does not know: refused"));
            };
            let value = if takes_value(opt) && inline.is_none() {
                i += 1;
                match rest.get(i) {
                    Some(v) => Some(v.as_str()),
                    None => return refuse(format!("--{name} needs a value")),
                }
            } else {
                inline
            };
            option(opt, value)?;
            i += 1;
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            break; // the first operand: the command (sudo's getopt stops here, "+")
        };
        for (at, opt) in cluster.char_indices() {
            if takes_value(opt) {
                let attached = &cluster[at + opt.len_utf8()..];
                let value = if attached.is_empty() {
                    i += 1;
                    match rest.get(i) {
                        Some(v) => v.as_str(),
                        None => return refuse(format!("-{opt} needs a value")),
                    }
                } else {
                    attached
                };
                option(opt, Some(value))?;
                break;
            }
            option(opt, None)?;
        }
        i += 1;
    }
    let command = &rest[i.min(rest.len())..];
    if listing {
        return Ok(Invocation::NoCommand);
    }
    let Some(first) = command.first() else {
        return refuse("sudo without a command runs nothing a grant covers");
    };
    if first.contains('=') && !first.starts_with('/') {
        return refuse(format!(
            "{first}: setting the environment of a root command is refused"
        ));
    }
    if !first.starts_with('/') {
        return refuse(format!(
            "{first}: name the program by its full path, as the grant does (e.g. sudo /usr/bin/{first} …; jit-elevate does this)"
        ));
    }
    Ok(Invocation::Run(command.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    fn runs(line: &str) -> Vec<String> {
        match parse(&argv(line)) {
            Ok(Invocation::Run(cmd)) => cmd,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn refused(line: &str) -> String {
        match parse(&argv(line)) {
            Err(Refusal(why)) => why,
            other => panic!("{line} was not refused: {other:?}"),
        }
    }

    #[test]
    fn the_command_sudo_runs_is_read_after_its_options() {
        assert_eq!(runs("sudo -n -- /usr/bin/id -u"), argv("/usr/bin/id -u"));
        assert_eq!(runs("/usr/bin/sudo /usr/bin/true"), argv("/usr/bin/true"));
        assert_eq!(runs("sudo -nu root /usr/bin/id"), argv("/usr/bin/id"));
        assert_eq!(runs("sudo -uroot -n /usr/bin/id"), argv("/usr/bin/id"));
        assert_eq!(runs("sudo --user=#0 /usr/bin/id"), argv("/usr/bin/id"));
        assert_eq!(runs("sudo --user root -- /usr/bin/id"), argv("/usr/bin/id"));
        assert_eq!(
            runs("sudo -p pw: -T 30 --non-interactive /usr/bin/id"),
            argv("/usr/bin/id")
        );
        // The command's own options are its own, not sudo's.
        assert_eq!(runs("sudo /bin/ls -s -i -E"), argv("/bin/ls -s -i -E"));
        assert_eq!(runs("sudo -- /bin/echo --"), argv("/bin/echo --"));
    }

    #[test]
    fn shells_edits_other_users_and_the_callers_environment_are_refused() {
        for line in [
            "sudo -s",
            "sudo -i",
            "sudo -ni",
            "sudo --login",
            "sudo --shell /usr/bin/id",
            "sudo -e /etc/shadow",
            "sudo -E /usr/bin/id",
            "sudo --preserve-env=PATH /usr/bin/id",
            "sudo -g adm /usr/bin/id",
            "sudo -D /tmp /usr/bin/id",
            "sudo -R /srv/jail /usr/bin/id",
        ] {
            assert!(refused(line).contains("no grant covers it"), "{line}");
        }
        assert!(refused("sudoedit /etc/shadow").contains("sudoedit"));
        assert!(refused("/usr/bin/sudoedit /etc/shadow").contains("sudoedit"));
        assert!(refused("sudo -u postgres /usr/bin/id").contains("root only"));
        assert!(refused("sudo -upostgres /usr/bin/id").contains("root only"));
        assert!(refused("sudo --user=postgres /usr/bin/id").contains("root only"));
        assert!(refused("sudo LD_PRELOAD=/tmp/x.so /usr/bin/id").contains("environment"));
        assert!(refused("sudo --frobnicate /usr/bin/id").contains("does not know"));
        assert!(refused("sudo -Z /usr/bin/id").contains("does not know"));
        assert!(refused("sudo -u").contains("needs a value"));
    }

    #[test]
    fn a_bare_name_is_refused_because_sudo_may_resolve_it_through_the_callers_path() {
        let why = refused("sudo -n id -u");
        assert!(why.contains("full path"), "{why}");
        assert!(why.contains("/usr/bin/id"), "{why}");
    }

    #[test]
    fn a_grant_covers_its_exact_command_line_only() {
        let grant = argv("/usr/bin/systemctl restart nginx");
        assert!(Invocation::Run(grant.clone()).covered_by(&grant));
        for other in [
            "/usr/bin/systemctl restart nginx x",
            "/usr/bin/systemctl restart",
            "/bin/systemctl restart nginx",
            "/usr/bin/systemctl restart  nginx",
        ] {
            assert!(!Invocation::Run(argv(other)).covered_by(&grant), "{other}");
        }
        assert!(Invocation::NoCommand.covered_by(&grant));
    }

    #[test]
    fn listing_and_validating_run_nothing() {
        for line in ["sudo -l", "sudo -v", "sudo -nl", "sudo --list /usr/bin/id"] {
            assert_eq!(parse(&argv(line)), Ok(Invocation::NoCommand), "{line}");
        }
        assert!(refused("sudo -n").contains("without a command"));
    }
}
