//! The near cache: a small in-process cache in front of memcached, for every key or only
//! for hot ones.
//!
//! * [`NearCache`]: every value read or written through the client is kept here for
//!   `ttl`, up to `capacity` entries (oldest evicted first).
//! * [`HotKeys`]: reads are counted in a count-min sketch over one-second windows; a key
//!   read more than `threshold` times in a window is *hot*, and its value is kept in the
//!   near cache for `ttl`. A celebrity title's artwork, read 50,000 times a second, is then
//!   served from memory instead of hammering the one memcached node (per zone) that
//!   holds it.
//!
//! A write or delete through this client drops its own near-cache entry at once; writes
//! from other clients are seen when the entry's `ttl` runs out, so `ttl` is the
//! staleness a caller accepts.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// An optional near cache for every key.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NearCache {
    /// The most entries kept.
    pub capacity: usize,
    /// How long an entry is served.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub ttl: Duration,
}

/// Hot-key detection with an automatic near cache for the hot keys.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HotKeys {
    /// Reads of one key per second that make it hot.
    pub threshold: u32,
    /// How long a hot key's value is served from memory.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub ttl: Duration,
    /// The most hot keys kept.
    pub capacity: usize,
}

impl Default for HotKeys {
    fn default() -> Self {
        Self {
            threshold: 1000,
            ttl: Duration::from_secs(1),
            capacity: 10_000,
        }
    }
}

const SHARDS: usize = 16;
const SKETCH_WIDTH: usize = 4096;
const SKETCH_DEPTH: usize = 4;

#[derive(Debug)]
struct Shard {
    map: HashMap<Vec<u8>, (Bytes, Instant)>,
    order: VecDeque<Vec<u8>>,
}

/// The store behind both: sharded, bounded, TTL'd; plus the hot-key sketch.
#[derive(Debug)]
pub(crate) struct Near {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    ttl: Duration,
    /// `None`: every key is cached; `Some`: only keys over the threshold.
    hot: Option<Sketch>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug)]
struct Sketch {
    threshold: u32,
    counts: Vec<AtomicU32>,
    /// The window the counts belong to (seconds since `epoch`).
    window: AtomicU64,
    epoch: Instant,
}

impl Near {
    pub(crate) fn all(cfg: NearCache) -> Self {
        Self::new(cfg.capacity, cfg.ttl, None)
    }

    pub(crate) fn hot(cfg: HotKeys) -> Self {
        Self::new(
            cfg.capacity,
            cfg.ttl,
            Some(Sketch {
                threshold: cfg.threshold.max(1),
                counts: (0..SKETCH_WIDTH * SKETCH_DEPTH)
                    .map(|_| AtomicU32::new(0))
                    .collect(),
                window: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        )
    }

    fn new(capacity: usize, ttl: Duration, hot: Option<Sketch>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl,
            hot,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// A fresh cached value.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Bytes> {
        let h = self.hash(key);
        let shard = self.shards[h as usize % SHARDS].lock();
        match shard.map.get(key) {
            Some((v, exp)) if Instant::now() < *exp => Some(v.clone()),
            _ => None,
        }
    }

    /// Counts a read of `key`; whether the key is (now) worth caching.
    pub(crate) fn observe(&self, key: &[u8]) -> bool {
        let Some(s) = &self.hot else { return true };
        let window = s.epoch.elapsed().as_secs();
        let seen = s.window.load(Ordering::Relaxed);
        if window != seen
            && s.window
                .compare_exchange(seen, window, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for c in &s.counts {
                c.store(0, Ordering::Relaxed);
            }
        }
        let h = self.hash(key);
        let mut min = u32::MAX;
        for d in 0..SKETCH_DEPTH {
            // Each row a different slice of the 64-bit hash, remixed.
            let x = h
                .rotate_left(16 * d as u32)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let i = d * SKETCH_WIDTH + (x >> 52) as usize % SKETCH_WIDTH;
            min = min.min(
                s.counts[i]
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1),
            );
        }
        min >= s.threshold
    }

    pub(crate) fn put(&self, key: &[u8], value: Bytes) {
        let h = self.hash(key);
        let mut shard = self.shards[h as usize % SHARDS].lock();
        let exp = Instant::now() + self.ttl;
        if shard.map.insert(key.to_vec(), (value, exp)).is_none() {
            shard.order.push_back(key.to_vec());
        }
        while shard.map.len() > self.per_shard {
            let Some(old) = shard.order.pop_front() else {
                break;
            };
            shard.map.remove(&old);
        }
        if shard.order.len() > 2 * self.per_shard {
            let Shard { map, order } = &mut *shard;
            order.retain(|k| map.contains_key(k));
        }
    }

    pub(crate) fn remove(&self, key: &[u8]) {
        let h = self.hash(key);
        self.shards[h as usize % SHARDS].lock().map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_capacity_holds() {
        let n = Near::all(NearCache {
            capacity: 32,
            ttl: Duration::from_secs(1),
        });
        for i in 0..1000u32 {
            n.put(&i.to_be_bytes(), Bytes::from_static(b"v"));
        }
        let kept = (0..1000u32)
            .filter(|i| n.get(&i.to_be_bytes()).is_some())
            .count();
        assert!(kept <= 32 && kept > 0, "{kept}");
        assert!(n.get(&999u32.to_be_bytes()).is_some(), "the newest stays");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(n.get(&999u32.to_be_bytes()).is_none());
        n.put(b"k", Bytes::from_static(b"v"));
        n.remove(b"k");
        assert!(n.get(b"k").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn only_keys_over_the_threshold_are_hot() {
        let n = Near::hot(HotKeys {
            threshold: 100,
            ttl: Duration::from_secs(1),
            capacity: 100,
        });
        let hot = (0..150)
            .map(|_| n.observe(b"celebrity"))
            .filter(|h| *h)
            .count();
        assert_eq!(hot, 51, "hot from the 100th read on");
        let cold = (0..1000u32).filter(|i| n.observe(&i.to_be_bytes())).count();
        assert_eq!(cold, 0, "a thousand keys read once are not hot");
        // A new window starts counting again.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!n.observe(b"celebrity"));
    }
}
