//! Per-uid token buckets for requests that change state (submit, cancel, extend, decisions…).
//! One user looping submit+cancel once grew the state directory by 644 MiB in 20 s and
//! starved everyone's PAM checks; a bucket per uid bounds what any one user can make jitd
//! write. Root is never limited (the PAM module and the administrator), and neither are
//! reads or PAM's own requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests a user may make at once after a quiet spell.
pub const BURST: u32 = 20;
/// How often a spent request comes back.
pub const REFILL_EVERY: Duration = Duration::from_secs(1);
/// Above this many tracked uids, the full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        let earned = (elapsed.as_millis() / REFILL_EVERY.as_millis()) as u64;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(BURST)) as u32;
            self.at += REFILL_EVERY * earned as u32;
            if self.tokens == BURST {
                self.at = now;
            }
        }
    }
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<u32, Bucket>>,
}

impl RateLimiter {
    /// Takes one request's token for `uid`; `Err(wait)` says when the next one is due.
    pub fn take(&self, uid: u32, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < BURST
            });
        }
        let bucket = buckets.entry(uid).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        bucket.refill(now);
        if bucket.tokens == 0 {
            return Err((bucket.at + REFILL_EVERY).saturating_duration_since(now));
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

/// The refusal a limited user reads.
pub fn too_many(wait: Duration) -> String {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    format!("too many requests: try again in {secs} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_one_request_per_refill() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(limiter.take(1000, t0).is_ok());
        }
        let wait = limiter.take(1000, t0).unwrap_err();
        assert_eq!(wait, REFILL_EVERY);
        assert_eq!(too_many(wait), "too many requests: try again in 1 s");
        // Another user is not affected.
        assert!(limiter.take(1001, t0).is_ok());
        // One refill period later, exactly one more.
        let t1 = t0 + REFILL_EVERY;
        assert!(limiter.take(1000, t1).is_ok());
        assert!(limiter.take(1000, t1).is_err());
        // A long quiet spell refills to the burst, no further.
        let t2 = t1 + REFILL_EVERY * (BURST * 10);
        for _ in 0..BURST {
            assert!(limiter.take(1000, t2).is_ok());
        }
        assert!(limiter.take(1000, t2).is_err());
    }

    #[test]
    fn idle_users_are_forgotten_when_many_are_tracked() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for uid in 0..MAX_TRACKED as u32 {
            limiter.take(uid, t0).unwrap();
        }
        let later = t0 + REFILL_EVERY * 2;
        limiter.take(u32::MAX, later).unwrap();
        let tracked = limiter.buckets.lock().unwrap().len();
        assert!(tracked < 10, "{tracked} buckets kept");
    }
}
