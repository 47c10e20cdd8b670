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
//! # Why two sets of counters
//!
//! A service clone is almost always driven by one thread, and a locked `fetch_add` costs
//! several times a plain store. So each cell is claimed by the first thread that records
//! into it: that thread, and only that thread, increments the *owned* counters with a plain
//! load and store. Any other thread (a future completed elsewhere, a clone that moved)
//! increments the *shared* counters with `fetch_add`. Each owned counter has exactly one
//! writer, so no increment is ever lost, and the harvest adds both sets.
//!
//! A claim is never handed over, not even when its thread exits (telling that a thread
//! exited would cost a thread-local destructor on every access), so a cell whose clone
//! moves to another thread for good pays the `fetch_add` from then on. Servers run their
//! services on long-lived worker threads, where claims stay put.
//!
//! Counters only ever grow. The harvest remembers what it saw last and takes the
//! difference, so it never writes to a cell and never contends with the data path.

use super::{EVENT_COUNT, EventType};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// One writer-side cell. The owner ids and the owned counters come first, so the common
/// events (success, failure) share a cache line with them; the alignment keeps cells used
/// by different threads off each other's lines.
#[repr(C, align(128))]
pub(crate) struct Cell {
    owner: AtomicU64,
    thread: AtomicU64,
    /// Written only by the current lessee, through `&mut` to its service.
    exclusive: AtomicU64,
    owned: [AtomicU64; EVENT_COUNT],
    shared: [AtomicU64; EVENT_COUNT],
}

static FREE: Mutex<Vec<&'static Cell>> = Mutex::new(Vec::new());
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A never-reused id for the calling thread (never 0, which means "unclaimed").
#[inline]
fn thread_id() -> u64 {
    THREAD.with(|t| {
        let id = t.get();
        if id != 0 {
            id
        } else {
            let id = NEXT_THREAD.fetch_add(1, Relaxed);
            t.set(id);
            id
        }
    })
}

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
            thread: AtomicU64::new(0),
            exclusive: AtomicU64::new(0),
            owned: std::array::from_fn(|_| AtomicU64::new(0)),
            shared: std::array::from_fn(|_| AtomicU64::new(0)),
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
    /// The counters as they are now (owned plus shared).
    pub(crate) fn read(&self) -> [u64; EVENT_COUNT] {
        let mut counts: [u64; EVENT_COUNT] = std::array::from_fn(|i| {
            self.owned[i]
                .load(Relaxed)
                .wrapping_add(self.shared[i].load(Relaxed))
        });
        let sc = EventType::ShortCircuited.index();
        counts[sc] = counts[sc].wrapping_add(self.exclusive.load(Relaxed));
        counts
    }
}

/// What a service or future holds to record: the cell and the owner it was leased for.
#[derive(Clone, Copy)]
pub(crate) struct CellRef {
    cell: &'static Cell,
    owner: u64,
}

impl CellRef {
    /// Records a short-circuit. Only the service that leased the cell calls this, from
    /// `call(&mut self)`: one writer at a time, so a plain load and store suffice, with no
    /// thread lookup. (A lease changes hands through a mutex, which orders the writers.)
    #[inline]
    pub(crate) fn record_short_circuit(self) {
        let c = &self.cell.exclusive;
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }

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
        let cell = self.cell;
        if cell.owner.load(Relaxed) != self.owner {
            return;
        }
        let me = thread_id();
        let t = cell.thread.load(Relaxed);
        let mine = t == me
            || (t == 0
                && cell
                    .thread
                    .compare_exchange(0, me, Relaxed, Relaxed)
                    .is_ok());
        if mine {
            // The only thread that ever writes this counter: no read-modify-write needed.
            let c = &cell.owned[event.index()];
            c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            cell.shared[event.index()].fetch_add(n, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_increment_is_lost_across_threads() {
        let owner = new_owner_id();
        let r = CellRef::new(take(owner), owner);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(move || {
                    for _ in 0..10_000 {
                        r.record(EventType::Success);
                    }
                });
            }
        });
        r.record(EventType::Success);
        assert_eq!(r.cell.read()[EventType::Success.index()], 40_001);
    }

    #[test]
    fn another_threads_claim_falls_back_to_shared_counters() {
        let owner = new_owner_id();
        let r = CellRef::new(take(owner), owner);
        std::thread::spawn(move || r.record(EventType::Failure))
            .join()
            .unwrap();
        r.record(EventType::Failure);
        assert_ne!(r.cell.thread.load(Relaxed), thread_id());
        assert_eq!(r.cell.read()[EventType::Failure.index()], 2);
    }
}
