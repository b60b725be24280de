//! Module arguments from the PAM service file. Anything unknown or malformed is an error, and
//! the hooks deny on error: a typo in /etc/pam.d must not open the door.

use std::ffi::CStr;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jit_proto::GrantKind;

/// One deadline for connect + write + read unless `timeout_ms=` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Bounds for `timeout_ms=`: a zero deadline would always fail, and a login that waits more
/// than half a minute on the daemon is broken anyway.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=30_000;
/// Every argument the module takes, with the form of its value ("" for a flag). The parser
/// refuses any other name, the error message lists these, and pam_jit(8) documents exactly
/// these (pam_jit/src/man_page_tests.rs compares).
pub const ARGUMENTS: &[(&str, &str)] = &[
    ("socket", "/ABS/PATH"),
    ("timeout_ms", "1..30000"),
    ("fail", "closed|open"),
    ("exempt_group", "GROUP"),
    ("kind", "ssh|sudo"),
    ("wait", "1s..10m"),
    ("debug", ""),
];

/// Longest a login may wait for approval (`wait=`): sshd's LoginGraceTime (2 minutes by
/// default) must cover the wait, and a login that waits longer than this is better asked for
/// another way.
pub const MAX_WAIT: Duration = Duration::from_secs(jit_proto::MAX_LOGIN_WAIT_SECS);
/// Longest group name accepted for `exempt_group=` (far above any real one).
const MAX_GROUP_LEN: usize = 256;

/// What to do when jitd cannot give a trustworthy answer (down, slow, garbage, not root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Deny. The default.
    Closed,
    /// Allow, and log it at LOG_ALERT: for hosts where availability beats the gate.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub socket: PathBuf,
    pub timeout: Duration,
    pub fail: FailMode,
    pub exempt_group: Option<String>,
    pub kind: Option<GrantKind>,
    /// `wait=`: an SSH login without a grant asks for one and waits this long for the
    /// decision. `None`: it is refused at once, as always.
    pub wait: Option<Duration>,
    pub debug: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (valid:", self.0)?;
        for (name, form) in ARGUMENTS {
            match *form {
                "" => write!(f, " {name}")?,
                form => write!(f, " {name}={form}")?,
            }
        }
        write!(f, ")")
    }
}

pub fn parse(raw: &[&CStr]) -> Result<Args, ArgError> {
    let mut args = Args {
        socket: PathBuf::from(jit_proto::DEFAULT_SOCKET),
        timeout: DEFAULT_TIMEOUT,
        fail: FailMode::Closed,
        exempt_group: None,
        kind: None,
        wait: None,
        debug: false,
    };
    let mut seen: Vec<&str> = Vec::new();
    for arg in raw {
        let text = arg
            .to_str()
            .map_err(|_| ArgError(format!("argument {arg:?} is not UTF-8")))?;
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        // A repeated key is ambiguous (which one did the admin mean?), so it is refused.
        if seen.contains(&key) {
            return Err(ArgError(format!("argument {key:?} given twice")));
        }
        seen.push(key);
        // Only the listed names: an argument parsed below but missing from ARGUMENTS would be
        // missing from the error message and from pam_jit(8).
        if !ARGUMENTS.iter().any(|(name, _)| *name == key) {
            return Err(ArgError(format!("unknown argument {text:?}")));
        }
        match (key, value) {
            ("socket", Some(v)) => args.socket = socket(v)?,
            ("timeout_ms", Some(v)) => args.timeout = timeout(v)?,
            ("fail", Some("closed")) => args.fail = FailMode::Closed,
            ("fail", Some("open")) => args.fail = FailMode::Open,
            ("exempt_group", Some(v)) => args.exempt_group = Some(group(v)?),
            ("kind", Some("ssh")) => args.kind = Some(GrantKind::Ssh),
            ("kind", Some("sudo")) => args.kind = Some(GrantKind::Sudo),
            ("wait", Some(v)) => args.wait = Some(wait(v)?),
            ("debug", None) => args.debug = true,
            _ => return Err(ArgError(format!("unknown or malformed argument {text:?}"))),
        }
    }
    Ok(args)
}

fn socket(v: &str) -> Result<PathBuf, ArgError> {
    // sun_path holds 108 bytes including the terminating NUL.
    if !v.starts_with('/') || v.len() > 107 {
        return Err(ArgError(format!(
            "socket={v:?} must be an absolute path of at most 107 bytes"
        )));
    }
    Ok(PathBuf::from(v))
}

fn timeout(v: &str) -> Result<Duration, ArgError> {
    match v.parse::<u64>() {
        Ok(ms) if TIMEOUT_MS_RANGE.contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(ArgError(format!(
            "timeout_ms={v:?} must be a whole number of milliseconds from 1 to 30000"
        ))),
    }
}

fn wait(v: &str) -> Result<Duration, ArgError> {
    match jit_proto::duration::parse(v) {
        Ok(d) if !d.is_zero() && d <= MAX_WAIT => Ok(d),
        _ => Err(ArgError(format!(
            "wait={v:?} must be a duration from 1s to 10m (e.g. wait=2m)"
        ))),
    }
}

fn group(v: &str) -> Result<String, ArgError> {
    if v.is_empty() || v.len() > MAX_GROUP_LEN || v.chars().any(|c| c.is_control()) {
        return Err(ArgError(format!("exempt_group={v:?} is not a group name")));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Args, ArgError> {
        let owned: Vec<std::ffi::CString> = args
            .iter()
            .map(|a| std::ffi::CString::new(*a).unwrap())
            .collect();
        let refs: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        parse(&refs)
    }

    #[test]
    fn no_arguments_means_the_safe_defaults() {
        let args = parse_strs(&[]).unwrap();
        assert_eq!(args.socket, PathBuf::from(jit_proto::DEFAULT_SOCKET));
        assert_eq!(args.timeout, DEFAULT_TIMEOUT);
        assert_eq!(args.fail, FailMode::Closed);
        assert_eq!(args.exempt_group, None);
        assert_eq!(args.kind, None);
        assert_eq!(args.wait, None);
        assert!(!args.debug);
    }

    #[test]
    fn every_documented_argument_is_understood() {
        let args = parse_strs(&[
            "socket=/run/x/j.sock",
            "timeout_ms=250",
            "fail=open",
            "exempt_group=breakglass",
            "kind=ssh",
            "wait=2m",
            "debug",
        ])
        .unwrap();
        assert_eq!(args.socket, PathBuf::from("/run/x/j.sock"));
        assert_eq!(args.timeout, Duration::from_millis(250));
        assert_eq!(args.fail, FailMode::Open);
        assert_eq!(args.exempt_group.as_deref(), Some("breakglass"));
        assert_eq!(args.kind, Some(GrantKind::Ssh));
        assert_eq!(args.wait, Some(Duration::from_secs(120)));
        assert!(args.debug);
        assert_eq!(
            parse_strs(&["kind=sudo"]).unwrap().kind,
            Some(GrantKind::Sudo)
        );
    }

    #[test]
    fn the_listed_arguments_are_the_parsed_ones_and_the_message_names_them() {
        // One example of each, in ARGUMENTS' order: each parses, so the list names nothing
        // the parser refuses (and the parser refuses every name not listed, above).
        let examples = [
            "socket=/run/x/j.sock",
            "timeout_ms=250",
            "fail=open",
            "exempt_group=breakglass",
            "kind=ssh",
            "wait=2m",
            "debug",
        ];
        for example in examples {
            assert!(parse_strs(&[example]).is_ok(), "{example}");
        }
        let names: Vec<&str> = examples
            .iter()
            .map(|e| e.split('=').next().unwrap())
            .collect();
        let listed: Vec<&str> = ARGUMENTS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, listed);
        assert_eq!(
            parse_strs(&["nope"]).unwrap_err().to_string(),
            "unknown argument \"nope\" (valid: socket=/ABS/PATH timeout_ms=1..30000 fail=closed|open exempt_group=GROUP kind=ssh|sudo wait=1s..10m debug)"
        );
    }

    #[test]
    fn a_typo_or_a_bad_value_is_an_error_not_a_default() {
        for bad in [
            "fail=opne",
            "fail",
            "failopen",
            "timeout_ms=0",
            "timeout_ms=30001",
            "timeout_ms=1.5",
            "timeout_ms=",
            "socket=relative.sock",
            "socket=",
            "exempt_group=",
            "kind=root",
            "debug=1",
            "exempt-group=wheel",
            "wait=",
            "wait=0s",
            "wait=11m",
            "wait=120",
            "wait",
            "",
        ] {
            let err = parse_strs(&[bad]).unwrap_err();
            assert!(err.to_string().contains("valid:"), "{bad}: {err}");
        }
        let long = format!("socket=/{}", "a".repeat(200));
        assert!(parse_strs(&[&long]).is_err());
    }

    #[test]
    fn a_repeated_argument_is_refused() {
        assert!(parse_strs(&["fail=closed", "fail=open"]).is_err());
    }

    #[test]
    fn a_non_utf8_argument_is_refused() {
        let arg = c"kind=\xff";
        assert!(parse(&[arg]).is_err());
    }
}
