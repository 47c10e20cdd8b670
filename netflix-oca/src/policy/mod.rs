//! Eviction policies: which object leaves the cache when a new one needs room.
//!
//! | policy | idea | source |
//! |---|---|---|
//! | [`Lru`] | the least recently used leaves | the baseline |
//! | [`Sieve`] | a FIFO with a visited bit and a hand that sweeps from old to new | Zhang et al., NSDI '24 |
//! | [`S3Fifo`] | a small probationary FIFO (10%), a main FIFO with a 2-bit clock and a ghost FIFO of recently evicted keys | Yang et al., SOSP '23 (libCacheSim's defaults) |
//! | [`TinyLfu`] | W-TinyLFU: an LRU window, a segmented LRU main space, a count-min frequency sketch as the doorkeeper between them, and a hill climber that sizes the window | Einziger et al., TOS '17; Caffeine |
//!
//! [`PolicyKind::Default`] is [`TinyLfu`]: on CDN traces, where most objects are requested
//! once, it admits an object to the main space only when it has been asked for more often
//! than the object it would replace, and its hill climber moves the window towards recency
//! when the workload calls for it (see BENCHMARKS.md for the figures on the CDN trace).
//!
//! Every policy implements [`Policy`]; weights are bytes (or 1 per object, to count objects),
//! and an object heavier than the policy can hold is never admitted (size-aware admission).
//! Pinned content is not the policy's business: the cache keeps it outside the policy and
//! lowers the policy's capacity by its weight with [`Policy::set_capacity`], so reactive
//! traffic can never evict it.
//!
//! # Example
//!
//! ```
//! use netflix_oca::policy::PolicyKind;
//!
//! let mut cache = PolicyKind::S3Fifo.build(2);
//! let mut evicted = Vec::new();
//! for key in [1, 2, 1, 3, 1, 4] {
//!     if !cache.get(key) {
//!         cache.insert(key, 1, &mut evicted);
//!     }
//! }
//! assert!(cache.contains(1), "the hot key stays");
//! assert_eq!(cache.len(), 2);
//! ```

mod adaptive;
mod belady;
mod list;
mod lru;
mod s3fifo;
mod sieve;
mod sketch;
mod tinylfu;

use std::fmt;
use std::str::FromStr;

pub use adaptive::Adaptive;
pub use belady::Belady;
pub use lru::Lru;
pub use s3fifo::{S3Fifo, S3Params};
pub use sieve::Sieve;
pub use tinylfu::TinyLfu;

pub(crate) use list::KeyHasher;

/// An online eviction policy over weighted keys.
///
/// The cache calls [`get`](Policy::get) on every request and, on a miss, offers the object
/// with [`insert`](Policy::insert); the policy decides whether to admit it and which keys
/// leave to make room, and reports those in `evicted`.
pub trait Policy: Send + fmt::Debug {
    /// The policy's name, as the replay tool spells it.
    fn name(&self) -> &'static str;

    /// Looks `key` up and, on a hit, records the access. Returns whether it was a hit.
    fn get(&mut self, key: u64) -> bool;

    /// Offers `key` (not present) of weight `size` after a miss. Returns whether it was
    /// admitted; the keys evicted to make room are appended to `evicted`.
    fn insert(&mut self, key: u64, size: u64, evicted: &mut Vec<u64>) -> bool;

    /// Removes `key` (a corrupt chunk, a purge). Returns whether it was present.
    fn remove(&mut self, key: u64) -> bool;

    /// Whether `key` is cached, without recording an access.
    fn contains(&self, key: u64) -> bool {
        self.weight(key).is_some()
    }

    /// The weight `key` was admitted with, if it is cached (no access is recorded).
    fn weight(&self, key: u64) -> Option<u64>;

    /// Changes the capacity; when it shrinks, evicts until the content fits and appends the
    /// evicted keys to `evicted`.
    fn set_capacity(&mut self, capacity: u64, evicted: &mut Vec<u64>);

    /// The capacity, in the unit of the weights.
    fn capacity(&self) -> u64;

    /// The weight cached now.
    fn used(&self) -> u64;

    /// The number of cached keys.
    fn len(&self) -> usize;

    /// Whether nothing is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The policies by name, as the `cache_replay` tool and configuration files name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyKind {
    /// [`Lru`].
    Lru,
    /// [`S3Fifo`].
    S3Fifo,
    /// [`Sieve`].
    Sieve,
    /// [`TinyLfu`].
    TinyLfu,
    /// The recommended policy: [`Adaptive`].
    Default,
    /// Belady's offline optimum (MIN): needs the future, so it exists only for trace replay
    /// ([`Belady`]); [`PolicyKind::build`] refuses it.
    Belady,
}

impl PolicyKind {
    /// Every policy, in the order reports list them.
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::Lru,
        PolicyKind::S3Fifo,
        PolicyKind::Sieve,
        PolicyKind::TinyLfu,
        PolicyKind::Default,
        PolicyKind::Belady,
    ];

    /// The name on the command line: `lru`, `s3fifo`, `sieve`, `tinylfu`, `default`, `belady`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::Sieve => "sieve",
            PolicyKind::TinyLfu => "tinylfu",
            PolicyKind::Default => "default",
            PolicyKind::Belady => "belady",
        }
    }

    /// Whether the policy needs to know the future (only [`PolicyKind::Belady`]).
    pub fn is_offline(self) -> bool {
        self == PolicyKind::Belady
    }

    /// An online policy of this kind with `capacity`.
    ///
    /// # Panics
    ///
    /// For [`PolicyKind::Belady`], which is offline: use [`Belady`] through
    /// [`crate::trace::replay`]. [`PolicyKind::try_build`] returns `None` instead.
    pub fn build(self, capacity: u64) -> Box<dyn Policy> {
        self.try_build(capacity)
            .expect("Belady's MIN is offline: replay it with trace::replay")
    }

    /// An online policy of this kind with `capacity`, or `None` for the offline
    /// [`PolicyKind::Belady`].
    pub fn try_build(self, capacity: u64) -> Option<Box<dyn Policy>> {
        Some(match self {
            PolicyKind::Lru => Box::new(Lru::new(capacity)),
            PolicyKind::S3Fifo => Box::new(S3Fifo::new(capacity)),
            PolicyKind::Sieve => Box::new(Sieve::new(capacity)),
            PolicyKind::TinyLfu => Box::new(TinyLfu::new(capacity)),
            PolicyKind::Default => Box::new(Adaptive::new(capacity)),
            PolicyKind::Belady => return None,
        })
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown policy {:?}: expected lru, s3fifo, sieve, tinylfu, default or belady",
            self.0
        )
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .or(match lower.as_str() {
                "s3-fifo" => Some(PolicyKind::S3Fifo),
                "w-tinylfu" | "wtinylfu" => Some(PolicyKind::TinyLfu),
                _ => None,
            })
            .ok_or_else(|| UnknownPolicy(s.to_string()))
    }
}

#[cfg(test)]
mod tests;
