//! Reads a drop-in jitd rendered back the way sudo 1.9 reads it, to answer one question: which
//! command line does it allow? This is the oracle of the `sudoers_rule` fuzz target, written
//! from sudo's sources rather than from jitd's renderer:
//!
//! * the lexer is sudoers' flex grammar (`plugins/sudoers/toke.l`): the `PATH` token, then the
//!   `GOTCMND` state for the arguments, with flex's longest-match rule (`\*` stays `\*` for
//!   fnmatch, `\,` becomes `,`, an unescaped `#` `:` `,` ends the command, blanks separate
//!   words and are joined back as one space);
//! * the argument string is then used as sudo's `command_args_match` uses it: `""` means "no
//!   arguments", a leading `^` a regular expression, anything else an fnmatch(3) pattern
//!   matched against the caller's arguments joined with single spaces.
//!
//! Only the shape jitd writes is accepted — a comment line, then one rule for a uid — and
//! anything else is an error, never a guess. The sample test in `real_sudo_tests.rs` checks
//! this reading against the real visudo and sudo.

/// What a drop-in allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub uid: u32,
    /// The NOTAFTER value as written (`YYYYMMDDHHMMSSZ`), if any.
    pub not_after: Option<String>,
    pub path: String,
    /// The one argument string sudo lets the caller's arguments join to; `None` when the rule
    /// allows no arguments at all.
    pub args: Option<String>,
}

pub fn read_back(text: &str) -> Result<ReadBack, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the drop-in does not end with a newline")?;
    let lines: Vec<&str> = body.split('\n').collect();
    let [comment, rule] = lines[..] else {
        return Err(format!("{} lines, not a comment and a rule", lines.len()));
    };
    // `#` then a blank: a comment, not a `#uid` or `#include`.
    if !comment.starts_with("# ") || comment.contains('\r') {
        return Err(format!(
            "the first line is not a plain comment: {comment:?}"
        ));
    }
    let rest = rule
        .strip_prefix('#')
        .ok_or("the rule does not name a #uid")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let uid = rest[..digits]
        .parse()
        .map_err(|e| format!("the uid {:?}: {e}", &rest[..digits]))?;
    let rest = rest[digits..]
        .strip_prefix(" ALL=(root) ")
        .ok_or("the rule is not `#uid ALL=(root) …`")?;
    let (not_after, rest) = match rest.strip_prefix("NOTAFTER=") {
        Some(r) => {
            let (value, r) = r.split_once(' ').ok_or("NOTAFTER runs to the end")?;
            let stamp = value.strip_suffix('Z').unwrap_or("");
            if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("NOTAFTER={value} is not YYYYMMDDHHMMSSZ"));
            }
            (Some(value.to_string()), r)
        }
        None => (None, rest),
    };
    let rest = rest
        .strip_prefix("NOPASSWD: ")
        .ok_or("no `NOPASSWD: ` before the command")?;
    let (path, rest) = lex_path(rest.as_bytes())?;
    let rest = rest
        .strip_prefix(b" ")
        .ok_or("the path is not followed by a blank")?;
    let pattern = lex_args(rest)?.ok_or("no arguments: the rule would allow any")?;
    Ok(ReadBack {
        uid,
        not_after,
        path,
        args: literal_args(&pattern)?,
    })
}

/// Bytes that end a `PATH` token, and that an argument word never contains.
const PATH_STOP: &[u8] = b",:=\\ \t\r\n#";
const WORD_STOP: &[u8] = b"#\\:, \t\r\n";

/// The `PATH` token: `\/(\\[\,:= \t#]|[^\,:=\\ \t\r\n#])+`. jitd never escapes a path, so an
/// escape is refused rather than interpreted.
fn lex_path(b: &[u8]) -> Result<(String, &[u8]), String> {
    if b.first() != Some(&b'/') {
        return Err("the command is not an absolute path".into());
    }
    let len = 1 + b[1..].iter().take_while(|c| !PATH_STOP.contains(c)).count();
    if len == 1 {
        return Err("the path is a lone `/`".into());
    }
    if b.get(len) == Some(&b'\\') {
        return Err("an escape in the path".into());
    }
    let path = String::from_utf8(b[..len].to_vec()).map_err(|e| e.to_string())?;
    // A trailing slash is a directory: every command in it.
    if path.ends_with('/') {
        return Err(format!("{path:?} names a directory"));
    }
    if path.rsplit('/').next() == Some("sudoedit") {
        return Err("sudoedit is a keyword, not a command".into());
    }
    Ok((path, &b[len..]))
}

/// The `GOTCMND` state over the rest of the line: the argument string sudo stores, `None` if
/// there is no argument word at all.
fn lex_args(b: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut args: Option<Vec<u8>> = None;
    // fill_args: a word after blanks is joined with one space (never before the first).
    let fill = |args: &mut Option<Vec<u8>>, word: &[u8], sawspace: bool| {
        let a = args.get_or_insert_with(Vec::new);
        if sawspace && !a.is_empty() {
            a.push(b' ');
        }
        a.extend_from_slice(word);
    };
    let mut sawspace = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            match b.get(i + 1) {
                // A quoted glob character: passed on with its backslash, for fnmatch.
                Some(n) if b"*?[]!^".contains(n) => fill(&mut args, &b[i..i + 2], sawspace),
                // A quoted sudoers character: the backslash is dropped. (`\ ` then the end of
                // the line would be a line continuation, which is longer: refused below.)
                Some(n) if b":\\,=#".contains(n) => fill(&mut args, &b[i + 1..i + 2], sawspace),
                _ => return Err(format!("a backslash sudoers does not take at byte {i}")),
            }
            sawspace = false;
            i += 2;
            continue;
        }
        if c == b' ' || c == b'\t' {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            sawspace = true;
            continue;
        }
        let run = b[i..].iter().take_while(|c| !WORD_STOP.contains(c)).count();
        // `[#:,=\r\n]` ends the command; for `=` only when no longer word starts there
        // (flex takes the longest match, and the earlier rule on a tie).
        if run == 0 || (c == b'=' && run == 1) {
            return Err(format!(
                "the command ends early at byte {i} ({:?})",
                c as char
            ));
        }
        if args.is_none() && c == b'^' {
            return Err("the arguments are a regular expression".into());
        }
        fill(&mut args, &b[i..i + run], sawspace);
        sawspace = false;
        i += run;
    }
    Ok(args)
}

/// The one string an argument pattern matches, as sudo uses it: `""` allows no arguments
/// (`None`), a leading `^` would be a regular expression, and otherwise every fnmatch
/// wildcard (`*`, `?`, `[`) must be quoted by a backslash.
fn literal_args(pattern: &[u8]) -> Result<Option<String>, String> {
    if pattern == b"\"\"" {
        return Ok(None);
    }
    if pattern.first() == Some(&b'^') {
        return Err("the arguments are a regular expression".into());
    }
    let mut out = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => {
                let quoted = pattern
                    .get(i + 1)
                    .ok_or("a pattern that ends in a lone backslash")?;
                out.push(*quoted);
                i += 2;
            }
            c @ (b'*' | b'?' | b'[') => {
                return Err(format!("an unquoted wildcard {:?} at byte {i}", c as char))
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cmnd: &str) -> String {
        format!("# jit grant x: t\n#7 ALL=(root) NOPASSWD: {cmnd}\n")
    }

    #[test]
    fn quoted_characters_read_back_as_sudo_reads_them() {
        let back = read_back(&rule(r"/bin/echo a\,b \\* g\\\\h \#x e=f !")).unwrap();
        assert_eq!(back.path, "/bin/echo");
        assert_eq!(back.args.as_deref(), Some(r"a,b * g\h #x e=f !"));
        assert_eq!(read_back(&rule("/usr/bin/id \"\"")).unwrap().args, None);
        // The lexer passes a quoted glob character on with its backslash: fnmatch's literal.
        assert_eq!(
            read_back(&rule(r"/bin/echo \*")).unwrap().args.as_deref(),
            Some("*")
        );
        let timed = "# c\n#1 ALL=(root) NOTAFTER=20300102030405Z NOPASSWD: /bin/x y\n";
        assert_eq!(
            read_back(timed).unwrap().not_after.as_deref(),
            Some("20300102030405Z")
        );
    }

    /// Each of these is a way a renderer could get a rule wrong; the oracle must say so.
    #[test]
    fn rules_that_allow_more_or_other_than_one_line_are_refused() {
        for cmnd in [
            "/bin/echo",            // no arguments: any allowed
            "/bin/echo *",          // a wildcard
            "/bin/echo a#b",        // a comment cuts the line
            "/bin/echo a, /bin/sh", // a second command
            "/bin/echo a:b",        // `:` ends the command
            "/bin/echo =",          // a lone `=` ends the command
            "/bin/echo ^a$",        // a regular expression
            "/usr/bin/ ",           // a directory
            "/usr/bin/sudoedit x",  // sudo -e
            r"/bin/echo a\q",       // an escape sudoers refuses
            r"/bin/echo a\",        // a line continuation
        ] {
            let got = read_back(&rule(cmnd));
            assert!(got.is_err(), "{cmnd:?} read back as {got:?}");
        }
        assert!(read_back("#7 ALL=(root) NOPASSWD: /bin/x y\n").is_err());
        assert!(read_back(&format!("{}#8 ALL=(ALL) ALL\n", rule("/bin/x y"))).is_err());
    }
}
