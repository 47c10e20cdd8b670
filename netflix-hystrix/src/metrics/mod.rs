//! Per-command rolling metrics: event counters, concurrency and latency percentiles.
//!
//! [`CommandMetrics`] is what Hystrix's dashboard shows for one command: rolling counts of
//! every [`EventType`] over a 10 s window (10 buckets of 1 s), cumulative counts since start,
//! the health counts the circuit breaker trips on (a 10 s window in buckets of the 500 ms
//! health-snapshot interval), current and rolling-maximum concurrency, and the execution and
//! total latency percentiles over 60 s (6 buckets of 10 s).
//!
//! # Design: lock-free recording, harvested windows
//!
//! Recording happens on every call, so it must cost almost nothing and must not make two
//! threads fight over a cache line. Each service clone leases its own cell (a
//! cache-line-aligned array of atomic counters) and increments it with one relaxed
//! `fetch_add`. Nothing on the data path takes a lock, reads the clock, or touches a
//! reference count.
//!
//! The rolling windows live behind a mutex that only readers and the harvest touch. A
//! harvest reads every cell's counters and adds what changed to the current bucket; it runs
//! every health-snapshot interval when a circuit breaker drives it, and before every
//! [`snapshot`](CommandMetrics::snapshot). Rolling values cover completed buckets only, as
//! in Hystrix 1.5, so they change once per bucket.
//!
//! # Example
//!
//! ```
//! use netflix_hystrix::metrics::{CommandMetrics, EventType};
//!
//! let metrics = CommandMetrics::builder("GetUser").group("UserService").build()?;
//! metrics.record(EventType::Success);
//! let snapshot = metrics.snapshot();
//! assert_eq!(snapshot.cumulative().get(EventType::Success), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod cell;
mod event;
pub(crate) mod histogram;
mod layer;
pub(crate) mod ring;

pub(crate) use self::event::EVENT_COUNT;
pub use self::event::EventType;
pub use self::layer::{LatencyFuture, LatencyLayer, LatencyService, Measure};

use self::cell::{Cell, CellRef};
use self::histogram::{HistogramCounts, LiveHistogram};
use self::ring::Ring;
use crate::error::{Result, ensure, ensure_window};
use crate::keys::{CommandKey, GroupKey, PoolKey};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

// === MetricsConfig ===

/// Window sizes of [`CommandMetrics`]. Defaults are Hystrix's.
///
/// Set fields on [`MetricsConfig::default()`]; [`CommandMetricsBuilder::build`] validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// `metrics.rollingStats.timeInMilliseconds`: the rolling counter window. Default 10 s.
    pub rolling_stats_window: Duration,
    /// `metrics.rollingStats.numBuckets`: buckets in that window. Default 10. The window must
    /// divide evenly into buckets.
    pub rolling_stats_buckets: u32,
    /// `metrics.rollingPercentile.timeInMilliseconds`: the latency percentile window. Default 60 s.
    pub rolling_percentile_window: Duration,
    /// `metrics.rollingPercentile.numBuckets`: buckets in that window. Default 6.
    pub rolling_percentile_buckets: u32,
    /// `metrics.rollingPercentile.enabled`: whether latencies are recorded. Default `true`.
    pub rolling_percentile_enabled: bool,
    /// `metrics.healthSnapshot.intervalInMilliseconds`: how often health counts are taken,
    /// and the size of the health window's buckets. Default 500 ms.
    pub health_snapshot_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            rolling_stats_window: Duration::from_secs(10),
            rolling_stats_buckets: 10,
            rolling_percentile_window: Duration::from_secs(60),
            rolling_percentile_buckets: 6,
            rolling_percentile_enabled: true,
            health_snapshot_interval: Duration::from_millis(500),
        }
    }
}

impl MetricsConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// When a bucket count is zero, a window is shorter than 1 ms or does not divide evenly
    /// into its buckets, or the health interval is zero or longer than the window.
    pub fn validate(&self) -> Result<()> {
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
        )?;
        let stats_ms = self.rolling_stats_window.as_millis();
        let health_ms = self.health_snapshot_interval.as_millis();
        ensure(
            health_ms >= 1 && health_ms <= stats_ms,
            "metrics.healthSnapshot.intervalInMilliseconds",
            || format!("{health_ms} ms must be between 1 ms and the rolling window"),
        )?;
        Ok(())
    }

    fn stats_bucket(&self) -> Duration {
        self.rolling_stats_window / self.rolling_stats_buckets
    }

    fn percentile_bucket(&self) -> Duration {
        self.rolling_percentile_window / self.rolling_percentile_buckets
    }

    fn health_buckets(&self) -> usize {
        let n = self.rolling_stats_window.as_nanos() / self.health_snapshot_interval.as_nanos();
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }
}

// === Snapshot types ===

/// Counts of every event type.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    counts: [u64; EVENT_COUNT],
}

impl EventCounts {
    /// The count of one event type.
    pub fn get(&self, event: EventType) -> u64 {
        self.counts[event.index()]
    }

    /// Hystrix's derived `EXCEPTION_THROWN`: bad requests plus fallback failures, missing
    /// fallbacks and fallback rejections (the calls whose caller received an error).
    pub fn exceptions_thrown(&self) -> u64 {
        [
            EventType::BadRequest,
            EventType::FallbackFailure,
            EventType::FallbackMissing,
            EventType::FallbackRejection,
        ]
        .iter()
        .map(|e| self.get(*e))
        .sum()
    }

    /// Every event type with its count.
    pub fn iter(&self) -> impl Iterator<Item = (EventType, u64)> + '_ {
        EventType::ALL.iter().map(move |e| (*e, self.get(*e)))
    }

    fn add(&mut self, other: &[u64; EVENT_COUNT]) {
        for (a, b) in self.counts.iter_mut().zip(other) {
            *a += *b;
        }
    }
}

impl fmt::Debug for EventCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|(_, n)| *n != 0)
                    .map(|(e, n)| (e.name(), n)),
            )
            .finish()
    }
}

/// The numbers a circuit breaker trips on: Hystrix's `HealthCounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthCounts {
    total: u64,
    errors: u64,
}

impl HealthCounts {
    /// Creates health counts from totals (mostly useful in tests).
    pub const fn new(total: u64, errors: u64) -> Self {
        Self { total, errors }
    }

    /// Successes, failures, timeouts and rejections in the window.
    pub fn total_requests(&self) -> u64 {
        self.total
    }

    /// Failures, timeouts and rejections in the window.
    pub fn error_count(&self) -> u64 {
        self.errors
    }

    /// `errors / total * 100`, truncated to an integer as Hystrix does; 0 with no requests.
    pub fn error_percentage(&self) -> u32 {
        if self.total == 0 {
            0
        } else {
            (self.errors as f64 / self.total as f64 * 100.0) as u32
        }
    }

    fn add_events(&mut self, counts: &[u64; EVENT_COUNT]) {
        for e in EventType::ALL {
            if e.counts_in_health() {
                self.total += counts[e.index()];
                if e.is_health_error() {
                    self.errors += counts[e.index()];
                }
            }
        }
    }
}

/// Latency percentiles over the rolling percentile window.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Latency {
    count: u64,
    mean_us: u64,
    percentiles_us: [u64; 9],
}

impl Latency {
    /// The percentiles the dashboard shows, in the order of [`Latency::percentiles`].
    pub const PERCENTILES: [f64; 9] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0];

    fn from_histogram(h: &HistogramCounts) -> Self {
        Self {
            count: h.count(),
            mean_us: h.mean(),
            percentiles_us: Self::PERCENTILES.map(|p| h.value_at_percentile(p)),
        }
    }

    /// How many latencies were recorded in the window.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean latency.
    pub fn mean(&self) -> Duration {
        Duration::from_micros(self.mean_us)
    }

    /// The latency at one of [`Latency::PERCENTILES`]; `None` for any other percentile.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        Self::PERCENTILES
            .iter()
            .position(|q| *q == p)
            .map(|i| Duration::from_micros(self.percentiles_us[i]))
    }

    /// Every percentile with its value.
    pub fn percentiles(&self) -> impl Iterator<Item = (f64, Duration)> + '_ {
        Self::PERCENTILES
            .iter()
            .zip(self.percentiles_us.iter())
            .map(|(p, v)| (*p, Duration::from_micros(*v)))
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.count)
            .field("mean", &self.mean())
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.percentile(100.0))
            .finish()
    }
}

/// Everything [`CommandMetrics`] knows at one moment.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    rolling: EventCounts,
    cumulative: EventCounts,
    health: HealthCounts,
    current_concurrency: u64,
    rolling_max_concurrency: u64,
    latency_execute: Latency,
    latency_total: Latency,
}

impl MetricsSnapshot {
    /// Event counts over the rolling window's completed buckets.
    pub fn rolling(&self) -> &EventCounts {
        &self.rolling
    }

    /// Event counts since the metrics were created.
    pub fn cumulative(&self) -> &EventCounts {
        &self.cumulative
    }

    /// Health counts over the health window (reset when a circuit closes).
    pub fn health(&self) -> HealthCounts {
        self.health
    }

    /// Executions in flight now.
    pub fn current_concurrency(&self) -> u64 {
        self.current_concurrency
    }

    /// The highest concurrency seen in the rolling window.
    pub fn rolling_max_concurrency(&self) -> u64 {
        self.rolling_max_concurrency
    }

    /// Execution latency (`latencyExecute`).
    pub fn latency_execute(&self) -> &Latency {
        &self.latency_execute
    }

    /// Total latency as the caller saw it (`latencyTotal`).
    pub fn latency_total(&self) -> &Latency {
        &self.latency_total
    }
}

// === CommandMetrics ===

#[derive(Default)]
struct StatsBucket {
    counts: [u64; EVENT_COUNT],
    max_concurrency: u64,
}

#[derive(Default)]
struct HealthBucket(HealthCounts);

struct Windows {
    stats: Ring<StatsBucket>,
    health: Ring<HealthBucket>,
    execute: Ring<HistogramCounts>,
    total: Ring<HistogramCounts>,
    cumulative: EventCounts,
}

/// Every cell this command ever leased, with what the harvest saw in it last.
#[derive(Default)]
struct CellSet {
    all: Vec<(&'static Cell, [u64; EVENT_COUNT])>,
    free: Vec<usize>,
}

pub(crate) struct MetricsInner {
    key: CommandKey,
    group: GroupKey,
    pool: PoolKey,
    config: MetricsConfig,
    owner: u64,
    cells: Mutex<CellSet>,
    shared: CellRef,
    concurrency: AtomicU64,
    max_concurrency: AtomicU64,
    latency_execute: LiveHistogram,
    latency_total: LiveHistogram,
    windows: Mutex<Windows>,
}

/// Rolling metrics for one command. Cheap to clone: clones share the same metrics.
///
/// See the [module docs](self) for what is measured and how.
#[derive(Clone)]
pub struct CommandMetrics {
    inner: Arc<MetricsInner>,
}

impl fmt::Debug for CommandMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandMetrics")
            .field("key", &self.inner.key)
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

/// Builds [`CommandMetrics`].
#[derive(Debug, Clone)]
pub struct CommandMetricsBuilder {
    key: CommandKey,
    group: Option<GroupKey>,
    pool: Option<PoolKey>,
    config: MetricsConfig,
}

impl CommandMetricsBuilder {
    /// The group the command reports under. Defaults to the command key.
    pub fn group(mut self, group: impl Into<GroupKey>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The thread pool the command runs in, as the dashboard's `threadPool` field shows it.
    /// Defaults to the group key, as in Hystrix.
    pub fn thread_pool(mut self, pool: impl Into<PoolKey>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Window sizes.
    pub fn config(mut self, config: MetricsConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the metrics.
    ///
    /// # Errors
    ///
    /// When the configuration is invalid (see [`MetricsConfig::validate`]).
    pub fn build(self) -> Result<CommandMetrics> {
        self.config.validate()?;
        let group = self
            .group
            .unwrap_or_else(|| GroupKey::new(self.key.as_str()));
        let pool = self.pool.unwrap_or_else(|| PoolKey::new(group.as_str()));
        let now = Instant::now();
        let owner = cell::new_owner_id();
        let shared = cell::take(owner);
        let c = &self.config;
        let windows = Windows {
            stats: Ring::new(now, c.stats_bucket(), c.rolling_stats_buckets as usize),
            health: Ring::new(now, c.health_snapshot_interval, c.health_buckets()),
            execute: Ring::new(
                now,
                c.percentile_bucket(),
                c.rolling_percentile_buckets as usize,
            ),
            total: Ring::new(
                now,
                c.percentile_bucket(),
                c.rolling_percentile_buckets as usize,
            ),
            cumulative: EventCounts::default(),
        };
        Ok(CommandMetrics {
            inner: Arc::new(MetricsInner {
                key: self.key,
                group,
                pool,
                config: self.config,
                owner,
                cells: Mutex::new(CellSet {
                    all: vec![(shared, shared.read())],
                    free: Vec::new(),
                }),
                shared: CellRef::new(shared, owner),
                concurrency: AtomicU64::new(0),
                max_concurrency: AtomicU64::new(0),
                latency_execute: LiveHistogram::new(),
                latency_total: LiveHistogram::new(),
                windows: Mutex::new(windows),
            }),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves only counters behind, which are
    // still consistent enough to keep reporting.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CommandMetrics {
    /// Starts building metrics for a command.
    pub fn builder(key: impl Into<CommandKey>) -> CommandMetricsBuilder {
        CommandMetricsBuilder {
            key: key.into(),
            group: None,
            pool: None,
            config: MetricsConfig::default(),
        }
    }

    /// Metrics with Hystrix's default windows, grouped under the command key.
    pub fn new(key: impl Into<CommandKey>) -> Self {
        Self::builder(key)
            .build()
            .expect("the default metrics configuration is valid")
    }

    /// The command key.
    pub fn key(&self) -> &CommandKey {
        &self.inner.key
    }

    /// The group key.
    pub fn group(&self) -> &GroupKey {
        &self.inner.group
    }

    /// The thread-pool key shown on the dashboard.
    pub fn thread_pool(&self) -> &PoolKey {
        &self.inner.pool
    }

    /// The window configuration.
    pub fn config(&self) -> &MetricsConfig {
        &self.inner.config
    }

    /// Records one event. Layers in this crate record their own events; this is for
    /// custom middleware.
    pub fn record(&self, event: EventType) {
        self.inner.shared.record(event);
    }

    /// Records `n` events of one type at once.
    pub fn record_n(&self, event: EventType, n: u64) {
        self.inner.shared.record_n(event, n);
    }

    /// Executions in flight now.
    pub fn current_concurrency(&self) -> u64 {
        self.inner.concurrency.load(Ordering::Relaxed)
    }

    /// Takes a consistent snapshot of every statistic (harvesting pending counts first).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let w = self.harvest(Instant::now());
        let mut rolling = EventCounts::default();
        let mut max_concurrency = 0;
        for b in w.stats.completed() {
            rolling.add(&b.counts);
            max_concurrency = max_concurrency.max(b.max_concurrency);
        }
        let health = health_of(&w);
        let mut exec = HistogramCounts::default();
        let mut total = HistogramCounts::default();
        for h in w.execute.completed() {
            exec.merge(h);
        }
        for h in w.total.completed() {
            total.merge(h);
        }
        let cumulative = w.cumulative;
        drop(w);
        MetricsSnapshot {
            rolling,
            cumulative,
            health,
            current_concurrency: self.current_concurrency(),
            rolling_max_concurrency: max_concurrency,
            latency_execute: Latency::from_histogram(&exec),
            latency_total: Latency::from_histogram(&total),
        }
    }

    /// The health counts over the completed buckets of the health window.
    pub fn health(&self) -> HealthCounts {
        let w = self.harvest(Instant::now());
        health_of(&w)
    }

    // --- crate-internal plumbing ---

    /// Leases a cell for one service clone; the lease returns it when dropped.
    pub(crate) fn lease(&self) -> Lease {
        let mut set = lock(&self.inner.cells);
        let index = match set.free.pop() {
            Some(i) => i,
            None => {
                let c = cell::take(self.inner.owner);
                set.all.push((c, c.read()));
                set.all.len() - 1
            }
        };
        let cell = CellRef::new(set.all[index].0, self.inner.owner);
        drop(set);
        Lease {
            metrics: self.clone(),
            index,
            cell,
        }
    }

    /// Marks the start of an execution; returns the concurrency including this one.
    #[inline]
    pub(crate) fn execution_started(&self) -> u64 {
        let c = self.inner.concurrency.fetch_add(1, Ordering::Relaxed) + 1;
        if c > self.inner.max_concurrency.load(Ordering::Relaxed) {
            self.inner.max_concurrency.fetch_max(c, Ordering::Relaxed);
        }
        c
    }

    #[inline]
    pub(crate) fn execution_finished(&self) {
        self.inner.concurrency.fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn record_execute_latency(&self, d: Duration) {
        if self.inner.config.rolling_percentile_enabled {
            self.inner.latency_execute.record_duration(d);
        }
    }

    #[inline]
    pub(crate) fn record_total_latency(&self, d: Duration) {
        if self.inner.config.rolling_percentile_enabled {
            self.inner.latency_total.record_duration(d);
        }
    }

    /// Moves pending counts into the windows and rotates them to `now`.
    fn harvest(&self, now: Instant) -> MutexGuard<'_, Windows> {
        let inner = &*self.inner;
        let mut w = lock(&inner.windows);
        let mut deltas = [0u64; EVENT_COUNT];
        for (cell, last) in lock(&inner.cells).all.iter_mut() {
            let now = cell.read();
            for i in 0..EVENT_COUNT {
                deltas[i] += now[i].wrapping_sub(last[i]);
            }
            *last = now;
        }
        let current = inner.concurrency.load(Ordering::Relaxed);
        let max = inner.max_concurrency.swap(current, Ordering::Relaxed);
        let bucket = w.stats.current();
        for (a, b) in bucket.counts.iter_mut().zip(&deltas) {
            *a += *b;
        }
        bucket.max_concurrency = bucket.max_concurrency.max(max);
        w.stats.advance(now);
        w.health.current().0.add_events(&deltas);
        w.health.advance(now);
        w.cumulative.add(&deltas);
        inner.latency_execute.drain_into(w.execute.current());
        w.execute.advance(now);
        inner.latency_total.drain_into(w.total.current());
        w.total.advance(now);
        w
    }

    /// Harvests and returns the health counts: what the breaker's driver calls every
    /// health-snapshot interval.
    pub(crate) fn health_tick(&self, now: Instant) -> HealthCounts {
        let w = self.harvest(now);
        health_of(&w)
    }

    /// Forgets the health window (Hystrix's `resetStream` when a circuit closes).
    pub(crate) fn reset_health(&self) {
        let mut w = self.harvest(Instant::now());
        w.health.clear();
    }

    /// When the health bucket now filling ends: the breaker's driver ticks on these
    /// boundaries so that every health snapshot covers whole buckets.
    pub(crate) fn next_health_boundary(&self) -> Instant {
        lock(&self.inner.windows).health.current_end()
    }
}

impl Drop for MetricsInner {
    fn drop(&mut self) {
        let set = std::mem::take(self.cells.get_mut().unwrap_or_else(PoisonError::into_inner));
        cell::give_back(set.all.into_iter().map(|(c, _)| c));
    }
}

/// A cell leased by one service clone. Cloning leases another cell.
pub(crate) struct Lease {
    metrics: CommandMetrics,
    index: usize,
    cell: CellRef,
}

impl Lease {
    #[inline]
    pub(crate) fn cell(&self) -> CellRef {
        self.cell
    }
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        self.metrics.lease()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.metrics.inner.cells).free.push(self.index);
    }
}

fn health_of(w: &Windows) -> HealthCounts {
    let mut h = HealthCounts::default();
    for b in w.health.completed() {
        h.total += b.0.total;
        h.errors += b.0.errors;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_percentage_truncates_like_hystrix() {
        assert_eq!(HealthCounts::new(0, 0).error_percentage(), 0);
        assert_eq!(HealthCounts::new(3, 1).error_percentage(), 33);
        assert_eq!(HealthCounts::new(3, 2).error_percentage(), 66);
        assert_eq!(HealthCounts::new(20, 10).error_percentage(), 50);
    }

    #[test]
    fn config_validation() {
        assert!(MetricsConfig::default().validate().is_ok());
        let c = MetricsConfig {
            rolling_stats_buckets: 3,
            ..MetricsConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert!(err.is_config(), "{err}");
        let c = MetricsConfig {
            health_snapshot_interval: Duration::ZERO,
            ..MetricsConfig::default()
        };
        assert!(c.validate().is_err());
        let c = MetricsConfig {
            rolling_percentile_buckets: 0,
            ..MetricsConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn rolling_counts_cover_completed_buckets() {
        let m = CommandMetrics::new("cmd");
        let r = m.lease();
        r.cell().record(EventType::Success);
        r.cell().record(EventType::Failure);
        // Not yet in a completed bucket.
        let s = m.snapshot();
        assert_eq!(s.rolling().get(EventType::Success), 0);
        assert_eq!(s.cumulative().get(EventType::Success), 1);
        tokio::time::advance(Duration::from_millis(1000)).await;
        let s = m.snapshot();
        assert_eq!(s.rolling().get(EventType::Success), 1);
        assert_eq!(s.rolling().get(EventType::Failure), 1);
        assert_eq!(s.health(), HealthCounts::new(2, 1));
        // Ten seconds later the bucket has rolled out of the window.
        tokio::time::advance(Duration::from_secs(10)).await;
        let s = m.snapshot();
        assert_eq!(s.rolling().get(EventType::Success), 0);
        assert_eq!(s.health(), HealthCounts::new(0, 0));
        assert_eq!(s.cumulative().get(EventType::Failure), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn leases_are_reused_and_late_records_still_count() {
        let m = CommandMetrics::new("cmd");
        let r = m.lease();
        let late = r.cell();
        r.cell().record_n(EventType::Timeout, 5);
        drop(r);
        // A future that outlived its service records into the same command.
        late.record(EventType::Timeout);
        let again = m.lease();
        again.cell().record_short_circuit();
        tokio::time::advance(Duration::from_secs(1)).await;
        let s = m.snapshot();
        assert_eq!(s.rolling().get(EventType::Timeout), 6);
        assert_eq!(s.rolling().get(EventType::ShortCircuited), 1);
        assert_eq!(
            lock(&m.inner.cells).all.len(),
            2,
            "the shared cell and one reused lease"
        );
        assert_eq!(m.snapshot().cumulative().get(EventType::Timeout), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn cells_of_dropped_metrics_record_nothing() {
        let m = CommandMetrics::new("gone");
        let late = m.lease().cell();
        drop(m);
        let fresh = CommandMetrics::new("fresh");
        let _lease = fresh.lease();
        late.record(EventType::Failure);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(fresh.snapshot().cumulative().get(EventType::Failure), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_and_latency() {
        let m = CommandMetrics::new("cmd");
        assert_eq!(m.execution_started(), 1);
        assert_eq!(m.execution_started(), 2);
        m.execution_finished();
        m.record_execute_latency(Duration::from_millis(7));
        m.record_total_latency(Duration::from_millis(9));
        tokio::time::advance(Duration::from_secs(10)).await;
        let s = m.snapshot();
        assert_eq!(s.current_concurrency(), 1);
        assert_eq!(s.rolling_max_concurrency(), 2);
        assert_eq!(s.latency_execute().count(), 1);
        assert_eq!(
            s.latency_execute().percentile(50.0),
            Some(Duration::from_millis(7))
        );
        assert_eq!(s.latency_total().mean(), Duration::from_millis(9));
        assert_eq!(s.latency_total().percentile(42.0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn exceptions_thrown_is_derived() {
        let m = CommandMetrics::new("cmd");
        m.record(EventType::BadRequest);
        m.record(EventType::FallbackMissing);
        m.record(EventType::FallbackSuccess);
        assert_eq!(m.snapshot().cumulative().exceptions_thrown(), 2);
    }
}
