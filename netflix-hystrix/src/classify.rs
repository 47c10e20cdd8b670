//! Deciding what a call's result means: success, failure, or nothing at all.
//!
//! A circuit breaker must know which results are failures. A transport error clearly is;
//! a `404` or a validation error that the caller caused clearly is not, and must not push a
//! healthy dependency towards an open circuit. The caller knows, so the caller decides:
//! every layer that records outcomes takes a [`Classify`] implementation.
//!
//! [`Outcome::Ignored`] is the important third answer. An ignored result releases whatever
//! permit the call held and counts for nothing: it is recorded as a `BAD_REQUEST` event,
//! does not enter the health window, and a half-open breaker whose trial call was ignored
//! lets the next call be the trial instead. (Hystrix re-opens a half-open circuit on a
//! `HystrixBadRequestException`; this crate does not.)
//!
//! # Example
//!
//! ```
//! use netflix_hystrix::classify::{classify_fn, Outcome};
//!
//! // A status-code classifier: 5xx are failures, 4xx are the caller's fault.
//! let classifier = classify_fn(|result: Result<&u16, &netflix_hystrix::BoxError>| match result {
//!     Ok(status) if *status >= 500 => Outcome::Failure,
//!     Ok(status) if *status >= 400 => Outcome::Ignored,
//!     Ok(_) => Outcome::Success,
//!     Err(e) => netflix_hystrix::classify::classify_error(e),
//! });
//! # let _ = classifier;
//! ```

use crate::error::BoxError;
use crate::metrics::EventType;

/// What one call's result means to the resilience layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The call worked.
    Success,
    /// The dependency failed.
    Failure,
    /// The call took too long (the dependency is slow, which counts as failing).
    Timeout,
    /// A semaphore bulkhead or concurrency limit refused the call.
    SemaphoreRejected,
    /// A thread-pool bulkhead refused the call.
    ThreadPoolRejected,
    /// Neither success nor failure: the caller's own mistake (a bad request).
    Ignored,
}

impl Outcome {
    /// Whether this outcome counts as an error in health statistics.
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::Failure
                | Outcome::Timeout
                | Outcome::SemaphoreRejected
                | Outcome::ThreadPoolRejected
        )
    }

    /// The Hystrix event this outcome is recorded as.
    pub const fn event(self) -> EventType {
        match self {
            Outcome::Success => EventType::Success,
            Outcome::Failure => EventType::Failure,
            Outcome::Timeout => EventType::Timeout,
            Outcome::SemaphoreRejected => EventType::SemaphoreRejected,
            Outcome::ThreadPoolRejected => EventType::ThreadPoolRejected,
            Outcome::Ignored => EventType::BadRequest,
        }
    }
}

/// Decides the [`Outcome`] of a call from its result.
///
/// Implemented for [`DefaultClassifier`] and for closures wrapped by [`classify_fn`].
pub trait Classify<T> {
    /// Classifies one result. Called once per completed call, on the data path: keep it cheap.
    fn classify(&self, result: Result<&T, &BoxError>) -> Outcome;
}

/// The classifier used when none is given: every `Ok` is a success, and errors are
/// classified by [`classify_error`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<T> Classify<T> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: Result<&T, &BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => classify_error(e),
        }
    }
}

/// Classifies an error by its type: this crate's own timeout and rejection errors map to
/// [`Outcome::Timeout`], [`Outcome::SemaphoreRejected`] and [`Outcome::ThreadPoolRejected`];
/// anything else is a [`Outcome::Failure`]. (Use this crate's
/// [`TimeoutLayer`](crate::timeout::TimeoutLayer) rather than tower's so that timeouts are
/// recognised by type.)
pub fn classify_error(error: &BoxError) -> Outcome {
    use crate::{bulkhead::error::BulkheadFull, limit::error::LimitExceeded};
    use crate::{pool::error::PoolRejected, timeout::error::Elapsed};
    if error.is::<Elapsed>() {
        Outcome::Timeout
    } else if error.is::<BulkheadFull>() || error.is::<LimitExceeded>() {
        Outcome::SemaphoreRejected
    } else if error.is::<PoolRejected>() {
        Outcome::ThreadPoolRejected
    } else {
        Outcome::Failure
    }
}

/// Wraps a closure as a [`Classify`] implementation.
///
/// The explicit bound lets the compiler infer the closure's higher-ranked signature.
pub fn classify_fn<T, F>(f: F) -> ClassifyFn<F>
where
    F: Fn(Result<&T, &BoxError>) -> Outcome,
{
    ClassifyFn { f }
}

/// A closure used as a classifier; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}

impl<T, F> Classify<T> for ClassifyFn<F>
where
    F: Fn(Result<&T, &BoxError>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&T, &BoxError>) -> Outcome {
        (self.f)(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(error: BoxError, expected: Outcome) {
        assert_eq!(classify_error(&error), expected);
    }

    #[test]
    fn errors_map_to_outcomes() {
        check(
            Box::new(crate::timeout::error::Elapsed::new()),
            Outcome::Timeout,
        );
        check(
            Box::new(crate::bulkhead::error::BulkheadFull::new()),
            Outcome::SemaphoreRejected,
        );
        check(
            Box::new(crate::pool::error::PoolRejected::new()),
            Outcome::ThreadPoolRejected,
        );
        check(
            Box::new(crate::limit::error::LimitExceeded::new()),
            Outcome::SemaphoreRejected,
        );
        check("boom".into(), Outcome::Failure);
    }

    #[test]
    fn ok_is_success_and_health_flags() {
        assert_eq!(
            DefaultClassifier.classify(Ok::<_, &BoxError>(&1)),
            Outcome::Success
        );
        assert!(Outcome::Timeout.is_error());
        assert!(!Outcome::Ignored.is_error());
        assert_eq!(Outcome::Ignored.event(), EventType::BadRequest);
    }
}
