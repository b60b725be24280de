//! When an automatic-approval rule is in force: weekdays and a time-of-day window on the wall
//! clock of a named IANA time zone. The instant is converted to that zone's local time first,
//! so daylight saving time moves the window with the clocks, as people expect: "09:00-17:00
//! Europe/Berlin" means 09:00 in Berlin in winter and in summer.
//!
//! A window whose end is before its start crosses midnight: "22:00-06:00" on `fri` covers
//! Friday 22:00 to Saturday 06:00; the morning part belongs to the day the window began.
//!
//! On the nights clocks change, a window lasts its nominal length in real time, from the first
//! occurrence of its local start: a one-hour window on the night the clocks go back is open one
//! real hour (not two, as comparing wall-clock times would give), and a window starting in the
//! hour skipped when clocks go forward opens when they resume, for its whole length (instead
//! of never).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// Minutes after local midnight, start inclusive, end exclusive; `end` may be 1440.
    start: u32,
    end: u32,
}

impl Hours {
    /// Parses `HH:MM-HH:MM` (`24:00` allowed as an end).
    pub fn parse(text: &str) -> Result<Hours, String> {
        let bad = |why: &str| format!("invalid hours {text:?}: {why} (write e.g. \"09:00-17:00\")");
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| bad("expected START-END"))?;
        let minutes = |s: &str, end: bool| -> Result<u32, String> {
            let (h, m) = s
                .trim()
                .split_once(':')
                .ok_or_else(|| bad("expected HH:MM"))?;
            let h: u32 = h.parse().map_err(|_| bad("hours must be a number"))?;
            let m: u32 = m.parse().map_err(|_| bad("minutes must be a number"))?;
            if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
                return Err(bad("no such time of day"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minutes(a, false)?, minutes(b, true)?);
        if start == end {
            return Err(bad("the window is empty (start equals end)"));
        }
        Ok(Hours { start, end })
    }

    /// The window's length in minutes.
    fn minutes(self) -> u32 {
        if self.end > self.start {
            self.end - self.start
        } else {
            24 * 60 - self.start + self.end
        }
    }

    /// When the window of local day `day` opens: the first instant its start occurs, or, if
    /// the clocks skip it, the instant they resume.
    fn opens(self, day: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
        let start = day.and_hms_opt(self.start / 60, self.start % 60, 0)?;
        // A gap is at most a few hours anywhere (most are one); look a day ahead at most.
        (0..=24 * 60).find_map(|step| {
            match zone.from_local_datetime(&(start + Duration::minutes(step))) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
                LocalResult::None => None,
            }
        })
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Weekday names as written in the config.
pub fn parse_day(text: &str) -> Result<Weekday, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => {
            return Err(format!(
                "unknown day {text:?} (write mon, tue, wed, thu, fri, sat or sun)"
            ))
        }
    })
}

pub fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Days (empty: every day) and hours (none: all day) in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub days: Vec<Weekday>,
    pub hours: Option<Hours>,
    pub zone: Tz,
}

impl Schedule {
    /// Is `now` inside? Otherwise says why not, in the zone's local time.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), String> {
        let local = now.with_timezone(&self.zone);
        let shown = local.format("%a %H:%M %Z");
        // Which local day the window in force began on (for a window that crossed midnight,
        // the morning part belongs to the day before).
        let day = match self.hours {
            None => local.weekday(),
            Some(h) => {
                let today = local.date_naive();
                let began = [today, today.pred_opt().unwrap_or(today)]
                    .into_iter()
                    .find(|d| {
                        h.opens(*d, self.zone).is_some_and(|open| {
                            open <= now && now < open + Duration::minutes(h.minutes().into())
                        })
                    });
                match began {
                    Some(d) => d.weekday(),
                    None => {
                        return Err(format!(
                            "it is {shown} in {}, outside {h}",
                            self.zone.name()
                        ))
                    }
                }
            }
        };
        if !self.days.is_empty() && !self.days.contains(&day) {
            let names: Vec<&str> = self.days.iter().map(|d| day_name(*d)).collect();
            return Err(format!(
                "it is {shown} in {}; the rule applies on {} only",
                self.zone.name(),
                names.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn schedule(days: &[&str], hours: &str, zone: &str) -> Schedule {
        Schedule {
            days: days.iter().map(|d| parse_day(d).unwrap()).collect(),
            hours: Some(Hours::parse(hours).unwrap()),
            zone: zone.parse().unwrap(),
        }
    }

    #[test]
    fn office_hours_follow_berlin_clocks_across_both_dst_changes() {
        // 2026: CEST from Sun 29 March 01:00 UTC to Sun 25 October 01:00 UTC.
        let office = schedule(
            &["mon", "tue", "wed", "thu", "fri"],
            "09:00-17:00",
            "Europe/Berlin",
        );
        let cases = [
            // UTC instant, inside?, why
            (utc(2026, 3, 27, 7, 30), false, "Fri 08:30 CET"),
            (utc(2026, 3, 27, 8, 0), true, "Fri 09:00 CET"),
            (utc(2026, 3, 27, 15, 59), true, "Fri 16:59 CET"),
            (utc(2026, 3, 27, 16, 0), false, "Fri 17:00 CET"),
            (utc(2026, 3, 29, 8, 0), false, "Sunday of the change"),
            (
                utc(2026, 3, 30, 7, 0),
                true,
                "Mon 09:00 CEST: an hour earlier in UTC",
            ),
            (utc(2026, 3, 30, 6, 59), false, "Mon 08:59 CEST"),
            (utc(2026, 3, 30, 15, 0), false, "Mon 17:00 CEST"),
            (utc(2026, 10, 23, 7, 0), true, "Fri 09:00 CEST"),
            (
                utc(2026, 10, 26, 7, 30),
                false,
                "Mon 08:30 CET after the change back",
            ),
            (utc(2026, 10, 26, 8, 0), true, "Mon 09:00 CET"),
            (utc(2026, 10, 26, 15, 30), true, "Mon 16:30 CET"),
        ];
        for (at, inside, why) in cases {
            assert_eq!(
                office.check(at).is_ok(),
                inside,
                "{why}: {:?}",
                office.check(at)
            );
        }
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_began() {
        let night = schedule(&["fri"], "22:00-06:00", "UTC");
        let cases = [
            (utc(2026, 5, 15, 21, 59), false), // Fri 21:59
            (utc(2026, 5, 15, 22, 0), true),   // Fri 22:00
            (utc(2026, 5, 16, 5, 59), true),   // Sat 05:59, Friday's night
            (utc(2026, 5, 16, 6, 0), false),   // Sat 06:00
            (utc(2026, 5, 16, 22, 30), false), // Sat night: not a Friday window
            (utc(2026, 5, 15, 3, 0), false),   // Fri 03:00 belongs to Thursday's night
        ];
        for (at, inside) in cases {
            assert_eq!(night.check(at).is_ok(), inside, "{at}");
        }
    }

    /// How many minutes of the UTC day around `from` the schedule is open (checked minutely).
    fn open_minutes(s: &Schedule, from: DateTime<Utc>, hours: i64) -> i64 {
        (0..hours * 60)
            .filter(|m| s.check(from + Duration::minutes(*m)).is_ok())
            .count() as i64
    }

    #[test]
    fn a_window_in_the_skipped_hour_of_spring_forward_opens_when_clocks_resume() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 02:15-02:45 never
        // happens on the wall clock; the window opens at 03:00 CEST for its 30 minutes.
        let skipped = schedule(&[], "02:15-02:45", "Europe/Berlin");
        assert!(skipped.check(utc(2026, 3, 29, 0, 59)).is_err()); // 01:59 CET
        assert!(skipped.check(utc(2026, 3, 29, 1, 0)).is_ok()); // 03:00 CEST
        assert!(skipped.check(utc(2026, 3, 29, 1, 29)).is_ok()); // 03:29 CEST
        assert!(skipped.check(utc(2026, 3, 29, 1, 30)).is_err()); // 03:30 CEST
        assert_eq!(open_minutes(&skipped, utc(2026, 3, 28, 12, 0), 24), 30);
        // One starting in the gap and ending after it lasts its nominal 90 minutes too.
        let early = schedule(&[], "02:30-04:00", "Europe/Berlin");
        assert!(early.check(utc(2026, 3, 29, 1, 0)).is_ok()); // 03:00 CEST
        assert!(early.check(utc(2026, 3, 29, 2, 29)).is_ok()); // 04:29 CEST
        assert!(early.check(utc(2026, 3, 29, 2, 30)).is_err());
        let shift = schedule(&["sat"], "22:00-06:00", "Europe/Berlin");
        assert_eq!(open_minutes(&shift, utc(2026, 3, 28, 12, 0), 24), 8 * 60);
        // The day before, an ordinary night: 90 minutes as well.
        assert_eq!(open_minutes(&early, utc(2026, 3, 27, 12, 0), 24), 90);
    }

    #[test]
    fn a_window_on_the_fall_back_night_is_open_its_length_once() {
        // Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC), so 02:00-03:00
        // happens twice. The window opens at the first 02:00 and lasts one real hour.
        let night = schedule(&["sun"], "02:00-03:00", "Europe/Berlin");
        assert!(night.check(utc(2026, 10, 24, 23, 59)).is_err()); // 01:59 CEST
        assert!(night.check(utc(2026, 10, 25, 0, 0)).is_ok()); // 02:00 CEST
        assert!(night.check(utc(2026, 10, 25, 0, 59)).is_ok()); // 02:59 CEST
        assert!(night.check(utc(2026, 10, 25, 1, 0)).is_err()); // 02:00 CET, again
        assert_eq!(open_minutes(&night, utc(2026, 10, 24, 12, 0), 24), 60);
        // A window across midnight of that night lasts its nominal 8 hours, not 9.
        let shift = schedule(&["sat"], "22:00-06:00", "Europe/Berlin");
        assert_eq!(open_minutes(&shift, utc(2026, 10, 24, 12, 0), 24), 8 * 60);
    }

    #[test]
    fn hours_are_validated() {
        for bad in [
            "9-17",
            "09:00",
            "25:00-26:00",
            "09:60-10:00",
            "10:00-10:00",
            "24:00-01:00",
        ] {
            assert!(Hours::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Hours::parse("00:00-24:00").unwrap().to_string(),
            "00:00-24:00"
        );
        assert!(parse_day("Mon").is_ok() && parse_day("monday").is_err());
    }
}
