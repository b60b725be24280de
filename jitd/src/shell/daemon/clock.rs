//! The daemon's notion of "now". Deadlines are absolute UTC (they survive restarts), but the
//! wall clock can be set backwards; a grant must never gain time from that. So "now" is the
//! later of the wall clock and (wall clock at start + CLOCK_BOOTTIME elapsed since), and never
//! goes backwards. CLOCK_BOOTTIME keeps counting through suspend, unlike CLOCK_MONOTONIC.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

use crate::shell::failpoint::wall_now;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock {
    anchor_wall: DateTime<Utc>,
    anchor_boot: Duration,
    /// Latest value handed out, in microseconds since the epoch.
    last_micros: AtomicI64,
}

fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        // CLOCK_BOOTTIME exists on every Linux since 2.6.39; without it we fall back to the
        // wall clock alone (anchored elapsed time stays zero).
        return Duration::zero();
    }
    Duration::seconds(ts.tv_sec) + Duration::nanoseconds(ts.tv_nsec)
}

impl SystemClock {
    pub fn new() -> Self {
        let now = wall_now();
        SystemClock {
            anchor_wall: now,
            anchor_boot: boottime(),
            last_micros: AtomicI64::new(now.timestamp_micros()),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let anchored = self.anchor_wall + (boottime() - self.anchor_boot);
        let candidate = wall_now().max(anchored).timestamp_micros();
        let prev = self.last_micros.fetch_max(candidate, Ordering::AcqRel);
        DateTime::from_timestamp_micros(prev.max(candidate)).unwrap_or_else(Utc::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_never_goes_backwards() {
        let clock = SystemClock::new();
        let mut last = clock.now();
        for _ in 0..1000 {
            let n = clock.now();
            assert!(n >= last);
            last = n;
        }
    }

    #[test]
    fn a_wall_clock_set_back_does_not_rewind_now() {
        // Simulate the wall clock having been an hour ahead when jitd started, i.e. it was
        // then set back by an hour: "now" must stay at the anchored value.
        let clock = SystemClock {
            anchor_wall: Utc::now() + Duration::hours(1),
            anchor_boot: boottime(),
            last_micros: AtomicI64::new(0),
        };
        assert!(clock.now() >= Utc::now() + Duration::minutes(59));
    }
}
