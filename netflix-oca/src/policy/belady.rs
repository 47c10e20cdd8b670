//! Belady's MIN: the offline optimum, the ceiling every online policy is measured against.

use super::list::KeyHasher;
use std::collections::{BTreeSet, HashMap};

/// Belady's MIN (1966): on a miss with the cache full, evict the object whose next request
/// is farthest in the future, and do not admit the new object at all if its own next
/// request is the farthest. With every object weighing 1 this is optimal; with byte
/// weights it is the same farthest-next-use rule, the customary ceiling (the byte-optimal
/// offline policy is NP-hard).
///
/// It needs the future: each access passes the position of the key's next request, which
/// [`crate::trace::next_uses`] computes for a whole trace.
///
/// ```
/// use netflix_oca::policy::Belady;
///
/// // Requests a b c a b, capacity 2: MIN keeps a and b and bypasses c.
/// let mut min = Belady::new(2);
/// let next = [3, 4, u64::MAX, u64::MAX, u64::MAX];
/// let hits: Vec<bool> = [1, 2, 3, 1, 2].iter().zip(next).map(|(&k, n)| min.access(k, 1, n)).collect();
/// assert_eq!(hits, [false, false, false, true, true]);
/// ```
#[derive(Debug)]
pub struct Belady {
    /// key -> (next use, weight)
    cached: HashMap<u64, (u64, u64), KeyHasher>,
    by_next: BTreeSet<(u64, u64)>,
    used: u64,
    capacity: u64,
}

impl Belady {
    /// An empty cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        Self {
            cached: HashMap::default(),
            by_next: BTreeSet::new(),
            used: 0,
            capacity,
        }
    }

    /// One request for `key` of weight `size`, whose next request is at position `next`
    /// (`u64::MAX` for never). Returns whether it was a hit.
    pub fn access(&mut self, key: u64, size: u64, next: u64) -> bool {
        if let Some(entry) = self.cached.get_mut(&key) {
            self.by_next.remove(&(entry.0, key));
            entry.0 = next;
            self.by_next.insert((next, key));
            return true;
        }
        if size > self.capacity || next == u64::MAX {
            return false;
        }
        // Evict the farthest-next-use objects while that makes room and they are needed
        // later than the newcomer; otherwise bypass it.
        while self.used + size > self.capacity {
            let Some(&(far, victim)) = self.by_next.last() else {
                return false;
            };
            if far <= next {
                return false;
            }
            self.by_next.remove(&(far, victim));
            let (_, w) = self.cached.remove(&victim).expect("indexed in both maps");
            self.used -= w;
        }
        self.cached.insert(key, (next, size));
        self.by_next.insert((next, key));
        self.used += size;
        false
    }

    /// The weight cached now.
    pub fn used(&self) -> u64 {
        self.used
    }
}
