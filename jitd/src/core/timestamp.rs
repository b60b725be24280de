//! Reading stored timestamps fast. At startup jitd parses every record it keeps, four or five
//! timestamps each; chrono's general RFC 3339 parser was a tenth of loading 100,000 grants.
//! jitd writes one form only (`2026-11-29T04:41:58.555475Z`, as chrono serialises UTC), which
//! is read here directly; anything else goes through chrono unchanged, so every file that
//! loaded before still loads to the same instant.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The form every CLI, event and notification shows: whole seconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A UTC timestamp as stored; use through `#[serde(with = "timestamp")]` or in an `Option`.
pub struct Stamp(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Stamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Stamp, E> {
                match fast(s.as_bytes()) {
                    Some(t) => Ok(Stamp(t)),
                    None => s.parse::<DateTime<Utc>>().map(Stamp).map_err(E::custom),
                }
            }
        }
        d.deserialize_str(Text)
    }
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    t.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    Stamp::deserialize(d).map(|s| s.0)
}

/// A timestamp as jitd writes them (fast), or in any other RFC 3339 form (through chrono).
pub fn parse(b: &[u8]) -> Option<DateTime<Utc>> {
    fast(b).or_else(|| {
        DateTime::parse_from_rfc3339(std::str::from_utf8(b).ok()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, or `None` for any other form.
fn fast(b: &[u8]) -> Option<DateTime<Utc>> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punct = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.len() < 20 || punct.iter().any(|&(i, c)| b[i] != c) || b[b.len() - 1] != b'Z' {
        return None;
    }
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..b.len() - 1)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let seconds = num(17..19)?;
    if seconds > 59 {
        // A leap second: left to chrono.
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_nano_opt(num(11..13)?, num(14..16)?, seconds, nanos)?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_fast_form_reads_to_the_same_instant_as_chrono() {
        for s in [
            "2026-11-29T04:41:58Z",
            "2026-11-29T04:41:58.5Z",
            "2026-11-29T04:41:58.555475Z",
            "2026-11-29T04:41:58.123456789Z",
            "2024-02-29T23:59:59.000000001Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(fast(s.as_bytes()), Some(chrono(s)), "{s}");
        }
    }

    #[test]
    fn other_forms_fall_back_to_chrono_and_nonsense_is_refused() {
        for s in [
            "2026-11-29T04:41:58+02:00",
            "2026-11-29 04:41:58Z",
            "2026-11-29t04:41:58z",
            "2016-12-31T23:59:60Z",
            "2026-11-29T04:41:58.1234567890Z",
        ] {
            assert_eq!(fast(s.as_bytes()), None, "{s}");
            let via: Result<Stamp, _> = serde_json::from_str(&format!("{s:?}"));
            assert_eq!(via.ok().map(|t| t.0), s.parse().ok(), "{s}");
        }
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-1a-29T04:41:58Z",
            "",
        ] {
            assert_eq!(fast(s.as_bytes()), None, "{s}");
            assert!(
                serde_json::from_str::<Stamp>(&format!("{s:?}")).is_err(),
                "{s}"
            );
        }
    }

    #[test]
    fn what_jitd_writes_it_reads_back_exactly() {
        let t = Utc::now();
        let text = serde_json::to_string(&t).unwrap();
        let back: Stamp = serde_json::from_str(&text).unwrap();
        assert_eq!(back.0, t);
        assert!(fast(text.trim_matches('"').as_bytes()).is_some(), "{text}");
    }
}
