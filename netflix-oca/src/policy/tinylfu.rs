//! W-TinyLFU with an adaptive window (Einziger, Friedman and Manes, "TinyLFU: a highly
//! efficient cache admission policy", TOS '17; Caffeine's hill climber).

use super::Policy;
use super::list::{List, NIL, Slab};
use super::sketch::Sketch;

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// The hill climber's step, as a fraction of the capacity.
const STEP: f64 = 0.0625;
/// A hit-ratio change at least this large restarts the climb with a full step.
const RESTART: f64 = 0.05;
/// Otherwise each step is this much smaller than the last.
const DECAY: f64 = 0.98;
/// Candidates at least this popular are sometimes admitted against a more popular victim,
/// so an attacker cannot pin the cache by inflating a victim's count (Caffeine's defence
/// against hash flooding).
const FLOOD_THRESHOLD: u8 = 6;

/// W-TinyLFU: a small LRU *window* admits every new object; objects leaving it compete for
/// the *main* space (a segmented LRU: probation, then protected) against main's eviction
/// victim, and the one asked for more often, by a count-min sketch of recent popularity,
/// stays. One-hit wonders therefore never displace the working set, while the window still
/// lets bursts of new popular objects in.
///
/// The window starts at 1% of the capacity and a hill climber resizes it every sample
/// (10 requests per cached object): it steps in the direction that last improved the hit
/// ratio, with decaying steps, and restarts when the hit ratio moves by 5 points, so a
/// recency-heavy workload gets a large window and a frequency-heavy one a small one.
#[derive(Debug, Clone)]
pub struct TinyLfu {
    slab: Slab,
    window: List,
    probation: List,
    protected: List,
    sketch: Sketch,
    capacity: u64,
    window_max: u64,
    climber: Climber,
    rng: u64,
    adaptive: bool,
}

#[derive(Debug, Clone)]
struct Climber {
    hits: u64,
    misses: u64,
    previous: f64,
    step: f64,
}

impl TinyLfu {
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slab.index.keys().copied()
    }

    /// An empty W-TinyLFU cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        Self {
            slab: Slab::default(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            sketch: Sketch::new(capacity.min(1 << 16) as usize),
            capacity,
            window_max: capacity / 100,
            climber: Climber {
                hits: 0,
                misses: 0,
                previous: 0.0,
                step: -STEP * capacity as f64,
            },
            rng: 0x2545_f491_4f6c_dd1d,
            adaptive: true,
        }
    }

    /// A W-TinyLFU cache whose window is fixed at `fraction` of the capacity (no hill
    /// climbing): 0.01 is the classic W-TinyLFU(1%).
    pub fn with_window(capacity: u64, fraction: f64) -> Self {
        let mut s = Self::new(capacity);
        s.window_max = (capacity as f64 * fraction.clamp(0.0, 1.0)) as u64;
        s.adaptive = false;
        s
    }

    /// The window's current share of the capacity, as the hill climber set it.
    pub fn window_fraction(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.window_max as f64 / self.capacity as f64
        }
    }

    fn main_max(&self) -> u64 {
        self.capacity - self.window_max
    }

    fn protected_max(&self) -> u64 {
        self.main_max() * 4 / 5
    }

    fn total(&self) -> u64 {
        self.window.bytes + self.probation.bytes + self.protected.bytes
    }

    fn list(&mut self, tag: u8) -> &mut List {
        match tag {
            WINDOW => &mut self.window,
            PROBATION => &mut self.probation,
            _ => &mut self.protected,
        }
    }

    fn unlink(&mut self, i: u32) {
        let tag = self.slab.get(i).tag;
        let mut list = *self.list(tag);
        self.slab.unlink(&mut list, i);
        *self.list(tag) = list;
    }

    fn evict_entry(&mut self, i: u32, evicted: &mut Vec<u64>) {
        self.unlink(i);
        evicted.push(self.slab.release(i).key);
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn admit(&mut self, candidate: u64, victim: u64) -> bool {
        let c = self.sketch.frequency(candidate);
        let v = self.sketch.frequency(victim);
        if c > v {
            true
        } else if c >= FLOOD_THRESHOLD {
            self.next_random() & 127 == 0
        } else {
            false
        }
    }

    /// Moves the window's overflow to probation; returns the first one moved and how many.
    fn evict_from_window(&mut self) -> (u32, usize) {
        let mut first = NIL;
        let mut moved = 0;
        while self.window.bytes > self.window_max && self.window.len > 0 {
            let t = self.window.tail();
            self.slab.unlink(&mut self.window, t);
            self.slab.get_mut(t).tag = PROBATION;
            self.slab.push_head(&mut self.probation, t);
            if first == NIL {
                first = t;
            }
            moved += 1;
        }
        (first, moved)
    }

    /// Brings the total within `limit`: each candidate from the window duels main's victim.
    fn evict(&mut self, limit: u64, evicted: &mut Vec<u64>) {
        let (mut candidate, mut candidates) = self.evict_from_window();
        let mut victim = self.probation.tail();
        while self.total() > limit {
            if candidates == 0 {
                candidate = NIL;
            }
            if victim == NIL {
                // Probation is spent: take victims from protected, then from the window.
                victim = if self.protected.len > 0 {
                    self.protected.tail()
                } else {
                    self.window.tail()
                };
            }
            if candidate == NIL && victim == NIL {
                break;
            }
            if candidate == NIL {
                let next = self.slab.prev(victim);
                self.evict_entry(victim, evicted);
                victim = next;
                continue;
            }
            if candidate == victim {
                let next = self.slab.prev(victim);
                self.evict_entry(candidate, evicted);
                victim = next;
                candidate = NIL;
                continue;
            }
            if self.slab.get(candidate).size > self.main_max() {
                let next = self.slab.prev(candidate);
                self.evict_entry(candidate, evicted);
                candidates -= 1;
                candidate = next;
                continue;
            }
            candidates -= 1;
            let (ck, vk) = (self.slab.get(candidate).key, self.slab.get(victim).key);
            if self.admit(ck, vk) {
                let next = self.slab.prev(victim);
                self.evict_entry(victim, evicted);
                victim = next;
                candidate = self.slab.prev(candidate);
            } else {
                let next = self.slab.prev(candidate);
                self.evict_entry(candidate, evicted);
                candidate = next;
            }
        }
    }

    fn on_hit(&mut self, i: u32) {
        match self.slab.get(i).tag {
            WINDOW => self.slab.move_to_head(&mut self.window, i),
            PROBATION => {
                self.slab.unlink(&mut self.probation, i);
                self.slab.get_mut(i).tag = PROTECTED;
                self.slab.push_head(&mut self.protected, i);
                // Keep protected within its share: its oldest fall back to probation.
                while self.protected.bytes > self.protected_max() && self.protected.len > 1 {
                    let t = self.protected.tail();
                    self.slab.unlink(&mut self.protected, t);
                    self.slab.get_mut(t).tag = PROBATION;
                    self.slab.push_head(&mut self.probation, t);
                }
            }
            _ => self.slab.move_to_head(&mut self.protected, i),
        }
    }

    /// Caffeine's hill climber: one adjustment of the window per sample of requests.
    fn climb(&mut self) {
        if !self.adaptive {
            return;
        }
        let c = &mut self.climber;
        let requests = c.hits + c.misses;
        let sample = 10 * (self.slab.index.len().max(self.sketch.width().min(64))) as u64;
        if requests < sample {
            return;
        }
        let hit_ratio = c.hits as f64 / requests as f64;
        let change = hit_ratio - c.previous;
        let amount = if change >= 0.0 { c.step } else { -c.step };
        let full = STEP * self.capacity as f64;
        c.step = if change.abs() >= RESTART {
            if amount >= 0.0 { full } else { -full }
        } else {
            DECAY * amount
        };
        c.previous = hit_ratio;
        c.hits = 0;
        c.misses = 0;
        let target = (self.window_max as f64 + amount).clamp(0.0, self.capacity as f64);
        self.window_max = target as u64;
    }
}

impl Policy for TinyLfu {
    fn name(&self) -> &'static str {
        "tinylfu"
    }

    fn get(&mut self, key: u64) -> bool {
        self.sketch.increment(key);
        let hit = match self.slab.find(key) {
            Some(i) => {
                self.on_hit(i);
                true
            }
            None => false,
        };
        if hit {
            self.climber.hits += 1;
        } else {
            self.climber.misses += 1;
        }
        self.climb();
        hit
    }

    fn insert(&mut self, key: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if size > self.capacity || self.slab.find(key).is_some() {
            return false;
        }
        let len = self.slab.index.len() + 1;
        if len > self.sketch.width() {
            // Weighted caches learn their entry count as they fill: grow the sketch with it.
            self.sketch = Sketch::new(len * 2);
        }
        let i = self.slab.alloc(key, size, WINDOW);
        self.slab.push_head(&mut self.window, i);
        let before = evicted.len();
        self.evict(self.capacity, evicted);
        let admitted = !evicted[before..].contains(&key);
        if !admitted {
            evicted.retain(|&k| k != key);
        }
        admitted
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                self.unlink(i);
                self.slab.release(i);
                true
            }
            None => false,
        }
    }

    fn weight(&self, key: u64) -> Option<u64> {
        self.slab.find(key).map(|i| self.slab.get(i).size)
    }

    fn set_capacity(&mut self, capacity: u64, evicted: &mut Vec<u64>) {
        let fraction = self.window_fraction();
        self.capacity = capacity;
        self.window_max = (capacity as f64 * fraction) as u64;
        self.evict(capacity, evicted);
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn used(&self) -> u64 {
        self.total()
    }

    fn len(&self) -> usize {
        self.slab.index.len()
    }
}
