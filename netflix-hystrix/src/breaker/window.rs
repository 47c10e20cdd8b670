//! resilience4j's sliding windows, lock-free.
//!
//! resilience4j guards its windows with a lock (or swaps immutable snapshots). Here every
//! counter is an atomic word tagged with the window's *epoch*, a number bumped by every
//! reset. An update lands only if its tag matches, so a call admitted before a reset can
//! never corrupt the counts after it, and a reset is a single store.
//!
//! * Count-based: a ring of the last N outcomes. Each call takes the next slot, swaps its
//!   outcome in, and adjusts four aggregate counters by the difference.
//! * Time-based: one bucket per whole second, the current second and the N-1 before it,
//!   as resilience4j buckets by epoch second. The sum of the completed seconds is cached
//!   once per second, so evaluating the window on every call stays O(1).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// Counts over a resilience4j sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowSnapshot {
    calls: u64,
    failed: u64,
    slow: u64,
    slow_failed: u64,
}

impl WindowSnapshot {
    /// Calls in the window.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Failed calls.
    pub fn failed_calls(&self) -> u64 {
        self.failed
    }

    /// Successful calls.
    pub fn successful_calls(&self) -> u64 {
        self.calls.saturating_sub(self.failed)
    }

    /// Slow calls (failed or not).
    pub fn slow_calls(&self) -> u64 {
        self.slow
    }

    /// Slow calls that failed.
    pub fn slow_failed_calls(&self) -> u64 {
        self.slow_failed
    }

    /// Slow calls that succeeded.
    pub fn slow_successful_calls(&self) -> u64 {
        self.slow.saturating_sub(self.slow_failed)
    }

    /// `failed * 100 / calls` as an `f32`, 0 with no calls (resilience4j's raw snapshot rate).
    pub fn failure_rate(&self) -> f32 {
        rate(self.failed, self.calls)
    }

    /// `slow * 100 / calls` as an `f32`, 0 with no calls.
    pub fn slow_call_rate(&self) -> f32 {
        rate(self.slow, self.calls)
    }

    pub(crate) fn from_counts(calls: u64, failed: u64, slow: u64, slow_failed: u64) -> Self {
        Self {
            calls,
            failed: failed.min(calls),
            slow: slow.min(calls),
            slow_failed: slow_failed.min(slow.min(calls)),
        }
    }
}

fn rate(part: u64, total: u64) -> f32 {
    if total == 0 {
        0.0
    } else {
        (part.min(total) as f32 * 100.0) / total as f32
    }
}

/// One call's outcome as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(window: super::SlidingWindow) -> Self {
        match window {
            super::SlidingWindow::CountBased { size } => Window::Count(CountWindow::new(size)),
            super::SlidingWindow::TimeBased { seconds } => Window::Time(TimeWindow::new(seconds)),
        }
    }

    /// Records a call of window epoch `epoch` at second `now_sec`; returns the snapshot
    /// including it.
    pub(crate) fn record(&self, epoch: u32, now_sec: u64, call: Call) -> WindowSnapshot {
        match self {
            Window::Count(w) => w.record(epoch, call),
            Window::Time(w) => w.record(epoch, now_sec, call),
        }
    }

    pub(crate) fn snapshot(&self, epoch: u32, now_sec: u64) -> WindowSnapshot {
        match self {
            Window::Count(w) => w.snapshot(epoch),
            Window::Time(w) => w.snapshot(epoch, now_sec),
        }
    }
}

// === CountWindow ===

const PRESENT: u32 = 1;
const FAILED: u32 = 2;
const SLOW: u32 = 4;
const EPOCH_BITS: u32 = 16;
const COUNT_BITS: u64 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn epoch16(epoch: u32) -> u64 {
    u64::from(epoch) & ((1 << EPOCH_BITS) - 1)
}

/// An epoch-tagged counter: epoch in the top 16 bits, the count in the low 48.
struct Tagged(AtomicU64);

impl Tagged {
    fn new() -> Self {
        Tagged(AtomicU64::new(0))
    }

    /// Adds `delta` (which may be negative) if the counter belongs to `epoch`; a counter of
    /// another epoch is first taken over (reset to zero) when `epoch` is newer.
    fn add(&self, epoch: u32, delta: i64) {
        if delta == 0 {
            return;
        }
        let e = epoch16(epoch);
        let _ = self.0.fetch_update(AcqRel, Acquire, |w| {
            let count = if w >> COUNT_BITS == e {
                w & COUNT_MASK
            } else {
                0
            };
            let next = (count as i64 + delta).max(0) as u64 & COUNT_MASK;
            Some((e << COUNT_BITS) | next)
        });
    }

    fn get(&self, epoch: u32) -> u64 {
        let w = self.0.load(Acquire);
        if w >> COUNT_BITS == epoch16(epoch) {
            w & COUNT_MASK
        } else {
            0
        }
    }
}

pub(crate) struct CountWindow {
    /// Each slot: epoch (16 bits) << 8 | outcome bits.
    slots: Box<[AtomicU32]>,
    next: AtomicU64,
    calls: Tagged,
    failed: Tagged,
    slow: Tagged,
    slow_failed: Tagged,
}

impl CountWindow {
    fn new(size: u32) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicU64::new(0),
            calls: Tagged::new(),
            failed: Tagged::new(),
            slow: Tagged::new(),
            slow_failed: Tagged::new(),
        }
    }

    fn record(&self, epoch: u32, call: Call) -> WindowSnapshot {
        let bits =
            PRESENT | if call.failed { FAILED } else { 0 } | if call.slow { SLOW } else { 0 };
        let i = (self.next.fetch_add(1, Relaxed) % self.slots.len() as u64) as usize;
        let e = epoch16(epoch) as u32;
        let old = self.slots[i].swap((e << 8) | bits, AcqRel);
        // A slot written in another epoch is empty as far as this one is concerned.
        let old = if old >> 8 == e { old & 0xFF } else { 0 };
        let d = |mask: u32| i64::from(bits & mask != 0) - i64::from(old & mask != 0);
        let both = |b: u32| b & (FAILED | SLOW) == FAILED | SLOW;
        self.calls.add(epoch, d(PRESENT));
        self.failed.add(epoch, d(FAILED));
        self.slow.add(epoch, d(SLOW));
        self.slow_failed
            .add(epoch, i64::from(both(bits)) - i64::from(both(old)));
        self.snapshot(epoch)
    }

    fn snapshot(&self, epoch: u32) -> WindowSnapshot {
        WindowSnapshot::from_counts(
            self.calls.get(epoch),
            self.failed.get(epoch),
            self.slow.get(epoch),
            self.slow_failed.get(epoch),
        )
    }
}

// === TimeWindow ===

/// A per-second counter: tag (second << 8 | epoch, 40 bits) << 24 | count (24 bits).
struct SecondCounter(AtomicU64);

const SEC_COUNT_BITS: u64 = 24;
const SEC_COUNT_MASK: u64 = (1 << SEC_COUNT_BITS) - 1;

fn tag(second: u64, epoch: u32) -> u64 {
    ((second & 0xFFFF_FFFF) << 8) | (u64::from(epoch) & 0xFF)
}

impl SecondCounter {
    fn new() -> Self {
        SecondCounter(AtomicU64::new(0))
    }

    fn incr(&self, t: u64) {
        let _ = self.0.fetch_update(AcqRel, Acquire, |w| {
            let wt = w >> SEC_COUNT_BITS;
            if wt == t {
                Some(w + u64::from(w & SEC_COUNT_MASK < SEC_COUNT_MASK))
            } else if wt < t {
                Some((t << SEC_COUNT_BITS) | 1)
            } else {
                None // a newer second already owns this bucket
            }
        });
    }

    fn get(&self, t: u64) -> u64 {
        let w = self.0.load(Acquire);
        if w >> SEC_COUNT_BITS == t {
            w & SEC_COUNT_MASK
        } else {
            0
        }
    }
}

struct SecondBucket {
    calls: SecondCounter,
    failed: SecondCounter,
    slow: SecondCounter,
    slow_failed: SecondCounter,
}

pub(crate) struct TimeWindow {
    buckets: Box<[SecondBucket]>,
    /// Sum of the completed seconds of the window ending at `cached_tag`'s second.
    cached_tag: AtomicU64,
    cached: [AtomicU64; 4],
}

impl TimeWindow {
    fn new(seconds: u32) -> Self {
        Self {
            buckets: (0..seconds.max(1))
                .map(|_| SecondBucket {
                    calls: SecondCounter::new(),
                    failed: SecondCounter::new(),
                    slow: SecondCounter::new(),
                    slow_failed: SecondCounter::new(),
                })
                .collect(),
            cached_tag: AtomicU64::new(u64::MAX),
            cached: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn bucket(&self, second: u64) -> &SecondBucket {
        &self.buckets[(second % self.buckets.len() as u64) as usize]
    }

    fn record(&self, epoch: u32, now_sec: u64, call: Call) -> WindowSnapshot {
        let t = tag(now_sec, epoch);
        let b = self.bucket(now_sec);
        b.calls.incr(t);
        if call.failed {
            b.failed.incr(t);
        }
        if call.slow {
            b.slow.incr(t);
            if call.failed {
                b.slow_failed.incr(t);
            }
        }
        self.snapshot(epoch, now_sec)
    }

    fn snapshot(&self, epoch: u32, now_sec: u64) -> WindowSnapshot {
        let t = tag(now_sec, epoch);
        let completed = self.completed(epoch, now_sec, t);
        let b = self.bucket(now_sec);
        WindowSnapshot::from_counts(
            completed[0] + b.calls.get(t),
            completed[1] + b.failed.get(t),
            completed[2] + b.slow.get(t),
            completed[3] + b.slow_failed.get(t),
        )
    }

    /// The sum of the N-1 seconds before `now_sec`, cached per second.
    fn completed(&self, epoch: u32, now_sec: u64, t: u64) -> [u64; 4] {
        if self.cached_tag.load(Acquire) == t {
            return std::array::from_fn(|i| self.cached[i].load(Relaxed));
        }
        let mut sum = [0u64; 4];
        let n = self.buckets.len() as u64;
        for back in 1..n {
            let Some(s) = now_sec.checked_sub(back) else {
                break;
            };
            let st = tag(s, epoch);
            let b = self.bucket(s);
            sum[0] += b.calls.get(st);
            sum[1] += b.failed.get(st);
            sum[2] += b.slow.get(st);
            sum[3] += b.slow_failed.get(st);
        }
        // Publish for the other callers of this second. Readers may rarely see a mix of two
        // publications of the same second, which differ only by stragglers' late writes.
        for (c, v) in self.cached.iter().zip(sum) {
            c.store(v, Relaxed);
        }
        self.cached_tag.store(t, Release);
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call(failed: bool, slow: bool) -> Call {
        Call { failed, slow }
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(3);
        w.record(0, call(true, false));
        w.record(0, call(true, true));
        let s = w.record(0, call(false, false));
        assert_eq!((s.calls(), s.failed_calls(), s.slow_calls()), (3, 2, 1));
        assert_eq!(s.slow_failed_calls(), 1);
        // The fourth call evicts the first failure.
        let s = w.record(0, call(false, false));
        assert_eq!((s.calls(), s.failed_calls()), (3, 1));
        assert!((s.failure_rate() - 33.333_332).abs() < 1e-3);
    }

    #[test]
    fn a_new_epoch_starts_empty_and_old_calls_cannot_touch_it() {
        let w = CountWindow::new(2);
        w.record(1, call(true, false));
        w.record(1, call(true, false));
        assert_eq!(w.snapshot(2), WindowSnapshot::default());
        let s = w.record(2, call(false, false));
        assert_eq!((s.calls(), s.failed_calls()), (1, 0));
        // A straggler from epoch 1 does not change epoch 2's counts.
        w.record(1, call(true, true));
        assert_eq!(w.snapshot(2).calls(), 1);
    }

    #[test]
    fn time_window_counts_the_last_n_seconds() {
        let w = TimeWindow::new(3);
        w.record(0, 10, call(true, false));
        w.record(0, 11, call(false, false));
        let s = w.record(0, 12, call(false, true));
        assert_eq!((s.calls(), s.failed_calls(), s.slow_calls()), (3, 1, 1));
        // Second 13: second 10 has left the window.
        let s = w.snapshot(0, 13);
        assert_eq!((s.calls(), s.failed_calls()), (2, 0));
        // Long idle: everything is gone.
        assert_eq!(w.snapshot(0, 100), WindowSnapshot::default());
        // A reset (new epoch) empties the window at once.
        assert_eq!(w.snapshot(1, 12), WindowSnapshot::default());
    }

    #[test]
    fn time_window_cache_sees_new_completed_seconds() {
        let w = TimeWindow::new(10);
        w.record(0, 5, call(true, false));
        assert_eq!(w.snapshot(0, 6).calls(), 1);
        w.record(0, 6, call(true, false));
        w.record(0, 7, call(false, false));
        let s = w.snapshot(0, 7);
        assert_eq!((s.calls(), s.failed_calls()), (3, 2));
    }

    proptest! {
        /// The lock-free ring agrees with a plain VecDeque model.
        #[test]
        fn count_window_matches_a_naive_model(size in 1u32..20, calls in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..100)) {
            let w = CountWindow::new(size);
            let mut model = std::collections::VecDeque::new();
            for (f, s) in calls {
                let got = w.record(3, call(f, s));
                model.push_back((f, s));
                if model.len() > size as usize { model.pop_front(); }
                let want = WindowSnapshot::from_counts(
                    model.len() as u64,
                    model.iter().filter(|c| c.0).count() as u64,
                    model.iter().filter(|c| c.1).count() as u64,
                    model.iter().filter(|c| c.0 && c.1).count() as u64,
                );
                prop_assert_eq!(got, want);
            }
        }

        /// The time window agrees with a naive per-second model.
        #[test]
        fn time_window_matches_a_naive_model(n in 1u32..8, events in proptest::collection::vec((0u64..4, any::<bool>()), 0..60)) {
            let w = TimeWindow::new(n);
            let mut now = 0u64;
            let mut log: Vec<(u64, bool)> = Vec::new();
            for (step, failed) in events {
                now += step;
                let got = w.record(0, now, call(failed, false));
                log.push((now, failed));
                let live: Vec<_> = log.iter().filter(|(s, _)| *s + u64::from(n) > now).collect();
                prop_assert_eq!(got.calls(), live.len() as u64);
                prop_assert_eq!(got.failed_calls(), live.iter().filter(|(_, f)| *f).count() as u64);
            }
        }
    }
}
