//! Intrusive doubly linked lists over one slab, so an entry can move between queues
//! (S3-FIFO's small and main queues, W-TinyLFU's window, probation and protected segments)
//! without a new allocation, and every step is O(1).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// "No entry": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// A cache entry's metadata, as the policies keep it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: u64,
    pub(crate) size: u64,
    /// Policy-specific: a visited bit, a 2-bit frequency, a segment number.
    pub(crate) tag: u8,
    pub(crate) freq: u8,
    prev: u32,
    next: u32,
}

/// One queue: its ends, its length and its weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    head: u32,
    tail: u32,
    pub(crate) len: usize,
    pub(crate) bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

impl List {
    /// The oldest entry (the eviction end).
    pub(crate) fn tail(&self) -> u32 {
        self.tail
    }
}

/// The slab of entries and the key index.
#[derive(Debug, Default, Clone)]
pub(crate) struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
    pub(crate) index: HashMap<u64, u32, KeyHasher>,
}

impl Slab {
    pub(crate) fn get(&self, i: u32) -> &Entry {
        &self.entries[i as usize]
    }

    pub(crate) fn get_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.entries[i as usize]
    }

    pub(crate) fn find(&self, key: u64) -> Option<u32> {
        self.index.get(&key).copied()
    }

    /// A new entry for `key`, indexed, in no list yet.
    pub(crate) fn alloc(&mut self, key: u64, size: u64, tag: u8) -> u32 {
        let e = Entry {
            key,
            size,
            tag,
            freq: 0,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                self.entries.push(e);
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 cached entries")
            }
        };
        self.index.insert(key, i);
        i
    }

    /// Forgets entry `i`, which must already be unlinked from its list.
    pub(crate) fn release(&mut self, i: u32) -> Entry {
        let e = self.entries[i as usize].clone();
        self.index.remove(&e.key);
        self.free.push(i);
        e
    }

    /// Puts entry `i` at the head (the newest end) of `list`.
    pub(crate) fn push_head(&mut self, list: &mut List, i: u32) {
        let old = list.head;
        {
            let e = self.get_mut(i);
            e.prev = NIL;
            e.next = old;
        }
        if old == NIL {
            list.tail = i;
        } else {
            self.get_mut(old).prev = i;
        }
        list.head = i;
        list.len += 1;
        list.bytes += self.get(i).size;
    }

    /// Takes entry `i` out of `list`.
    pub(crate) fn unlink(&mut self, list: &mut List, i: u32) {
        let (prev, next, size) = {
            let e = self.get(i);
            (e.prev, e.next, e.size)
        };
        if prev == NIL {
            list.head = next;
        } else {
            self.get_mut(prev).next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.get_mut(next).prev = prev;
        }
        let e = self.get_mut(i);
        e.prev = NIL;
        e.next = NIL;
        list.len -= 1;
        list.bytes -= size;
    }

    /// The entry before `i` (towards the head), or [`NIL`].
    pub(crate) fn prev(&self, i: u32) -> u32 {
        self.get(i).prev
    }

    /// Moves entry `i` to the head of `list` (it is in `list`).
    pub(crate) fn move_to_head(&mut self, list: &mut List, i: u32) {
        self.unlink(list, i);
        self.push_head(list, i);
    }
}

/// A fast hasher for keys that are already well-distributed 64-bit ids (the trace's object
/// ids, or chunk keys that are themselves hashes): one multiply, as `FxHash` does.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasherImpl(u64);

impl Hasher for KeyHasherImpl {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Ids in traces are often small sequential integers: spread them over every bit.
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 32;
    }
}

pub(crate) type KeyHasher = BuildHasherDefault<KeyHasherImpl>;
