//! Thread-pool isolation, as a bounded executor of tokio tasks.
//!
//! Hystrix runs each command on a thread pool per dependency so that one slow dependency
//! can only exhaust its own threads. In async Rust the scarce resource is not threads but
//! concurrency, so a [`ThreadPool`] is a set of worker *tasks* with Hystrix's sizing rules
//! and Java's `ThreadPoolExecutor` order of growth:
//!
//! 1. while fewer than `core_size` workers exist, a call starts a new worker;
//! 2. otherwise it is queued: with `max_queue_size = None` (Hystrix's `-1`, a
//!    `SynchronousQueue`) only if a worker is idle; with a queue, only while the queue is
//!    shorter than `queue_size_rejection_threshold` (Hystrix's dynamic cap) and its
//!    capacity;
//! 3. otherwise, if `allow_maximum_size_to_diverge_from_core_size` lets the pool grow to
//!    `maximum_size`, a new worker starts; workers above the core size stop after
//!    `keep_alive` idle;
//! 4. otherwise the call is rejected with [`PoolRejected`](error::PoolRejected).
//!
//! The call's future runs on a worker; the caller awaits its result. Dropping the caller's
//! future (a timeout, for example) cancels the work, even if it is still queued.
//!
//! [`ThreadPool::snapshot`] reports what the `HystrixThreadPool` dashboard panel shows.
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::pool::{ThreadPool, ThreadPoolConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let pool = ThreadPool::new("UserService", ThreadPoolConfig::default())?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(pool.layer())
//!     .service_fn(|x: u32| async move { Ok::<_, netflix_hystrix::BoxError>(x + 1) });
//! assert_eq!(svc.ready().await?.call(1).await?, 2);
//! assert_eq!(pool.snapshot().completed_task_count(), 1);
//! # Ok(())
//! # }
//! ```

pub mod error;

use crate::error::{BoxError, Result, ensure, ensure_window};
use crate::keys::PoolKey;
use crate::metrics::ring::Ring;
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// Settings of a [`ThreadPool`]. Defaults are Hystrix's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadPoolConfig {
    /// `coreSize`: workers kept alive. Default 10.
    pub core_size: u32,
    /// `maximumSize`: the most workers, when diverging from the core size is allowed.
    /// Default 10.
    pub maximum_size: u32,
    /// `allowMaximumSizeToDivergeFromCoreSize`. Default `false`.
    pub allow_maximum_size_to_diverge_from_core_size: bool,
    /// `keepAliveTimeMinutes`: how long a worker above the core size may idle. Default 1 min.
    pub keep_alive: Duration,
    /// `maxQueueSize`: the queue's capacity; `None` (Hystrix's `-1`) hands calls only to idle
    /// workers. Fixed when the pool is created. Default `None`.
    pub max_queue_size: Option<u32>,
    /// `queueSizeRejectionThreshold`: reject when the queue holds this many, even below its
    /// capacity; changeable at run time. Applies only with a queue. Default 5.
    pub queue_size_rejection_threshold: u32,
    /// `metrics.rollingStats.timeInMilliseconds`. Default 10 s.
    pub rolling_stats_window: Duration,
    /// `metrics.rollingStats.numBuckets`. Default 10.
    pub rolling_stats_buckets: u32,
}

impl Default for ThreadPoolConfig {
    fn default() -> Self {
        Self {
            core_size: 10,
            maximum_size: 10,
            allow_maximum_size_to_diverge_from_core_size: false,
            keep_alive: Duration::from_secs(60),
            max_queue_size: None,
            queue_size_rejection_threshold: 5,
            rolling_stats_window: Duration::from_secs(10),
            rolling_stats_buckets: 10,
        }
    }
}

impl ThreadPoolConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// When the core size is zero, or the rolling window does not divide into its buckets.
    pub fn validate(&self) -> Result<()> {
        ensure(self.core_size >= 1, "coreSize", || {
            "must be at least 1".into()
        })?;
        ensure_window(
            self.rolling_stats_window,
            self.rolling_stats_buckets,
            "metrics.rollingStats.timeInMilliseconds",
            "metrics.rollingStats.numBuckets",
        )
    }

    /// Hystrix's `actualMaximumSize`: the maximum when diverging is allowed (never below the
    /// core size), otherwise the core size.
    pub fn actual_maximum_size(&self) -> u32 {
        if self.allow_maximum_size_to_diverge_from_core_size {
            self.maximum_size.max(self.core_size)
        } else {
            self.core_size
        }
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Queue {
    jobs: VecDeque<Job>,
    idle: u32,
    size: u32,
    largest: u32,
}

#[derive(Default)]
struct PoolBucket {
    executed: u64,
    rejected: u64,
    max_active: u64,
}

struct Live {
    core: AtomicU32,
    max: AtomicU32,
    keep_alive_nanos: AtomicU64,
    threshold: AtomicU32,
}

struct Shared {
    key: PoolKey,
    queue_capacity: Option<u32>,
    live: Live,
    queue: Mutex<Queue>,
    work: Notify,
    shutdown: AtomicBool,
    active: AtomicU32,
    max_active: AtomicU64,
    completed: AtomicU64,
    executed: AtomicU64,
    rejected: AtomicU64,
    window: Duration,
    rolling: Mutex<(Ring<PoolBucket>, u64, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the workers when the last handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown.store(true, Release);
        // Queued calls are dropped; their callers see `PoolShutdown`.
        lock(&self.0.queue).jobs.clear();
        self.0.work.notify_waiters();
    }
}

/// A bounded executor standing in for a Hystrix thread pool. Cheap to clone: clones (and
/// the services built from [`ThreadPool::layer`]) share the pool; it stops when the last
/// one is dropped.
#[derive(Clone)]
pub struct ThreadPool {
    owner: Arc<Owner>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("key", &self.shared().key)
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// Creates a pool. Workers start lazily with the first calls.
    ///
    /// # Errors
    ///
    /// When the configuration is invalid.
    pub fn new(key: impl Into<PoolKey>, config: ThreadPoolConfig) -> Result<Self> {
        config.validate()?;
        let now = Instant::now();
        let buckets = config.rolling_stats_buckets;
        let shared = Shared {
            key: key.into(),
            queue_capacity: config.max_queue_size.filter(|q| *q > 0),
            live: Live {
                core: AtomicU32::new(config.core_size),
                max: AtomicU32::new(config.actual_maximum_size()),
                keep_alive_nanos: AtomicU64::new(
                    u64::try_from(config.keep_alive.as_nanos()).unwrap_or(u64::MAX),
                ),
                threshold: AtomicU32::new(config.queue_size_rejection_threshold),
            },
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                size: 0,
                largest: 0,
            }),
            work: Notify::new(),
            shutdown: AtomicBool::new(false),
            active: AtomicU32::new(0),
            max_active: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            executed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            window: config.rolling_stats_window,
            rolling: Mutex::new((
                Ring::new(now, config.rolling_stats_window / buckets, buckets as usize),
                0,
                0,
            )),
        };
        Ok(Self {
            owner: Arc::new(Owner(Arc::new(shared))),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.0
    }

    /// The pool's key.
    pub fn key(&self) -> &PoolKey {
        &self.shared().key
    }

    /// A layer that runs calls on this pool.
    pub fn layer(&self) -> ThreadPoolLayer {
        ThreadPoolLayer { pool: self.clone() }
    }

    /// Applies new sizes, keep-alive and rejection threshold at run time (the queue's
    /// capacity is fixed, as in Hystrix).
    ///
    /// # Errors
    ///
    /// When the configuration is invalid.
    pub fn reconfigure(&self, config: &ThreadPoolConfig) -> Result<()> {
        config.validate()?;
        let live = &self.shared().live;
        live.core.store(config.core_size, Relaxed);
        live.max.store(config.actual_maximum_size(), Relaxed);
        live.keep_alive_nanos.store(
            u64::try_from(config.keep_alive.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        live.threshold
            .store(config.queue_size_rejection_threshold, Relaxed);
        Ok(())
    }

    /// Runs `job` on the pool, or gives it back if the pool rejects it.
    fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        let s = self.shared();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(pool = %s.key, "thread pool used outside a tokio runtime: rejected");
            return Err(job);
        };
        let core = s.live.core.load(Relaxed);
        let max = s.live.max.load(Relaxed).max(core);
        let mut q = lock(&s.queue);
        let spawn_worker = |q: &mut Queue, job: Job| {
            q.size += 1;
            q.largest = q.largest.max(q.size);
            handle.spawn(worker(s.clone(), Some(job)));
        };
        if q.size < core {
            spawn_worker(&mut q, job);
            return Ok(());
        }
        let queued = match s.queue_capacity {
            Some(cap) => {
                let len = q.jobs.len() as u64;
                if len >= u64::from(s.live.threshold.load(Relaxed)) {
                    // Hystrix's `isQueueSpaceAvailable`: reject without trying to grow.
                    return Err(job);
                }
                len < u64::from(cap)
            }
            // A synchronous hand-off: only to a worker that is idle and not yet claimed.
            None => (q.idle as usize) > q.jobs.len(),
        };
        if queued {
            q.jobs.push_back(job);
            drop(q);
            s.work.notify_one();
            Ok(())
        } else if q.size < max {
            spawn_worker(&mut q, job);
            Ok(())
        } else {
            Err(job)
        }
    }

    /// What the `HystrixThreadPool` dashboard panel shows.
    pub fn snapshot(&self) -> PoolSnapshot {
        let s = self.shared();
        let (size, largest, queue) = {
            let q = lock(&s.queue);
            (q.size, q.largest, q.jobs.len() as u64)
        };
        let active = s.active.load(Relaxed);
        let completed = s.completed.load(Relaxed);
        let now = Instant::now();
        let mut r = lock(&s.rolling);
        let executed = s.executed.load(Relaxed);
        let rejected = s.rejected.load(Relaxed);
        let (ring, seen_executed, seen_rejected) = &mut *r;
        let bucket = ring.current();
        bucket.executed += executed - *seen_executed;
        bucket.rejected += rejected - *seen_rejected;
        let live_max = s.max_active.swap(u64::from(active), Relaxed);
        bucket.max_active = bucket.max_active.max(live_max);
        *seen_executed = executed;
        *seen_rejected = rejected;
        ring.advance(now);
        let mut rolling = PoolBucket::default();
        for b in ring.completed() {
            rolling.executed += b.executed;
            rolling.rejected += b.rejected;
            rolling.max_active = rolling.max_active.max(b.max_active);
        }
        PoolSnapshot {
            active,
            completed,
            core: s.live.core.load(Relaxed),
            largest,
            maximum: s.live.max.load(Relaxed),
            size,
            queue,
            task_count: completed + u64::from(active) + queue,
            rolling_executed: rolling.executed,
            rolling_max_active: rolling.max_active,
            rolling_rejected: rolling.rejected,
            queue_size_rejection_threshold: s.live.threshold.load(Relaxed),
            rolling_stats_window: s.window,
        }
    }
}

async fn worker(s: Arc<Shared>, first: Option<Job>) {
    if let Some(job) = first {
        run(&s, job).await;
    }
    loop {
        if s.shutdown.load(Acquire) {
            lock(&s.queue).size -= 1;
            return;
        }
        let job = {
            let mut q = lock(&s.queue);
            let job = q.jobs.pop_front();
            if job.is_none() {
                q.idle += 1;
            }
            job
        };
        if let Some(job) = job {
            run(&s, job).await;
            continue;
        }
        let keep_alive = Duration::from_nanos(s.live.keep_alive_nanos.load(Relaxed));
        let woken = tokio::time::timeout(keep_alive, s.work.notified())
            .await
            .is_ok();
        let mut q = lock(&s.queue);
        q.idle -= 1;
        if !woken && q.jobs.is_empty() && q.size > s.live.core.load(Relaxed) {
            q.size -= 1;
            return;
        }
    }
}

async fn run(s: &Shared, job: Job) {
    let active = s.active.fetch_add(1, AcqRel) + 1;
    if u64::from(active) > s.max_active.load(Relaxed) {
        s.max_active.fetch_max(u64::from(active), Relaxed);
    }
    job.await;
    s.active.fetch_sub(1, AcqRel);
    s.completed.fetch_add(1, Relaxed);
    s.executed.fetch_add(1, Relaxed);
}

/// The `HystrixThreadPool` numbers of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    active: u32,
    completed: u64,
    core: u32,
    largest: u32,
    maximum: u32,
    size: u32,
    queue: u64,
    task_count: u64,
    rolling_executed: u64,
    rolling_max_active: u64,
    rolling_rejected: u64,
    queue_size_rejection_threshold: u32,
    rolling_stats_window: Duration,
}

impl PoolSnapshot {
    /// `currentActiveCount`: calls running now.
    pub fn active_count(&self) -> u32 {
        self.active
    }
    /// `currentCompletedTaskCount`: calls completed since creation.
    pub fn completed_task_count(&self) -> u64 {
        self.completed
    }
    /// `currentCorePoolSize`.
    pub fn core_pool_size(&self) -> u32 {
        self.core
    }
    /// `currentLargestPoolSize`: the most workers that ever existed at once.
    pub fn largest_pool_size(&self) -> u32 {
        self.largest
    }
    /// `currentMaximumPoolSize`.
    pub fn maximum_pool_size(&self) -> u32 {
        self.maximum
    }
    /// `currentPoolSize`: workers alive now.
    pub fn pool_size(&self) -> u32 {
        self.size
    }
    /// `currentQueueSize`.
    pub fn queue_size(&self) -> u64 {
        self.queue
    }
    /// `currentTaskCount`: completed + running + queued.
    pub fn task_count(&self) -> u64 {
        self.task_count
    }
    /// `rollingCountThreadsExecuted`.
    pub fn rolling_executed(&self) -> u64 {
        self.rolling_executed
    }
    /// `rollingMaxActiveThreads`.
    pub fn rolling_max_active(&self) -> u64 {
        self.rolling_max_active
    }
    /// `rollingCountCommandRejections`.
    pub fn rolling_rejected(&self) -> u64 {
        self.rolling_rejected
    }
    /// `propertyValue_queueSizeRejectionThreshold`.
    pub fn queue_size_rejection_threshold(&self) -> u32 {
        self.queue_size_rejection_threshold
    }
    /// `propertyValue_metricsRollingStatisticalWindowInMilliseconds`.
    pub fn rolling_stats_window(&self) -> Duration {
        self.rolling_stats_window
    }
}

/// Runs a service's calls on a [`ThreadPool`].
#[derive(Debug, Clone)]
pub struct ThreadPoolLayer {
    pool: ThreadPool,
}

impl<S> Layer<S> for ThreadPoolLayer {
    type Service = Pooled<S>;

    fn layer(&self, inner: S) -> Pooled<S> {
        Pooled {
            inner,
            pool: self.pool.clone(),
        }
    }
}

/// A service whose calls run on a [`ThreadPool`].
#[derive(Clone)]
pub struct Pooled<S> {
    inner: S,
    pool: ThreadPool,
}

impl<S: fmt::Debug> fmt::Debug for Pooled<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .finish()
    }
}

impl<S, Req> Service<Req> for Pooled<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.inner.call(req);
        let (mut tx, rx) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let mut fut = std::pin::pin!(fut);
            // Abandon the work if the caller stops waiting.
            let out = poll_fn(|cx| {
                if tx.poll_closed(cx).is_ready() {
                    return Poll::Ready(None);
                }
                fut.as_mut().poll(cx).map(Some)
            })
            .await;
            if let Some(out) = out {
                let _ = tx.send(out.map_err(Into::into));
            }
        });
        match self.pool.submit(job) {
            Ok(()) => ResponseFuture { rx: Some(rx) },
            Err(_job) => {
                self.pool.shared().rejected.fetch_add(1, Relaxed);
                tracing::debug!(pool = %self.pool.key(), "thread pool full: call rejected");
                ResponseFuture { rx: None }
            }
        }
    }
}

/// The result of a call run on a [`ThreadPool`], or [`PoolRejected`](error::PoolRejected).
pub struct ResponseFuture<T> {
    rx: Option<oneshot::Receiver<std::result::Result<T, BoxError>>>,
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.rx.is_none())
            .finish()
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = std::result::Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.rx.as_mut() {
            None => Poll::Ready(Err(Box::new(error::PoolRejected::new()))),
            Some(rx) => Pin::new(rx).poll(cx).map(|r| match r {
                Ok(r) => r,
                Err(_) => Err(Box::new(error::PoolShutdown::new()) as BoxError),
            }),
        }
    }
}
