//! Request-scoped state: the request cache, and the scope of per-request collapsers.
//!
//! A [`RequestContext`] is Hystrix's `HystrixRequestContext`: the state of one incoming
//! request, shared by every call made while serving it. Enter it with
//! [`RequestContext::scope`]; it is a tokio task-local, so it follows the request's task
//! (spawned tasks start without one, as threads did in Hystrix until it copied the
//! context).
//!
//! [`RequestCacheLayer`] de-duplicates calls inside one context: the first call for a key
//! runs, and every other call for the same key in the same context gets a clone of its
//! response (recorded as `RESPONSE_FROM_CACHE`). Calls made while the first is still
//! running wait for it rather than running again.
//!
//! # Differences from Hystrix
//!
//! * Failures are not cached. Hystrix replays a cached exception for the rest of the
//!   request; here a call whose leader failed runs on its own, since a transient error
//!   cached for a whole request is rarely wanted (and errors cannot be cloned).
//! * Outside a context the cache is bypassed and the call runs normally; Hystrix fails the
//!   command with an `IllegalStateException`.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::cache::{RequestCacheLayer, RequestContext};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let mut svc = ServiceBuilder::new()
//!     .layer(RequestCacheLayer::new(|id: &u32| Some(*id)))
//!     .service_fn(move |id: u32| {
//!         counter.fetch_add(1, Ordering::Relaxed);
//!         async move { Ok::<_, netflix_hystrix::BoxError>(format!("user {id}")) }
//!     });
//!
//! RequestContext::new()
//!     .scope(async {
//!         assert_eq!(svc.ready().await?.call(7).await?, "user 7");
//!         assert_eq!(svc.ready().await?.call(7).await?, "user 7");
//!         Ok::<_, netflix_hystrix::BoxError>(())
//!     })
//!     .await?;
//! assert_eq!(calls.load(Ordering::Relaxed), 1);
//! # Ok(())
//! # }
//! ```

use crate::error::BoxError;
use crate::metrics::{CommandMetrics, EventType, Lease};
use pin_project_lite::pin_project;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

tokio::task_local! {
    static CONTEXT: RequestContext;
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for one cache or collapser, its key in the context's maps.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state of one request. Cheap to clone: clones share it.
#[derive(Clone, Default)]
pub struct RequestContext {
    slots: Arc<Mutex<HashMap<u64, Arc<dyn Any + Send + Sync>>>>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("slots", &lock(&self.slots).len())
            .finish()
    }
}

impl RequestContext {
    /// A new, empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with this context current.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CONTEXT.scope(self, f).await
    }

    /// The context of the running task, if it is inside [`scope`](Self::scope).
    pub fn current() -> Option<RequestContext> {
        CONTEXT.try_with(Clone::clone).ok()
    }

    /// Forgets everything cached in this context.
    pub fn clear(&self) {
        lock(&self.slots).clear();
    }

    /// The slot of component `id`, created by `init` on first use.
    pub(crate) fn slot<T: Any + Send + Sync>(&self, id: u64, init: impl FnOnce() -> T) -> Arc<T> {
        let mut slots = lock(&self.slots);
        if let Some(t) = slots.get(&id).and_then(|s| s.clone().downcast::<T>().ok()) {
            return t;
        }
        // Ids are unique per component and a component always stores one type, so a slot
        // of another type cannot exist; replacing it would be the safe answer if it did.
        let fresh = Arc::new(init());
        slots.insert(id, fresh.clone());
        fresh
    }
}

type Shared<Res> = watch::Sender<Option<Option<Res>>>;

/// One cache's entries in one context: key → the first call's result (`Some(None)`
/// when it failed or was cancelled).
struct Entries<K, Res> {
    map: Mutex<HashMap<K, Arc<Shared<Res>>>>,
}

/// Caches responses per [`RequestContext`] by a key taken from the request.
pub struct RequestCacheLayer<F> {
    key: F,
    id: u64,
    metrics: Option<CommandMetrics>,
}

impl<F: Clone> Clone for RequestCacheLayer<F> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            id: self.id,
            metrics: self.metrics.clone(),
        }
    }
}

impl<F> fmt::Debug for RequestCacheLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCacheLayer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F> RequestCacheLayer<F> {
    /// Caches by `key(request)`; a request whose key is `None` is never cached.
    pub fn new(key: F) -> Self {
        Self {
            key,
            id: next_id(),
            metrics: None,
        }
    }

    /// Records `RESPONSE_FROM_CACHE` events in `metrics`.
    pub fn metrics(mut self, metrics: CommandMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S, F: Clone> Layer<S> for RequestCacheLayer<F> {
    type Service = RequestCache<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestCache {
            inner,
            key: self.key.clone(),
            id: self.id,
            lease: self.metrics.as_ref().map(CommandMetrics::lease),
        }
    }
}

/// A service whose responses are cached per request context. Built by [`RequestCacheLayer`].
pub struct RequestCache<S, F> {
    inner: S,
    key: F,
    id: u64,
    lease: Option<Lease>,
}

impl<S: Clone, F: Clone> Clone for RequestCache<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            id: self.id,
            lease: self.lease.clone(),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for RequestCache<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, F, K, Req> Service<Req> for RequestCache<S, F>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    F: Fn(&Req) -> Option<K>,
    K: Hash + Eq + Send + Sync + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some((ctx, key)) = RequestContext::current().zip((self.key)(&req)) else {
            return ResponseFuture::plain(self.inner.call(req));
        };
        let entries = ctx.slot(self.id, || Entries::<K, S::Response> {
            map: Mutex::new(HashMap::new()),
        });
        let existing = {
            let mut map = lock(&entries.map);
            match map.get(&key) {
                Some(shared) => Some(shared.clone()),
                None => {
                    let (tx, _) = watch::channel(None);
                    let tx = Arc::new(tx);
                    map.insert(key, tx.clone());
                    drop(map);
                    return ResponseFuture::leader(self.inner.call(req), tx);
                }
            }
        };
        let shared = existing.expect("the cache entry exists");
        let mut rx = shared.subscribe();
        // A clone, polled ready only if the follower has to run on its own; `self.inner`
        // stays ready for the next call.
        let mut inner = self.inner.clone();
        let cell = self.lease.as_ref().map(Lease::cell);
        ResponseFuture::follower(Box::pin(async move {
            let done = rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|v| v.clone());
            match done.flatten() {
                Some(res) => {
                    if let Some(c) = cell {
                        c.record(EventType::ResponseFromCache);
                    }
                    Ok(res)
                }
                // The leader failed or was cancelled: run this call on its own.
                None => {
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                    inner.call(req).await.map_err(Into::into)
                }
            }
        }))
    }
}

pin_project! {
    /// A cached, leading or plain response.
    pub struct ResponseFuture<F, Res> {
        #[pin]
        inner: Option<F>,
        leader: Option<Arc<Shared<Res>>>,
        follower: Option<BoxFuture<Res>>,
    }

    impl<F, Res> PinnedDrop for ResponseFuture<F, Res> {
        fn drop(this: Pin<&mut Self>) {
            // A leader that never finished lets its followers run on their own.
            if let Some(tx) = this.project().leader.take() {
                tx.send_replace(Some(None));
            }
        }
    }
}

impl<F, Res> fmt::Debug for ResponseFuture<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("leader", &self.leader.is_some())
            .field("follower", &self.follower.is_some())
            .finish()
    }
}

impl<F, Res> ResponseFuture<F, Res> {
    fn plain(f: F) -> Self {
        Self {
            inner: Some(f),
            leader: None,
            follower: None,
        }
    }

    fn leader(f: F, tx: Arc<Shared<Res>>) -> Self {
        Self {
            inner: Some(f),
            leader: Some(tx),
            follower: None,
        }
    }

    fn follower(f: BoxFuture<Res>) -> Self {
        Self {
            inner: None,
            leader: None,
            follower: Some(f),
        }
    }
}

impl<F, Res, E> Future for ResponseFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    Res: Clone,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(f) = this.follower.as_mut() {
            return f.as_mut().poll(cx);
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Pending;
        };
        let r = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(tx) = this.leader.take() {
            tx.send_replace(Some(r.as_ref().ok().cloned()));
        }
        Poll::Ready(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tower::ServiceExt;

    fn counting(
        fail_first: bool,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<u32, Response = u32, Error = BoxError, Future = BoxFuture<u32>>
        + Clone
        + Send
        + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = tower::service_fn(move |x: u32| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if fail_first && n == 0 {
                    Err::<u32, BoxError>("first call fails".into())
                } else {
                    Ok(x * 10)
                }
            }) as BoxFuture<u32>
        });
        (calls, svc)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_share_the_leader() {
        let metrics = CommandMetrics::new("cached");
        let (calls, svc) = counting(false);
        let svc = RequestCacheLayer::new(|x: &u32| Some(*x))
            .metrics(metrics.clone())
            .layer(svc);
        RequestContext::new()
            .scope(async {
                let a = svc.clone().oneshot(1);
                let b = svc.clone().oneshot(1);
                let c = svc.clone().oneshot(2);
                let (a, b, c) = tokio::join!(a, b, c);
                assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (10, 10, 20));
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            metrics
                .snapshot()
                .cumulative()
                .get(EventType::ResponseFromCache),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn contexts_do_not_share_and_failures_are_not_cached() {
        let (calls, svc) = counting(true);
        let svc = RequestCacheLayer::new(|x: &u32| Some(*x)).layer(svc);
        RequestContext::new()
            .scope(async {
                let (a, b) = tokio::join!(svc.clone().oneshot(3), svc.clone().oneshot(3));
                assert!(a.is_err());
                assert_eq!(b.unwrap(), 30, "the follower ran on its own");
            })
            .await;
        RequestContext::new()
            .scope(async {
                assert_eq!(svc.clone().oneshot(3).await.unwrap(), 30);
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Outside a context nothing is cached.
        svc.clone().oneshot(3).await.unwrap();
        svc.clone().oneshot(3).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert!(RequestContext::current().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_releases_its_followers() {
        let (calls, svc) = counting(false);
        let svc = RequestCacheLayer::new(|x: &u32| Some(*x)).layer(svc);
        RequestContext::new()
            .scope(async {
                let mut leader_svc = svc.clone();
                let leader = leader_svc.ready().await.unwrap().call(4);
                let follower = tokio::spawn(
                    RequestContext::current()
                        .unwrap()
                        .scope(svc.clone().oneshot(4)),
                );
                tokio::task::yield_now().await;
                drop(leader);
                assert_eq!(follower.await.unwrap().unwrap(), 40);
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
