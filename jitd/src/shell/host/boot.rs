//! This boot of the kernel: its id, and its clock in the unit `/proc/<pid>/stat` gives start
//! times in (clock ticks since boot, suspend included). jitd records both when a session
//! registers, so that after a restart it can tell the session's processes from later ones
//! with the same pid, and from older ones in the same audit session.

use chrono::{DateTime, Utc};
use std::fs;
use std::sync::OnceLock;

/// `/proc/sys/kernel/random/boot_id`, new at every boot; `None` if it cannot be read.
///
/// Read once and then kept: every session open and every liveness check asks, and a boot
/// cannot change under a running process. A failed read is not kept (the next call tries
/// again), so a `/proc` that was not there yet cannot leave jitd without a boot id.
pub fn boot_id() -> Option<String> {
    static KEPT: OnceLock<String> = OnceLock::new();
    if let Some(id) = KEPT.get() {
        return Some(id.clone());
    }
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    Some(KEPT.get_or_init(|| id.to_owned()).clone())
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// Now, in clock ticks since boot: the clock the kernel stamps a process's start with
/// (`CLOCK_BOOTTIME`), so a process forked after this call has a start time at least this.
pub fn ticks_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let nanos = u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
        + u128::try_from(ts.tv_nsec).unwrap_or(0);
    // The kernel truncates the same way (nsec_to_clock_t).
    u64::try_from(nanos / (1_000_000_000 / u128::from(ticks_per_second()))).unwrap_or(u64::MAX)
}

/// This boot as seen at one moment: enough to place a recorded session in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub id: Option<String>,
    pub now_ticks: u64,
    pub now: DateTime<Utc>,
    pub ticks_per_second: u64,
}

impl Boot {
    pub fn current() -> Boot {
        Boot {
            id: boot_id(),
            now_ticks: ticks_now(),
            now: Utc::now(),
            ticks_per_second: ticks_per_second(),
        }
    }

    /// Whether a fact recorded under boot id `recorded` is about this boot.
    pub fn is(&self, recorded: &str) -> bool {
        self.id.as_deref() == Some(recorded)
    }

    /// The wall-clock time `at`, in clock ticks since this boot; `None` when `at` lies before
    /// this boot (the record is from an earlier one). Exact only as far as the wall clock was
    /// not stepped since `at`: used only for records that predate [`ticks_now`] being stored.
    pub fn ticks_at(&self, at: DateTime<Utc>) -> Option<u64> {
        let ago = (self.now - at).num_milliseconds().max(0);
        let ago_ticks = u64::try_from(ago).ok()? * self.ticks_per_second / 1000;
        self.now_ticks.checked_sub(ago_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_after_ticks_now_has_a_start_time_no_earlier() {
        let before = ticks_now();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let child_ticks = super::super::pidfd::start_ticks(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let own = super::super::pidfd::start_ticks(std::process::id()).unwrap();
        assert!(own <= before, "this process started before it asked");
        assert!(
            child_ticks.unwrap() >= before,
            "{child_ticks:?} < {before}: the two clocks differ"
        );
    }

    #[test]
    fn a_wall_clock_time_before_this_boot_has_no_ticks() {
        let boot = Boot {
            id: Some("b".into()),
            now_ticks: 100 * 60,
            now: "2026-11-29T10:00:00Z".parse().unwrap(),
            ticks_per_second: 100,
        };
        assert_eq!(
            boot.ticks_at("2026-11-29T09:59:30Z".parse().unwrap()),
            Some(100 * 30)
        );
        assert_eq!(boot.ticks_at("2026-11-29T09:58:00Z".parse().unwrap()), None);
        assert!(boot.is("b") && !boot.is("a"));
        assert!(
            boot_id().is_some_and(|id| id.len() == 36),
            "{:?}",
            boot_id()
        );
    }
}
