//! Time-bucketed rings: the rolling windows behind every rolling statistic.
//!
//! A ring keeps the current bucket plus up to `n` completed ones. As in Hystrix 1.5's
//! bucketed streams, rolling values are computed over the completed buckets only, so a
//! rolling count changes once per bucket and never shows a half-filled bucket.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct Ring<T> {
    /// Front is the oldest; back is the current (still filling) bucket.
    buckets: VecDeque<(Instant, T)>,
    len: Duration,
    n: usize,
}

impl<T: Default> Ring<T> {
    pub(crate) fn new(start: Instant, len: Duration, n: usize) -> Self {
        let mut buckets = VecDeque::with_capacity(n + 1);
        buckets.push_back((start, T::default()));
        Self { buckets, len, n }
    }

    /// The bucket now filling.
    pub(crate) fn current(&mut self) -> &mut T {
        &mut self
            .buckets
            .back_mut()
            .expect("a ring always has a current bucket")
            .1
    }

    /// Starts new buckets until the current one contains `now`. Returns how many buckets
    /// were completed.
    pub(crate) fn advance(&mut self, now: Instant) -> usize {
        let start = self
            .buckets
            .back()
            .expect("a ring always has a current bucket")
            .0;
        if now < start + self.len {
            return 0;
        }
        let elapsed = (now - start).as_nanos() / self.len.as_nanos().max(1);
        let elapsed = usize::try_from(elapsed).unwrap_or(usize::MAX);
        if elapsed > self.n {
            // Every completed bucket has aged out: start over, aligned to the old grid.
            self.buckets.clear();
            let last = start + self.len * u32::try_from(elapsed).unwrap_or(u32::MAX);
            for i in (0..self.n).rev() {
                self.buckets
                    .push_back((last - self.len * (i as u32 + 1), T::default()));
            }
            self.buckets.push_back((last, T::default()));
        } else {
            for i in 1..=elapsed {
                self.buckets
                    .push_back((start + self.len * i as u32, T::default()));
            }
        }
        while self.buckets.len() > self.n + 1 {
            self.buckets.pop_front();
        }
        elapsed
    }

    /// The completed buckets, oldest first.
    pub(crate) fn completed(&self) -> impl Iterator<Item = &T> {
        let k = self.buckets.len() - 1;
        self.buckets.iter().take(k).map(|(_, b)| b)
    }

    /// Empties every bucket, keeping the grid.
    pub(crate) fn clear(&mut self) {
        for (_, b) in self.buckets.iter_mut() {
            *b = T::default();
        }
    }

    /// When the current bucket ends.
    pub(crate) fn current_end(&self) -> Instant {
        self.buckets
            .back()
            .expect("a ring always has a current bucket")
            .0
            + self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keeps_n_completed_buckets() {
        let t0 = Instant::now();
        let mut r: Ring<u64> = Ring::new(t0, Duration::from_secs(1), 3);
        *r.current() += 1;
        assert_eq!(r.completed().count(), 0);
        assert_eq!(r.advance(t0 + Duration::from_millis(999)), 0);
        assert_eq!(r.advance(t0 + Duration::from_millis(1000)), 1);
        assert_eq!(r.completed().copied().collect::<Vec<_>>(), [1]);
        *r.current() += 2;
        r.advance(t0 + Duration::from_millis(3500));
        assert_eq!(r.completed().copied().collect::<Vec<_>>(), [1, 2, 0]);
        r.advance(t0 + Duration::from_millis(4000));
        assert_eq!(r.completed().copied().collect::<Vec<_>>(), [2, 0, 0]);
        assert_eq!(r.current_end(), t0 + Duration::from_secs(5));
        r.advance(t0 + Duration::from_secs(100));
        assert_eq!(r.completed().copied().sum::<u64>(), 0);
        assert_eq!(r.completed().count(), 3);
        assert_eq!(r.current_end(), t0 + Duration::from_secs(101));
    }
}
