//! What of a grant's sessions is recorded (role key `record`, global default `record`).
//!
//! Recording input captures everything typed into the session, passwords included, so `All` is
//! never a default: a role must ask for it by name.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Longest `recordings_dir`: it is written into every recording grant's sudoers rule.
const MAX_DIR_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// Nothing is recorded. Also what a record written before recording existed reads as.
    #[default]
    Off,
    /// What the session printed (sudo's `LOG_OUTPUT`); the configured default.
    Output,
    /// What it printed and what was typed into it (`LOG_INPUT` too), passwords included.
    All,
}

impl Record {
    /// The default of the global `record` key.
    pub const CONFIGURED_DEFAULT: Record = Record::Output;

    pub fn is_off(&self) -> bool {
        *self == Record::Off
    }

    pub fn parse(text: &str) -> Result<Record, String> {
        match text {
            "off" => Ok(Record::Off),
            "output" => Ok(Record::Output),
            "all" => Ok(Record::All),
            other => Err(format!(
                "record = {other:?} is not one of \"output\", \"all\" or \"off\""
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Record::Off => "off",
            Record::Output => "output",
            Record::All => "all",
        }
    }
}

/// `recordings_dir`, validated so it can be written into a sudoers rule as is: an absolute,
/// normalised path of letters, digits and `/ . _ -` only (no `%`, which sudo would expand, no
/// space, comma or `#`, which end or comment a sudoers value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingsDir(String);

impl RecordingsDir {
    pub fn parse(path: &Path) -> Result<RecordingsDir, String> {
        let text = path.to_str().ok_or("it is not UTF-8")?;
        if !text.starts_with('/') || text.len() > MAX_DIR_LEN {
            return Err(format!(
                "{text:?} must be an absolute path of at most {MAX_DIR_LEN} bytes"
            ));
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-".contains(&b);
        if !text.bytes().all(plain) {
            return Err(format!(
                "{text:?} may contain only letters, digits and / . _ - (it is written into \
                 sudoers rules)"
            ));
        }
        let trimmed = text.trim_end_matches('/');
        if trimmed.is_empty()
            || trimmed
                .split('/')
                .skip(1)
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "{text:?} must be a normalised path below / (no empty, `.` or `..` components)"
            ));
        }
        Ok(RecordingsDir(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the recordings of grant `id` (`[a-z0-9]+`, checked by the caller) go.
    pub fn grant_dir(&self, id: &str) -> PathBuf {
        Path::new(&self.0).join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recordings_dir_that_could_change_a_sudoers_rule_is_refused() {
        for bad in [
            "relative/dir",
            "/var/log/jit sessions",
            "/var/log/%{user}",
            "/var/log/a,iolog_dir=/tmp",
            "/var/log/#x",
            "/var/log/../../tmp",
            "/",
            "/var//log",
            "/var/log/jit\n",
        ] {
            assert!(RecordingsDir::parse(Path::new(bad)).is_err(), "{bad}");
        }
        let ok = RecordingsDir::parse(Path::new("/var/log/jit/sessions/")).unwrap();
        assert_eq!(ok.as_str(), "/var/log/jit/sessions");
        assert_eq!(
            ok.grant_dir("abc123"),
            PathBuf::from("/var/log/jit/sessions/abc123")
        );
    }

    #[test]
    fn the_three_values_and_nothing_else_are_accepted() {
        for r in [Record::Off, Record::Output, Record::All] {
            assert_eq!(Record::parse(r.as_str()), Ok(r));
        }
        assert!(Record::parse("input").unwrap_err().contains("\"output\""));
        assert!(Record::parse("ALL").is_err());
    }

    #[test]
    fn a_record_written_before_recording_existed_was_not_recorded() {
        #[derive(Deserialize)]
        struct Old {
            #[serde(default)]
            record: Record,
        }
        let old: Old = serde_json::from_str("{}").unwrap();
        assert_eq!(old.record, Record::Off);
    }
}
