//! Human durations as written in the config and on the command line: `90s`, `15m`, `2h`,
//! `1h30m`, `1d`. Whole seconds; no bare numbers, so `--for 30` cannot silently mean seconds.

use std::fmt;
use std::time::Duration;

/// Longest duration anything in jit accepts (a year); keeps arithmetic far from overflow.
pub const MAX_SECS: u64 = 366 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError(String);

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let bad = |why: &str| {
        ParseDurationError(format!(
            "invalid duration {text:?}: {why} (write e.g. 90s, 15m, 2h, 1h30m)"
        ))
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = u64::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad(&format!("unknown unit {c:?}"))),
        };
        if digits.is_empty() {
            return Err(bad("a unit without a number"));
        }
        if unit >= last_unit {
            return Err(bad("units must go from largest to smallest"));
        }
        last_unit = unit;
        let n: u64 = digits.parse().map_err(|_| bad("number too large"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= MAX_SECS)
            .ok_or_else(|| bad("longer than a year"))?;
    }
    if !digits.is_empty() {
        return Err(bad("a number without a unit"));
    }
    if total == 0 {
        return Err(bad("must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds the way [`parse`] reads them: `1h30m`, `45s`.
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&(secs / unit).to_string());
            out.push(name);
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("1h30m", 5400),
            ("1d", 86400),
        ] {
            assert_eq!(parse(text).unwrap().as_secs(), secs, "{text}");
            assert_eq!(
                parse(&format(Duration::from_secs(secs))).unwrap().as_secs(),
                secs
            );
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn refuses_ambiguous_or_absurd_input() {
        for text in [
            "",
            "30",
            "m",
            "1x",
            "30m1h",
            "0s",
            "400d",
            "99999999999999999999s",
            "-1m",
        ] {
            assert!(parse(text).is_err(), "{text} should be refused");
        }
    }
}
