//! The daemon's notion of "now". Deadlines are absolute UTC (they survive restarts), but the
//! wall clock can be set backwards; a grant must never gain time from that. So "now" is
//! counted on CLOCK_BOOTTIME (which nobody can set, and which keeps counting through suspend,
//! unlike CLOCK_MONOTONIC) from the wall-clock time of this boot's start as jitd has seen it:
//!
//! ```text
//! now = boot_epoch + CLOCK_BOOTTIME      boot_epoch = max over every reading of (wall − CLOCK_BOOTTIME)
//! ```
//!
//! A wall clock set forward raises `boot_epoch` (grants end early, by at most the step); one
//! set back leaves it where it was, so "now" goes on as if nothing happened and never goes
//! backwards. The wall clock then lags "now"; [`SystemClock::wall_lag`] says by how much, so
//! that rules read against the wall clock (sudo's `NOTAFTER`) are moved back by as much.
//!
//! `boot_epoch` is kept in `<state_dir>/clock` with the boot's id, so a jitd restarted on the
//! same boot after a step back goes on from where it was instead of starting over from the
//! set-back wall clock. After a reboot only the wall clock is left (docs/faults.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

use crate::shell::atomic_file::{read_trusted, write_atomic};
use crate::shell::failpoint::wall_now;
use crate::shell::host::boot;

/// The file in the state directory that keeps `boot_epoch` across restarts.
pub const CLOCK_FILE: &str = "clock";

/// A rise of `boot_epoch` smaller than this is not worth a write (a wall clock that NTP slews
/// forward moves it by fractions of a second).
const SAVE_STEP_MICROS: i64 = 1_000_000;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock {
    /// The wall-clock time at which this boot started, as jitd has seen it at the latest, in
    /// microseconds since the epoch. Only ever raised.
    boot_epoch: AtomicI64,
    /// What `<state_dir>/clock` holds (`i64::MIN`: nothing yet).
    saved: AtomicI64,
    /// `<state_dir>/clock` and this boot's id, if the clock is kept there.
    keep: Option<(PathBuf, String)>,
}

/// CLOCK_BOOTTIME in microseconds.
fn boottime_micros() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        // CLOCK_BOOTTIME exists on every Linux since 2.6.39; without it "now" is the latest
        // wall-clock reading (it still never goes backwards, but stands still after a step
        // back until the wall clock catches up).
        return 0;
    }
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1_000
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now)
}

impl SystemClock {
    /// A clock that starts from the wall clock and keeps nothing.
    pub fn new() -> Self {
        SystemClock {
            // As in `now`: the wall clock first.
            boot_epoch: AtomicI64::new(wall_now().timestamp_micros() - boottime_micros()),
            saved: AtomicI64::new(i64::MIN),
            keep: None,
        }
    }

    /// A clock kept in `<state_dir>/clock`: it goes on from what the file says when it was
    /// written on this boot (never earlier than the wall clock), and [`SystemClock::save`]
    /// writes it back. A file of another boot, or one that does not parse, is ignored (and
    /// replaced at the next save); one that is not jitd's alone is refused.
    pub fn kept_in(state_dir: &Path) -> io::Result<Self> {
        let mut clock = SystemClock::new();
        let Some(boot_id) = boot::boot_id() else {
            // Without a boot id a stored epoch cannot be told from another boot's.
            return Ok(clock);
        };
        let path = state_dir.join(CLOCK_FILE);
        match read_trusted(&path) {
            Ok(bytes) => {
                if let Some(epoch) = parse(&bytes, &boot_id) {
                    clock.boot_epoch.fetch_max(epoch, Ordering::AcqRel);
                    clock.saved.store(epoch, Ordering::Release);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        clock.keep = Some((path, boot_id));
        Ok(clock)
    }

    /// Writes `boot_epoch` to `<state_dir>/clock` if it rose since the last write (a step
    /// forward) or was never written. jitd calls it at startup and every second: a restart
    /// within that second after a step forward and back again starts from the older value.
    pub fn save(&self) -> io::Result<()> {
        let Some((path, boot_id)) = &self.keep else {
            return Ok(());
        };
        let epoch = self.boot_epoch.load(Ordering::Acquire);
        let saved = self.saved.load(Ordering::Acquire);
        if saved != i64::MIN && epoch - saved < SAVE_STEP_MICROS {
            return Ok(());
        }
        write_atomic(path, format!("{boot_id} {epoch}\n").as_bytes(), 0o600)?;
        self.saved.fetch_max(epoch, Ordering::AcqRel);
        Ok(())
    }

    /// How far the wall clock is behind "now": zero, unless it was set back while this boot
    /// ran (then about the step). Never negative.
    pub fn wall_lag(&self) -> Duration {
        (self.now() - wall_now()).max(Duration::zero())
    }
}

/// The epoch in `<boot id> <micros>\n`, if the file is of boot `boot_id`.
fn parse(bytes: &[u8], boot_id: &str) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (id, epoch) = text.trim_end().split_once(' ')?;
    (id == boot_id).then(|| epoch.parse().ok()).flatten()
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // The wall clock first: if the thread is preempted between the two readings, `seen`
        // comes out low (and is not taken) rather than high (and kept for good, putting
        // jitd's time ahead of the wall clock by the delay).
        let wall = wall_now().timestamp_micros();
        let boot = boottime_micros();
        let seen = wall - boot;
        let epoch = self.boot_epoch.fetch_max(seen, Ordering::AcqRel).max(seen);
        from_micros(epoch + boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_at(boot_epoch: DateTime<Utc>) -> SystemClock {
        SystemClock {
            boot_epoch: AtomicI64::new(boot_epoch.timestamp_micros()),
            saved: AtomicI64::new(i64::MIN),
            keep: None,
        }
    }

    /// The boot epoch now, as the wall clock says.
    fn wall_epoch() -> DateTime<Utc> {
        let wall = Utc::now().timestamp_micros();
        from_micros(wall - boottime_micros())
    }

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
        // The wall clock was an hour ahead when jitd started, i.e. it was then set back by an
        // hour: "now" stays an hour ahead, and the wall clock lags it by that hour.
        let clock = clock_at(wall_epoch() + Duration::hours(1));
        assert!(clock.now() >= Utc::now() + Duration::minutes(59));
        let lag = clock.wall_lag();
        assert!(
            lag > Duration::minutes(59) && lag <= Duration::hours(1),
            "{lag}"
        );
    }

    #[test]
    fn a_wall_clock_set_forward_moves_now_forward_and_leaves_no_lag() {
        let clock = clock_at(wall_epoch() - Duration::hours(3));
        assert!((clock.now() - Utc::now()).abs() < Duration::seconds(1));
        // Microseconds at most (the two clocks are read one after the other), never a second.
        let lag = clock.wall_lag();
        assert!(lag < Duration::milliseconds(1), "{lag}");
    }

    struct Scratch(PathBuf);
    impl Scratch {
        fn new() -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "jitd-clock-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_restart_on_the_same_boot_goes_on_from_the_kept_time_not_from_a_set_back_wall_clock() {
        let dir = Scratch::new();
        let ahead = wall_epoch() + Duration::hours(3);
        let first = SystemClock::kept_in(&dir.0).unwrap();
        first
            .boot_epoch
            .fetch_max(ahead.timestamp_micros(), Ordering::AcqRel);
        first.save().unwrap();
        let restarted = SystemClock::kept_in(&dir.0).unwrap();
        assert!(restarted.now() >= Utc::now() + Duration::minutes(179));
    }

    #[test]
    fn another_boots_kept_time_is_ignored() {
        let dir = Scratch::new();
        let ahead = (wall_epoch() + Duration::hours(3)).timestamp_micros();
        let file = dir.0.join(CLOCK_FILE);
        write_atomic(&file, format!("not-this-boot {ahead}\n").as_bytes(), 0o600).unwrap();
        let clock = SystemClock::kept_in(&dir.0).unwrap();
        assert!((clock.now() - Utc::now()).abs() < Duration::seconds(1));
        // And it is replaced by this boot's at the first save.
        clock.save().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with(&boot::boot_id().unwrap()), "{text}");
    }

    #[test]
    fn only_a_rise_is_saved() {
        let dir = Scratch::new();
        let clock = SystemClock::kept_in(&dir.0).unwrap();
        clock.save().unwrap();
        let file = dir.0.join(CLOCK_FILE);
        let first = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        clock.save().unwrap();
        assert!(!file.exists(), "nothing rose: nothing written");
        clock
            .boot_epoch
            .fetch_add(2 * SAVE_STEP_MICROS, Ordering::AcqRel);
        clock.save().unwrap();
        assert_ne!(std::fs::read_to_string(&file).unwrap(), first);
    }
}
