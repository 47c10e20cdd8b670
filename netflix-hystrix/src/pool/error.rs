//! Error types of the thread-pool bulkhead.

use std::fmt;

/// The thread pool had no worker and no queue room for the call (Hystrix's
/// `THREAD_POOL_REJECTED`).
///
/// It carries no data, so returning it as a `BoxError` allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolRejected {
    _priv: (),
}

impl PoolRejected {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for PoolRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("thread pool rejected the call")
    }
}

impl std::error::Error for PoolRejected {}

/// The thread pool shut down before the call ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolShutdown {
    _priv: (),
}

impl PoolShutdown {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for PoolShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("thread pool shut down before the call ran")
    }
}

impl std::error::Error for PoolShutdown {}
