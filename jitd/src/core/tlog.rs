//! SSH grants recorded with tlog: what the session's recorder is told, which login shell the
//! holder had before jit switched it to `tlog-rec-session`, and what a recording printed.
//!
//! sshd runs the holder's passwd shell, so while an SSH grant of a recording role is active
//! that shell is `tlog-rec-session`, which runs the real one under recording. Its settings
//! (the real shell, the file it writes) reach it in `TLOG_REC_SESSION_CONF_TEXT`, put into the
//! session's environment by pam_jit. Without them it would record to the journal default and
//! run the shell anyway, so pam_jit refuses a recorded session it cannot hand them to.

use crate::core::recording::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// tlog's session recorder and player (Debian's `tlog` package).
pub const TLOG_REC_SESSION: &str = "/usr/bin/tlog-rec-session";
pub const TLOG_PLAY: &str = "/usr/bin/tlog-play";

/// Longest login shell kept: it goes back into /etc/passwd.
const MAX_SHELL_LEN: usize = 256;

/// The settings of a recorded session: the holder's real shell, tlog's file writer into the
/// grant's recording file, input only when the grant records `all`. A short latency so that
/// little is lost when the recorder is killed.
pub fn conf_text(record: Record, shell: &str, path: &str) -> Option<String> {
    if record.is_off() {
        return None;
    }
    let conf = serde_json::json!({
        "shell": shell,
        "notice": "\nThis session is recorded by jit (tlog).\n\n",
        "latency": 2,
        "writer": "file",
        "file": { "path": path },
        "log": { "input": record == Record::All, "output": true, "window": true },
        "limit": { "action": "pass" },
    });
    Some(conf.to_string())
}

/// A login shell jit may put back into /etc/passwd: an absolute path of printable characters
/// without `:` (the passwd separator), and not tlog's recorder itself.
pub fn check_original_shell(shell: &str) -> Result<(), String> {
    if shell == TLOG_REC_SESSION {
        return Err(format!(
            "the login shell is already {TLOG_REC_SESSION}, and jit did not set it: \
             restore the user's shell (usermod -s) before granting a recorded SSH login"
        ));
    }
    let printable = shell
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b':');
    if !shell.starts_with('/') || shell.len() > MAX_SHELL_LEN || !printable {
        return Err(format!(
            "the login shell {shell:?} is not an absolute path jit can put back"
        ));
    }
    Ok(())
}

/// What jit keeps, per user, while it has switched their login shell: the shell to put back
/// and the grants that need it switched. Written before the switch, so that a jitd that dies
/// at any point finds it at startup and puts the shell back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchedShell {
    pub original: String,
    pub grants: BTreeSet<String>,
}

/// What to do with a user's login shell once no grant needs it switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Put `original` back.
    Put(String),
    /// Someone changed it since jit switched it: leave theirs.
    ChangedMeanwhile(String),
}

pub fn restore(saved: &SwitchedShell, current: &str) -> Restore {
    if current == TLOG_REC_SESSION {
        Restore::Put(saved.original.clone())
    } else {
        Restore::ChangedMeanwhile(current.to_owned())
    }
}

/// One recording in a tlog log: one session's output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// tlog's id of the recording (`-m` of `tlog-play`).
    pub rec: String,
    pub user: String,
    pub output: Vec<u8>,
}

#[derive(Deserialize)]
struct Message {
    rec: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    timing: String,
    #[serde(default)]
    out_txt: String,
    #[serde(default)]
    out_bin: Vec<u8>,
}

/// The recordings in a tlog file log, in the order they started, each with its output put
/// back together from `timing` (text and the bytes that were not valid text, interleaved).
/// Lines that are not tlog messages are skipped: the holder can append to the file.
pub fn recordings(log: &str, max_recordings: usize) -> Vec<Recording> {
    let mut found: Vec<Recording> = Vec::new();
    for line in log.lines() {
        let Ok(m) = serde_json::from_str::<Message>(line) else {
            continue;
        };
        let out = output(&m);
        if let Some(r) = found.iter_mut().find(|r| r.rec == m.rec) {
            r.output.extend(out);
        } else if found.len() < max_recordings {
            found.push(Recording {
                rec: m.rec,
                user: m.user,
                output: out,
            });
        }
    }
    found
}

fn output(m: &Message) -> Vec<u8> {
    let mut text = m.out_txt.chars();
    let mut bin = m.out_bin.iter();
    let mut out = Vec::new();
    let mut t = m.timing.as_bytes();
    while let Some((&kind, rest)) = t.split_first() {
        let (first, rest) = number(rest);
        let (second, rest) = match rest.split_first() {
            Some((b'/' | b'x', more)) => number(more),
            _ => (0, rest),
        };
        t = rest;
        match kind {
            b'>' => {
                for c in text.by_ref().take(first) {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            b']' => {
                text.by_ref().take(first).for_each(drop);
                out.extend(bin.by_ref().take(second));
            }
            b'+' | b'<' | b'[' | b'=' => {}
            _ => break,
        }
    }
    out
}

fn number(s: &[u8]) -> (usize, &[u8]) {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = std::str::from_utf8(&s[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (n, &s[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_session_is_told_its_real_shell_and_file_and_input_only_with_all() {
        assert_eq!(conf_text(Record::Off, "/bin/bash", "/x"), None);
        let out: serde_json::Value =
            serde_json::from_str(&conf_text(Record::Output, "/bin/zsh", "/r/g1.tlog").unwrap())
                .unwrap();
        assert_eq!(out["shell"], "/bin/zsh");
        assert_eq!(out["writer"], "file");
        assert_eq!(out["file"]["path"], "/r/g1.tlog");
        assert_eq!(out["log"]["input"], false);
        let all: serde_json::Value =
            serde_json::from_str(&conf_text(Record::All, "/bin/sh", "/r/g1.tlog").unwrap())
                .unwrap();
        assert_eq!(all["log"]["input"], true);
    }

    #[test]
    fn only_a_plain_absolute_shell_is_saved_to_be_put_back() {
        assert!(check_original_shell("/bin/bash").is_ok());
        for bad in [
            TLOG_REC_SESSION,
            "bash",
            "/bin/ba sh",
            "/bin/bash:0:0",
            "/bin/bash\n",
            "",
        ] {
            assert!(check_original_shell(bad).is_err(), "{bad:?}");
        }
        assert!(check_original_shell(TLOG_REC_SESSION)
            .unwrap_err()
            .contains("usermod -s"));
    }

    #[test]
    fn a_shell_someone_changed_meanwhile_is_left_alone() {
        let saved = SwitchedShell {
            original: "/bin/zsh".into(),
            grants: BTreeSet::new(),
        };
        assert_eq!(
            restore(&saved, TLOG_REC_SESSION),
            Restore::Put("/bin/zsh".into())
        );
        assert_eq!(
            restore(&saved, "/bin/fish"),
            Restore::ChangedMeanwhile("/bin/fish".into())
        );
    }

    #[test]
    fn output_is_put_back_together_per_recording_and_junk_lines_are_skipped() {
        let log = concat!(
            r#"{"ver":"2.3","rec":"r1","user":"alice","id":1,"timing":"=80x24<3+5>6+1]1/2>3","in_txt":"ls\r","out_txt":"HELLO\n�end","out_bin":[255,254]}"#,
            "\n",
            "not json at all\n",
            r#"{"ver":"2.3","rec":"r2","user":"alice","id":1,"timing":">2","out_txt":"hi"}"#,
            "\n",
            r#"{"ver":"2.3","rec":"r1","user":"alice","id":2,"timing":"+3>1","out_txt":"!"}"#,
            "\n",
        );
        let recs = recordings(log, 10);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].rec, "r1");
        assert_eq!(recs[0].output, b"HELLO\n\xff\xfeend!".to_vec());
        assert_eq!(recs[1].output, b"hi".to_vec());
        assert_eq!(recordings(log, 1).len(), 1, "bounded");
    }
}
