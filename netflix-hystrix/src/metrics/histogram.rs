//! A log-linear histogram with lock-free recording.
//!
//! Values (microseconds for latencies, counts for batch sizes) below 64 are exact; above,
//! each power of two is split into 32 equal buckets, so a reported value is within about
//! 3% of the true one. That is coarser than Hystrix's HdrHistogram (3 significant digits)
//! but the dashboard shows integer milliseconds, and 1024 atomic buckets keep recording to
//! two uncontended `fetch_add`s.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const LINEAR: usize = 64;
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values are clamped below 2^36 (about 19 hours in microseconds).
const MAX_MAGNITUDE: u32 = 36;
pub(crate) const BUCKETS: usize = LINEAR + (MAX_MAGNITUDE as usize - 6) * SUB;
const MAX_VALUE: u64 = (1 << MAX_MAGNITUDE) - 1;

/// The bucket index of a value.
#[inline]
pub(crate) fn index(value: u64) -> usize {
    if value < LINEAR as u64 {
        return value as usize;
    }
    let v = value.min(MAX_VALUE);
    let magnitude = 63 - v.leading_zeros(); // 6..=35
    let sub = (v >> (magnitude - SUB_BITS)) as usize - SUB;
    LINEAR + (magnitude as usize - 6) * SUB + sub
}

/// The highest value that lands in bucket `i` (HdrHistogram's "highest equivalent value").
pub(crate) fn highest_equivalent(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let k = (i - LINEAR) / SUB;
    let sub = ((i - LINEAR) % SUB) as u64;
    let shift = (k + 6) as u32 - SUB_BITS;
    (((SUB as u64 + sub) << shift) + (1 << shift)) - 1
}

/// The recording side: shared by every caller, drained by the metrics harvest.
pub(crate) struct LiveHistogram {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

impl LiveHistogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        if value > self.max.load(Relaxed) {
            self.max.fetch_max(value, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Moves everything recorded so far into `into`.
    pub(crate) fn drain_into(&self, into: &mut HistogramCounts) {
        let mut any = false;
        for (i, b) in self.buckets.iter().enumerate() {
            if b.load(Relaxed) != 0 {
                let n = b.swap(0, Relaxed);
                into.counts[i] += n;
                into.count += n;
                any = true;
            }
        }
        if any {
            into.sum += self.sum.swap(0, Relaxed);
            into.max = into.max.max(self.max.swap(0, Relaxed));
        }
    }
}

/// A plain histogram: one rolling bucket's worth, or a merge of several.
#[derive(Clone)]
pub(crate) struct HistogramCounts {
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for HistogramCounts {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl HistogramCounts {
    pub(crate) fn merge(&mut self, other: &HistogramCounts) {
        if other.count == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub(crate) fn record_value(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.count += 1;
        self.sum += value;
        self.max = self.max.max(value);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// The value at a percentile, as HdrHistogram computes it: the smallest bucket whose
    /// cumulative count reaches `max(1, round(p/100 * count))`, reported as that bucket's
    /// highest equivalent value (never above the largest value recorded). 0 when empty.
    pub(crate) fn value_at_percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = (((p / 100.0) * self.count as f64) + 0.5) as u64;
        let rank = rank.max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_equivalent(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn index_boundaries() {
        assert_eq!(index(0), 0);
        assert_eq!(index(63), 63);
        assert_eq!(index(64), 64);
        assert_eq!(index(65), 64);
        assert_eq!(index(66), 65);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_equivalent(64), 65);
        assert_eq!(highest_equivalent(BUCKETS - 1), MAX_VALUE);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = HistogramCounts::default();
        for v in 1..=100 {
            h.record_value(v);
        }
        assert_eq!(h.value_at_percentile(0.0), 1);
        assert_eq!(h.value_at_percentile(50.0), 50);
        assert_eq!(h.value_at_percentile(100.0), 100);
        assert_eq!(h.mean(), 50);
    }

    proptest! {
        #[test]
        fn value_is_in_its_bucket(v in 0u64..MAX_VALUE) {
            let i = index(v);
            prop_assert!(i < BUCKETS);
            prop_assert!(highest_equivalent(i) >= v);
            if i > 0 {
                prop_assert!(highest_equivalent(i - 1) < v);
            }
        }

        #[test]
        fn percentile_within_three_percent_of_exact(mut values in proptest::collection::vec(1u64..10_000_000, 1..400), p in 0.0f64..100.0) {
            let mut h = HistogramCounts::default();
            for &v in &values { h.record_value(v); }
            values.sort_unstable();
            let rank = ((((p / 100.0) * values.len() as f64) + 0.5) as usize).max(1);
            let exact = values[rank - 1];
            let got = h.value_at_percentile(p);
            prop_assert!(got >= exact, "got {got} < exact {exact}");
            prop_assert!((got - exact) as f64 <= exact as f64 / 32.0 + 1.0, "got {got}, exact {exact}");
        }

        #[test]
        fn live_drain_matches_plain(values in proptest::collection::vec(0u64..1_000_000, 0..200)) {
            let live = LiveHistogram::new();
            let mut plain = HistogramCounts::default();
            for &v in &values { live.record(v); plain.record_value(v); }
            let mut drained = HistogramCounts::default();
            live.drain_into(&mut drained);
            prop_assert_eq!(drained.count(), plain.count());
            prop_assert_eq!(drained.mean(), plain.mean());
            for p in [0.0, 50.0, 99.5, 100.0] {
                prop_assert_eq!(drained.value_at_percentile(p), plain.value_at_percentile(p));
            }
        }
    }
}
