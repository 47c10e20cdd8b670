//! Atomics for the lock-free state cores, swapped for loom's under `--cfg netflix_loom` so
//! that `loom` can explore every interleaving (see `breaker::state`).

#[cfg(not(netflix_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(netflix_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
