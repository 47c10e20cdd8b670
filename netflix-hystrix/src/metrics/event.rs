use std::fmt;

/// Number of recorded event types (the length of [`EventType::ALL`]).
pub(crate) const EVENT_COUNT: usize = 14;

/// One kind of thing that happened to a command, as Hystrix's `HystrixEventType` names them.
///
/// `EXCEPTION_THROWN` is not recorded on its own: as in Hystrix 1.5, it is derived as the sum
/// of `BAD_REQUEST`, `FALLBACK_FAILURE`, `FALLBACK_MISSING` and `FALLBACK_REJECTION`
/// (see [`EventCounts::exceptions_thrown`](crate::metrics::EventCounts::exceptions_thrown)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventType {
    /// The execution completed successfully.
    Success,
    /// The execution failed.
    Failure,
    /// The execution timed out.
    Timeout,
    /// The caller made a bad request: not a failure of the dependency.
    BadRequest,
    /// The circuit breaker was open and refused the call.
    ShortCircuited,
    /// The thread-pool bulkhead was full and refused the call.
    ThreadPoolRejected,
    /// The semaphore bulkhead (or a concurrency limit) was full and refused the call.
    SemaphoreRejected,
    /// The fallback produced a value.
    FallbackSuccess,
    /// The fallback failed.
    FallbackFailure,
    /// The fallback semaphore was full, so the fallback did not run.
    FallbackRejection,
    /// No fallback was defined for the failure.
    FallbackMissing,
    /// The response came from the request cache.
    ResponseFromCache,
    /// The caller dropped the call before it completed.
    Cancelled,
    /// Requests that a collapser merged into this (batch) command.
    Collapsed,
}

impl EventType {
    /// Every recorded event type, in index order.
    pub const ALL: [EventType; EVENT_COUNT] = [
        EventType::Success,
        EventType::Failure,
        EventType::Timeout,
        EventType::BadRequest,
        EventType::ShortCircuited,
        EventType::ThreadPoolRejected,
        EventType::SemaphoreRejected,
        EventType::FallbackSuccess,
        EventType::FallbackFailure,
        EventType::FallbackRejection,
        EventType::FallbackMissing,
        EventType::ResponseFromCache,
        EventType::Cancelled,
        EventType::Collapsed,
    ];

    /// The Hystrix name, for example `"SHORT_CIRCUITED"`.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::Success => "SUCCESS",
            EventType::Failure => "FAILURE",
            EventType::Timeout => "TIMEOUT",
            EventType::BadRequest => "BAD_REQUEST",
            EventType::ShortCircuited => "SHORT_CIRCUITED",
            EventType::ThreadPoolRejected => "THREAD_POOL_REJECTED",
            EventType::SemaphoreRejected => "SEMAPHORE_REJECTED",
            EventType::FallbackSuccess => "FALLBACK_SUCCESS",
            EventType::FallbackFailure => "FALLBACK_FAILURE",
            EventType::FallbackRejection => "FALLBACK_REJECTION",
            EventType::FallbackMissing => "FALLBACK_MISSING",
            EventType::ResponseFromCache => "RESPONSE_FROM_CACHE",
            EventType::Cancelled => "CANCELLED",
            EventType::Collapsed => "COLLAPSED",
        }
    }

    /// Whether this event counts in the circuit breaker's health (Hystrix's `HealthCounts`):
    /// successes, failures, timeouts and both kinds of rejection.
    pub const fn counts_in_health(self) -> bool {
        matches!(
            self,
            EventType::Success
                | EventType::Failure
                | EventType::Timeout
                | EventType::ThreadPoolRejected
                | EventType::SemaphoreRejected
        )
    }

    /// Whether this event is an error in health terms.
    pub const fn is_health_error(self) -> bool {
        self.counts_in_health() && !matches!(self, EventType::Success)
    }

    #[inline]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_all() {
        for (i, e) in EventType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e}");
        }
    }

    #[test]
    fn health_membership_matches_hystrix() {
        let health: Vec<_> = EventType::ALL
            .iter()
            .filter(|e| e.counts_in_health())
            .map(|e| e.name())
            .collect();
        assert_eq!(
            health,
            [
                "SUCCESS",
                "FAILURE",
                "TIMEOUT",
                "THREAD_POOL_REJECTED",
                "SEMAPHORE_REJECTED"
            ]
        );
        assert!(!EventType::Success.is_health_error());
        assert!(EventType::Timeout.is_health_error());
        assert!(!EventType::ShortCircuited.is_health_error());
    }
}
