//! Request collapsing: merge concurrent single requests into one batch call.
//!
//! A [`Collapser`] is Hystrix's `HystrixCollapser` as a tower service. Each request joins
//! the current batch; a batch is sent to the batch service when its window (default
//! 10 ms) has passed since its first request, or at once when it reaches
//! `max_requests_in_batch`. The batch service takes a `Vec` of requests and answers a `Vec`
//! of responses in the same order; each caller gets its own.
//!
//! With [`Scope::Request`] (Hystrix's default) batches are formed per
//! [`RequestContext`], merging the calls one incoming request
//! makes; with [`Scope::Global`] they are formed across every caller.
//!
//! # Errors
//!
//! If the batch call fails, every request of the batch gets
//! [`BatchFailed`](error::BatchFailed), whose `source()` is the batch error. If it answers
//! with the wrong number of responses, every request gets
//! [`BatchMismatch`](error::BatchMismatch) (Hystrix's "No response set by ...").
//!
//! # Differences from Hystrix
//!
//! The window opens with a batch's first request, so a request waits at most the window;
//! Hystrix ticks on a fixed timer, so a request waits anywhere between zero and the window.
//! Identical requests in one batch are not merged.
//!
//! # Example
//!
//! ```
//! use tower::ServiceExt;
//! use netflix_hystrix::collapser::{Collapser, CollapserConfig, Scope};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! // One call fetches many users.
//! let batch = tower::service_fn(|ids: Vec<u32>| async move {
//!     Ok::<_, netflix_hystrix::BoxError>(ids.iter().map(|id| format!("user {id}")).collect::<Vec<_>>())
//! });
//! let mut config = CollapserConfig::default();
//! config.scope = Scope::Global;
//! let users = Collapser::new("GetUser", batch, config)?;
//! let (a, b) = tokio::join!(users.clone().oneshot(1), users.clone().oneshot(2));
//! assert_eq!((a?, b?), ("user 1".to_string(), "user 2".to_string()));
//! assert_eq!(users.snapshot().rolling_batches(), 0); // counted once the bucket completes
//! # Ok(())
//! # }
//! ```

use crate::cache::{RequestContext, next_id};
use crate::error::{BoxError, Result, ensure, ensure_window};
use crate::keys::CollapserKey;
use crate::metrics::histogram::HistogramCounts;
use crate::metrics::ring::Ring;
use crate::metrics::{CommandMetrics, EventType};
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower_service::Service;

/// Where batches are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Per request context: calls made while serving one request are merged.
    Request,
    /// Across every caller.
    Global,
}

/// Settings of a [`Collapser`]. Defaults are Hystrix's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollapserConfig {
    /// `maxRequestsInBatch`. Default unlimited.
    pub max_requests_in_batch: usize,
    /// `timerDelayInMilliseconds`: the batch window. Default 10 ms.
    pub timer_delay: Duration,
    /// The scope. Default [`Scope::Request`].
    pub scope: Scope,
    /// `metrics.rollingStats.timeInMilliseconds`. Default 10 s.
    pub rolling_stats_window: Duration,
    /// `metrics.rollingStats.numBuckets`. Default 10.
    pub rolling_stats_buckets: u32,
    /// `metrics.rollingPercentile.timeInMilliseconds`. Default 60 s.
    pub rolling_percentile_window: Duration,
    /// `metrics.rollingPercentile.numBuckets`. Default 6.
    pub rolling_percentile_buckets: u32,
}

impl Default for CollapserConfig {
    fn default() -> Self {
        Self {
            max_requests_in_batch: usize::MAX,
            timer_delay: Duration::from_millis(10),
            scope: Scope::Request,
            rolling_stats_window: Duration::from_secs(10),
            rolling_stats_buckets: 10,
            rolling_percentile_window: Duration::from_secs(60),
            rolling_percentile_buckets: 6,
        }
    }
}

impl CollapserConfig {
    fn validate(&self) -> Result<()> {
        ensure(
            self.max_requests_in_batch >= 1,
            "maxRequestsInBatch",
            || "must be at least 1".into(),
        )?;
        ensure_window(
            self.rolling_stats_window,
            self.rolling_stats_buckets,
            "metrics.rollingStats.timeInMilliseconds",
            "metrics.rollingStats.numBuckets",
        )?;
        ensure_window(
            self.rolling_percentile_window,
            self.rolling_percentile_buckets,
            "metrics.rollingPercentile.timeInMilliseconds",
            "metrics.rollingPercentile.numBuckets",
        )
    }
}

pub mod error {
    //! Error types of the collapser.

    use super::BoxError;
    use std::fmt;
    use std::sync::Arc;

    /// The batch call failed; `source()` is its error, shared by the whole batch.
    #[derive(Debug, Clone)]
    pub struct BatchFailed {
        pub(super) source: Arc<BoxError>,
    }

    impl fmt::Display for BatchFailed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("collapsed batch call failed")
        }
    }

    impl std::error::Error for BatchFailed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&**self.source as &(dyn std::error::Error + 'static))
        }
    }

    /// The batch call answered with the wrong number of responses.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BatchMismatch {
        /// Requests in the batch.
        pub expected: usize,
        /// Responses received.
        pub received: usize,
    }

    impl fmt::Display for BatchMismatch {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "batch of {} requests answered with {} responses",
                self.expected, self.received
            )
        }
    }

    impl std::error::Error for BatchMismatch {}

    /// A request-scoped collapser was called outside any request context.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct NoRequestContext {
        pub(super) _priv: (),
    }

    impl fmt::Display for NoRequestContext {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("request-scoped collapser called outside a request context")
        }
    }

    impl std::error::Error for NoRequestContext {}

    /// The collapser went away before the batch ran.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct BatchAbandoned {
        pub(super) _priv: (),
    }

    impl fmt::Display for BatchAbandoned {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("collapsed request was dropped before its batch ran")
        }
    }

    impl std::error::Error for BatchAbandoned {}
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type Reply<Res> = oneshot::Sender<std::result::Result<Res, BoxError>>;

struct Batch<Req, Res> {
    id: u64,
    items: Vec<(Req, Reply<Res>)>,
}

/// Where one scope's forming batch lives.
struct Pending<Req, Res> {
    batch: Mutex<Option<Batch<Req, Res>>>,
}

#[derive(Default)]
struct StatsBucket {
    batches: u64,
    requests: u64,
}

struct Stats {
    counts: Ring<StatsBucket>,
    sizes: Ring<HistogramCounts>,
}

struct Shared<S, Req, Res> {
    key: CollapserKey,
    id: u64,
    batch_service: Mutex<S>,
    config: CollapserConfig,
    global: Pending<Req, Res>,
    stats: Mutex<Stats>,
    command_metrics: std::sync::OnceLock<CommandMetrics>,
}

/// A service that merges concurrent requests into batch calls. Cheap to clone: clones share
/// the batches.
pub struct Collapser<S, Req, Res> {
    shared: Arc<Shared<S, Req, Res>>,
    _types: PhantomData<fn(Req) -> Res>,
}

impl<S, Req, Res> Clone for Collapser<S, Req, Res> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _types: PhantomData,
        }
    }
}

impl<S, Req, Res> fmt::Debug for Collapser<S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collapser")
            .field("key", &self.shared.key)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<S, Req, Res> Collapser<S, Req, Res>
where
    S: Service<Vec<Req>, Response = Vec<Res>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Send + 'static,
    Res: Send + 'static,
{
    /// Collapses requests into calls of `batch_service`.
    ///
    /// # Errors
    ///
    /// When the configuration is invalid.
    pub fn new(
        key: impl Into<CollapserKey>,
        batch_service: S,
        config: CollapserConfig,
    ) -> Result<Self> {
        config.validate()?;
        let now = Instant::now();
        let stats = Stats {
            counts: Ring::new(
                now,
                config.rolling_stats_window / config.rolling_stats_buckets,
                config.rolling_stats_buckets as usize,
            ),
            sizes: Ring::new(
                now,
                config.rolling_percentile_window / config.rolling_percentile_buckets,
                config.rolling_percentile_buckets as usize,
            ),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                key: key.into(),
                id: next_id(),
                batch_service: Mutex::new(batch_service),
                config,
                global: Pending {
                    batch: Mutex::new(None),
                },
                stats: Mutex::new(stats),
                command_metrics: std::sync::OnceLock::new(),
            }),
            _types: PhantomData,
        })
    }

    /// Records `COLLAPSED` × batch size on the batch command's metrics, as Hystrix does.
    /// Set once: clones share it, and a second call keeps the first metrics.
    pub fn command_metrics(self, metrics: CommandMetrics) -> Self {
        if self.shared.command_metrics.set(metrics).is_err() {
            tracing::warn!(collapser = %self.shared.key, "command metrics already set; keeping the first");
        }
        self
    }
}

impl<S, Req, Res> Collapser<S, Req, Res> {
    /// The collapser's key.
    pub fn key(&self) -> &CollapserKey {
        &self.shared.key
    }

    /// The settings.
    pub fn config(&self) -> &CollapserConfig {
        &self.shared.config
    }

    /// What the `HystrixCollapser` dashboard object shows.
    pub fn snapshot(&self) -> CollapserSnapshot {
        let mut st = lock(&self.shared.stats);
        let now = Instant::now();
        st.counts.advance(now);
        st.sizes.advance(now);
        let mut batches = 0;
        let mut requests = 0;
        for b in st.counts.completed() {
            batches += b.batches;
            requests += b.requests;
        }
        let mut sizes = HistogramCounts::default();
        for h in st.sizes.completed() {
            sizes.merge(h);
        }
        CollapserSnapshot {
            batches,
            requests,
            mean: sizes.mean(),
            percentiles: CollapserSnapshot::PERCENTILES.map(|p| sizes.value_at_percentile(p)),
        }
    }
}

/// The `HystrixCollapser` numbers of one collapser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollapserSnapshot {
    batches: u64,
    requests: u64,
    mean: u64,
    percentiles: [u64; 8],
}

impl CollapserSnapshot {
    /// The batch-size percentiles the dashboard shows.
    pub const PERCENTILES: [f64; 8] = [25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0];

    /// `rollingCountBatches`.
    pub fn rolling_batches(&self) -> u64 {
        self.batches
    }

    /// `rollingCountRequestsBatched`.
    pub fn rolling_requests_batched(&self) -> u64 {
        self.requests
    }

    /// `batchSize_mean`.
    pub fn batch_size_mean(&self) -> u64 {
        self.mean
    }

    /// A batch-size percentile, for one of [`PERCENTILES`](Self::PERCENTILES).
    pub fn batch_size_percentile(&self, p: f64) -> Option<u64> {
        Self::PERCENTILES
            .iter()
            .position(|q| *q == p)
            .map(|i| self.percentiles[i])
    }
}

impl<S, Req, Res> Service<Req> for Collapser<S, Req, Res>
where
    S: Service<Vec<Req>, Response = Vec<Res>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Send + 'static,
    Res: Send + 'static,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<Res>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        // Readiness of the batch service is awaited when a batch runs.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let pending = match self.shared.config.scope {
            Scope::Global => None,
            Scope::Request => match RequestContext::current() {
                Some(ctx) => Some(ctx.slot(self.shared.id, || Pending::<Req, Res> {
                    batch: Mutex::new(None),
                })),
                None => {
                    return ResponseFuture::failed(Box::new(error::NoRequestContext { _priv: () }));
                }
            },
        };
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let slot = pending.as_deref().unwrap_or(&self.shared.global);
        let mut guard = lock(&slot.batch);
        let batch = guard.get_or_insert_with(|| Batch {
            id: next_id(),
            items: Vec::new(),
        });
        batch.items.push((req, tx));
        let first = batch.items.len() == 1;
        let full = batch.items.len() >= self.shared.config.max_requests_in_batch;
        let batch_id = batch.id;
        let ready_batch = if full { guard.take() } else { None };
        drop(guard);
        if let Some(b) = ready_batch {
            spawn_batch(shared, b);
        } else if first {
            let delay = shared.config.timer_delay;
            let task = async move {
                tokio::time::sleep(delay).await;
                let slot = pending.as_deref().unwrap_or(&shared.global);
                let batch = {
                    let mut guard = lock(&slot.batch);
                    match guard.as_ref() {
                        Some(b) if b.id == batch_id => guard.take(),
                        _ => None, // already sent because it filled up
                    }
                };
                if let Some(b) = batch {
                    run_batch(&shared, b).await;
                }
            };
            spawn(task);
        }
        ResponseFuture { rx: Ok(rx) }
    }
}

fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(task);
        }
        // Without a runtime the batch cannot run; dropping it fails its requests with
        // `BatchAbandoned` rather than leaving them waiting forever.
        Err(_) => tracing::error!("collapser used outside a tokio runtime: batch dropped"),
    }
}

fn spawn_batch<S, Req, Res>(shared: Arc<Shared<S, Req, Res>>, batch: Batch<Req, Res>)
where
    S: Service<Vec<Req>, Response = Vec<Res>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Send + 'static,
    Res: Send + 'static,
{
    spawn(async move { run_batch(&shared, batch).await });
}

async fn run_batch<S, Req, Res>(shared: &Shared<S, Req, Res>, batch: Batch<Req, Res>)
where
    S: Service<Vec<Req>, Response = Vec<Res>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let n = batch.items.len();
    let (reqs, replies): (Vec<Req>, Vec<Reply<Res>>) = batch.items.into_iter().unzip();
    {
        let mut st = lock(&shared.stats);
        let now = Instant::now();
        st.counts.current().batches += 1;
        st.counts.current().requests += n as u64;
        st.counts.advance(now);
        let sizes = st.sizes.current();
        let mut one = HistogramCounts::default();
        one.record_value(n as u64);
        sizes.merge(&one);
        st.sizes.advance(now);
    }
    if let Some(m) = shared.command_metrics.get() {
        m.record_n(EventType::Collapsed, n as u64);
    }
    tracing::trace!(collapser = %shared.key, size = n, "running batch");
    let mut svc = lock(&shared.batch_service).clone();
    let result = async {
        poll_fn(|cx| svc.poll_ready(cx)).await.map_err(Into::into)?;
        svc.call(reqs).await.map_err(Into::into)
    }
    .await;
    match result {
        Ok(responses) if responses.len() == n => {
            for (reply, res) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(res));
            }
        }
        Ok(responses) => {
            let e = error::BatchMismatch {
                expected: n,
                received: responses.len(),
            };
            for reply in replies {
                let _ = reply.send(Err(Box::new(e)));
            }
        }
        Err(e) => {
            let source = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(Box::new(error::BatchFailed {
                    source: source.clone(),
                })));
            }
        }
    }
}

/// One collapsed request's response.
pub struct ResponseFuture<Res> {
    rx: std::result::Result<
        oneshot::Receiver<std::result::Result<Res, BoxError>>,
        Option<BoxError>,
    >,
}

impl<Res> ResponseFuture<Res> {
    fn failed(e: BoxError) -> Self {
        Self { rx: Err(Some(e)) }
    }
}

impl<Res> fmt::Debug for ResponseFuture<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<Res> Future for ResponseFuture<Res> {
    type Output = std::result::Result<Res, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            Err(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| Box::new(error::BatchAbandoned { _priv: () })))),
            Ok(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(Box::new(error::BatchAbandoned { _priv: () })))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    type BatchFuture =
        Pin<Box<dyn Future<Output = std::result::Result<Vec<u32>, BoxError>> + Send>>;

    fn doubler(
        calls: Arc<Mutex<Vec<usize>>>,
    ) -> impl Service<Vec<u32>, Response = Vec<u32>, Error = BoxError, Future = BatchFuture>
    + Clone
    + Send
    + 'static {
        tower::service_fn(move |xs: Vec<u32>| {
            calls.lock().unwrap().push(xs.len());
            Box::pin(async move { Ok::<_, BoxError>(xs.iter().map(|x| x * 2).collect()) })
                as BatchFuture
        })
    }

    fn global() -> CollapserConfig {
        CollapserConfig {
            scope: Scope::Global,
            ..CollapserConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_within_the_window_and_splits_at_the_max() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut cfg = global();
        cfg.max_requests_in_batch = 3;
        let metrics = CommandMetrics::new("batch");
        let c = Collapser::new("Double", doubler(calls.clone()), cfg)
            .unwrap()
            .command_metrics(metrics.clone());
        let handles: Vec<_> = (1..=5)
            .map(|i| tokio::spawn(c.clone().oneshot(i)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap().unwrap());
        }
        assert_eq!(out, [2, 4, 6, 8, 10]);
        assert_eq!(*calls.lock().unwrap(), [3, 2]);
        tokio::time::advance(Duration::from_secs(1)).await;
        let s = c.snapshot();
        assert_eq!((s.rolling_batches(), s.rolling_requests_batched()), (2, 5));
        // Batch sizes roll in 10 s buckets.
        tokio::time::advance(Duration::from_secs(9)).await;
        let s = c.snapshot();
        assert_eq!(s.batch_size_percentile(100.0), Some(3));
        assert_eq!(s.batch_size_percentile(25.0), Some(2));
        assert_eq!(s.batch_size_mean(), 2);
        assert_eq!(metrics.snapshot().cumulative().get(EventType::Collapsed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_after_the_window_form_a_new_batch() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Collapser::new("Double", doubler(calls.clone()), global()).unwrap();
        let a = tokio::spawn(c.clone().oneshot(1));
        tokio::time::sleep(Duration::from_millis(11)).await;
        let b = tokio::spawn(c.clone().oneshot(2));
        assert_eq!(a.await.unwrap().unwrap(), 2);
        assert_eq!(b.await.unwrap().unwrap(), 4);
        assert_eq!(*calls.lock().unwrap(), [1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn request_scope_batches_per_context() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c =
            Collapser::new("Double", doubler(calls.clone()), CollapserConfig::default()).unwrap();
        let err = c.clone().oneshot(1).await.unwrap_err();
        assert!(err.is::<error::NoRequestContext>());
        let run = |xs: Vec<u32>| {
            let c = c.clone();
            tokio::spawn(RequestContext::new().scope(async move {
                let futs: Vec<_> = xs
                    .into_iter()
                    .map(|x| {
                        tokio::spawn(
                            RequestContext::current()
                                .unwrap()
                                .scope(c.clone().oneshot(x)),
                        )
                    })
                    .collect();
                let mut out = Vec::new();
                for f in futs {
                    out.push(f.await.unwrap().unwrap());
                }
                out
            }))
        };
        let (a, b) = (run(vec![1, 2]), run(vec![3, 4, 5]));
        assert_eq!(a.await.unwrap(), [2, 4]);
        assert_eq!(b.await.unwrap(), [6, 8, 10]);
        let mut sizes = calls.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, [2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn batch_errors_reach_every_request() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = n.clone();
        let failing = tower::service_fn(move |xs: Vec<u32>| {
            let k = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if k == 0 {
                    Err::<Vec<u32>, BoxError>("backend down".into())
                } else {
                    Ok(xs[..1].to_vec())
                }
            }
        });
        let c = Collapser::new("Fail", failing, global()).unwrap();
        let (a, b) = tokio::join!(c.clone().oneshot(1), c.clone().oneshot(2));
        for e in [a.unwrap_err(), b.unwrap_err()] {
            let f = e.downcast_ref::<error::BatchFailed>().unwrap();
            assert_eq!(
                std::error::Error::source(f).unwrap().to_string(),
                "backend down"
            );
        }
        let (a, b) = tokio::join!(c.clone().oneshot(1), c.clone().oneshot(2));
        for e in [a.unwrap_err(), b.unwrap_err()] {
            assert_eq!(
                *e.downcast_ref::<error::BatchMismatch>().unwrap(),
                error::BatchMismatch {
                    expected: 2,
                    received: 1
                }
            );
        }
    }
}
