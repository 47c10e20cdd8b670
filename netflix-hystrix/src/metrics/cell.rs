//! Recorder cells: where the data path writes its counts.
//!
//! # Why cells are `'static`
//!
//! A response future must be able to record its outcome after the service that created it
//! is gone, so it needs a reference to its counters that outlives the service. An `Arc`
//! would do, but cloning and dropping one costs two atomic read-modify-writes on every call,
//! more than everything else the closed path does. Instead, cells are allocated once, never
//! freed, and recycled through a process-wide free list: a future holds a plain
//! `&'static Cell` plus the id of the metrics that leased it.
//!
//! A cell belongs to one [`CommandMetrics`](super::CommandMetrics) for the metrics'
//! whole life; clones of a service lease and return cells of that same metrics, so a late
//! completion always lands in the right command. Only when the metrics themselves are
//! dropped do their cells go back to the global list, with their owner id cleared: a future
//! that outlived its command then records nothing rather than into someone else's counts.
//! Memory is bounded by the peak number of cells alive at once.
//!
//! Counters only ever grow. The harvest remembers what it saw last and takes the
//! difference, so it never writes to a cell and never contends with the data path.

use super::{EVENT_COUNT, EventType};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// One writer-side cell. Aligned to two cache lines so that cells used by different threads
/// never share one (adjacent-line prefetching included).
#[repr(align(128))]
pub(crate) struct Cell {
    owner: AtomicU64,
    counts: [AtomicU64; EVENT_COUNT],
}

static FREE: Mutex<Vec<&'static Cell>> = Mutex::new(Vec::new());
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A fresh, never-reused owner id.
pub(crate) fn new_owner_id() -> u64 {
    NEXT_OWNER.fetch_add(1, Relaxed)
}

/// Takes a cell from the free list (or allocates one) for `owner`.
pub(crate) fn take(owner: u64) -> &'static Cell {
    let cell = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let cell = cell.unwrap_or_else(|| {
        Box::leak(Box::new(Cell {
            owner: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }))
    });
    cell.owner.store(owner, Relaxed);
    cell
}

/// Returns cells whose owner is gone to the free list.
pub(crate) fn give_back(cells: impl IntoIterator<Item = &'static Cell>) {
    let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    for c in cells {
        c.owner.store(0, Relaxed);
        free.push(c);
    }
}

impl Cell {
    /// The counters as they are now.
    pub(crate) fn read(&self) -> [u64; EVENT_COUNT] {
        std::array::from_fn(|i| self.counts[i].load(Relaxed))
    }
}

/// What a service or future holds to record: the cell and the owner it was leased for.
#[derive(Clone, Copy)]
pub(crate) struct CellRef {
    cell: &'static Cell,
    owner: u64,
}

impl CellRef {
    pub(crate) fn new(cell: &'static Cell, owner: u64) -> Self {
        Self { cell, owner }
    }

    /// Records an event from any thread.
    #[inline]
    pub(crate) fn record(self, event: EventType) {
        self.record_n(event, 1);
    }

    /// Records `n` events from any thread.
    #[inline]
    pub(crate) fn record_n(self, event: EventType, n: u64) {
        if self.cell.owner.load(Relaxed) == self.owner {
            self.cell.counts[event.index()].fetch_add(n, Relaxed);
        }
    }

    /// Records an event that only the cell's current lessee ever records (it holds the
    /// lease through `&mut self`), so a plain load and store suffice: no read-modify-write.
    #[inline]
    pub(crate) fn record_exclusive(self, event: EventType) {
        let c = &self.cell.counts[event.index()];
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }
}
