//! Commands by key, and the whole Hystrix command as one layer.
//!
//! A [`Registry`] keeps one [`Command`] per command key and one
//! [`ThreadPool`] per pool key, as Hystrix's static maps do, and applies
//! [`HystrixProperties`] to them, at creation and while running. The
//! `hystrix.stream` server reads every command and pool from it.
//!
//! A [`Command`] bundles what Hystrix gives one command: its metrics, circuit breaker,
//! timeout, isolation (a semaphore bulkhead or a thread pool) and fallback limit.
//! [`Command::layer`] stacks them in Hystrix's order:
//!
//! ```text
//! total latency → circuit breaker → timeout → isolation → execution latency → service
//! ```
//!
//! so that the breaker sees timeouts and rejections as the errors they are, the timeout
//! includes time queued for a pool thread (as in Hystrix), and execution latency and
//! concurrency count only calls that actually run. Add [`Command::fallback`] and
//! [`Command::request_cache`] outside it.
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::config::HystrixProperties;
//! use netflix_hystrix::fallback::PerCause;
//! use netflix_hystrix::registry::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let registry = Registry::new();
//! registry.configure(&HystrixProperties::parse(
//!     "hystrix.command.GetUser.execution.isolation.strategy = SEMAPHORE",
//! )?)?;
//! let cmd = registry.command("GetUser").group("UserService").build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(cmd.fallback(PerCause::new().otherwise(|_| async { Ok("anonymous".to_string()) })))
//!     .layer(cmd.layer())
//!     .service_fn(|id: u32| async move { Ok::<_, netflix_hystrix::BoxError>(format!("user {id}")) });
//! assert_eq!(svc.ready().await?.call(1).await?, "user 1");
//! assert!(registry.get("GetUser").is_some());
//! # Ok(())
//! # }
//! ```

use crate::breaker::{Breaker, CircuitBreaker, CircuitBreakerLayer, HystrixConfig};
use crate::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use crate::cache::RequestCacheLayer;
use crate::classify::DefaultClassifier;
use crate::config::{
    CommandProperties, DEFAULT_KEY, HystrixProperties, IsolationStrategy, ThreadPoolProperties,
};
use crate::error::{BoxError, Result};
use crate::fallback::FallbackLayer;
use crate::keys::{CommandKey, GroupKey, PoolKey};
use crate::metrics::{CommandMetrics, LatencyLayer, LatencyService, MetricsConfig};
use crate::pool::{Pooled, ThreadPool, ThreadPoolConfig};
use crate::timeout::{Timeout, TimeoutLayer};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The values of a command's properties in force (defaults filled in): what the dashboard
/// reports as `propertyValue_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandSettings {
    /// `execution.isolation.strategy`.
    pub isolation: IsolationStrategy,
    /// `execution.isolation.thread.timeoutInMilliseconds`.
    pub timeout: Duration,
    /// `execution.timeout.enabled`.
    pub timeout_enabled: bool,
    /// `execution.isolation.thread.interruptOnTimeout`.
    pub interrupt_on_timeout: bool,
    /// `execution.isolation.semaphore.maxConcurrentRequests`.
    pub semaphore_max_concurrent: u32,
    /// `fallback.isolation.semaphore.maxConcurrentRequests`.
    pub fallback_max_concurrent: u32,
    /// `fallback.enabled`.
    pub fallback_enabled: bool,
    /// The breaker's settings.
    pub breaker: HystrixConfig,
    /// `requestCache.enabled`.
    pub request_cache_enabled: bool,
    /// `requestLog.enabled`.
    pub request_log_enabled: bool,
    /// `threadPoolKeyOverride`.
    pub thread_pool_key_override: Option<String>,
}

impl CommandSettings {
    fn resolve(p: &CommandProperties) -> Self {
        let d = HystrixConfig::default();
        let breaker = HystrixConfig {
            enabled: p.circuit_breaker_enabled.unwrap_or(d.enabled),
            request_volume_threshold: p
                .circuit_breaker_request_volume_threshold
                .unwrap_or(d.request_volume_threshold),
            error_threshold_percentage: p
                .circuit_breaker_error_threshold_percentage
                .unwrap_or(d.error_threshold_percentage),
            sleep_window: p
                .circuit_breaker_sleep_window_ms
                .map_or(d.sleep_window, Duration::from_millis),
            force_open: p.circuit_breaker_force_open.unwrap_or(false),
            force_closed: p.circuit_breaker_force_closed.unwrap_or(false),
        };
        Self {
            isolation: p.execution_isolation_strategy.unwrap_or_default(),
            timeout: Duration::from_millis(p.execution_timeout_ms.unwrap_or(1000)),
            timeout_enabled: p.execution_timeout_enabled.unwrap_or(true),
            interrupt_on_timeout: p.execution_interrupt_on_timeout.unwrap_or(true),
            semaphore_max_concurrent: p.execution_semaphore_max_concurrent.unwrap_or(10),
            fallback_max_concurrent: p.fallback_semaphore_max_concurrent.unwrap_or(10),
            fallback_enabled: p.fallback_enabled.unwrap_or(true),
            breaker,
            request_cache_enabled: p.request_cache_enabled.unwrap_or(true),
            request_log_enabled: p.request_log_enabled.unwrap_or(true),
            thread_pool_key_override: p.thread_pool_key_override.clone(),
        }
    }
}

fn metrics_config(p: &CommandProperties) -> MetricsConfig {
    let mut m = MetricsConfig::default();
    if let Some(ms) = p.metrics_rolling_stats_ms {
        m.rolling_stats_window = Duration::from_millis(ms);
    }
    if let Some(n) = p.metrics_rolling_stats_buckets {
        m.rolling_stats_buckets = n;
    }
    if let Some(ms) = p.metrics_rolling_percentile_ms {
        m.rolling_percentile_window = Duration::from_millis(ms);
    }
    if let Some(n) = p.metrics_rolling_percentile_buckets {
        m.rolling_percentile_buckets = n;
    }
    if let Some(e) = p.metrics_rolling_percentile_enabled {
        m.rolling_percentile_enabled = e;
    }
    if let Some(ms) = p.metrics_health_snapshot_ms {
        m.health_snapshot_interval = Duration::from_millis(ms);
    }
    m
}

fn pool_config(p: &ThreadPoolProperties) -> ThreadPoolConfig {
    let mut c = ThreadPoolConfig::default();
    if let Some(v) = p.core_size {
        c.core_size = v;
    }
    if let Some(v) = p.maximum_size {
        c.maximum_size = v;
    }
    if let Some(v) = p.allow_maximum_size_to_diverge_from_core_size {
        c.allow_maximum_size_to_diverge_from_core_size = v;
    }
    if let Some(v) = p.keep_alive_time_minutes {
        c.keep_alive = Duration::from_secs(u64::from(v) * 60);
    }
    if let Some(v) = p.max_queue_size {
        c.max_queue_size = u32::try_from(v).ok().filter(|q| *q > 0);
    }
    if let Some(v) = p.queue_size_rejection_threshold {
        c.queue_size_rejection_threshold = v;
    }
    if let Some(v) = p.metrics_rolling_stats_ms {
        c.rolling_stats_window = Duration::from_millis(v);
    }
    if let Some(v) = p.metrics_rolling_stats_buckets {
        c.rolling_stats_buckets = v;
    }
    c
}

// === Command ===

struct CommandInner {
    key: CommandKey,
    group: GroupKey,
    pool_key: PoolKey,
    metrics: CommandMetrics,
    breaker: Breaker,
    timeout: TimeoutLayer,
    bulkhead: BulkheadLayer,
    pool: ThreadPool,
    fallback: FallbackLayer<()>,
    /// Properties set in code, kept to re-resolve when the registry is reconfigured.
    code: CommandProperties,
    settings: RwLock<CommandSettings>,
    /// The metrics cell that [`Execution`]s record into.
    direct: crate::metrics::Lease,
}

/// One Hystrix command: metrics, breaker, timeout, isolation and fallback limit under one
/// key. Cheap to clone.
#[derive(Clone)]
pub struct Command {
    inner: Arc<CommandInner>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("key", &self.inner.key)
            .field("group", &self.inner.group)
            .field("thread_pool", &self.inner.pool_key)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// The command key.
    pub fn key(&self) -> &CommandKey {
        &self.inner.key
    }

    /// The group key.
    pub fn group(&self) -> &GroupKey {
        &self.inner.group
    }

    /// The thread-pool key.
    pub fn thread_pool_key(&self) -> &PoolKey {
        &self.inner.pool_key
    }

    /// The command's metrics.
    pub fn metrics(&self) -> &CommandMetrics {
        &self.inner.metrics
    }

    /// The command's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// The semaphore bulkhead used with `SEMAPHORE` isolation.
    pub fn bulkhead(&self) -> &BulkheadLayer {
        &self.inner.bulkhead
    }

    /// The thread pool used with `THREAD` isolation.
    pub fn thread_pool(&self) -> &ThreadPool {
        &self.inner.pool
    }

    /// The settings in force.
    pub fn settings(&self) -> CommandSettings {
        read(&self.inner.settings).clone()
    }

    /// Starts one execution of the command, run by the caller instead of through
    /// [`layer`](Self::layer): the same circuit breaker, semaphore bulkhead, metrics and
    /// `hystrix.stream` counts, without a service to clone or futures to wrap. Report the
    /// outcome with [`Execution::succeeded`] or [`Execution::failed`]; an execution
    /// dropped without either counts as cancelled.
    ///
    /// Differences from the layer: the command's timeout is not applied (the caller bounds
    /// its own call), and isolation is always the semaphore, without waiting for room.
    ///
    /// # Errors
    ///
    /// [`BreakerOpen`](crate::breaker::error::BreakerOpen) when the circuit is open (a
    /// short circuit is recorded), [`BulkheadFull`](crate::bulkhead::error::BulkheadFull)
    /// when the semaphore is full (a rejection is recorded).
    ///
    /// # Example
    ///
    /// ```
    /// use netflix_hystrix::registry::Registry;
    ///
    /// # fn main() -> Result<(), netflix_hystrix::BoxError> {
    /// let registry = Registry::new();
    /// let command = registry.command("GetUser").build()?;
    /// let execution = command.start()?;
    /// let answer: Result<u32, netflix_hystrix::BoxError> = Ok(7); // the call itself
    /// match &answer {
    ///     Ok(_) => execution.succeeded(),
    ///     Err(e) => execution.failed(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self) -> std::result::Result<Execution<'_>, BoxError> {
        self.start_at(tokio::time::Instant::now())
    }

    /// [`start`](Self::start), at a time the caller has just read: for callers that read
    /// the clock once for several things (as an event loop does once a turn), so that the
    /// command does not read it again. Latencies count from `now`; pair it with
    /// [`Execution::succeeded_at`] or [`Execution::failed_at`].
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Example
    ///
    /// ```
    /// use netflix_hystrix::registry::Registry;
    /// use tokio::time::Instant;
    ///
    /// # fn main() -> Result<(), netflix_hystrix::BoxError> {
    /// let registry = Registry::new();
    /// let command = registry.command("GetUser").build()?;
    /// let sent = Instant::now(); // read once: for the command, a deadline, a log...
    /// let execution = command.start_at(sent)?;
    /// let answered = Instant::now();
    /// execution.succeeded_at(answered);
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_at(
        &self,
        now: tokio::time::Instant,
    ) -> std::result::Result<Execution<'_>, BoxError> {
        let c = &*self.inner;
        let Some(tracked) = c.breaker.admit_direct(c.direct.cell()) else {
            c.metrics.record_total_latency(now.elapsed());
            return Err(Box::new(crate::breaker::error::BreakerOpen::new()));
        };
        let Some(permit) = c.bulkhead.try_permit() else {
            let e: BoxError = Box::new(crate::bulkhead::error::BulkheadFull::new());
            tracked.complete::<()>(Err(&e));
            c.metrics.record_total_latency(now.elapsed());
            return Err(e);
        };
        c.metrics.execution_started();
        Ok(Execution {
            command: c,
            start: now,
            tracked: Some(tracked),
            permit: Some(permit),
        })
    }

    /// The whole command as one layer (see the [module docs](self)).
    pub fn layer(&self) -> CommandLayer {
        CommandLayer {
            command: self.clone(),
        }
    }

    /// A fallback layer recording into this command and sharing its fallback limit.
    pub fn fallback<P>(&self, policy: P) -> FallbackLayer<P> {
        self.inner.fallback.with_policy(policy)
    }

    /// A request cache recording `RESPONSE_FROM_CACHE` into this command. When
    /// `requestCache.enabled` is false at the time it is built, nothing is cached.
    pub fn request_cache<F, Req, K>(
        &self,
        key: F,
    ) -> RequestCacheLayer<impl Fn(&Req) -> Option<K> + Clone + use<F, Req, K>>
    where
        F: Fn(&Req) -> Option<K> + Clone,
    {
        let enabled = read(&self.inner.settings).request_cache_enabled;
        RequestCacheLayer::new(move |r: &Req| if enabled { key(r) } else { None })
            .metrics(self.inner.metrics.clone())
    }

    fn apply(&self, p: &CommandProperties) -> Result<()> {
        let s = CommandSettings::resolve(p);
        let i = &self.inner;
        i.breaker.set_hystrix_config(&s.breaker)?;
        i.timeout
            .set_timeout(s.timeout_enabled.then_some(s.timeout));
        i.bulkhead
            .reconfigure(&BulkheadConfig::new(s.semaphore_max_concurrent))?;
        i.fallback.set_max_concurrent(if s.fallback_enabled {
            s.fallback_max_concurrent
        } else {
            0
        });
        *write(&i.settings) = s;
        Ok(())
    }
}

/// Builds (or finds) a [`Command`] in a [`Registry`].
#[derive(Debug)]
pub struct CommandBuilder<'r> {
    registry: &'r Registry,
    key: CommandKey,
    group: Option<GroupKey>,
    pool: Option<PoolKey>,
    properties: CommandProperties,
}

impl CommandBuilder<'_> {
    /// The group (defaults to the command key).
    pub fn group(mut self, group: impl Into<GroupKey>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The thread pool (defaults to the group key).
    pub fn thread_pool(mut self, pool: impl Into<PoolKey>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Properties set in code: below the registry's per-key properties, above its defaults
    /// (Hystrix's precedence for a command's `Setter`).
    pub fn properties(mut self, properties: CommandProperties) -> Self {
        self.properties = properties;
        self
    }

    /// Returns the command with this key, creating it on first use.
    ///
    /// # Errors
    ///
    /// When the resolved properties are invalid.
    pub fn build(self) -> Result<Command> {
        let r = &self.registry.inner;
        if let Some(c) = read(&r.commands).get(&self.key) {
            return Ok(c.clone());
        }
        let key = self.key.as_str();
        let resolved = resolve(&read(&r.properties), key, &self.properties);
        let settings = CommandSettings::resolve(&resolved);
        let group = self.group.unwrap_or_else(|| GroupKey::new(key));
        let pool_key = settings
            .thread_pool_key_override
            .as_deref()
            .map(PoolKey::new)
            .or(self.pool)
            .unwrap_or_else(|| PoolKey::new(group.as_str()));
        let metrics = CommandMetrics::builder(self.key.clone())
            .group(group.clone())
            .thread_pool(pool_key.clone())
            .config(metrics_config(&resolved))
            .build()?;
        let breaker = Breaker::builder(self.key.clone())
            .metrics(metrics.clone())
            .hystrix(settings.breaker.clone())
            .build()?;
        let pool = self.registry.thread_pool(&pool_key)?;
        let inner = CommandInner {
            key: self.key.clone(),
            group,
            pool_key,
            timeout: TimeoutLayer::new(settings.timeout_enabled.then_some(settings.timeout)),
            bulkhead: BulkheadLayer::new(BulkheadConfig::new(settings.semaphore_max_concurrent))?,
            pool,
            fallback: FallbackLayer::new(())
                .metrics(metrics.clone())
                .max_concurrent(if settings.fallback_enabled {
                    settings.fallback_max_concurrent
                } else {
                    0
                }),
            direct: metrics.lease(),
            metrics,
            breaker,
            code: self.properties,
            settings: RwLock::new(settings),
        };
        let command = Command {
            inner: Arc::new(inner),
        };
        let mut commands = write(&r.commands);
        // Another thread may have built the same key meanwhile: keep the first.
        let c = commands.entry(self.key).or_insert(command).clone();
        Ok(c)
    }
}

/// Hystrix's precedence: per-key properties, then those set in code, then `default`.
fn resolve(props: &HystrixProperties, key: &str, code: &CommandProperties) -> CommandProperties {
    let defaults = props.command.get(DEFAULT_KEY).cloned().unwrap_or_default();
    let own = props.command.get(key).cloned().unwrap_or_default();
    defaults.overlaid_with(code).overlaid_with(&own)
}

// === Registry ===

struct RegistryInner {
    commands: RwLock<BTreeMap<CommandKey, Command>>,
    pools: RwLock<BTreeMap<PoolKey, ThreadPool>>,
    properties: RwLock<HystrixProperties>,
}

/// Commands and thread pools by key. Cheap to clone: clones share the registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field(
                "commands",
                &read(&self.inner.commands).keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RegistryInner {
                commands: RwLock::new(BTreeMap::new()),
                pools: RwLock::new(BTreeMap::new()),
                properties: RwLock::new(HystrixProperties::default()),
            }),
        }
    }

    /// The process-wide registry, for code that wants Hystrix's global maps.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Starts building (or finding) the command `key`.
    pub fn command(&self, key: impl Into<CommandKey>) -> CommandBuilder<'_> {
        CommandBuilder {
            registry: self,
            key: key.into(),
            group: None,
            pool: None,
            properties: CommandProperties::default(),
        }
    }

    /// The command `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<Command> {
        read(&self.inner.commands).get(key).cloned()
    }

    /// Every command, by key.
    pub fn commands(&self) -> Vec<Command> {
        read(&self.inner.commands).values().cloned().collect()
    }

    /// Every thread pool, by key.
    pub fn thread_pools(&self) -> Vec<ThreadPool> {
        read(&self.inner.pools).values().cloned().collect()
    }

    /// The thread pool `key`, created on first use with the configured properties.
    ///
    /// # Errors
    ///
    /// When its properties are invalid.
    pub fn thread_pool(&self, key: &PoolKey) -> Result<ThreadPool> {
        if let Some(p) = read(&self.inner.pools).get(key) {
            return Ok(p.clone());
        }
        let cfg = pool_config(&read(&self.inner.properties).threadpool(key.as_str()));
        let pool = ThreadPool::new(key.clone(), cfg)?;
        Ok(write(&self.inner.pools)
            .entry(key.clone())
            .or_insert(pool)
            .clone())
    }

    /// Adds `properties` (they win over earlier ones) and applies them to every existing
    /// command and pool. Window sizes and queue capacities are fixed when a component is
    /// created; everything else changes at once.
    ///
    /// # Errors
    ///
    /// When a resulting setting is invalid; nothing is applied then.
    pub fn configure(&self, properties: &HystrixProperties) -> Result<()> {
        let mut merged = read(&self.inner.properties).clone();
        merged.merge(properties);
        // Validate everything before changing anything.
        for c in self.commands() {
            let s = CommandSettings::resolve(&resolve(&merged, c.key().as_str(), &c.inner.code));
            s.breaker.validate()?;
            BulkheadConfig::new(s.semaphore_max_concurrent).validate()?;
        }
        for p in self.thread_pools() {
            pool_config(&merged.threadpool(p.key().as_str())).validate()?;
        }
        *write(&self.inner.properties) = merged.clone();
        for c in self.commands() {
            c.apply(&resolve(&merged, c.key().as_str(), &c.inner.code))?;
        }
        for p in self.thread_pools() {
            p.reconfigure(&pool_config(&merged.threadpool(p.key().as_str())))?;
        }
        Ok(())
    }

    /// The properties configured so far.
    pub fn properties(&self) -> HystrixProperties {
        read(&self.inner.properties).clone()
    }
}

// === Execution ===

/// One execution of a [`Command`], started by [`Command::start`]: it holds a bulkhead
/// permit and, when half-open, the breaker's trial permit, until its outcome is reported.
pub struct Execution<'a> {
    command: &'a CommandInner,
    start: tokio::time::Instant,
    tracked: Option<crate::breaker::future::Tracked<DefaultClassifier>>,
    permit: Option<crate::bulkhead::Permit>,
}

impl fmt::Debug for Execution<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("command", &self.command.key)
            .finish_non_exhaustive()
    }
}

impl Execution<'_> {
    /// The call succeeded.
    pub fn succeeded(self) {
        self.finish::<()>(Ok(&()), tokio::time::Instant::now());
    }

    /// The call failed with `error`, classified as the layer would
    /// ([`classify_error`](crate::classify::classify_error): a timeout of this crate's,
    /// a rejection, or a failure).
    pub fn failed(self, error: &BoxError) {
        self.finish::<()>(Err(error), tokio::time::Instant::now());
    }

    /// [`succeeded`](Self::succeeded), known at `now` (a time the caller has just read;
    /// see [`Command::start_at`]).
    pub fn succeeded_at(self, now: tokio::time::Instant) {
        self.finish::<()>(Ok(&()), now);
    }

    /// [`failed`](Self::failed), known at `now` (a time the caller has just read; see
    /// [`Command::start_at`]).
    pub fn failed_at(self, error: &BoxError, now: tokio::time::Instant) {
        self.finish::<()>(Err(error), now);
    }

    fn finish<T>(mut self, result: std::result::Result<&T, &BoxError>, now: tokio::time::Instant) {
        let m = &self.command.metrics;
        let elapsed = now.saturating_duration_since(self.start);
        // In the layer's order, inside out: execution, bulkhead, breaker, total.
        m.execution_finished();
        m.record_execute_latency(elapsed);
        self.permit = None;
        if let Some(t) = self.tracked.take() {
            t.complete(result);
        }
        m.record_total_latency(elapsed);
    }
}

impl Drop for Execution<'_> {
    fn drop(&mut self) {
        // Not reported: cancelled. The concurrency count ends; no latency is recorded.
        if let Some(t) = self.tracked.take() {
            self.command.metrics.execution_finished();
            t.cancel();
        }
    }
}

// === CommandLayer ===

/// The whole command as a layer. Built by [`Command::layer`].
#[derive(Debug, Clone)]
pub struct CommandLayer {
    command: Command,
}

/// The service [`CommandLayer`] builds.
pub type CommandService<S> =
    LatencyService<CircuitBreaker<Timeout<Isolated<LatencyService<S>>>, DefaultClassifier>>;

impl<S> Layer<S> for CommandLayer {
    type Service = CommandService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let c = &self.command.inner;
        let execution = LatencyLayer::execution(c.metrics.clone()).layer(inner);
        let isolated = match read(&c.settings).isolation {
            IsolationStrategy::Semaphore => Isolated::Semaphore(c.bulkhead.layer(execution)),
            IsolationStrategy::Thread => Isolated::Thread(c.pool.layer().layer(execution)),
        };
        let timed = c.timeout.layer(isolated);
        let guarded = CircuitBreakerLayer::new(c.breaker.clone()).layer(timed);
        LatencyLayer::total(c.metrics.clone()).layer(guarded)
    }
}

/// A service isolated by a semaphore or a thread pool, as the command's
/// `execution.isolation.strategy` chose when the service was built.
#[derive(Debug)]
pub enum Isolated<S> {
    /// `SEMAPHORE` isolation.
    Semaphore(Bulkhead<S>),
    /// `THREAD` isolation.
    Thread(Pooled<S>),
}

impl<S: Clone> Clone for Isolated<S> {
    fn clone(&self) -> Self {
        match self {
            Isolated::Semaphore(s) => Isolated::Semaphore(s.clone()),
            Isolated::Thread(s) => Isolated::Thread(s.clone()),
        }
    }
}

impl<S, Req> Service<Req> for Isolated<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = IsolatedFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        match self {
            Isolated::Semaphore(s) => s.poll_ready(cx),
            Isolated::Thread(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            Isolated::Semaphore(s) => IsolatedFuture {
                inner: IsolatedInner::Semaphore {
                    future: s.call(req),
                },
            },
            Isolated::Thread(s) => IsolatedFuture {
                inner: IsolatedInner::Thread {
                    future: s.call(req),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Isolated`].
    pub struct IsolatedFuture<F, T> {
        #[pin]
        inner: IsolatedInner<F, T>,
    }
}

pin_project_lite::pin_project! {
    #[project = IsolatedProj]
    enum IsolatedInner<F, T> {
        Semaphore { #[pin] future: crate::bulkhead::ResponseFuture<F> },
        Thread { #[pin] future: crate::pool::ResponseFuture<T> },
    }
}

impl<F, T> fmt::Debug for IsolatedFuture<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner {
            IsolatedInner::Semaphore { .. } => "IsolatedFuture::Semaphore",
            IsolatedInner::Thread { .. } => "IsolatedFuture::Thread",
        })
    }
}

impl<F, T, E> Future for IsolatedFuture<F, T>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = std::result::Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            IsolatedProj::Semaphore { future } => future.poll(cx),
            IsolatedProj::Thread { future } => future.poll(cx),
        }
    }
}
