//! Fallbacks: answer with something else when a call fails.
//!
//! [`FallbackLayer`] turns a failed call into a fallback call chosen by the failure's
//! [`Cause`]: the breaker was open, a bulkhead or pool rejected it, it timed out, or it
//! failed. Fallbacks are async and run under their own concurrency limit (Hystrix's
//! `fallback.isolation.semaphore.maxConcurrentRequests`, default 10), and every outcome is
//! recorded in the command's metrics as Hystrix records it: `FALLBACK_SUCCESS`,
//! `FALLBACK_FAILURE`, `FALLBACK_REJECTION` or `FALLBACK_MISSING`.
//!
//! Results classified as [`Outcome::Ignored`] (bad
//! requests) never fall back, as in Hystrix: the caller gets its error.
//!
//! # What the caller gets
//!
//! | the call | the caller gets |
//! |---|---|
//! | succeeds | its response |
//! | fails, fallback succeeds | the fallback's response |
//! | fails, no fallback for that cause | the original error |
//! | fails, fallback fails | [`FallbackError`] (`is_failed`), with both errors |
//! | fails, too many fallbacks running | [`FallbackError`] (`is_rejected`) |
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::breaker::Breaker;
//! use netflix_hystrix::fallback::{FallbackLayer, PerCause};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let breaker = Breaker::new("recommendations");
//! breaker.force_open();
//! let fallback = PerCause::new()
//!     .short_circuited(|_err| async { Ok(vec!["popular title".to_string()]) });
//! let mut svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(fallback).metrics(breaker.metrics().clone()))
//!     .layer(breaker.layer())
//!     .service_fn(|_user: u32| async { Ok::<Vec<String>, netflix_hystrix::BoxError>(vec![]) });
//!
//! assert_eq!(svc.ready().await?.call(7).await?, ["popular title"]);
//! # Ok(())
//! # }
//! ```

pub mod error;

use self::error::FallbackError;
use crate::breaker::error::BreakerOpen;
use crate::bulkhead::error::BulkheadFull;
use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::error::BoxError;
use crate::limit::error::LimitExceeded;
use crate::metrics::cell::CellRef;
use crate::metrics::{CommandMetrics, EventType, Lease};
use crate::pool::error::PoolRejected;
use crate::timeout::error::Elapsed;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

/// A boxed fallback future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Why a call needs a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The circuit breaker was open.
    ShortCircuited,
    /// A bulkhead, thread pool or concurrency limit rejected the call.
    Rejected,
    /// The call timed out.
    TimedOut,
    /// The call failed.
    Failed,
}

impl Cause {
    /// The cause of an error, by its type.
    pub fn of(error: &BoxError) -> Cause {
        if error.is::<BreakerOpen>() {
            Cause::ShortCircuited
        } else if error.is::<BulkheadFull>()
            || error.is::<PoolRejected>()
            || error.is::<LimitExceeded>()
        {
            Cause::Rejected
        } else if error.is::<Elapsed>() {
            Cause::TimedOut
        } else {
            Cause::Failed
        }
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Cause::ShortCircuited => "short-circuited",
            Cause::Rejected => "rejected",
            Cause::TimedOut => "timed out",
            Cause::Failed => "failed",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Chooses and runs fallbacks.
///
/// `save` keeps what a fallback needs from the request (the request itself is consumed by
/// the call); `fallback` returns the fallback for a cause, or `None` when there is none.
/// [`PerCause`] and [`fallback_with`] cover most uses.
pub trait FallbackPolicy<Req, Res> {
    /// What is kept from each request.
    type Saved: Send + 'static;

    /// Keeps what the fallback will need. Called for every request: keep it cheap.
    fn save(&self, req: &Req) -> Self::Saved;

    /// The fallback for a failure, or `None` if there is none for this cause.
    fn fallback(
        &self,
        saved: Self::Saved,
        cause: Cause,
        error: &BoxError,
    ) -> Option<BoxFuture<Res>>;
}

type Handler<Res> = Arc<dyn Fn(&BoxError) -> BoxFuture<Res> + Send + Sync>;

/// A fallback per [`Cause`], none of which look at the request.
pub struct PerCause<Res> {
    handlers: [Option<Handler<Res>>; 4],
}

impl<Res> Clone for PerCause<Res> {
    fn clone(&self) -> Self {
        Self {
            handlers: self.handlers.clone(),
        }
    }
}

impl<Res> fmt::Debug for PerCause<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<_> = [
            Cause::ShortCircuited,
            Cause::Rejected,
            Cause::TimedOut,
            Cause::Failed,
        ]
        .into_iter()
        .zip(&self.handlers)
        .filter(|(_, h)| h.is_some())
        .map(|(c, _)| c)
        .collect();
        f.debug_struct("PerCause").field("causes", &set).finish()
    }
}

impl<Res> Default for PerCause<Res> {
    fn default() -> Self {
        Self {
            handlers: [None, None, None, None],
        }
    }
}

fn handler<Res, F, Fut>(f: F) -> Handler<Res>
where
    F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
{
    Arc::new(move |e| Box::pin(f(e)))
}

impl<Res> PerCause<Res> {
    /// No fallbacks yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn set<F, Fut>(mut self, i: usize, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        self.handlers[i] = Some(handler(f));
        self
    }

    /// The fallback when the breaker is open.
    pub fn short_circuited<F, Fut>(self, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        self.set(0, f)
    }

    /// The fallback when a bulkhead, pool or limit rejects the call.
    pub fn rejected<F, Fut>(self, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        self.set(1, f)
    }

    /// The fallback when the call times out.
    pub fn timed_out<F, Fut>(self, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        self.set(2, f)
    }

    /// The fallback when the call fails.
    pub fn failed<F, Fut>(self, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        self.set(3, f)
    }

    /// The same fallback for every cause not set otherwise.
    pub fn otherwise<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&BoxError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, BoxError>> + Send + 'static,
    {
        let h = handler(f);
        for slot in self.handlers.iter_mut() {
            if slot.is_none() {
                *slot = Some(h.clone());
            }
        }
        self
    }
}

impl<Req, Res> FallbackPolicy<Req, Res> for PerCause<Res> {
    type Saved = ();

    fn save(&self, _req: &Req) {}

    fn fallback(&self, _saved: (), cause: Cause, error: &BoxError) -> Option<BoxFuture<Res>> {
        let i = match cause {
            Cause::ShortCircuited => 0,
            Cause::Rejected => 1,
            Cause::TimedOut => 2,
            Cause::Failed => 3,
        };
        self.handlers[i].as_ref().map(|h| h(error))
    }
}

/// A fallback that uses part of the request: `save` extracts it (a key, an id) before the
/// call, and `f` gets it back with the cause. Return `None` from `f` for "no fallback".
pub fn fallback_with<Req, Res, K, S, F>(save: S, f: F) -> FromRequest<S, F>
where
    S: Fn(&Req) -> K,
    F: Fn(K, Cause, &BoxError) -> Option<BoxFuture<Res>>,
{
    FromRequest { save, f }
}

/// See [`fallback_with`].
#[derive(Clone)]
pub struct FromRequest<S, F> {
    save: S,
    f: F,
}

impl<S, F> fmt::Debug for FromRequest<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromRequest").finish_non_exhaustive()
    }
}

impl<Req, Res, K, S, F> FallbackPolicy<Req, Res> for FromRequest<S, F>
where
    K: Send + 'static,
    S: Fn(&Req) -> K,
    F: Fn(K, Cause, &BoxError) -> Option<BoxFuture<Res>>,
{
    type Saved = K;

    fn save(&self, req: &Req) -> K {
        (self.save)(req)
    }

    fn fallback(&self, saved: K, cause: Cause, error: &BoxError) -> Option<BoxFuture<Res>> {
        (self.f)(saved, cause, error)
    }
}

/// The fallback's own concurrency limit, shared by every service of one layer.
struct Semaphore {
    in_flight: AtomicU32,
    max: AtomicU32,
}

/// Applies a [`FallbackPolicy`].
pub struct FallbackLayer<P, C = DefaultClassifier> {
    policy: P,
    classifier: C,
    semaphore: Arc<Semaphore>,
    metrics: Option<CommandMetrics>,
}

impl<P: Clone, C: Clone> Clone for FallbackLayer<P, C> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            semaphore: self.semaphore.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<P, C> fmt::Debug for FallbackLayer<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field(
                "max_concurrent",
                &self.semaphore.max.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl<P> FallbackLayer<P> {
    /// Falls back with `policy`; at most 10 fallbacks at once (Hystrix's default).
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            classifier: DefaultClassifier,
            semaphore: Arc::new(Semaphore {
                in_flight: AtomicU32::new(0),
                max: AtomicU32::new(10),
            }),
            metrics: None,
        }
    }
}

impl<P, C> FallbackLayer<P, C> {
    /// Records `FALLBACK_*` events in `metrics`.
    pub fn metrics(mut self, metrics: CommandMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sets the fallback concurrency limit
    /// (`fallback.isolation.semaphore.maxConcurrentRequests`).
    pub fn max_concurrent(self, max: u32) -> Self {
        self.semaphore.max.store(max, Ordering::Relaxed);
        self
    }

    /// Changes the fallback concurrency limit at run time.
    pub fn set_max_concurrent(&self, max: u32) {
        self.semaphore.max.store(max, Ordering::Relaxed);
    }

    /// Another policy sharing this layer's fallback limit, metrics and classifier.
    pub(crate) fn with_policy<P2>(&self, policy: P2) -> FallbackLayer<P2, C>
    where
        C: Clone,
    {
        FallbackLayer {
            policy,
            classifier: self.classifier.clone(),
            semaphore: self.semaphore.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Uses `classifier` to recognise bad requests, which never fall back.
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<P, C2> {
        FallbackLayer {
            policy: self.policy,
            classifier,
            semaphore: self.semaphore,
            metrics: self.metrics,
        }
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for FallbackLayer<P, C> {
    type Service = Fallback<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            semaphore: self.semaphore.clone(),
            lease: self.metrics.as_ref().map(CommandMetrics::lease),
        }
    }
}

/// A service with fallbacks. Built by [`FallbackLayer`].
pub struct Fallback<S, P, C = DefaultClassifier> {
    inner: S,
    policy: P,
    classifier: C,
    semaphore: Arc<Semaphore>,
    lease: Option<Lease>,
}

impl<S: Clone, P: Clone, C: Clone> Clone for Fallback<S, P, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            semaphore: self.semaphore.clone(),
            lease: self.lease.clone(),
        }
    }
}

impl<S: fmt::Debug, P, C> fmt::Debug for Fallback<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P, C, Req> Service<Req> for Fallback<S, P, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: FallbackPolicy<Req, S::Response> + Clone,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response, P, C, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An inner service that cannot take calls is a failure too, but there is no call
        // yet to fall back for; report it as is.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let saved = self.policy.save(&req);
        ResponseFuture {
            state: Stage::Primary {
                future: self.inner.call(req),
            },
            ctx: Some(Ctx {
                saved,
                policy: self.policy.clone(),
                classifier: self.classifier.clone(),
                semaphore: self.semaphore.clone(),
            }),
            cell: self.lease.as_ref().map(Lease::cell),
            permit: None,
            _req: std::marker::PhantomData,
        }
    }
}

struct Ctx<P, C, Saved> {
    saved: Saved,
    policy: P,
    classifier: C,
    semaphore: Arc<Semaphore>,
}

/// Holds one fallback slot.
struct FallbackPermit(Arc<Semaphore>);

impl Drop for FallbackPermit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F, Res> {
        Primary { #[pin] future: F },
        Fallback { future: BoxFuture<Res>, cause: Cause, primary: Option<BoxError> },
        Done,
    }
}

pin_project! {
    /// The response, or the fallback's.
    pub struct ResponseFuture<F, Res, P, C, Req>
    where
        P: FallbackPolicy<Req, Res>,
    {
        #[pin]
        state: Stage<F, Res>,
        ctx: Option<Ctx<P, C, P::Saved>>,
        cell: Option<CellRef>,
        permit: Option<FallbackPermit>,
        _req: std::marker::PhantomData<fn(Req)>,
    }
}

impl<F, Res, P, C, Req> fmt::Debug for ResponseFuture<F, Res, P, C, Req>
where
    P: FallbackPolicy<Req, Res>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, Res, E, P, C, Req> Future for ResponseFuture<F, Res, P, C, Req>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    P: FallbackPolicy<Req, Res>,
    C: Classify<Res>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StageProj::Primary { future } => {
                    let error = match ready!(future.poll(cx)) {
                        Ok(r) => return Poll::Ready(Ok(r)),
                        Err(e) => e.into(),
                    };
                    let ctx = this.ctx.take().expect("a primary call has its context");
                    let cell = *this.cell;
                    let record = |e: EventType| {
                        if let Some(c) = cell {
                            c.record(e);
                        }
                    };
                    if ctx.classifier.classify(Err(&error)) == Outcome::Ignored {
                        this.state.set(Stage::Done);
                        return Poll::Ready(Err(error));
                    }
                    let cause = Cause::of(&error);
                    let sem = &ctx.semaphore;
                    let n = sem.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
                    if n > sem.max.load(Ordering::Relaxed) {
                        sem.in_flight.fetch_sub(1, Ordering::AcqRel);
                        record(EventType::FallbackRejection);
                        this.state.set(Stage::Done);
                        return Poll::Ready(Err(FallbackError::rejected(cause, error).into()));
                    }
                    *this.permit = Some(FallbackPermit(sem.clone()));
                    match ctx.policy.fallback(ctx.saved, cause, &error) {
                        None => {
                            this.permit.take();
                            record(EventType::FallbackMissing);
                            this.state.set(Stage::Done);
                            return Poll::Ready(Err(error));
                        }
                        Some(future) => {
                            this.state.set(Stage::Fallback {
                                future,
                                cause,
                                primary: Some(error),
                            });
                        }
                    }
                }
                StageProj::Fallback {
                    future,
                    cause,
                    primary,
                } => {
                    let result = ready!(future.as_mut().poll(cx));
                    this.permit.take();
                    let cell = *this.cell;
                    let primary = primary.take().expect("a fallback keeps the primary error");
                    let cause = *cause;
                    this.state.set(Stage::Done);
                    return Poll::Ready(match result {
                        Ok(r) => {
                            if let Some(c) = cell {
                                c.record(EventType::FallbackSuccess);
                            }
                            Ok(r)
                        }
                        Err(fallback) => {
                            if let Some(c) = cell {
                                c.record(EventType::FallbackFailure);
                            }
                            Err(FallbackError::failed(cause, primary, fallback).into())
                        }
                    });
                }
                StageProj::Done => {
                    panic!("fallback::ResponseFuture polled after completion")
                }
            }
        }
    }
}
