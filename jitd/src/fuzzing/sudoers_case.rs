//! The input of the `sudoers_rule` fuzz target, in a byte form simple enough that the real-sudo
//! sample test reads the same corpus files: a fixed header, then NUL-separated text fields.
//!
//! ```text
//! bytes 0..4    uid, little-endian
//! byte  4       bit 0: the rule carries NOTAFTER
//! bytes 5..13   NOTAFTER as seconds since the epoch, little-endian i64
//! bytes 13..    grant id, NUL, argv[0], NUL, argv[1], … (invalid UTF-8 replaced)
//! ```

use chrono::{DateTime, Utc};

const HEADER: usize = 13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudoersCase {
    pub id: String,
    pub uid: u32,
    pub not_after: Option<DateTime<Utc>>,
    pub argv: Vec<String>,
}

impl SudoersCase {
    /// `None` when the input is too short for the header or its time is outside chrono's range.
    pub fn from_bytes(data: &[u8]) -> Option<SudoersCase> {
        let (header, rest) = data.split_at_checked(HEADER)?;
        let uid = u32::from_le_bytes(header[0..4].try_into().ok()?);
        let secs = i64::from_le_bytes(header[5..13].try_into().ok()?);
        let not_after = match header[4] & 1 {
            1 => Some(DateTime::from_timestamp(secs, 0)?),
            _ => None,
        };
        let mut fields = rest
            .split(|&b| b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let id = fields.next().unwrap_or_default();
        Some(SudoersCase {
            id,
            uid,
            not_after,
            argv: fields.collect(),
        })
    }

    /// The bytes [`from_bytes`](Self::from_bytes) reads back as this case (fields must not
    /// contain NUL).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.uid.to_le_bytes().to_vec();
        out.push(u8::from(self.not_after.is_some()));
        let secs = self.not_after.map_or(0, |t| t.timestamp());
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
        for arg in &self.argv {
            out.push(0);
            out.extend_from_slice(arg.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_survives_its_byte_form() {
        let case = SudoersCase {
            id: "abc1".into(),
            uid: 1002,
            not_after: DateTime::from_timestamp(1_900_000_000, 0),
            argv: vec!["/bin/echo".into(), "a,b".into(), "é*".into()],
        };
        assert_eq!(SudoersCase::from_bytes(&case.to_bytes()), Some(case));
        assert_eq!(SudoersCase::from_bytes(&[0; 12]), None);
    }
}
