//! Configuration by Hystrix's property names.
//!
//! Hystrix is configured through properties such as
//! `hystrix.command.GetUser.circuitBreaker.requestVolumeThreshold=10`, with
//! `hystrix.command.default.*` for every command. [`HystrixProperties`] holds such a set:
//! parse it from that text form with [`HystrixProperties::parse`], or (with the `serde`
//! feature) deserialize it from any format, using the same names:
//!
//! ```json
//! { "command": { "default": { "execution.isolation.thread.timeoutInMilliseconds": 500 },
//!                "GetUser": { "circuitBreaker.requestVolumeThreshold": 10 } },
//!   "threadpool": { "UserService": { "coreSize": 20 } } }
//! ```
//!
//! Each property is optional: an unset one falls back to the `default` entry, then to
//! Hystrix's built-in default. Apply a set to a [`Registry`](crate::registry::Registry)
//! with [`Registry::configure`](crate::registry::Registry::configure); thresholds,
//! timeouts, sizes and force flags take effect at once.
//!
//! # Example
//!
//! ```
//! use netflix_hystrix::config::HystrixProperties;
//!
//! let props = HystrixProperties::parse(
//!     "# comments and blank lines are fine\n\
//!      hystrix.command.default.circuitBreaker.errorThresholdPercentage = 40\n\
//!      hystrix.command.GetUser.execution.isolation.thread.timeoutInMilliseconds = 250\n\
//!      hystrix.threadpool.UserService.coreSize = 20\n",
//! )?;
//! assert_eq!(props.command("GetUser").execution_timeout_ms, Some(250));
//! assert_eq!(props.command("GetUser").circuit_breaker_error_threshold_percentage, Some(40));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How a command is isolated (`execution.isolation.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum IsolationStrategy {
    /// A thread pool ([`ThreadPool`](crate::pool::ThreadPool)). Hystrix's default.
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "THREAD"))]
    Thread,
    /// A semaphore ([`BulkheadLayer`](crate::bulkhead::BulkheadLayer)).
    #[cfg_attr(feature = "serde", serde(rename = "SEMAPHORE"))]
    Semaphore,
}

impl IsolationStrategy {
    /// `"THREAD"` or `"SEMAPHORE"`.
    pub const fn name(self) -> &'static str {
        match self {
            IsolationStrategy::Thread => "THREAD",
            IsolationStrategy::Semaphore => "SEMAPHORE",
        }
    }
}

impl fmt::Display for IsolationStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A property value parsed from text.
trait PropValue: Sized {
    fn parse_prop(name: &str, value: &str) -> Result<Self>;
}

fn invalid(name: &str, value: &str, want: &str) -> Error {
    Error::config("property", format!("`{name}` = `{value}` is not {want}"))
}

macro_rules! from_str_prop {
    ($($t:ty => $want:literal),*) => {$(
        impl PropValue for $t {
            fn parse_prop(name: &str, value: &str) -> Result<Self> {
                <$t>::from_str(value).map_err(|_| invalid(name, value, $want))
            }
        }
    )*};
}

from_str_prop!(u32 => "a non-negative integer", u64 => "a non-negative integer", i32 => "an integer", bool => "true or false");

impl PropValue for String {
    fn parse_prop(_: &str, value: &str) -> Result<Self> {
        Ok(value.to_string())
    }
}

impl PropValue for IsolationStrategy {
    fn parse_prop(name: &str, value: &str) -> Result<Self> {
        match value {
            "THREAD" => Ok(IsolationStrategy::Thread),
            "SEMAPHORE" => Ok(IsolationStrategy::Semaphore),
            _ => Err(invalid(name, value, "THREAD or SEMAPHORE")),
        }
    }
}

/// Declares a property set once: the struct, its serde names and its text parser all come
/// from the same list, so a property's name is written in one place.
macro_rules! properties {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $prop:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
        #[non_exhaustive]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[doc = concat!("\n\nProperty `", $prop, "`.")]
                #[cfg_attr(feature = "serde", serde(rename = $prop, skip_serializing_if = "Option::is_none"))]
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// Every property name this set knows.
            pub const NAMES: &'static [&'static str] = &[$($prop),*];

            /// Sets one property from text.
            ///
            /// # Errors
            ///
            /// When the name is unknown or the value does not parse.
            pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
                match name {
                    $($prop => self.$field = Some(<$ty as PropValue>::parse_prop($prop, value)?),)*
                    _ => return Err(Error::unknown_property(name)),
                }
                Ok(())
            }

            /// `over`'s properties where set, this set's elsewhere.
            pub fn overlaid_with(&self, over: &Self) -> Self {
                Self { $($field: over.$field.clone().or_else(|| self.$field.clone()),)* }
            }
        }

        impl Overlay for $name {
            fn overlay(&self, over: &Self) -> Self {
                self.overlaid_with(over)
            }
        }
    };
}

/// A property set that can be layered (a key's own over `default`).
trait Overlay: Default + Clone {
    fn overlay(&self, over: &Self) -> Self;
}

/// The properties for `key` in one family: its own over the family's `default`.
fn for_key<T: Overlay>(family: &BTreeMap<String, T>, key: &str) -> T {
    let d = family.get(DEFAULT_KEY).cloned().unwrap_or_default();
    match family.get(key) {
        Some(own) => d.overlay(own),
        None => d,
    }
}

/// Adds `from`'s entries to `into`, `from` winning where both set a property.
fn merge_family<T: Overlay>(into: &mut BTreeMap<String, T>, from: &BTreeMap<String, T>) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = e.overlay(v);
    }
}

properties! {
    /// A command's properties (`hystrix.command.<key>.*`).
    pub struct CommandProperties {
        /// `THREAD` or `SEMAPHORE`.
        execution_isolation_strategy: IsolationStrategy = "execution.isolation.strategy",
        /// The timeout in milliseconds (for either isolation).
        execution_timeout_ms: u64 = "execution.isolation.thread.timeoutInMilliseconds",
        /// Whether calls time out at all.
        execution_timeout_enabled: bool = "execution.timeout.enabled",
        /// Whether a timed-out call is cancelled (always true here: the future is dropped).
        execution_interrupt_on_timeout: bool = "execution.isolation.thread.interruptOnTimeout",
        /// Semaphore isolation's limit.
        execution_semaphore_max_concurrent: u32 = "execution.isolation.semaphore.maxConcurrentRequests",
        /// The fallback's concurrency limit.
        fallback_semaphore_max_concurrent: u32 = "fallback.isolation.semaphore.maxConcurrentRequests",
        /// Whether fallbacks run.
        fallback_enabled: bool = "fallback.enabled",
        /// Whether the circuit breaker acts at all.
        circuit_breaker_enabled: bool = "circuitBreaker.enabled",
        /// Requests in the window before the breaker may trip.
        circuit_breaker_request_volume_threshold: u32 = "circuitBreaker.requestVolumeThreshold",
        /// The sleep window in milliseconds.
        circuit_breaker_sleep_window_ms: u64 = "circuitBreaker.sleepWindowInMilliseconds",
        /// The error percentage that trips the breaker.
        circuit_breaker_error_threshold_percentage: u32 = "circuitBreaker.errorThresholdPercentage",
        /// Reject everything.
        circuit_breaker_force_open: bool = "circuitBreaker.forceOpen",
        /// Allow everything.
        circuit_breaker_force_closed: bool = "circuitBreaker.forceClosed",
        /// The rolling counter window in milliseconds (fixed when the command is created).
        metrics_rolling_stats_ms: u64 = "metrics.rollingStats.timeInMilliseconds",
        /// Buckets in that window (fixed when the command is created).
        metrics_rolling_stats_buckets: u32 = "metrics.rollingStats.numBuckets",
        /// Whether latencies are recorded (fixed when the command is created).
        metrics_rolling_percentile_enabled: bool = "metrics.rollingPercentile.enabled",
        /// The percentile window in milliseconds (fixed when the command is created).
        metrics_rolling_percentile_ms: u64 = "metrics.rollingPercentile.timeInMilliseconds",
        /// Buckets in that window (fixed when the command is created).
        metrics_rolling_percentile_buckets: u32 = "metrics.rollingPercentile.numBuckets",
        /// Accepted for compatibility; unused, as in Hystrix 1.5.
        metrics_rolling_percentile_bucket_size: u32 = "metrics.rollingPercentile.bucketSize",
        /// The health snapshot interval in milliseconds (fixed when the command is created).
        metrics_health_snapshot_ms: u64 = "metrics.healthSnapshot.intervalInMilliseconds",
        /// Whether the command's request cache is used.
        request_cache_enabled: bool = "requestCache.enabled",
        /// Accepted for compatibility and reported on the dashboard.
        request_log_enabled: bool = "requestLog.enabled",
        /// The thread pool to use instead of the group's (per command only).
        thread_pool_key_override: String = "threadPoolKeyOverride",
    }
}

properties! {
    /// A thread pool's properties (`hystrix.threadpool.<key>.*`).
    pub struct ThreadPoolProperties {
        /// Workers kept alive.
        core_size: u32 = "coreSize",
        /// The most workers when diverging is allowed.
        maximum_size: u32 = "maximumSize",
        /// Whether the pool may grow past the core size.
        allow_maximum_size_to_diverge_from_core_size: bool = "allowMaximumSizeToDivergeFromCoreSize",
        /// Minutes a worker above the core size may idle.
        keep_alive_time_minutes: u32 = "keepAliveTimeMinutes",
        /// The queue's capacity; `-1` hands calls only to idle workers (fixed at creation).
        max_queue_size: i32 = "maxQueueSize",
        /// Reject when the queue holds this many.
        queue_size_rejection_threshold: u32 = "queueSizeRejectionThreshold",
        /// The rolling window in milliseconds (fixed at creation).
        metrics_rolling_stats_ms: u64 = "metrics.rollingStats.timeInMilliseconds",
        /// Buckets in that window (fixed at creation).
        metrics_rolling_stats_buckets: u32 = "metrics.rollingStats.numBuckets",
    }
}

properties! {
    /// A collapser's properties (`hystrix.collapser.<key>.*`).
    pub struct CollapserProperties {
        /// The largest batch.
        max_requests_in_batch: u32 = "maxRequestsInBatch",
        /// The batch window in milliseconds.
        timer_delay_ms: u64 = "timerDelayInMilliseconds",
        /// Accepted for compatibility and reported on the dashboard.
        request_cache_enabled: bool = "requestCache.enabled",
        /// The rolling window in milliseconds.
        metrics_rolling_stats_ms: u64 = "metrics.rollingStats.timeInMilliseconds",
        /// Buckets in that window.
        metrics_rolling_stats_buckets: u32 = "metrics.rollingStats.numBuckets",
        /// Accepted for compatibility.
        metrics_rolling_percentile_enabled: bool = "metrics.rollingPercentile.enabled",
        /// The percentile window in milliseconds.
        metrics_rolling_percentile_ms: u64 = "metrics.rollingPercentile.timeInMilliseconds",
        /// Buckets in that window.
        metrics_rolling_percentile_buckets: u32 = "metrics.rollingPercentile.numBuckets",
        /// Accepted for compatibility; unused.
        metrics_rolling_percentile_bucket_size: u32 = "metrics.rollingPercentile.bucketSize",
    }
}

/// A whole Hystrix configuration: properties per command, thread pool and collapser, each
/// family with an optional `default` entry.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct HystrixProperties {
    /// `hystrix.command.<key>.*`, by key (`default` for all).
    pub command: BTreeMap<String, CommandProperties>,
    /// `hystrix.threadpool.<key>.*`, by key (`default` for all).
    pub threadpool: BTreeMap<String, ThreadPoolProperties>,
    /// `hystrix.collapser.<key>.*`, by key (`default` for all).
    pub collapser: BTreeMap<String, CollapserProperties>,
}

/// The key of the entry that applies to every component of a family.
pub const DEFAULT_KEY: &str = "default";

/// Splits `<key>.<property>` where the property is one of `names` (keys may contain dots).
fn split_key<'a>(rest: &'a str, names: &[&str]) -> Option<(&'a str, &'a str)> {
    names.iter().find_map(|n| {
        let key = rest.strip_suffix(n)?.strip_suffix('.')?;
        (!key.is_empty()).then(|| (key, &rest[key.len() + 1..]))
    })
}

impl HystrixProperties {
    /// Parses Java-properties text: `hystrix.<family>.<key>.<property> = <value>` lines,
    /// `#` or `!` comments and blank lines.
    ///
    /// # Errors
    ///
    /// On a line without `=`, an unknown family or property, or a value that does not parse;
    /// the message names the line.
    pub fn parse(text: &str) -> Result<Self> {
        let mut props = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let at = |e: Error| Error::config("properties", format!("line {}: {e}", i + 1));
            let (name, value) = line
                .split_once('=')
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| at(Error::config("line", "expected `name = value`")))?;
            props.set(name.trim(), value.trim()).map_err(at)?;
        }
        Ok(props)
    }

    /// Sets one property by its full name, such as
    /// `hystrix.command.GetUser.circuitBreaker.forceOpen`.
    ///
    /// # Errors
    ///
    /// When the name is not a known property or the value does not parse.
    pub fn set(&mut self, full_name: &str, value: &str) -> Result<()> {
        let unknown = || Error::unknown_property(full_name);
        if let Some(rest) = full_name.strip_prefix("hystrix.command.") {
            let (key, prop) = split_key(rest, CommandProperties::NAMES).ok_or_else(unknown)?;
            self.command
                .entry(key.to_string())
                .or_default()
                .set(prop, value)
        } else if let Some(rest) = full_name.strip_prefix("hystrix.threadpool.") {
            let (key, prop) = split_key(rest, ThreadPoolProperties::NAMES).ok_or_else(unknown)?;
            self.threadpool
                .entry(key.to_string())
                .or_default()
                .set(prop, value)
        } else if let Some(rest) = full_name.strip_prefix("hystrix.collapser.") {
            let (key, prop) = split_key(rest, CollapserProperties::NAMES).ok_or_else(unknown)?;
            self.collapser
                .entry(key.to_string())
                .or_default()
                .set(prop, value)
        } else {
            Err(unknown())
        }
    }

    /// The properties that apply to command `key`: its own over `default`.
    pub fn command(&self, key: &str) -> CommandProperties {
        for_key(&self.command, key)
    }

    /// The properties that apply to thread pool `key`.
    pub fn threadpool(&self, key: &str) -> ThreadPoolProperties {
        for_key(&self.threadpool, key)
    }

    /// The properties that apply to collapser `key`.
    pub fn collapser(&self, key: &str) -> CollapserProperties {
        for_key(&self.collapser, key)
    }

    /// Adds `other`'s properties, which win where both set one.
    pub fn merge(&mut self, other: &HystrixProperties) {
        merge_family(&mut self.command, &other.command);
        merge_family(&mut self.threadpool, &other.threadpool);
        merge_family(&mut self.collapser, &other.collapser);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties_text_with_dotted_keys() {
        let p = HystrixProperties::parse(
            "hystrix.command.my.dotted.Key.circuitBreaker.forceOpen=true\n\
             hystrix.command.default.execution.isolation.strategy=SEMAPHORE\n\
             hystrix.threadpool.default.maxQueueSize: -1\n\
             hystrix.collapser.Batch.timerDelayInMilliseconds=5\n",
        )
        .unwrap();
        let c = p.command("my.dotted.Key");
        assert_eq!(c.circuit_breaker_force_open, Some(true));
        assert_eq!(
            c.execution_isolation_strategy,
            Some(IsolationStrategy::Semaphore)
        );
        assert_eq!(p.threadpool("any").max_queue_size, Some(-1));
        assert_eq!(p.collapser("Batch").timer_delay_ms, Some(5));
        assert_eq!(p.command("other").circuit_breaker_force_open, None);
    }

    #[track_caller]
    fn check_err(text: &str, fragment: &str) {
        let e = HystrixProperties::parse(text).unwrap_err();
        assert!(e.is_config(), "{e}");
        assert!(e.to_string().contains(fragment), "{e} lacks {fragment}");
    }

    #[test]
    fn bad_input_is_a_typed_error_naming_the_line() {
        check_err("hystrix.command.X.nope=1", "line 1");
        check_err(
            "\n\nhystrix.command.X.circuitBreaker.requestVolumeThreshold=ten",
            "line 3",
        );
        check_err(
            "hystrix.command.X.execution.isolation.strategy=FIBER",
            "THREAD or SEMAPHORE",
        );
        check_err("not a property", "line 1");
        check_err("hystrix.unknown.X.coreSize=1", "line 1");
        check_err("hystrix.command.circuitBreaker.forceOpen=true", "line 1");
    }

    #[test]
    fn merge_and_overlay() {
        let mut a =
            HystrixProperties::parse("hystrix.command.X.circuitBreaker.requestVolumeThreshold=5")
                .unwrap();
        let b = HystrixProperties::parse(
            "hystrix.command.X.circuitBreaker.errorThresholdPercentage=10\n\
             hystrix.command.X.circuitBreaker.requestVolumeThreshold=7",
        )
        .unwrap();
        a.merge(&b);
        let x = a.command("X");
        assert_eq!(x.circuit_breaker_request_volume_threshold, Some(7));
        assert_eq!(x.circuit_breaker_error_threshold_percentage, Some(10));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_hystrix_names() {
        let json = r#"{"command": {"GetUser": {"circuitBreaker.requestVolumeThreshold": 10,
                       "execution.isolation.strategy": "SEMAPHORE"}},
                       "threadpool": {"default": {"coreSize": 4}}}"#;
        let p: HystrixProperties = serde_json::from_str(json).unwrap();
        assert_eq!(
            p.command("GetUser")
                .circuit_breaker_request_volume_threshold,
            Some(10)
        );
        assert_eq!(p.threadpool("x").core_size, Some(4));
        let back = serde_json::to_string(&p).unwrap();
        assert!(
            back.contains("\"circuitBreaker.requestVolumeThreshold\":10"),
            "{back}"
        );
        let bad = serde_json::from_str::<HystrixProperties>(
            r#"{"command": {"X": {"circuitBreaker.nope": 1}}}"#,
        );
        assert!(bad.is_err());
    }
}
