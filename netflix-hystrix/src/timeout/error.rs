//! Error types of the timeout middleware.

use std::fmt;

/// The call took longer than its timeout (Hystrix's `HystrixTimeoutException`).
///
/// It carries no data, so returning it as a `BoxError` allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Elapsed {
    _priv: (),
}

impl Elapsed {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request timed out")
    }
}

impl std::error::Error for Elapsed {}
