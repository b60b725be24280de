//! OpenSSH allowed_signers: which keys may sign as which principal (ssh-keygen(1), ALLOWED SIGNERS).
//!
//! The file is a host's trust anchor for fleet approvals: configuration management writes it,
//! never the shared store. Each line is `principals [options] keytype base64 [comment]`:
//! principals are comma-separated patterns (`*`, `?`, `!` to exclude), options are
//! `namespaces="…"`, `valid-after="…"`, `valid-before="…"` and `cert-authority`. The matching
//! follows OpenSSH's sshsig.c so a file means here what it means to `ssh-keygen -Y verify`.
//!
//! Where this reader is stricter, a line is left out (never matches) with a warning, which can
//! only take access away:
//! - `cert-authority` lines (SSH certificates are not supported);
//! - keys of a type this host cannot verify (DSA, nistp521, RSA under 2048 bits, certificates);
//! - times without a `Z`/`UTC` suffix, which ssh-keygen reads in the host's local time zone,
//!   which this pure core does not know.
//!
//! A line that is malformed is an error for the whole file, as it is for ssh-keygen: a typo must
//! not silently drop an approver, nor be guessed at.

// Wired into `jitd approve` and the fleet sync by the rest of fleet mode; until then only the
// tests call it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::sshsig::{PublicKey, SigError, Signature, NAMESPACE};

/// Bounds on the file: far beyond any real team, small enough to parse in milliseconds.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
pub const MAX_LINES: usize = 10_000;

/// One usable line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principals: String,
    key: PublicKey,
    namespaces: Option<String>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

impl Entry {
    fn usable_for(&self, key: &PublicKey, namespace: &str, now: DateTime<Utc>) -> bool {
        if &self.key != key {
            return false;
        }
        if let Some(ns) = &self.namespaces {
            if !matches_list(namespace, ns) {
                return false;
            }
        }
        // As sshsig.c: valid at valid-after itself and at valid-before itself.
        if self.valid_after.is_some_and(|t| now < t) {
            return false;
        }
        if self.valid_before.is_some_and(|t| now > t) {
            return false;
        }
        true
    }
}

/// A parsed allowed_signers file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedSigners {
    entries: Vec<Entry>,
}

impl AllowedSigners {
    /// Parses the file's text. `Ok` carries warnings about lines that will never match;
    /// `Err` is "line N: why".
    pub fn parse(text: &str) -> Result<(AllowedSigners, Vec<String>), String> {
        if text.len() > MAX_FILE_BYTES {
            return Err(format!(
                "the file is {} bytes, more than the {MAX_FILE_BYTES} allowed",
                text.len()
            ));
        }
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            if number > MAX_LINES {
                return Err(format!("the file has more than {MAX_LINES} lines"));
            }
            match parse_line(raw) {
                Ok(Line::Blank) => {}
                Ok(Line::Entry(e)) => entries.push(*e),
                Ok(Line::Skipped(why)) => warnings.push(format!("line {number}: {why}")),
                Err(why) => return Err(format!("line {number}: {why}")),
            }
        }
        Ok((AllowedSigners { entries }, warnings))
    }

    /// Whether `key` may sign as `principal` in `namespace` at `now`.
    pub fn allows(
        &self,
        principal: &str,
        key: &PublicKey,
        namespace: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.entries
            .iter()
            .any(|e| matches_list(principal, &e.principals) && e.usable_for(key, namespace, now))
    }

    /// The principal fields (patterns, as written) of the lines that let `key` sign in
    /// `namespace` at `now`, in file order.
    #[cfg(test)]
    pub fn principals_for(
        &self,
        key: &PublicKey,
        namespace: &str,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.usable_for(key, namespace, now))
            .map(|e| e.principals.clone())
            .collect()
    }

    /// How many lines can match.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The one call hosts make: `armored` is a valid signature of `message` in the
/// [`NAMESPACE`] by a key that `signers` allows for `principal` at `now`.
pub fn check(
    signers: &AllowedSigners,
    principal: &str,
    message: &[u8],
    armored: &str,
    now: DateTime<Utc>,
) -> Result<(), SigError> {
    let signature = Signature::parse_armored(armored)?;
    signature.verify(NAMESPACE, message)?;
    // An empty name would match a `*` line: no one is called that.
    if principal.is_empty() || !signers.allows(principal, signature.key(), NAMESPACE, now) {
        return Err(SigError::KeyNotAllowed {
            fingerprint: signature.key().fingerprint(),
            principal: principal.to_string(),
        });
    }
    Ok(())
}

enum Line {
    Blank,
    Entry(Box<Entry>),
    Skipped(String),
}

fn parse_line(raw: &str) -> Result<Line, String> {
    let line = raw.trim_start_matches([' ', '\t', '\r']);
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Blank);
    }
    let (principals, rest) = principals_field(line)?;
    if principals.is_empty() {
        return Err("empty principals".into());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (options, rest) = if looks_like_options(rest) {
        let (opts, rest) = options_field(rest)?;
        (Some(opts), rest.trim_start_matches([' ', '\t']))
    } else {
        (None, rest)
    };
    let options = match options {
        Some(text) => parse_options(text)?,
        None => Options::default(),
    };

    let mut fields = rest.split_ascii_whitespace();
    let key_type = fields.next().ok_or("missing key")?;
    let encoded = fields
        .next()
        .ok_or_else(|| format!("missing key data after {key_type:?}"))?;
    if options.cert_authority {
        return Ok(Line::Skipped(format!(
            "cert-authority lines are not supported (SSH certificates cannot approve); \
             this line never matches ({principals})"
        )));
    }
    let key = match PublicKey::parse_openssh(&format!("{key_type} {encoded}")) {
        Ok(key) => key,
        Err(e @ (SigError::UnsupportedKey(_) | SigError::RsaKeySize(_))) => {
            return Ok(Line::Skipped(format!("{e}; this line never matches")))
        }
        Err(e) => return Err(format!("invalid key: {e}")),
    };
    let mut times = [None, None];
    for (slot, (name, value)) in times.iter_mut().zip([
        ("valid-after", &options.valid_after),
        ("valid-before", &options.valid_before),
    ]) {
        if let Some(value) = value {
            match parse_time(value) {
                Ok(Some(t)) => *slot = Some(t),
                Ok(None) => {
                    return Ok(Line::Skipped(format!(
                        "{name}=\"{value}\" has no time zone: ssh-keygen reads it in local \
                         time; write it in UTC with a Z suffix (\"{value}Z\"). This line \
                         never matches"
                    )))
                }
                Err(()) => return Err(format!("invalid {name} time {value:?}")),
            }
        }
    }
    let [valid_after, valid_before] = times;
    if let (Some(after), Some(before)) = (valid_after, valid_before) {
        if before <= after {
            return Err("valid-before is not after valid-after".into());
        }
    }
    Ok(Line::Entry(Box::new(Entry {
        principals: principals.to_string(),
        key,
        namespaces: options.namespaces,
        valid_after,
        valid_before,
    })))
}

/// The first field; may be double-quoted (as OpenSSH's strdelimw allows).
fn principals_field(line: &str) -> Result<(&str, &str), String> {
    if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"').ok_or("principals: missing end quote")?;
        return Ok((&quoted[..end], &quoted[end + 1..]));
    }
    let end = line.find([' ', '\t']).ok_or("missing key")?;
    Ok((&line[..end], &line[end..]))
}

/// Options come before the key type: a key type never contains `=` and is never
/// `cert-authority`.
fn looks_like_options(rest: &str) -> bool {
    let first = rest.split([' ', '\t']).next().unwrap_or("");
    first.contains('=')
        || first
            .split(',')
            .next()
            .is_some_and(|o| o.eq_ignore_ascii_case("cert-authority"))
}

/// The options field up to the first unquoted blank.
fn options_field(rest: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok((&rest[..i], &rest[i..])),
            _ => {}
        }
    }
    if quoted {
        Err("options: missing end quote".into())
    } else {
        Err("missing key after the options".into())
    }
}

#[derive(Default)]
struct Options {
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<String>,
    valid_before: Option<String>,
}

/// `option[,option…]`, as sshsig.c's sshsigopt_parse: names are case-insensitive, values are
/// double-quoted, each option at most once.
fn parse_options(text: &str) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut rest = text;
    loop {
        if let Some(after) = strip_prefix_ci(rest, "cert-authority") {
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(format!("unknown option in {text:?}"));
            }
            opts.cert_authority = true;
            rest = after;
        } else {
            let (slot, name) = if let Some(after) = strip_prefix_ci(rest, "namespaces=") {
                rest = after;
                (&mut opts.namespaces, "namespaces")
            } else if let Some(after) = strip_prefix_ci(rest, "valid-after=") {
                rest = after;
                (&mut opts.valid_after, "valid-after")
            } else if let Some(after) = strip_prefix_ci(rest, "valid-before=") {
                rest = after;
                (&mut opts.valid_before, "valid-before")
            } else {
                let name = rest.split([',', '=']).next().unwrap_or(rest);
                return Err(format!(
                    "unknown option {name:?} (allowed: namespaces, valid-after, \
                     valid-before, cert-authority)"
                ));
            };
            if slot.is_some() {
                return Err(format!("multiple {name:?} options"));
            }
            let (value, after) = dequote(rest).map_err(|why| format!("{name}: {why}"))?;
            *slot = Some(value);
            rest = after;
        }
        if rest.is_empty() {
            return Ok(opts);
        }
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| format!("unknown option in {text:?}"))?;
        if rest.is_empty() {
            return Err("unexpected end of options after ','".into());
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A `"…"` value, `\"` standing for a quote (misc.c's opt_dequote).
fn dequote(s: &str) -> Result<(String, &str), String> {
    let inner = s.strip_prefix('"').ok_or("missing start quote")?;
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &inner[i + 1..])),
            '\\' if inner[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            _ => value.push(c),
        }
    }
    Err("missing end quote".into())
}

/// `YYYYMMDD[HHMM[SS]]` followed by `Z` or `UTC`. `Ok(None)`: a valid local time, which
/// cannot be placed without the host's time zone.
fn parse_time(value: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let (digits, utc) = if let Some(d) = strip_suffix_ci(value, "utc") {
        (d, true)
    } else if let Some(d) = strip_suffix_ci(value, "z") {
        (d, true)
    } else {
        (value, false)
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, ()> {
        digits.get(range).ok_or(())?.parse().map_err(|_| ())
    };
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        14 => (num(8..10)?, num(10..12)?, num(12..14)?),
        _ => return Err(()),
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?).ok_or(())?;
    let time: NaiveDateTime = date.and_hms_opt(hour, minute, second).ok_or(())?;
    if time.and_utc().timestamp() <= 0 {
        // sshsig.c treats 0 as "no time" and refuses it.
        return Err(());
    }
    Ok(utc.then(|| time.and_utc()))
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    (cut > 0 && tail.eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// OpenSSH's match_pattern_list (case-sensitive): false as soon as a `!pattern` matches,
/// otherwise true if some pattern matches.
pub fn matches_list(subject: &str, list: &str) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if matches_pattern(subject.as_bytes(), pattern.as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `*` and `?` wildcards, by backtracking to the last `*` only: linear-times-pattern at
/// worst, where OpenSSH's recursive matcher can be exponential on `*a*a*a…`.
fn matches_pattern(subject: &[u8], pattern: &[u8]) -> bool {
    let (mut s, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, s));
                p += 1;
            }
            Some(&c) if c == b'?' || c == subject[s] => {
                s += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// `printf 'hello\n' | ssh-keygen -Y sign -n jit-grant@v1 -f k` with this key (OpenSSH 9.2).
    const ALICE_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxfa1c5meqTmx4r6DzBA4ASab6MarwRgS9HOXzmAmWH";
    const OTHER_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDqyEG8VVp5x2gPiVXQk6w/JFFqHfc1Bv1o9pXShR6qB";
    const SIG: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgfF9rVzmZ6pObHivoPMEDgBJpvo
xqvBGBL0c5fOYCZYcAAAAMaml0LWdyYW50QHYxAAAAAAAAAAZzaGE1MTIAAABTAAAAC3Nz
aC1lZDI1NTE5AAAAQEKzVJvie8cUV0aR7o7Npc6RQHwFFoMg0nvCmmcRxTtuaYKaA72uyL
yTumqSbWXr6PnydqFtEQsyUp5zHnE5pAE=
-----END SSH SIGNATURE-----
";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    fn key(line: &str) -> PublicKey {
        PublicKey::parse_openssh(line).unwrap()
    }

    fn signers(text: &str) -> AllowedSigners {
        let (s, warnings) = AllowedSigners::parse(text).unwrap();
        assert_eq!(warnings, Vec::<String>::new());
        s
    }

    #[test]
    fn alices_listed_key_approves_as_alice_and_nobody_else() {
        let s = signers(&format!(
            "# approvers\n\n  alice {ALICE_KEY} alice@laptop\nbob {OTHER_KEY}\n"
        ));
        assert_eq!(check(&s, "alice", b"hello\n", SIG, now()), Ok(()));
        // Her key does not make her bob.
        let e = check(&s, "bob", b"hello\n", SIG, now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "key SHA256:SFIv+zvcFLofz+NX79yhxL6f6WGQEhCXME2IHcEHFdk is not in allowed_signers \
             for \"bob\""
        );
        assert_eq!(
            check(&s, "alice", b"hello", SIG, now()),
            Err(SigError::BadSignature)
        );
        let anyone = signers(&format!("* {ALICE_KEY}\n"));
        assert_eq!(check(&anyone, "carol", b"hello\n", SIG, now()), Ok(()));
        assert!(matches!(
            check(&anyone, "", b"hello\n", SIG, now()),
            Err(SigError::KeyNotAllowed { .. })
        ));
        assert!(matches!(
            check(&s, "alice", b"hello\n", "garbage", now()),
            Err(SigError::BadArmor(_))
        ));
        assert_eq!(
            s.principals_for(&key(ALICE_KEY), NAMESPACE, now()),
            vec!["alice".to_string()]
        );
    }

    #[test]
    fn an_unlisted_key_approves_for_nobody() {
        let s = signers(&format!("bob {OTHER_KEY}\n* {OTHER_KEY}\n"));
        assert!(matches!(
            check(&s, "alice", b"hello\n", SIG, now()),
            Err(SigError::KeyNotAllowed { .. })
        ));
        assert!(AllowedSigners::parse("").unwrap().0.is_empty());
    }

    #[test]
    fn principal_patterns_match_as_openssh_with_negation_winning() {
        let s = signers(&format!("ops-*,!ops-intern,adm?n {ALICE_KEY}\n"));
        let k = key(ALICE_KEY);
        let allows = |p: &str| s.allows(p, &k, NAMESPACE, now());
        assert!(allows("ops-alice"));
        assert!(allows("admin"));
        assert!(!allows("ops-intern"), "negated");
        assert!(!allows("adm"), "? is one character");
        assert!(!allows("xops-alice"));
        assert!(!allows("Ops-alice"), "case-sensitive, as OpenSSH");
        // A line of negations only allows nobody.
        let s = signers(&format!("!mallory {ALICE_KEY}\n"));
        assert!(!s.allows("alice", &k, NAMESPACE, now()));
        // Quoted principals (strdelimw).
        let s = signers(&format!("\"alice,bob\" {ALICE_KEY}\n"));
        assert!(s.allows("bob", &k, NAMESPACE, now()));
    }

    #[test]
    fn wildcards_cannot_take_exponential_time() {
        let pattern = "*a".repeat(40) + "b";
        let subject = "a".repeat(4000);
        assert!(!matches_pattern(subject.as_bytes(), pattern.as_bytes()));
        assert!(matches_pattern(b"abcabd", b"*ab?"));
        assert!(matches_pattern(b"", b"*"));
        assert!(!matches_pattern(b"", b"?"));
    }

    #[test]
    fn the_namespaces_option_limits_a_key_to_its_namespaces() {
        let k = key(ALICE_KEY);
        let s = signers(&format!("alice namespaces=\"git,file\" {ALICE_KEY}\n"));
        assert!(!s.allows("alice", &k, NAMESPACE, now()));
        assert!(s.allows("alice", &k, "git", now()));
        assert!(matches!(
            check(&s, "alice", b"hello\n", SIG, now()),
            Err(SigError::KeyNotAllowed { .. })
        ));
        let s = signers(&format!("alice NAMESPACES=\"jit-*\" {ALICE_KEY}\n"));
        assert_eq!(check(&s, "alice", b"hello\n", SIG, now()), Ok(()));
    }

    #[test]
    fn valid_after_and_valid_before_bound_a_key_in_utc() {
        let k = key(ALICE_KEY);
        let s = signers(&format!(
            "alice valid-after=\"20261130Z\",valid-before=\"202611301200Z\" {ALICE_KEY}\n"
        ));
        let at = |h, m, sec| Utc.with_ymd_and_hms(2026, 11, 30, h, m, sec).unwrap();
        assert!(
            s.allows("alice", &k, NAMESPACE, at(0, 0, 0)),
            "valid-after itself"
        );
        assert!(
            s.allows("alice", &k, NAMESPACE, at(12, 0, 0)),
            "valid-before itself"
        );
        assert!(!s.allows("alice", &k, NAMESPACE, at(12, 0, 1)), "expired");
        let before = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
        assert!(!s.allows("alice", &k, NAMESPACE, before), "not yet valid");
        let s = signers(&format!(
            "alice valid-before=\"20261129235959UTC\" {ALICE_KEY}\n"
        ));
        assert!(matches!(
            check(&s, "alice", b"hello\n", SIG, now()),
            Err(SigError::KeyNotAllowed { .. })
        ));
    }

    #[test]
    fn lines_this_host_cannot_honour_never_match_and_say_why() {
        let (s, warnings) = AllowedSigners::parse(&format!(
            "alice cert-authority {ALICE_KEY}\n\
             alice valid-before=\"20300101\" {ALICE_KEY}\n\
             alice ssh-dss AAAAB3NzaC1kc3M=\n\
             alice {OTHER_KEY}\n"
        ))
        .unwrap();
        assert_eq!(s.len(), 1);
        assert!(!s.allows("alice", &key(ALICE_KEY), NAMESPACE, now()));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].starts_with("line 1: cert-authority"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("line 2: valid-before=\"20300101\" has no time zone"));
        assert!(warnings[2].starts_with("line 3: unsupported key type \"ssh-dss\""));
    }

    #[test]
    fn malformed_lines_reject_the_file_naming_the_line() {
        let bad = [
            ("alice".to_string(), "line 1: missing key"),
            ("alice ssh-ed25519".to_string(), "line 1: missing key data"),
            ("alice ssh-ed25519 !!!".to_string(), "line 1: invalid key"),
            (
                format!("alice ssh-rsa {}", &ALICE_KEY[12..]),
                "line 1: invalid key",
            ),
            (
                format!("alice foo=\"x\" {ALICE_KEY}"),
                "line 1: unknown option \"foo\"",
            ),
            (
                format!("alice namespaces=jit {ALICE_KEY}"),
                "missing start quote",
            ),
            (
                format!("alice namespaces=\"a\",namespaces=\"b\" {ALICE_KEY}"),
                "multiple",
            ),
            (
                format!("alice valid-after=\"2026\" {ALICE_KEY}"),
                "invalid valid-after",
            ),
            (
                format!("alice valid-after=\"20261340Z\" {ALICE_KEY}"),
                "invalid valid-after",
            ),
            (
                format!("alice valid-after=\"20270101Z\",valid-before=\"20260101Z\" {ALICE_KEY}"),
                "valid-before is not after valid-after",
            ),
            (
                format!("alice namespaces=\"jit {ALICE_KEY}"),
                "missing end quote",
            ),
            (
                format!("\n\n\"alice {ALICE_KEY}"),
                "line 3: principals: missing end quote",
            ),
        ];
        for (text, want) in bad {
            let e = AllowedSigners::parse(&text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_file_is_bounded_in_size_and_lines() {
        let e = AllowedSigners::parse(&"#\n".repeat(MAX_LINES + 1)).unwrap_err();
        assert!(e.contains("more than 10000 lines"), "{e}");
        let e = AllowedSigners::parse(&"#".repeat(MAX_FILE_BYTES + 1)).unwrap_err();
        assert!(e.contains("more than the 1048576"), "{e}");
        assert!(AllowedSigners::parse(&"#\n".repeat(MAX_LINES)).is_ok());
    }
}
