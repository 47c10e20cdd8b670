//! The circuit breaker's response future.

use super::error::BreakerOpen;
use super::shared::{Shared, TrialPermit};
use super::state::Word;
use crate::classify::{Classify, Outcome};
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

    impl<F, C> PinnedDrop for ResponseFuture<F, C> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                // The caller gave up; an armed trial permit goes back when `call` drops.
                call.cell.record(EventType::Cancelled);
            }
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

/// What the breaker must hear about besides the count. `None` on the Hystrix closed path,
/// which then carries and touches nothing but its cell.
pub(crate) enum Report {
    /// A normal call under the resilience4j profile, or with listeners.
    Normal {
        word: Word,
        shared: Arc<Shared>,
        start: Option<Instant>,
    },
    /// A half-open trial.
    Trial {
        permit: TrialPermit,
        start: Option<Instant>,
    },
}

/// What the future needs to report its outcome.
pub(crate) struct Tracked<C> {
    classifier: C,
    cell: CellRef,
    report: Option<Report>,
}

impl<C> Tracked<C> {
    #[inline]
    pub(crate) fn new(classifier: C, cell: CellRef, report: Option<Report>) -> Self {
        Self {
            classifier,
            cell,
            report,
        }
    }

    /// A call dropped before it completed.
    pub(crate) fn cancel(self) {
        self.cell.record(EventType::Cancelled);
    }

    #[inline]
    pub(crate) fn complete<T>(self, result: Result<&T, &BoxError>)
    where
        C: Classify<T>,
    {
        let outcome = self.classifier.classify(result);
        self.cell.record(outcome.event());
        if let Some(report) = self.report {
            report.send(outcome);
        }
    }
}

impl Report {
    #[inline(never)]
    fn send(self, outcome: Outcome) {
        let now = Instant::now();
        match self {
            Report::Normal {
                word,
                shared,
                start,
            } => {
                shared.on_complete(word, outcome, start.map(|s| now - s), now);
            }
            Report::Trial { mut permit, start } => {
                permit.disarm();
                permit.shared().on_trial_complete(
                    permit.word(),
                    outcome,
                    start.map(|s| now - s),
                    now,
                );
            }
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn new(inner: F, call: Tracked<C>) -> Self {
        Self {
            inner: Some(inner),
            call: Some(call),
        }
    }

    #[inline]
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
        if let Some(call) = this.call.take() {
            call.complete(result.as_ref());
        }
        Poll::Ready(result)
    }
}
