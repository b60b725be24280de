//! Which command lines a role covers. A pattern is `ALL`, or a program's absolute path and its
//! arguments, whitespace-separated, each matched on its own with `*`, `?` and `[...]`.
//!
//! Deliberately stricter than sudoers, whose patterns are easy to get wrong:
//! - a pattern without arguments allows none (sudoers: any); write `/usr/bin/id *` for any;
//! - a lone `*` as the last argument matches any number of remaining arguments (also none);
//! - wildcards never match `/`, and an argument matched by a wildcard never has an empty, `.`
//!   or `..` path component, so `/var/log/*` cannot reach `/var/log/../../etc/shadow`, and
//!   `/srv/cache/*` is not `/srv/cache/` or `/srv/cache/.` (the directory itself);
//! - options are written literally: an argument starting with `-` is matched only by a
//!   pattern word starting with `-`, so `systemctl restart *` does not cover
//!   `systemctl restart -H user@host x` or `--root=/x`.
//!
//! The granted sudoers rule is always the exact requested command line, never the pattern.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandPattern {
    All,
    Args(Vec<String>),
}

/// How closely a pattern matched: exact lines beat wildcards beat `ALL`; among wildcards,
/// more literal characters win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    class: u8,
    literal_chars: usize,
}

impl Specificity {
    /// What an SSH login role scores: all SSH roles are equally specific.
    pub const SSH: Specificity = Specificity {
        class: 2,
        literal_chars: 0,
    };
}

impl CommandPattern {
    /// Parses a pattern as written in the config; the error says what is wrong.
    pub fn parse(text: &str) -> Result<CommandPattern, String> {
        let text = text.trim();
        if text == "ALL" {
            return Ok(CommandPattern::All);
        }
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        let Some(program) = words.first() else {
            return Err("the command pattern is empty (write a command line or \"ALL\")".into());
        };
        if !program.starts_with('/') {
            return Err(format!(
                "the program {program:?} is not an absolute path (write e.g. /usr/bin/systemctl)"
            ));
        }
        for w in &words {
            check_brackets(w)?;
        }
        Ok(CommandPattern::Args(words))
    }

    /// Does `argv` match? `None` when not; otherwise how specifically.
    pub fn matches(&self, argv: &[String]) -> Option<Specificity> {
        let words = match self {
            CommandPattern::All => {
                return Some(Specificity {
                    class: 0,
                    literal_chars: 0,
                })
            }
            CommandPattern::Args(words) => words,
        };
        let any_rest = words.len() > 1 && words.last().is_some_and(|w| w == "*");
        let fixed = if any_rest {
            &words[..words.len() - 1]
        } else {
            &words[..]
        };
        if argv.len() < fixed.len() || (!any_rest && argv.len() != fixed.len()) {
            return None;
        }
        let mut wild = any_rest;
        for (pattern, arg) in fixed.iter().zip(argv) {
            if has_wildcard(pattern) {
                wild = true;
                if !wildcard_may_match(pattern, arg) || !glob(&chars(pattern), &chars(arg)) {
                    return None;
                }
            } else if pattern != arg {
                return None;
            }
        }
        if any_rest
            && !argv[fixed.len()..]
                .iter()
                .all(|a| wildcard_may_match("*", a))
        {
            return None;
        }
        let literal_chars = fixed
            .iter()
            .map(|w| w.chars().filter(|c| !"*?[]".contains(*c)).count())
            .sum();
        Some(Specificity {
            class: if wild { 1 } else { 2 },
            literal_chars,
        })
    }
}

impl CommandPattern {
    /// Whether some command line matches both (for check-config's overlap warnings). Exact for
    /// `ALL` and literal patterns; between two wildcard patterns it tries a sample command line
    /// of each against the other, so it finds `restart *` against `restart postgresql` but may
    /// miss `restart a*` against `restart *b`.
    pub fn overlaps(&self, other: &CommandPattern) -> bool {
        match (self, other) {
            (CommandPattern::All, _) | (_, CommandPattern::All) => true,
            (CommandPattern::Args(a), CommandPattern::Args(b)) => {
                other.matches(&sample(a)).is_some() || self.matches(&sample(b)).is_some()
            }
        }
    }
}

/// A command line the pattern words match: wildcards filled in with a plain letter, a class
/// with its first member, and a trailing lone `*` with no arguments.
fn sample(words: &[String]) -> Vec<String> {
    let fixed = match words.split_last() {
        Some((last, rest)) if words.len() > 1 && last == "*" => rest,
        _ => words,
    };
    fixed
        .iter()
        .map(|w| {
            let mut out = String::new();
            let mut chars = w.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' | '?' => out.push('x'),
                    '[' => {
                        let mut members: Vec<char> = Vec::new();
                        for m in chars.by_ref() {
                            if m == ']' && !members.is_empty() {
                                break;
                            }
                            members.push(m);
                        }
                        let negated = matches!(members.first(), Some('!') | Some('^'));
                        out.push(if negated {
                            // Pick something the class leaves out.
                            ['x', 'q', '0', 'Z']
                                .into_iter()
                                .find(|c| !members.contains(c))
                                .unwrap_or('_')
                        } else {
                            members.first().copied().unwrap_or('x')
                        });
                    }
                    c => out.push(c),
                }
            }
            out
        })
        .collect()
}

impl fmt::Display for CommandPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandPattern::All => f.write_str("ALL"),
            CommandPattern::Args(words) => f.write_str(&words.join(" ")),
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// What no wildcard word may match, whatever its glob says: an option unless the word is one
/// (`-*`), and a path with an empty (`a//b`, `dir/`), `.` or `..` component (a leading `/`
/// is not an empty component).
fn wildcard_may_match(pattern: &str, arg: &str) -> bool {
    if arg.starts_with('-') && !pattern.starts_with('-') {
        return false;
    }
    let relative = arg.strip_prefix('/').unwrap_or(arg);
    !relative
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
}

fn check_brackets(word: &str) -> Result<(), String> {
    let mut open = false;
    for c in word.chars() {
        match c {
            '[' if !open => open = true,
            ']' if open => open = false,
            _ => {}
        }
    }
    if open {
        Err(format!("{word:?} has a `[` without its `]`"))
    } else {
        Ok(())
    }
}

/// Wildcards stand for characters, not bytes: matched byte by byte, `?` would take half of
/// `é` and `[è]*` would match `é` (both start with the byte 0xC3).
fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// fnmatch-like matching where no wildcard matches `/`.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear enough for bounded inputs.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                '*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                '?' if text[t] != '/' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    }
                }
                c if c == text[t] && c != '?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` swallow one more byte, unless that byte is a slash.
        match star {
            Some((sp, st)) if text[st] != '/' => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            _ => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Matches one character against a `[...]` class at the start of `pattern`; returns whether it
/// matched and the class's length. `[!...]` and `[^...]` negate; `a-z` ranges work.
fn class(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() && (first || pattern[i] != ']') {
        first = false;
        let lo = pattern[i];
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    if i >= pattern.len() {
        return None;
    }
    Some((matched != negate && c != '/', i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn patterns_match_argument_by_argument() {
        let cases = [
            // pattern, command line, matches
            ("ALL", "/bin/anything at all", true),
            (
                "/usr/bin/systemctl restart nginx",
                "/usr/bin/systemctl restart nginx",
                true,
            ),
            (
                "/usr/bin/systemctl restart nginx",
                "/usr/bin/systemctl restart nginx now",
                false,
            ),
            ("/usr/bin/id", "/usr/bin/id -u", false),
            ("/usr/bin/id *", "/usr/bin/id", true),
            ("/usr/bin/id *", "/usr/bin/id alice", true),
            // Options are written literally.
            ("/usr/bin/id *", "/usr/bin/id -u -n", false),
            ("/usr/bin/id -*", "/usr/bin/id -u", true),
            ("/usr/bin/id -u *", "/usr/bin/id -u alice", true),
            (
                "/usr/bin/systemctl restart *",
                "/usr/bin/systemctl restart -H user@host",
                false,
            ),
            (
                "/usr/bin/systemctl restart *",
                "/usr/bin/systemctl restart --root=/x nginx",
                false,
            ),
            (
                "/usr/bin/systemctl restart *",
                "/usr/bin/systemctl restart nginx --no-block",
                false,
            ),
            (
                "/usr/bin/systemctl restart nginx*",
                "/usr/bin/systemctl restart -nginx",
                false,
            ),
            // No empty, `.` or `..` component: not the directory itself, not a way out.
            (
                "/usr/bin/rm -rf /srv/cache/*",
                "/usr/bin/rm -rf /srv/cache/",
                false,
            ),
            (
                "/usr/bin/rm -rf /srv/cache/*",
                "/usr/bin/rm -rf /srv/cache/.",
                false,
            ),
            (
                "/usr/bin/rm -rf /srv/cache/*",
                "/usr/bin/rm -rf /srv/cache/..",
                false,
            ),
            (
                "/usr/bin/rm -rf /srv/cache/*",
                "/usr/bin/rm -rf /srv/cache/a",
                true,
            ),
            (
                "/usr/bin/rm -rf /srv/*/tmp",
                "/usr/bin/rm -rf /srv//tmp",
                false,
            ),
            (
                "/usr/bin/rm -rf /srv/*/tmp",
                "/usr/bin/rm -rf /srv/./tmp",
                false,
            ),
            (
                "/usr/bin/rm -rf /srv/*/tmp",
                "/usr/bin/rm -rf /srv/a/tmp",
                true,
            ),
            ("/bin/ls *", "/bin/ls .", false),
            ("/bin/ls *", "/bin/ls a//b", false),
            // Exact words are compared as written: the rules are about wildcards.
            (
                "/usr/bin/rm -rf /srv/cache/",
                "/usr/bin/rm -rf /srv/cache/",
                true,
            ),
            (
                "/usr/bin/systemctl restart *",
                "/usr/bin/systemctl restart nginx",
                true,
            ),
            (
                "/usr/bin/systemctl restart nginx*",
                "/usr/bin/systemctl restart nginx@a",
                true,
            ),
            ("/bin/cat /var/log/*", "/bin/cat /var/log/syslog", true),
            (
                "/bin/cat /var/log/*",
                "/bin/cat /var/log/nginx/x.log",
                false,
            ),
            (
                "/bin/cat /var/log/*",
                "/bin/cat /var/log/../../etc/shadow",
                false,
            ),
            ("/bin/cat /var/log/*", "/bin/cat /var/log/..", false),
            ("/bin/cat /var/log/sys?og", "/bin/cat /var/log/syslog", true),
            (
                "/bin/cat /var/log/[a-m]*.log",
                "/bin/cat /var/log/auth.log",
                true,
            ),
            (
                "/bin/cat /var/log/[a-m]*.log",
                "/bin/cat /var/log/syslog.log",
                false,
            ),
            (
                "/bin/cat /var/log/[!a-m]*.log",
                "/bin/cat /var/log/syslog.log",
                true,
            ),
            ("/usr/bin/* status", "/usr/bin/systemctl status", true),
            ("/usr/bin/* status", "/usr/sbin/x status", false),
            ("/bin/ls *", "/bin/ls -l ../../root", false),
        ];
        for (pattern, line, expected) in cases {
            let p = CommandPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(&argv(line)).is_some(),
                expected,
                "{pattern:?} vs {line:?}"
            );
        }
    }

    /// Found by the `command_pattern` fuzz target: wildcards matched bytes, so `?` took one
    /// byte of a multi-byte character and a class matched the first byte of another one.
    #[test]
    fn wildcards_stand_for_characters_not_bytes() {
        let cases = [
            ("/bin/x ??", "/bin/x é", false),
            ("/bin/x ?", "/bin/x é", true),
            ("/bin/x [è]*", "/bin/x é", false),
            ("/bin/x [è]*", "/bin/x èa", true),
            ("/bin/x [!è]", "/bin/x é", true),
            ("/bin/x [a-é]", "/bin/x è", true),
            ("/u????????", "/usi\u{1}\u{fffd}ta", false),
        ];
        for (pattern, line, expected) in cases {
            let p = CommandPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(&argv(line)).is_some(),
                expected,
                "{pattern:?} vs {line:?}"
            );
        }
    }

    #[test]
    fn exact_lines_are_more_specific_than_wildcards_than_all() {
        let line = argv("/usr/bin/systemctl restart nginx");
        let score = |p: &str| CommandPattern::parse(p).unwrap().matches(&line).unwrap();
        assert!(score("/usr/bin/systemctl restart nginx") > score("/usr/bin/systemctl restart *"));
        assert!(score("/usr/bin/systemctl restart ngi*") > score("/usr/bin/systemctl restart *"));
        assert!(score("/usr/bin/systemctl *") > score("ALL"));
    }

    #[test]
    fn overlapping_patterns_are_found_not_only_equal_ones() {
        let p = |s: &str| CommandPattern::parse(s).unwrap();
        for (a, b, overlap) in [
            (
                "/usr/bin/systemctl restart *",
                "/usr/bin/systemctl restart postgresql",
                true,
            ),
            (
                "/usr/bin/systemctl restart postgres*",
                "/usr/bin/systemctl restart [p]ostgresql",
                true,
            ),
            ("/usr/bin/id *", "/usr/bin/id", true),
            ("ALL", "/usr/bin/id", true),
            (
                "/usr/bin/systemctl restart nginx",
                "/usr/bin/systemctl reload nginx",
                false,
            ),
            ("/bin/cat /var/log/*", "/bin/cat /etc/*", false),
        ] {
            assert_eq!(p(a).overlaps(&p(b)), overlap, "{a:?} vs {b:?}");
            assert_eq!(p(b).overlaps(&p(a)), overlap, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "systemctl restart nginx", "./run", "/bin/cat [abc"] {
            assert!(CommandPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
