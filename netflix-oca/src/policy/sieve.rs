//! SIEVE (Zhang et al., NSDI '24).

use super::Policy;
use super::list::{List, NIL, Slab};

/// SIEVE: new objects enter at the head of a FIFO; a hit only sets a visited bit; a hand
/// sweeps from the tail towards the head, clearing visited bits, and evicts the first
/// unvisited object it meets. Survivors stay where they are, so new objects that are never
/// asked for again leave quickly (a "lazy promotion, quick demotion" cache).
#[derive(Debug, Clone)]
pub struct Sieve {
    slab: Slab,
    list: List,
    hand: u32,
    capacity: u64,
}

impl Sieve {
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slab.index.keys().copied()
    }

    /// An empty SIEVE cache holding up to `capacity` weight.
    pub fn new(capacity: u64) -> Self {
        Self {
            slab: Slab::default(),
            list: List::default(),
            hand: NIL,
            capacity,
        }
    }

    fn evict_one(&mut self) -> u64 {
        let mut i = if self.hand == NIL {
            self.list.tail()
        } else {
            self.hand
        };
        while self.slab.get(i).tag != 0 {
            self.slab.get_mut(i).tag = 0;
            i = self.slab.prev(i);
            if i == NIL {
                i = self.list.tail();
            }
        }
        self.hand = self.slab.prev(i);
        self.slab.unlink(&mut self.list, i);
        self.slab.release(i).key
    }

    fn evict_to(&mut self, room: u64, evicted: &mut Vec<u64>) {
        while self.list.bytes > room {
            evicted.push(self.evict_one());
        }
    }

    fn drop_entry(&mut self, i: u32) {
        if self.hand == i {
            self.hand = self.slab.prev(i);
        }
        self.slab.unlink(&mut self.list, i);
        self.slab.release(i);
    }
}

impl Policy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    fn get(&mut self, key: u64) -> bool {
        match self.slab.find(key) {
            Some(i) => {
                self.slab.get_mut(i).tag = 1;
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
                self.drop_entry(i);
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
