//! Standing privileges on this host, for `jitd report`: what gives root today without jit.
//! Reads sudoers (following its includes, skipping jit's own `jit_*` drop-ins), the sudo/
//! wheel/admin groups, uid-0 accounts and root's authorized_keys. It parses just enough to
//! flag what matters (NOPASSWD, a command list of ALL); aliases are not expanded, so a
//! `Cmnd_Alias` that means everything is shown but not flagged.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Files larger than this are not parsed (a sudoers file or key list is a few KiB).
const MAX_FILE: u64 = 4 << 20;
/// sudo refuses deeper include nesting as well.
const MAX_INCLUDE_DEPTH: usize = 8;
/// The groups whose members get root through the stock sudoers files of common distributions.
pub const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// Where the host keeps what is scanned; [`HostFiles::system`] for the real ones.
#[derive(Debug, Clone)]
pub struct HostFiles {
    pub sudoers: PathBuf,
    pub sudoers_dir: PathBuf,
    pub group: PathBuf,
    pub passwd: PathBuf,
    /// Used to find root's home (and so its authorized_keys) when `root_home` is `None`.
    pub root_home: Option<PathBuf>,
}

impl HostFiles {
    pub fn system(sudoers_dir: &Path) -> HostFiles {
        HostFiles {
            sudoers: PathBuf::from("/etc/sudoers"),
            sudoers_dir: sudoers_dir.to_path_buf(),
            group: PathBuf::from("/etc/group"),
            passwd: PathBuf::from("/etc/passwd"),
            root_home: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SudoRule {
    pub file: PathBuf,
    pub line: usize,
    /// The rule as written (continuations joined), escaped for display.
    pub rule: String,
    pub nopasswd: bool,
    /// The command list contains `ALL`: any command as the run-as user.
    pub all_commands: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMembers {
    pub group: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizedKey {
    pub file: PathBuf,
    pub line: usize,
    pub key_type: String,
    /// `SHA256:…` as `ssh-keygen -lf` prints it, to match against known keys.
    pub fingerprint: String,
    pub comment: String,
    /// Options before the key (`from=`, `command=` …), escaped.
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct StandingPrivileges {
    pub sudoers_rules: Vec<SudoRule>,
    pub admin_groups: Vec<GroupMembers>,
    /// Accounts other than `root` with uid 0.
    pub uid0_accounts: Vec<String>,
    pub root_authorized_keys: Vec<AuthorizedKey>,
    /// Files that could not be read, with why (a report must not look clean because of them).
    pub unreadable: Vec<String>,
}

impl StandingPrivileges {
    pub fn scan(host: &HostFiles) -> StandingPrivileges {
        let mut found = StandingPrivileges::default();
        let mut seen = BTreeSet::new();
        scan_sudoers_file(&host.sudoers, 0, &mut seen, &mut found);
        scan_sudoers_dir(&host.sudoers_dir, 0, &mut seen, &mut found);
        let passwd = read_text(&host.passwd, &mut found.unreadable).unwrap_or_default();
        let group = read_text(&host.group, &mut found.unreadable).unwrap_or_default();
        found.admin_groups = admin_group_members(&group, &passwd);
        found.uid0_accounts = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[2] == "0" && f[0] != "root").then(|| escape(f[0]))
            })
            .collect();
        let root_home = host.root_home.clone().or_else(|| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[0] == "root").then(|| PathBuf::from(f[5]))
            })
        });
        if let Some(home) = root_home {
            for name in ["authorized_keys", "authorized_keys2"] {
                let path = home.join(".ssh").join(name);
                if path.exists() {
                    if let Some(text) = read_text(&path, &mut found.unreadable) {
                        found
                            .root_authorized_keys
                            .extend(parse_authorized_keys(&path, &text));
                    }
                }
            }
        }
        found
    }
}

fn escape(s: &str) -> String {
    crate::core::events::escape_text(s)
}

fn read_text(path: &Path, unreadable: &mut Vec<String>) -> Option<String> {
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text).map(|_| ()));
    match read {
        Ok(()) => Some(text),
        Err(e) => {
            unreadable.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Files sudo's `@includedir` reads: not ending in `~`, no `.` in the name. jit's own
/// drop-ins (`jit_*`) are the managed, expiring grants, not standing privileges.
fn counts_as_standing(name: &str) -> bool {
    !name.ends_with('~') && !name.contains('.') && !name.starts_with("jit_")
}

fn scan_sudoers_dir(
    dir: &Path,
    depth: usize,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut StandingPrivileges,
) {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if !seen.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            found.unreadable.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| counts_as_standing(n))
        .collect();
    names.sort();
    for name in names {
        scan_sudoers_file(&dir.join(name), depth + 1, seen, found);
    }
}

fn scan_sudoers_file(
    path: &Path,
    depth: usize,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut StandingPrivileges,
) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) {
        return;
    }
    let Some(text) = read_text(path, &mut found.unreadable) else {
        return;
    };
    let base = path.parent().unwrap_or(Path::new("/"));
    for (line, logical) in logical_lines(&text) {
        match classify(&logical) {
            Entry::Include(target) => scan_sudoers_file(&base.join(target), depth + 1, seen, found),
            Entry::IncludeDir(target) => {
                scan_sudoers_dir(&base.join(target), depth + 1, seen, found)
            }
            Entry::Rule(rule) => found.sudoers_rules.push(SudoRule {
                file: path.to_path_buf(),
                line,
                nopasswd: is_nopasswd(rule),
                all_commands: grants_all_commands(rule),
                rule: escape(rule),
            }),
            Entry::Other => {}
        }
    }
}

/// Lines with `\`-continuations joined, numbered by their first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                acc.push(' ');
                current = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    out.extend(current);
    out
}

enum Entry<'a> {
    Include(&'a str),
    IncludeDir(&'a str),
    Rule(&'a str),
    Other,
}

fn classify(line: &str) -> Entry<'_> {
    let line = line.trim();
    for (prefix, dir) in [
        ("@includedir", true),
        ("#includedir", true),
        ("@include", false),
        ("#include", false),
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            if rest.starts_with(char::is_whitespace) {
                let target = rest.trim().trim_matches('"');
                return if dir {
                    Entry::IncludeDir(target)
                } else {
                    Entry::Include(target)
                };
            }
        }
    }
    // `#` starts a comment, except `#<digits>`, a user given by uid.
    let is_uid_spec = line
        .strip_prefix('#')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if line.is_empty() || (line.starts_with('#') && !is_uid_spec) {
        return Entry::Other;
    }
    let line = strip_trailing_comment(line);
    let first = line.split_whitespace().next().unwrap_or("");
    let is_setting =
        first.starts_with("Defaults") || first.ends_with("_Alias") || first == "Cmd_Alias";
    if is_setting {
        // `Defaults !authenticate` removes the password prompt for everyone it covers.
        return if first.starts_with("Defaults") && line.contains("!authenticate") {
            Entry::Rule(line)
        } else {
            Entry::Other
        };
    }
    if line.contains('=') {
        Entry::Rule(line)
    } else {
        Entry::Other
    }
}

fn strip_trailing_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let after_space = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let uid = bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if b == b'#' && after_space && !uid {
            return line[..i].trim_end();
        }
    }
    line
}

fn is_nopasswd(rule: &str) -> bool {
    rule.contains("NOPASSWD:") || rule.contains("!authenticate")
}

/// Whether any command list in the rule is or contains `ALL`. A rule is
/// `users hosts = (runas) TAGS: cmnds [: hosts = …]`; the run-as list in parentheses and the
/// hosts before `=` are not commands.
fn grants_all_commands(rule: &str) -> bool {
    if rule.trim_start().starts_with("Defaults") {
        return false;
    }
    let Some((_, specs)) = rule.split_once('=') else {
        return false;
    };
    let mut without_runas = String::with_capacity(specs.len());
    let mut depth = 0usize;
    for c in specs.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => without_runas.push(c),
            _ => {}
        }
    }
    // Later `: host = cmnds` specs: keep only what follows each `=`.
    without_runas
        .split(':')
        .map(|chunk| chunk.rsplit_once('=').map_or(chunk, |(_, cmds)| cmds))
        .flat_map(|chunk| chunk.split(','))
        .any(|item| item.split_whitespace().next_back() == Some("ALL"))
}

fn admin_group_members(group: &str, passwd: &str) -> Vec<GroupMembers> {
    let mut out = Vec::new();
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || !ADMIN_GROUPS.contains(&f[0]) {
            continue;
        }
        let mut members: BTreeSet<String> = f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(escape)
            .collect();
        // Users whose primary group it is are members too, without being listed.
        members.extend(passwd.lines().filter_map(|l| {
            let p: Vec<&str> = l.split(':').collect();
            (p.len() >= 4 && p[3] == f[2]).then(|| escape(p[0]))
        }));
        out.push(GroupMembers {
            group: f[0].to_string(),
            members: members.into_iter().collect(),
        });
    }
    out
}

fn is_key_type(token: &str) -> bool {
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| token.starts_with(p))
}

fn parse_authorized_keys(path: &Path, text: &str) -> Vec<AuthorizedKey> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Options may contain quoted spaces; the key type is the first token that is one.
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = tokens.iter().position(|t| is_key_type(t)) else {
            keys.push(AuthorizedKey {
                file: path.to_path_buf(),
                line: i + 1,
                key_type: "unknown".into(),
                fingerprint: String::new(),
                comment: String::new(),
                options: escape(line),
            });
            continue;
        };
        let blob = tokens.get(at + 1).copied().unwrap_or("");
        keys.push(AuthorizedKey {
            file: path.to_path_buf(),
            line: i + 1,
            key_type: escape(tokens[at]),
            fingerprint: fingerprint(blob).unwrap_or_else(|| "invalid key".into()),
            comment: escape(&tokens.get(at + 2..).unwrap_or_default().join(" ")),
            options: escape(&tokens[..at].join(" ")),
        });
    }
    keys
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// OpenSSH's `SHA256:` fingerprint: base64 (unpadded) of the SHA-256 of the decoded key.
fn fingerprint(blob_b64: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(blob_b64.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in blob_b64.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bytes.is_empty() {
        return None;
    }
    let digest = Sha256::digest(&bytes);
    let mut out = String::from("SHA256:");
    for chunk in digest.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::audit::audit_log::tests::TempDir;

    fn host(dir: &Path) -> HostFiles {
        HostFiles {
            sudoers: dir.join("sudoers"),
            sudoers_dir: dir.join("sudoers.d"),
            group: dir.join("group"),
            passwd: dir.join("passwd"),
            root_home: Some(dir.join("root")),
        }
    }

    #[test]
    fn standing_sudo_rules_are_found_and_flagged_but_jits_own_are_not() {
        let dir = TempDir::new("standing");
        let h = host(&dir.0);
        std::fs::create_dir_all(&h.sudoers_dir).unwrap();
        std::fs::write(
            &h.sudoers,
            "Defaults env_reset\n\
             # a comment with ALL = NOPASSWD: ALL\n\
             root ALL=(ALL:ALL) ALL\n\
             %sudo ALL=(ALL:ALL) ALL # admins\n\
             User_Alias OPS = carol\n\
             @includedir sudoers.d\n",
        )
        .unwrap();
        std::fs::write(
            h.sudoers_dir.join("deploy"),
            "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app, \\\n  /usr/bin/id\n\
             ALL ALL = (ALL) /usr/bin/uptime\n\
             ops host1 = /bin/ls : host2 = (root) NOPASSWD: ALL\n\
             Defaults:bob !authenticate\n",
        )
        .unwrap();
        std::fs::write(
            h.sudoers_dir.join("jit_r1"),
            "alice ALL=(root) NOPASSWD: ALL\n",
        )
        .unwrap();
        std::fs::write(
            h.sudoers_dir.join("old.bak"),
            "eve ALL=(ALL) NOPASSWD: ALL\n",
        )
        .unwrap();

        let found = StandingPrivileges::scan(&h);
        let rules: Vec<(String, bool, bool)> = found
            .sudoers_rules
            .iter()
            .map(|r| (r.rule.clone(), r.nopasswd, r.all_commands))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("root ALL=(ALL:ALL) ALL".into(), false, true),
                ("%sudo ALL=(ALL:ALL) ALL".into(), false, true),
                (
                    "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app,    /usr/bin/id"
                        .into(),
                    true,
                    false
                ),
                ("ALL ALL = (ALL) /usr/bin/uptime".into(), false, false),
                (
                    "ops host1 = /bin/ls : host2 = (root) NOPASSWD: ALL".into(),
                    true,
                    true
                ),
                ("Defaults:bob !authenticate".into(), true, false),
            ]
        );
        assert_eq!(found.sudoers_rules[2].line, 1);
        assert_eq!(found.sudoers_rules[3].line, 3);
    }

    #[test]
    fn admin_groups_uid0_accounts_and_root_keys_are_listed() {
        let dir = TempDir::new("standing-users");
        let h = host(&dir.0);
        std::fs::write(&h.sudoers, "").unwrap();
        std::fs::create_dir_all(&h.sudoers_dir).unwrap();
        std::fs::write(
            &h.passwd,
            "root:x:0:0:root:/root:/bin/bash\n\
             toor:x:0:0::/root:/bin/sh\n\
             wendy:x:1001:10::/home/wendy:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            &h.group,
            "sudo:x:27:alice,bob\nwheel:x:10:\nusers:x:100:carol\n",
        )
        .unwrap();
        let ssh = dir.0.join("root/.ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let keygen = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@laptop", "-f"])
            .arg(dir.0.join("key"))
            .status()
            .unwrap();
        assert!(keygen.success());
        let public = std::fs::read_to_string(dir.0.join("key.pub")).unwrap();
        let keys = ssh.join("authorized_keys");
        std::fs::write(&keys, format!("# backup key\nfrom=\"10.0.0.0/8\" {public}")).unwrap();
        // What OpenSSH itself prints: "256 SHA256:… ops@laptop (ED25519)".
        let listed = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&keys)
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        let expected = listed.split_whitespace().nth(1).unwrap();

        let found = StandingPrivileges::scan(&h);
        assert_eq!(
            found.admin_groups,
            vec![
                GroupMembers {
                    group: "sudo".into(),
                    members: vec!["alice".into(), "bob".into()]
                },
                GroupMembers {
                    group: "wheel".into(),
                    members: vec!["wendy".into()]
                },
            ]
        );
        assert_eq!(found.uid0_accounts, vec!["toor".to_string()]);
        let key = &found.root_authorized_keys[0];
        assert_eq!(key.line, 2);
        assert_eq!(key.key_type, "ssh-ed25519");
        assert_eq!(key.comment, "ops@laptop");
        assert_eq!(key.options, "from=\"10.0.0.0/8\"");
        assert_eq!(key.fingerprint, expected);
    }
}
