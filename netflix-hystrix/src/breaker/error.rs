//! Error types of the circuit breaker.

use std::fmt;

/// The circuit breaker refused the call (Hystrix's short-circuit, resilience4j's
/// `CallNotPermittedException`).
///
/// It carries no data so that rejecting a call allocates nothing (a boxed zero-sized error
/// does not allocate); ask the [`Breaker`](super::Breaker) for its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerOpen {
    _priv: (),
}

impl BreakerOpen {
    /// Creates the error.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for BreakerOpen {}
