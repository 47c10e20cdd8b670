//! Least recently used.

use super::Policy;
use super::list::{List, NIL, Slab};

/// Least recently used: a hit moves the object to the head, the tail leaves.
///
/// ```
/// use netflix_oca::policy::{Lru, Policy};
///
/// let mut lru = Lru::new(2);
/// let mut evicted = Vec::new();
/// lru.insert(1, 1, &mut evicted);
/// lru.insert(2, 1, &mut evicted);
/// assert!(lru.get(1));
/// lru.insert(3, 1, &mut evicted);
/// assert_eq!(evicted, [2]);
/// ```
#[derive(Debug, Clone)]
pub struct Lru {
    slab: Slab,
    list: List,
    capacity: u64,
}

impl Lru {
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slab.index.keys().copied()
    }

    /// An empty LRU cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        Self {
            slab: Slab::default(),
            list: List::default(),
            capacity,
        }
    }

    fn evict_to(&mut self, room: u64, evicted: &mut Vec<u64>) {
        while self.list.bytes > room {
            let t = self.list.tail();
            debug_assert_ne!(t, NIL);
            self.slab.unlink(&mut self.list, t);
            evicted.push(self.slab.release(t).key);
        }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn get(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                self.slab.move_to_head(&mut self.list, i);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if size > self.capacity || self.slab.find(key).is_some() {
            return false;
        }
        self.evict_to(self.capacity - size, evicted);
        let i = self.slab.alloc(key, size, 0);
        self.slab.push_head(&mut self.list, i);
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                self.slab.unlink(&mut self.list, i);
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
        self.capacity = capacity;
        self.evict_to(capacity, evicted);
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn used(&self) -> u64 {
        self.list.bytes
    }

    fn len(&self) -> usize {
        self.list.len
    }
}
