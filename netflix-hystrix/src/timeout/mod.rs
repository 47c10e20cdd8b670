//! Time out calls that take too long, recording `TIMEOUT` events.
//!
//! [`TimeoutLayer`] fails a call with [`Elapsed`](error::Elapsed) when it has not completed
//! within the timeout, and drops the inner future (Hystrix's
//! `execution.isolation.thread.interruptOnTimeout`: the work is cancelled, not left
//! running). The timeout can change at run time through [`TimeoutLayer::set_timeout`];
//! `None` disables it (Hystrix's `execution.timeout.enabled = false`).
//!
//! # Recording
//!
//! Give the layer a command's [`CommandMetrics`] and it records a `TIMEOUT` event for every
//! call it times out. Under a [`CircuitBreaker`](crate::breaker::CircuitBreaker) that shares
//! those metrics, do not: the breaker classifies the [`Elapsed`](error::Elapsed) error as a
//! timeout and records it itself (the [`Command`](crate::registry::Command) stack is wired
//! that way).
//!
//! # Differences from tower's `Timeout`
//!
//! The timeout is shared and adjustable while running, a disabled timeout costs no timer,
//! and the error is this crate's [`Elapsed`](error::Elapsed), which the
//! [`DefaultClassifier`](crate::classify::DefaultClassifier) recognises as a timeout.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::timeout::{TimeoutLayer, error::Elapsed};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(100)))
//!     .service_fn(|_: ()| async {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, netflix_hystrix::BoxError>(())
//!     });
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//! # }
//! ```

pub mod error;

use crate::error::BoxError;
use crate::metrics::{CommandMetrics, EventType, Lease};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

const DISABLED: u64 = u64::MAX;

/// Applies a timeout to every call. Clones share the timeout setting.
#[derive(Clone)]
pub struct TimeoutLayer {
    nanos: Arc<AtomicU64>,
    metrics: Option<CommandMetrics>,
}

impl fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("timeout", &self.timeout())
            .finish_non_exhaustive()
    }
}

fn to_nanos(d: Option<Duration>) -> u64 {
    d.map_or(DISABLED, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(DISABLED - 1)
    })
}

impl TimeoutLayer {
    /// Times calls out after `timeout` (`None` for no timeout).
    pub fn new(timeout: impl Into<Option<Duration>>) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(to_nanos(timeout.into()))),
            metrics: None,
        }
    }

    /// Records a `TIMEOUT` event in `metrics` for every call timed out.
    pub fn metrics(mut self, metrics: CommandMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The current timeout.
    pub fn timeout(&self) -> Option<Duration> {
        match self.nanos.load(Ordering::Relaxed) {
            DISABLED => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Changes the timeout of every service built from this layer, for calls that start
    /// after the change.
    pub fn set_timeout(&self, timeout: impl Into<Option<Duration>>) {
        self.nanos
            .store(to_nanos(timeout.into()), Ordering::Relaxed);
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            nanos: self.nanos.clone(),
            lease: self.metrics.as_ref().map(CommandMetrics::lease),
        }
    }
}

/// A service whose calls time out. Built by [`TimeoutLayer`].
pub struct Timeout<S> {
    inner: S,
    nanos: Arc<AtomicU64>,
    lease: Option<Lease>,
}

impl<S: Clone> Clone for Timeout<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            nanos: self.nanos.clone(),
            lease: self.lease.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Timeout<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let sleep = match self.nanos.load(Ordering::Relaxed) {
            DISABLED => None,
            n => Some(tokio::time::sleep(Duration::from_nanos(n))),
        };
        future::ResponseFuture {
            inner: self.inner.call(req),
            sleep,
            cell: self.lease.as_ref().map(Lease::cell),
        }
    }
}

pub mod future {
    //! The timeout's response future.

    use super::*;
    use crate::metrics::cell::CellRef;

    pin_project! {
        /// The inner response, or [`Elapsed`](super::error::Elapsed) when the timeout fires first.
        pub struct ResponseFuture<F> {
            #[pin]
            pub(super) inner: F,
            #[pin]
            pub(super) sleep: Option<Sleep>,
            pub(super) cell: Option<CellRef>,
        }
    }

    impl<F> fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResponseFuture").finish_non_exhaustive()
        }
    }

    impl<F, T, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        type Output = Result<T, BoxError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            if let Poll::Ready(r) = this.inner.poll(cx) {
                return Poll::Ready(r.map_err(Into::into));
            }
            let Some(sleep) = this.sleep.as_pin_mut() else {
                return Poll::Pending;
            };
            if sleep.poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(cell) = this.cell {
                cell.record(EventType::Timeout);
            }
            Poll::Ready(Err(Box::new(super::error::Elapsed::new())))
        }
    }
}
