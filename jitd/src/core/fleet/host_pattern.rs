//! A glob on host names (`db-*`, `web-?`), as `jit-elevate --hosts` and a role's `hosts` take
//! them. Only `*` (any run of characters) and `?` (one character) are special; a pattern holds
//! nothing else than a host name may, so it can never be read as anything but a name.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern(String);

impl HostPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        glob(self.0.as_bytes(), host.as_bytes())
    }

    /// Parses `--hosts 'db-*,web-1'`.
    pub fn parse_list(text: &str) -> Result<Vec<HostPattern>, String> {
        let list: Vec<HostPattern> = text
            .split(',')
            .map(|p| HostPattern::try_from(p.trim().to_string()))
            .collect::<Result<_, _>>()?;
        if list.is_empty() || list.len() > 64 {
            return Err("name 1 to 64 host patterns, separated by commas".into());
        }
        Ok(list)
    }
}

/// `patterns` as written, joined with `sep`, for messages and log fields.
pub fn joined(patterns: &[HostPattern], sep: &str) -> String {
    patterns
        .iter()
        .map(HostPattern::as_str)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Does any of `patterns` match `host`?
pub fn any_matches(patterns: &[HostPattern], host: &str) -> bool {
    patterns.iter().any(|p| p.matches(host))
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<HostPattern, String> {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*' | b'?')
            });
        if ok {
            Ok(HostPattern(s))
        } else {
            Err(format!(
                "{s:?} is not a host pattern: host name characters (a-z A-Z 0-9 - _ .) and the wildcards * and ?"
            ))
        }
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.0
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative glob with one backtrack point: linear in practice, never exponential.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&s[si]) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn globs_match_host_names_as_operators_expect() {
        assert!(p("db-*").matches("db-1"));
        assert!(p("db-*").matches("DB-2"), "host names are case-insensitive");
        assert!(!p("db-*").matches("web-1"));
        assert!(!p("db-?").matches("db-10"));
        assert!(p("*").matches("anything"));
        assert!(p("db-1").matches("db-1"));
        assert!(
            !p("db-1").matches("db-10"),
            "a plain name is the whole name"
        );
        assert!(p("*-1*").matches("web-10"));
    }

    #[test]
    fn patterns_hold_only_host_name_characters() {
        for bad in ["", "db/1", "db 1", "[db]", "db-{1,2}", "../x", "a\nb"] {
            assert!(HostPattern::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        assert_eq!(HostPattern::parse_list("db-*, web-1").unwrap().len(), 2);
        assert!(HostPattern::parse_list("db-*,").is_err());
    }
}
