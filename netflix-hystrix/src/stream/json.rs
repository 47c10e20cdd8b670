//! The dashboard's JSON objects, field for field as Hystrix's `SerialHystrixDashboardData`
//! writes them (same names, same order, numbers as numbers).

use crate::collapser::{CollapserConfig, CollapserSnapshot};
use crate::metrics::{EventType, Latency, MetricsSnapshot};
use crate::pool::PoolSnapshot;
use crate::registry::{Command, CommandSettings};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::time::Duration;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `{"0": .., "25": .., ..., "100": ..}` in milliseconds, in Hystrix's key order.
struct Percentiles<'a>(&'a Latency);

impl Serialize for Percentiles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const KEYS: [&str; 9] = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"];
        let mut m = s.serialize_map(Some(KEYS.len()))?;
        for (k, (_, v)) in KEYS.iter().zip(self.0.percentiles()) {
            m.serialize_entry(k, &ms(v))?;
        }
        m.end()
    }
}

/// The batch-size percentiles, keyed `"25"` to `"100"` (no `"0"`, as in Hystrix).
struct BatchSizes<'a>(&'a CollapserSnapshot);

impl Serialize for BatchSizes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const KEYS: [&str; 8] = ["25", "50", "75", "90", "95", "99", "99.5", "100"];
        let mut m = s.serialize_map(Some(KEYS.len()))?;
        for (k, p) in KEYS.iter().zip(CollapserSnapshot::PERCENTILES) {
            m.serialize_entry(k, &self.0.batch_size_percentile(p).unwrap_or(0))?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HystrixCommand<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    group: &'a str,
    current_time: u64,
    is_circuit_breaker_open: bool,
    error_percentage: u32,
    error_count: u64,
    request_count: u64,
    rolling_count_bad_requests: u64,
    rolling_count_collapsed_requests: u64,
    rolling_count_emit: u64,
    rolling_count_exceptions_thrown: u64,
    rolling_count_failure: u64,
    rolling_count_fallback_emit: u64,
    rolling_count_fallback_failure: u64,
    rolling_count_fallback_missing: u64,
    rolling_count_fallback_rejection: u64,
    rolling_count_fallback_success: u64,
    rolling_count_responses_from_cache: u64,
    rolling_count_semaphore_rejected: u64,
    rolling_count_short_circuited: u64,
    rolling_count_success: u64,
    rolling_count_thread_pool_rejected: u64,
    rolling_count_timeout: u64,
    current_concurrent_execution_count: u64,
    rolling_max_concurrent_execution_count: u64,
    #[serde(rename = "latencyExecute_mean")]
    latency_execute_mean: u64,
    latency_execute: Percentiles<'a>,
    #[serde(rename = "latencyTotal_mean")]
    latency_total_mean: u64,
    latency_total: Percentiles<'a>,
    #[serde(rename = "propertyValue_circuitBreakerRequestVolumeThreshold")]
    p_cb_volume: u32,
    #[serde(rename = "propertyValue_circuitBreakerSleepWindowInMilliseconds")]
    p_cb_sleep: u64,
    #[serde(rename = "propertyValue_circuitBreakerErrorThresholdPercentage")]
    p_cb_error: u32,
    #[serde(rename = "propertyValue_circuitBreakerForceOpen")]
    p_cb_force_open: bool,
    #[serde(rename = "propertyValue_circuitBreakerForceClosed")]
    p_cb_force_closed: bool,
    #[serde(rename = "propertyValue_circuitBreakerEnabled")]
    p_cb_enabled: bool,
    #[serde(rename = "propertyValue_executionIsolationStrategy")]
    p_isolation: &'static str,
    #[serde(rename = "propertyValue_executionIsolationThreadTimeoutInMilliseconds")]
    p_thread_timeout: u64,
    #[serde(rename = "propertyValue_executionTimeoutInMilliseconds")]
    p_timeout: u64,
    #[serde(rename = "propertyValue_executionIsolationThreadInterruptOnTimeout")]
    p_interrupt: bool,
    #[serde(rename = "propertyValue_executionIsolationThreadPoolKeyOverride")]
    p_pool_override: Option<&'a str>,
    #[serde(rename = "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests")]
    p_semaphore_max: u32,
    #[serde(rename = "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests")]
    p_fallback_max: u32,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    p_window: u64,
    #[serde(rename = "propertyValue_requestCacheEnabled")]
    p_request_cache: bool,
    #[serde(rename = "propertyValue_requestLogEnabled")]
    p_request_log: bool,
    reporting_hosts: u32,
    thread_pool: &'a str,
}

/// One `HystrixCommand` object.
pub(crate) fn command(
    now_ms: u64,
    c: &Command,
    s: &MetricsSnapshot,
    set: &CommandSettings,
) -> String {
    let r = s.rolling();
    let h = s.health();
    let window = ms(c.metrics().config().rolling_stats_window);
    let obj = HystrixCommand {
        kind: "HystrixCommand",
        name: c.key().as_str(),
        group: c.group().as_str(),
        current_time: now_ms,
        is_circuit_breaker_open: c.breaker().state().is_open(),
        error_percentage: h.error_percentage(),
        error_count: h.error_count(),
        request_count: h.total_requests(),
        rolling_count_bad_requests: r.get(EventType::BadRequest),
        rolling_count_collapsed_requests: r.get(EventType::Collapsed),
        // Emits belong to Hystrix's observable commands, which have no analogue here.
        rolling_count_emit: 0,
        rolling_count_exceptions_thrown: r.exceptions_thrown(),
        rolling_count_failure: r.get(EventType::Failure),
        rolling_count_fallback_emit: 0,
        rolling_count_fallback_failure: r.get(EventType::FallbackFailure),
        rolling_count_fallback_missing: r.get(EventType::FallbackMissing),
        rolling_count_fallback_rejection: r.get(EventType::FallbackRejection),
        rolling_count_fallback_success: r.get(EventType::FallbackSuccess),
        rolling_count_responses_from_cache: r.get(EventType::ResponseFromCache),
        rolling_count_semaphore_rejected: r.get(EventType::SemaphoreRejected),
        rolling_count_short_circuited: r.get(EventType::ShortCircuited),
        rolling_count_success: r.get(EventType::Success),
        rolling_count_thread_pool_rejected: r.get(EventType::ThreadPoolRejected),
        rolling_count_timeout: r.get(EventType::Timeout),
        current_concurrent_execution_count: s.current_concurrency(),
        rolling_max_concurrent_execution_count: s.rolling_max_concurrency(),
        latency_execute_mean: ms(s.latency_execute().mean()),
        latency_execute: Percentiles(s.latency_execute()),
        latency_total_mean: ms(s.latency_total().mean()),
        latency_total: Percentiles(s.latency_total()),
        p_cb_volume: set.breaker.request_volume_threshold,
        p_cb_sleep: ms(set.breaker.sleep_window),
        p_cb_error: set.breaker.error_threshold_percentage,
        p_cb_force_open: set.breaker.force_open,
        p_cb_force_closed: set.breaker.force_closed,
        p_cb_enabled: set.breaker.enabled,
        p_isolation: set.isolation.name(),
        p_thread_timeout: ms(set.timeout),
        p_timeout: ms(set.timeout),
        p_interrupt: set.interrupt_on_timeout,
        p_pool_override: set.thread_pool_key_override.as_deref(),
        p_semaphore_max: set.semaphore_max_concurrent,
        p_fallback_max: set.fallback_max_concurrent,
        p_window: window,
        p_request_cache: set.request_cache_enabled,
        p_request_log: set.request_log_enabled,
        reporting_hosts: 1,
        thread_pool: c.thread_pool_key().as_str(),
    };
    serde_json::to_string(&obj).expect("dashboard objects always serialize")
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HystrixThreadPool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    current_time: u64,
    current_active_count: u64,
    current_completed_task_count: u64,
    current_core_pool_size: u64,
    current_largest_pool_size: u64,
    current_maximum_pool_size: u64,
    current_pool_size: u64,
    current_queue_size: u64,
    current_task_count: u64,
    rolling_count_threads_executed: u64,
    rolling_max_active_threads: u64,
    rolling_count_command_rejections: u64,
    #[serde(rename = "propertyValue_queueSizeRejectionThreshold")]
    p_threshold: u64,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    p_window: u64,
    reporting_hosts: u32,
}

/// The numbers of one (real or synthetic) pool panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PoolNumbers {
    pub(crate) active: u64,
    pub(crate) completed: u64,
    pub(crate) core: u64,
    pub(crate) largest: u64,
    pub(crate) maximum: u64,
    pub(crate) size: u64,
    pub(crate) queue: u64,
    pub(crate) tasks: u64,
    pub(crate) rolling_executed: u64,
    pub(crate) rolling_max_active: u64,
    pub(crate) rolling_rejected: u64,
    pub(crate) threshold: u64,
    pub(crate) window: u64,
}

impl From<&PoolSnapshot> for PoolNumbers {
    fn from(p: &PoolSnapshot) -> Self {
        Self {
            active: u64::from(p.active_count()),
            completed: p.completed_task_count(),
            core: u64::from(p.core_pool_size()),
            largest: u64::from(p.largest_pool_size()),
            maximum: u64::from(p.maximum_pool_size()),
            size: u64::from(p.pool_size()),
            queue: p.queue_size(),
            tasks: p.task_count(),
            rolling_executed: p.rolling_executed(),
            rolling_max_active: p.rolling_max_active(),
            rolling_rejected: p.rolling_rejected(),
            threshold: u64::from(p.queue_size_rejection_threshold()),
            window: ms(p.rolling_stats_window()),
        }
    }
}

/// One `HystrixThreadPool` object.
pub(crate) fn thread_pool(now_ms: u64, name: &str, p: &PoolNumbers) -> String {
    let obj = HystrixThreadPool {
        kind: "HystrixThreadPool",
        name,
        current_time: now_ms,
        current_active_count: p.active,
        current_completed_task_count: p.completed,
        current_core_pool_size: p.core,
        current_largest_pool_size: p.largest,
        current_maximum_pool_size: p.maximum,
        current_pool_size: p.size,
        current_queue_size: p.queue,
        current_task_count: p.tasks,
        rolling_count_threads_executed: p.rolling_executed,
        rolling_max_active_threads: p.rolling_max_active,
        rolling_count_command_rejections: p.rolling_rejected,
        p_threshold: p.threshold,
        p_window: p.window,
        reporting_hosts: 1,
    };
    serde_json::to_string(&obj).expect("dashboard objects always serialize")
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HystrixCollapser<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    current_time: u64,
    rolling_count_requests_batched: u64,
    rolling_count_batches: u64,
    rolling_count_responses_from_cache: u64,
    #[serde(rename = "batchSize_mean")]
    batch_size_mean: u64,
    batch_size: BatchSizes<'a>,
    #[serde(rename = "propertyValue_requestCacheEnabled")]
    p_request_cache: bool,
    #[serde(rename = "propertyValue_maxRequestsInBatch")]
    p_max_batch: u64,
    #[serde(rename = "propertyValue_timerDelayInMilliseconds")]
    p_timer_delay: u64,
    reporting_hosts: u32,
}

/// One `HystrixCollapser` object.
pub(crate) fn collapser(
    now_ms: u64,
    name: &str,
    s: &CollapserSnapshot,
    c: &CollapserConfig,
) -> String {
    let obj = HystrixCollapser {
        kind: "HystrixCollapser",
        name,
        current_time: now_ms,
        rolling_count_requests_batched: s.rolling_requests_batched(),
        rolling_count_batches: s.rolling_batches(),
        // Identical requests are not merged within a batch, so none come from a cache.
        rolling_count_responses_from_cache: 0,
        batch_size_mean: s.batch_size_mean(),
        batch_size: BatchSizes(s),
        p_request_cache: false,
        p_max_batch: u64::try_from(c.max_requests_in_batch)
            .unwrap_or(u64::MAX)
            .min(i32::MAX as u64),
        p_timer_delay: ms(c.timer_delay),
        reporting_hosts: 1,
    };
    serde_json::to_string(&obj).expect("dashboard objects always serialize")
}
