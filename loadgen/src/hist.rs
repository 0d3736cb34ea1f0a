//! Latency histograms (HDR, microseconds) with a summary and a sparse export, so reports of
//! several processes can be merged exactly.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value tracked: one hour in microseconds (larger values are clamped).
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Hist(Histogram<u64>);

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Hist {
    /// An empty histogram (1 µs .. 1 h, 3 significant digits).
    pub fn new() -> Self {
        // Constant bounds that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, sigfig ≤ 5).
        #[allow(clippy::expect_used)]
        Hist(Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds"))
    }

    /// Records one value (clamped to 1 µs .. 1 h).
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// Records a duration.
    pub fn record_duration(&mut self, d: std::time::Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(MAX_US));
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, other: &Hist) {
        for (v, n) in other.export() {
            self.0.saturating_record_n(v.clamp(1, MAX_US), n);
        }
    }

    /// p50/p90/p99/p99.9/max.
    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        let q = |x: f64| self.0.value_at_quantile(x);
        Summary {
            count: self.0.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: self.0.max(),
        }
    }

    /// Sparse `(value, count)` pairs of every non-empty bucket.
    pub fn export(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Rebuilds a histogram from [`Hist::export`] pairs.
    pub fn import(pairs: &[(u64, u64)]) -> Hist {
        let mut h = Hist::new();
        for &(v, n) in pairs {
            h.0.saturating_record_n(v.clamp(1, MAX_US), n);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reflects_values() {
        let mut h = Hist::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50), "{s:?}");
        assert!((985..=995).contains(&s.p99), "{s:?}");
        assert!((999..=1001).contains(&s.max), "{s:?}");
        assert_eq!(Hist::new().summary(), Summary::default());
    }

    #[test]
    fn export_import_and_merge_keep_counts() {
        let mut a = Hist::new();
        let mut b = Hist::new();
        for v in [10, 20, 30, 5000, 123_456] {
            a.record(v);
            b.record(v * 2);
        }
        let round = Hist::import(&a.export());
        assert_eq!(round.summary(), a.summary());
        a.merge(&b);
        assert_eq!(a.count(), 10);
        assert!(a.summary().max >= 246_000);
    }

    #[test]
    fn clamps_out_of_range_values() {
        let mut h = Hist::new();
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.count(), 2);
        assert!(h.summary().max >= MAX_US / 2);
    }
}
