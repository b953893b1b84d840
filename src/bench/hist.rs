//! Latency histograms: HDR-style, fixed memory whatever the sample count.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest value kept exactly, in microseconds (one minute); longer samples count as this.
const MAX_US: u64 = 60_000_000;
/// Two significant digits: 1 % resolution in about 20 KB per histogram.
const SIGFIG: u8 = 2;

/// Microsecond latencies from 1 µs to one minute at 1 % resolution.
#[derive(Debug, Clone)]
pub struct Latency {
    h: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        let h = Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("constant bounds are valid");
        Latency { h }
    }

    /// Records one sample (clamped to 1 µs .. one minute).
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(MAX_US).clamp(1, MAX_US);
        self.h.saturating_record(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.h.add(&other.h);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// Count, mean and percentiles in microseconds.
    pub fn summary(&self) -> Summary {
        let q = |p: f64| if self.h.is_empty() { 0 } else { self.h.value_at_quantile(p) };
        Summary {
            count: self.h.len(),
            mean_us: if self.h.is_empty() { 0.0 } else { (self.h.mean() * 10.0).round() / 10.0 },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if self.h.is_empty() { 0 } else { self.h.max() },
        }
    }
}

/// What a [`Latency`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut l = Latency::new();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 10_000);
        // 1 % resolution.
        assert!((4_950..=5_050).contains(&s.p50_us), "{s:?}");
        assert!((9_800..=10_000).contains(&s.p99_us), "{s:?}");
        assert!(s.max_us >= 10_000 && s.max_us <= 10_100, "{s:?}");
    }

    #[test]
    fn merge_adds_counts_and_empty_reports_zero() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        assert_eq!(a.summary(), Summary::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_secs(3600)); // clamped to a minute
        b.record(Duration::ZERO); // clamped to 1 µs
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 3);
        assert!(s.max_us >= MAX_US);
    }
}
