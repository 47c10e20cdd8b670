//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP '23).

use super::Policy;
use super::list::{KeyHasher, List, Slab};
use std::collections::{HashMap, VecDeque};

const SMALL: u8 = 0;
const MAIN: u8 = 1;

/// S3-FIFO: three static FIFO queues.
///
/// New objects enter a small FIFO (10% of the capacity). One that was asked for at least
/// twice while there moves to the main FIFO on its way out; the others leave, and their
/// keys are remembered in a ghost FIFO (90% of the capacity, keys only). An object found in
/// the ghost goes straight to main. Main is a CLOCK with a 2-bit frequency: a visited object
/// is reinserted with its frequency decremented instead of evicted. The parameters are
/// libCacheSim's defaults (`fifo-size-ratio=0.10,ghost-size-ratio=0.90,
/// move-to-main-threshold=2`), the authors' reference implementation.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    slab: Slab,
    small: List,
    main: List,
    ghost: Ghost,
    capacity: u64,
    small_capacity: u64,
    params: S3Params,
}

/// S3-FIFO's parameters; the default is libCacheSim's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct S3Params {
    /// The small FIFO's share of the capacity (default 0.10).
    pub small_ratio: f64,
    /// The ghost FIFO's size, as a share of the capacity (default 0.90).
    pub ghost_ratio: f64,
    /// How many hits in the small FIFO move an object to main (default 2).
    pub promote_after: u8,
}

impl Default for S3Params {
    fn default() -> Self {
        Self {
            small_ratio: 0.10,
            ghost_ratio: 0.90,
            promote_after: 2,
        }
    }
}

impl S3Fifo {
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slab.index.keys().copied()
    }

    /// An empty S3-FIFO cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        Self::with_params(capacity, S3Params::default())
    }

    /// An empty S3-FIFO cache with other parameters.
    pub fn with_params(capacity: u64, params: S3Params) -> Self {
        let mut s = Self {
            slab: Slab::default(),
            small: List::default(),
            main: List::default(),
            ghost: Ghost::default(),
            capacity: 0,
            small_capacity: 0,
            params,
        };
        s.resize(capacity);
        s
    }

    /// The parameters in force.
    pub fn params(&self) -> S3Params {
        self.params
    }

    /// Changes the parameters in place, keeping the content (the cache evicts to the new
    /// shares as objects arrive).
    pub fn set_params(&mut self, params: S3Params) {
        self.params = params;
        self.resize(self.capacity);
        self.ghost.trim();
    }

    fn resize(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.small_capacity = ((capacity as f64 * self.params.small_ratio) as u64).max(1);
        self.ghost.capacity = (capacity as f64 * self.params.ghost_ratio) as u64;
    }

    fn used_total(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }

    fn evict_one(&mut self, evicted: &mut Vec<u64>) {
        if self.main.bytes > self.capacity - self.small_capacity.min(self.capacity)
            || self.small.len == 0
        {
            self.evict_main(evicted);
        } else {
            self.evict_small(evicted);
        }
    }

    fn evict_small(&mut self, evicted: &mut Vec<u64>) {
        while self.small.len > 0 {
            let t = self.small.tail();
            self.slab.unlink(&mut self.small, t);
            if self.slab.get(t).freq >= self.params.promote_after {
                let e = self.slab.get_mut(t);
                e.freq = 0;
                e.tag = MAIN;
                self.slab.push_head(&mut self.main, t);
            } else {
                let e = self.slab.release(t);
                self.ghost.push(e.key, e.size);
                evicted.push(e.key);
                return;
            }
        }
    }

    fn evict_main(&mut self, evicted: &mut Vec<u64>) {
        while self.main.len > 0 {
            let t = self.main.tail();
            let freq = self.slab.get(t).freq;
            if freq >= 1 {
                self.slab.get_mut(t).freq = freq.min(3) - 1;
                self.slab.move_to_head(&mut self.main, t);
            } else {
                self.slab.unlink(&mut self.main, t);
                evicted.push(self.slab.release(t).key);
                return;
            }
        }
    }

    fn evict_to(&mut self, room: u64, evicted: &mut Vec<u64>) {
        while self.used_total() > room {
            self.evict_one(evicted);
        }
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn get(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                let e = self.slab.get_mut(i);
                e.freq = (e.freq + 1).min(3);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if size > self.capacity || self.slab.find(key).is_some() {
            return false;
        }
        let to_main = self.ghost.take(key);
        if !to_main && size > self.small_capacity {
            return false;
        }
        self.evict_to(self.capacity - size, evicted);
        if to_main {
            let i = self.slab.alloc(key, size, MAIN);
            self.slab.push_head(&mut self.main, i);
        } else {
            let i = self.slab.alloc(key, size, SMALL);
            self.slab.push_head(&mut self.small, i);
        }
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                if self.slab.get(i).tag == SMALL {
                    self.slab.unlink(&mut self.small, i);
                } else {
                    self.slab.unlink(&mut self.main, i);
                }
                self.slab.release(i);
                true
            }
            None => {
                self.ghost.take(key);
                false
            }
        }
    }

    fn weight(&self, key: u64) -> Option<u64> {
        self.slab.find(key).map(|i| self.slab.get(i).size)
    }

    fn set_capacity(&mut self, capacity: u64, evicted: &mut Vec<u64>) {
        self.resize(capacity);
        self.evict_to(capacity, evicted);
        self.ghost.trim();
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn used(&self) -> u64 {
        self.used_total()
    }

    fn len(&self) -> usize {
        self.small.len + self.main.len
    }
}

/// A FIFO of recently evicted keys, bounded by the weight of the objects they stood for.
/// Removal is lazy: a key taken out early leaves a stale slot (its sequence number no
/// longer matches) that is skipped when it reaches the front; its weight is released at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ghost {
    queue: VecDeque<(u64, u64)>,
    /// key -> (sequence number of its live slot, weight).
    live: HashMap<u64, (u64, u64), KeyHasher>,
    seq: u64,
    weight: u64,
    pub(crate) capacity: u64,
}

impl Ghost {
    pub(crate) fn push(&mut self, key: u64, size: u64) {
        if size > self.capacity {
            return;
        }
        self.seq += 1;
        if let Some((_, old)) = self.live.insert(key, (self.seq, size)) {
            self.weight -= old;
        }
        self.queue.push_back((key, self.seq));
        self.weight += size;
        self.trim();
    }

    pub(crate) fn trim(&mut self) {
        while let Some(&(k, seq)) = self.queue.front() {
            match self.live.get(&k) {
                Some(&(s, size)) if s == seq => {
                    if self.weight <= self.capacity {
                        break;
                    }
                    self.live.remove(&k);
                    self.weight -= size;
                }
                _ => {}
            }
            self.queue.pop_front();
        }
    }

    /// Whether `key` was remembered; forgets it.
    pub(crate) fn take(&mut self, key: u64) -> bool {
        match self.live.remove(&key) {
            Some((_, size)) => {
                self.weight -= size;
                true
            }
            None => false,
        }
    }
}
