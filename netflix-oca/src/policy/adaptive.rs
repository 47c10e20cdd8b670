//! The default policy: whichever of several good policies suits the workload now.

use super::s3fifo::S3Params;
use super::{Lru, Policy, S3Fifo, Sieve, TinyLfu};

/// One candidate policy, concrete so that it can be cloned when the cache adopts it.
#[derive(Debug, Clone)]
enum Expert {
    Lru(Lru),
    Sieve(Sieve),
    S3(S3Fifo),
    TinyLfu(TinyLfu),
}

impl Expert {
    fn policy(&mut self) -> &mut dyn Policy {
        match self {
            Expert::Lru(p) => p,
            Expert::Sieve(p) => p,
            Expert::S3(p) => p,
            Expert::TinyLfu(p) => p,
        }
    }

    fn policy_ref(&self) -> &dyn Policy {
        match self {
            Expert::Lru(p) => p,
            Expert::Sieve(p) => p,
            Expert::S3(p) => p,
            Expert::TinyLfu(p) => p,
        }
    }

    fn keys(&self) -> Vec<u64> {
        match self {
            Expert::Lru(p) => p.keys().collect(),
            Expert::Sieve(p) => p.keys().collect(),
            Expert::S3(p) => p.keys().collect(),
            Expert::TinyLfu(p) => p.keys().collect(),
        }
    }

    /// Plays one request: a hit, or a miss and an insert. Returns whether it hit.
    fn play(&mut self, key: u64, size: u64, scratch: &mut Vec<u64>) -> bool {
        let p = self.policy();
        if p.get(key) {
            return true;
        }
        scratch.clear();
        p.insert(key, size, scratch);
        false
    }
}

/// How much a shadow must beat the policy in charge, in misses per request over the recent
/// window, before the cache changes policy.
const MARGIN: f64 = 0.0075;
/// ...and by this share of the ruling policy's recent miss ratio.
const RELATIVE_MARGIN: f64 = 0.02;
/// The same, for a change of S3-FIFO's parameters, which costs nothing.
const TUNE_MARGIN: f64 = 0.001;
/// A change of policy waits this many half-lives after the last change.
const DWELL: f64 = 2.0;
/// The score half-life, in cache turnovers (requests per cached object)...
const TURNOVERS: f64 = 3.0;
/// ...and at least this many requests, so that small caches do not change on noise.
const MIN_HALF_LIFE: f64 = 2000.0;

/// The default policy: several policies run side by side on keys alone (*shadows*, a few
/// dozen bytes an object), each scored by its recent misses, and the cache is run by the
/// best of them.
///
/// The shadows are S3-FIFO that promotes after one hit and remembers a cache's worth of
/// ghosts (the starting policy), S3-FIFO with libCacheSim's parameters, SIEVE, LRU and
/// W-TinyLFU: FIFO-based policies win on CDN traces full of one-hit wonders, SIEVE on
/// skewed popularity, LRU when the working set moves, W-TinyLFU on loops.
///
/// Scores are exponentially decayed miss ratios with a half-life of three cache turnovers
/// (three requests per cached object, and at least 2,000 requests).
/// - Between the two S3-FIFO tunings the cache changes in place, content and all, as soon
///   as the other tuning is ahead by 0.1 point: that costs nothing.
/// - To another kind of policy it changes only when that policy is ahead by 0.75 points
///   and by 2% of the ruling policy's miss ratio, at least two half-lives after the last
///   change. It then takes over the shadow's state, forgets the keys whose data it does
///   not have, and keeps the data it has while there is room, so a change costs little.
///
/// # Differences from a single policy
///
/// The shadows cost CPU (five policies are updated on every request) and a little memory
/// (keys and a few bytes each, never data): nothing beside a 1-2 MiB chunk, but a poor fit
/// for a cache of tiny values. A workload whose working set jumps wholesale faster than the
/// score half-life can leave the cache a step behind (BENCHMARKS.md has the figures).
///
/// # Example
///
/// ```
/// use netflix_oca::policy::{Adaptive, Policy};
///
/// let mut cache = Adaptive::new(100);
/// let mut evicted = Vec::new();
/// for i in 0..10_000u64 {
///     // A loop over 150 keys: LRU and FIFOs miss every time; W-TinyLFU keeps a part.
///     let key = i % 150;
///     if !cache.get(key) {
///         cache.insert(key, 1, &mut evicted);
///     }
/// }
/// assert_eq!(cache.current(), "tinylfu");
/// ```
#[derive(Debug, Clone)]
pub struct Adaptive {
    live: Expert,
    ruler: usize,
    shadows: Vec<Expert>,
    /// Decayed misses per request of each shadow.
    scores: Vec<f64>,
    /// A key that missed in the live cache, awaiting its insert to be played to the shadows.
    pending: Option<u64>,
    requests: u64,
    since_switch: u64,
    switches: u64,
    capacity: u64,
    scratch: Vec<u64>,
}

impl Adaptive {
    /// An empty cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        let shadows = vec![
            Expert::S3(S3Fifo::with_params(
                capacity,
                S3Params {
                    promote_after: 1,
                    ghost_ratio: 1.0,
                    ..S3Params::default()
                },
            )),
            Expert::S3(S3Fifo::new(capacity)),
            Expert::Sieve(Sieve::new(capacity)),
            Expert::Lru(Lru::new(capacity)),
            Expert::TinyLfu(TinyLfu::new(capacity)),
        ];
        Self {
            live: shadows[0].clone(),
            ruler: 0,
            scores: vec![0.0; shadows.len()],
            shadows,
            pending: None,
            requests: 0,
            since_switch: 0,
            switches: 0,
            capacity,
            scratch: Vec::new(),
        }
    }

    /// The policy running the cache now: `s3fifo`, `sieve`, `lru` or `tinylfu`.
    pub fn current(&self) -> &'static str {
        self.live.policy_ref().name()
    }

    /// How many times the cache has changed policy.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The score half-life, in requests.
    fn half_life(&self) -> f64 {
        (TURNOVERS * self.live.policy_ref().len() as f64).max(MIN_HALF_LIFE)
    }

    fn observe(&mut self, key: u64, size: u64) {
        let alpha = std::f64::consts::LN_2 / self.half_life();
        for (shadow, score) in self.shadows.iter_mut().zip(&mut self.scores) {
            let miss = !shadow.play(key, size, &mut self.scratch);
            *score += alpha * (f64::from(u8::from(miss)) - *score);
        }
        self.requests += 1;
        self.since_switch += 1;
    }

    fn maybe_switch(&mut self, evicted: &mut Vec<u64>) {
        if (self.since_switch as f64) < self.half_life() {
            return;
        }
        let (best, &best_score) = self
            .scores
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("there are shadows");
        if best == self.ruler {
            return;
        }
        let gain = self.scores[self.ruler] - best_score;
        if let (Expert::S3(live), Expert::S3(shadow)) = (&mut self.live, &self.shadows[best]) {
            // Another S3-FIFO tuning: change it in place, content and all, at no cost.
            if gain > TUNE_MARGIN {
                live.set_params(shadow.params());
                self.ruler = best;
                self.since_switch = 0;
            }
            return;
        }
        if gain <= MARGIN.max(RELATIVE_MARGIN * self.scores[self.ruler])
            || (self.since_switch as f64) < DWELL * self.half_life()
        {
            return;
        }
        let mut next = self.shadows[best].clone();
        // The shadow's keys whose data the cache does not have are forgotten...
        for k in next.keys() {
            if !self.live.policy_ref().contains(k) {
                next.policy().remove(k);
            }
        }
        // ...and what the cache has but the shadow does not stays while there is room.
        for k in self.live.keys() {
            if next.policy_ref().contains(k) {
                continue;
            }
            let w = self.live.policy_ref().weight(k).unwrap_or(0);
            let p = next.policy();
            if p.used() + w <= p.capacity() {
                self.scratch.clear();
                p.insert(k, w, &mut self.scratch);
                evicted.append(&mut self.scratch);
                if p.contains(k) {
                    continue;
                }
            }
            evicted.push(k);
        }
        tracing::debug!(
            from = self.live.policy_ref().name(),
            to = next.policy_ref().name(),
            "cache policy changed"
        );
        self.live = next;
        self.ruler = best;
        self.since_switch = 0;
        self.switches += 1;
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        "default"
    }

    fn get(&mut self, key: u64) -> bool {
        if let Some(k) = self.pending.take() {
            // The last miss was never offered: the shadows still count it, weighing 1.
            self.observe(k, 1);
        }
        if self.live.policy().get(key) {
            let size = self.live.policy_ref().weight(key).unwrap_or(1);
            self.observe(key, size);
            true
        } else {
            self.pending = Some(key);
            false
        }
    }

    fn insert(&mut self, key: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if self.pending == Some(key) {
            self.pending = None;
            self.observe(key, size);
        }
        self.maybe_switch(evicted);
        if self.live.policy_ref().contains(key) {
            return false;
        }
        self.live.policy().insert(key, size, evicted)
    }

    fn remove(&mut self, key: u64) -> bool {
        for s in &mut self.shadows {
            s.policy().remove(key);
        }
        self.live.policy().remove(key)
    }

    fn weight(&self, key: u64) -> Option<u64> {
        self.live.policy_ref().weight(key)
    }

    fn set_capacity(&mut self, capacity: u64, evicted: &mut Vec<u64>) {
        self.capacity = capacity;
        for s in &mut self.shadows {
            s.policy().set_capacity(capacity, &mut self.scratch);
        }
        self.live.policy().set_capacity(capacity, evicted);
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn used(&self) -> u64 {
        self.live.policy_ref().used()
    }

    fn len(&self) -> usize {
        self.live.policy_ref().len()
    }
}
