//! Latency samples and their percentiles (nearest rank: the value at or below which the given
//! share of samples lies, so p99.9 of 20,000 samples is the 20th slowest).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Summarises samples in microseconds.
pub fn summarise(samples: &mut [Duration]) -> Summary {
    samples.sort_unstable();
    // From whole nanoseconds: as_secs_f64() * 1e6 is not exact (999 µs → 999.0000000000001).
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let at = |q: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        us(samples[rank - 1])
    };
    Summary {
        n: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples.last().map_or(f64::NAN, |d| us(*d)),
    }
}

/// Runs `f` and returns how long it took.
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let s = summarise(&mut v);
        assert_eq!((s.p50, s.p99, s.p999, s.max), (500.0, 990.0, 999.0, 1000.0));
    }
}
