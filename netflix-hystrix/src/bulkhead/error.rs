//! Error types of the bulkhead middleware.

use std::fmt;

/// The semaphore bulkhead had no room for the call (Hystrix's semaphore rejection).
///
/// It carries no data, so returning it as a `BoxError` allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkheadFull {
    _priv: (),
}

impl BulkheadFull {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bulkhead is full")
    }
}

impl std::error::Error for BulkheadFull {}
