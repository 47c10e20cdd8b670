//! A semaphore bulkhead: cap how many calls run at once.
//!
//! Hystrix's `SEMAPHORE` isolation and resilience4j's `SemaphoreBulkhead`. When the
//! bulkhead is full a call is rejected at once with [`BulkheadFull`](error::BulkheadFull)
//! (Hystrix), or waits up to `max_wait` for room and is rejected if none comes
//! (resilience4j's `maxWaitDuration`). The limit can change at run time.
//!
//! The permit is taken in `poll_ready`, so a rejected call never reaches the inner service,
//! and released when the response future completes or is dropped.
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::bulkhead::{BulkheadConfig, BulkheadLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let bulkhead = BulkheadLayer::new(BulkheadConfig::default())?; // 10 at once, no waiting
//! let mut svc = ServiceBuilder::new()
//!     .layer(bulkhead.clone())
//!     .service_fn(|x: u32| async move { Ok::<_, netflix_hystrix::BoxError>(x * 2) });
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! assert_eq!(bulkhead.available(), 10);
//! # Ok(())
//! # }
//! ```

pub mod error;

use crate::error::{BoxError, Result, ensure};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::Notify;
use tower_layer::Layer;
use tower_service::Service;

/// Settings of a [`BulkheadLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// `execution.isolation.semaphore.maxConcurrentRequests`: calls allowed at once.
    /// Default 10 (Hystrix's).
    pub max_concurrent_calls: u32,
    /// How long a call may wait for room: zero rejects at once (Hystrix), more waits
    /// (resilience4j's `maxWaitDuration`). Default zero.
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 10,
            max_wait: Duration::ZERO,
        }
    }
}

impl BulkheadConfig {
    /// A bulkhead of `max_concurrent_calls` that rejects at once.
    pub fn new(max_concurrent_calls: u32) -> Self {
        Self {
            max_concurrent_calls,
            ..Self::default()
        }
    }

    /// Lets calls wait up to `max_wait` for room.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// When `max_concurrent_calls` is zero.
    pub fn validate(&self) -> Result<()> {
        ensure(
            self.max_concurrent_calls >= 1,
            "execution.isolation.semaphore.maxConcurrentRequests",
            || "must be at least 1".into(),
        )
    }
}

struct Shared {
    in_flight: AtomicU32,
    max: AtomicU32,
    max_wait_nanos: AtomicU64,
    waiters: AtomicU32,
    notify: Notify,
    permitted: AtomicU64,
    rejected: AtomicU64,
}

impl Shared {
    #[inline]
    fn try_acquire(&self) -> bool {
        let max = self.max.load(Relaxed);
        self.in_flight
            .fetch_update(AcqRel, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    fn release(&self) {
        self.in_flight.fetch_sub(1, AcqRel);
        if self.waiters.load(Acquire) > 0 {
            self.notify.notify_one();
        }
    }
}

/// A semaphore bulkhead. The layer is also the handle: clones share one bulkhead, so a
/// bulkhead can guard several services together.
#[derive(Clone)]
pub struct BulkheadLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("in_flight", &self.in_flight())
            .field("max_concurrent_calls", &self.max_concurrent_calls())
            .finish()
    }
}

impl BulkheadLayer {
    /// Creates a bulkhead.
    ///
    /// # Errors
    ///
    /// When `max_concurrent_calls` is zero.
    pub fn new(config: BulkheadConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                in_flight: AtomicU32::new(0),
                max: AtomicU32::new(config.max_concurrent_calls),
                max_wait_nanos: AtomicU64::new(nanos(config.max_wait)),
                waiters: AtomicU32::new(0),
                notify: Notify::new(),
                permitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// Calls running now.
    pub fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Relaxed)
    }

    /// Room left.
    pub fn available(&self) -> u32 {
        self.max_concurrent_calls().saturating_sub(self.in_flight())
    }

    /// The limit.
    pub fn max_concurrent_calls(&self) -> u32 {
        self.shared.max.load(Relaxed)
    }

    /// Calls admitted since creation.
    pub fn permitted_calls(&self) -> u64 {
        self.shared.permitted.load(Relaxed)
    }

    /// Calls rejected since creation.
    pub fn rejected_calls(&self) -> u64 {
        self.shared.rejected.load(Relaxed)
    }

    /// Changes the limit and the wait at run time. Calls already running are not affected;
    /// lowering the limit only holds new calls back until enough finish.
    ///
    /// # Errors
    ///
    /// When `max_concurrent_calls` is zero.
    pub fn reconfigure(&self, config: &BulkheadConfig) -> Result<()> {
        config.validate()?;
        self.shared.max.store(config.max_concurrent_calls, Relaxed);
        self.shared
            .max_wait_nanos
            .store(nanos(config.max_wait), Relaxed);
        self.shared.notify.notify_waiters();
        Ok(())
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Bulkhead<S> {
        Bulkhead {
            inner,
            shared: self.shared.clone(),
            state: Admit::Idle,
        }
    }
}

type WaitFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

enum Admit {
    Idle,
    Waiting(WaitFuture),
    Permitted(Permit),
    Rejected,
}

/// A service guarded by a [`BulkheadLayer`].
pub struct Bulkhead<S> {
    inner: S,
    shared: Arc<Shared>,
    state: Admit,
}

impl<S: Clone> Clone for Bulkhead<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            state: Admit::Idle,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Bulkhead<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

/// Holds one unit of the bulkhead; released on drop.
/// A bulkhead permit, held by a call and given back when dropped.
pub(crate) struct Permit(Arc<Shared>);

impl BulkheadLayer {
    /// A permit without waiting (what a call made without the service takes), counted as
    /// permitted or rejected.
    pub(crate) fn try_permit(&self) -> Option<Permit> {
        if self.shared.try_acquire() {
            self.shared.permitted.fetch_add(1, Relaxed);
            Some(Permit(self.shared.clone()))
        } else {
            self.shared.rejected.fetch_add(1, Relaxed);
            None
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release();
    }
}

fn wait_for_room(shared: Arc<Shared>, max_wait: Duration) -> WaitFuture {
    Box::pin(async move {
        shared.waiters.fetch_add(1, AcqRel);
        let got = tokio::time::timeout(max_wait, async {
            loop {
                let notified = shared.notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if shared.try_acquire() {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok();
        shared.waiters.fetch_sub(1, AcqRel);
        got
    })
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                Admit::Idle => {
                    if self.shared.try_acquire() {
                        self.state = Admit::Permitted(Permit(self.shared.clone()));
                    } else {
                        let wait = Duration::from_nanos(self.shared.max_wait_nanos.load(Relaxed));
                        self.state = if wait.is_zero() {
                            Admit::Rejected
                        } else {
                            Admit::Waiting(wait_for_room(self.shared.clone(), wait))
                        };
                    }
                }
                Admit::Waiting(f) => {
                    self.state = if ready!(f.as_mut().poll(cx)) {
                        Admit::Permitted(Permit(self.shared.clone()))
                    } else {
                        Admit::Rejected
                    };
                }
                Admit::Rejected => return Poll::Ready(Ok(())),
                Admit::Permitted(_) => {
                    return match self.inner.poll_ready(cx) {
                        Poll::Ready(Err(e)) => {
                            self.state = Admit::Idle;
                            Poll::Ready(Err(e.into()))
                        }
                        other => other.map_err(Into::into),
                    };
                }
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, Admit::Idle) {
            Admit::Permitted(permit) => {
                self.shared.permitted.fetch_add(1, Relaxed);
                ResponseFuture {
                    inner: Some(self.inner.call(req)),
                    _permit: Some(permit),
                }
            }
            Admit::Rejected => {
                self.shared.rejected.fetch_add(1, Relaxed);
                tracing::debug!("bulkhead full: call rejected");
                ResponseFuture {
                    inner: None,
                    _permit: None,
                }
            }
            Admit::Idle | Admit::Waiting(_) => {
                panic!("Bulkhead::call without a successful poll_ready")
            }
        }
    }
}

pin_project! {
    /// The inner response, or [`BulkheadFull`](error::BulkheadFull) for a rejected call.
    /// The bulkhead's permit is held until this completes or is dropped.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        _permit: Option<Permit>,
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
        match this.inner.as_pin_mut() {
            None => Poll::Ready(Err(Box::new(error::BulkheadFull::new()))),
            Some(f) => {
                let r = ready!(f.poll(cx)).map_err(Into::into);
                // Release as soon as the call is done, not when the future is dropped.
                this._permit.take();
                Poll::Ready(r)
            }
        }
    }
}
