//! The circuit breaker's response future.

use super::error::BreakerOpen;
use super::shared::{Shared, TrialPermit};
use super::state::Word;
use crate::classify::Classify;
use crate::error::BoxError;
use crate::metrics::EventType;
use crate::metrics::cell::CellRef;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::Instant;

pin_project! {
    /// The future returned by [`CircuitBreaker`](super::CircuitBreaker): the inner service's
    /// response, or [`BreakerOpen`] at once when the call was rejected.
    ///
    /// Dropping it before it completes counts as `CANCELLED` and gives a half-open trial
    /// permit back.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        call: Option<Tracked<C>>,
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

pub(crate) enum Kind {
    /// A normal call. `shared` is set only when the breaker needs to see the outcome
    /// (the resilience4j profile, or listeners): the Hystrix closed path touches no
    /// reference count.
    Normal(Word, Option<Arc<Shared>>),
    Trial(TrialPermit),
}

/// What the future needs to report its outcome.
pub(crate) struct Tracked<C> {
    classifier: C,
    cell: CellRef,
    kind: Kind,
    start: Option<Instant>,
    done: bool,
}

impl<C> Tracked<C> {
    pub(crate) fn new(classifier: C, cell: CellRef, kind: Kind, start: Option<Instant>) -> Self {
        Self {
            classifier,
            cell,
            kind,
            start,
            done: false,
        }
    }

    fn complete<T>(&mut self, result: Result<&T, &BoxError>)
    where
        C: Classify<T>,
    {
        self.done = true;
        let outcome = self.classifier.classify(result);
        self.cell.record(outcome.event());
        let (shared, word) = match &mut self.kind {
            Kind::Normal(_, None) => return,
            Kind::Normal(word, Some(shared)) => (&**shared, *word),
            Kind::Trial(permit) => {
                permit.disarm();
                let now = Instant::now();
                let elapsed = self.start.map(|s| now - s);
                permit
                    .shared()
                    .on_trial_complete(permit.word(), outcome, elapsed, now);
                return;
            }
        };
        let now = Instant::now();
        let elapsed = self.start.map(|s| now - s);
        shared.on_complete(word, outcome, elapsed, now);
    }
}

impl<C> Drop for Tracked<C> {
    fn drop(&mut self) {
        if !self.done {
            // The caller gave up; an armed trial permit goes back with `kind`.
            self.cell.record(EventType::Cancelled);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(inner: F, call: Tracked<C>) -> Self {
        Self {
            inner: Some(inner),
            call: Some(call),
        }
    }

    pub(crate) fn rejected() -> Self {
        Self {
            inner: None,
            call: None,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(Box::new(BreakerOpen::new())));
        };
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(mut call) = this.call.take() {
            call.complete(result.as_ref());
        }
        Poll::Ready(result)
    }
}
