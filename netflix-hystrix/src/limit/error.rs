//! Error types of the adaptive limit middleware.

use std::fmt;

/// The adaptive concurrency limit had no room for the call.
///
/// It carries no data, so returning it as a `BoxError` allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitExceeded {
    _priv: (),
}

impl LimitExceeded {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("concurrency limit exceeded")
    }
}

impl std::error::Error for LimitExceeded {}
