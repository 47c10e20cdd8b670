//! Hystrix and resilience4j semantics as tower layers: circuit breakers, timeouts,
//! bulkheads, fallbacks, request caching and collapsing, adaptive concurrency limits,
//! rolling metrics and `hystrix.stream`.
//!
//! Every piece is an ordinary tower [`Layer`](tower_layer::Layer) that stacks with any other,
//! and every piece records into a command's [`CommandMetrics`](metrics::CommandMetrics) the
//! way Hystrix's dashboard expects.
//!
//! | module | what it gives a service | after |
//! |---|---|---|
//! | [`breaker`] | a circuit breaker with the Hystrix profile (sampled error percentage, one trial call) or the resilience4j profile (count- or time-based window, slow calls, N trial calls, backoff, forced and disabled states, events) | `HystrixCircuitBreaker`, resilience4j `CircuitBreaker` |
//! | [`timeout`] | a timeout that cancels the call and records `TIMEOUT` | `execution.isolation.thread.timeoutInMilliseconds` |
//! | [`bulkhead`] | a semaphore bulkhead that rejects at once or waits a bounded time | `SEMAPHORE` isolation, resilience4j `Bulkhead` |
//! | [`pool`] | thread-pool isolation as a bounded executor with Hystrix's sizing and queue rules | `HystrixThreadPool` |
//! | [`fallback`] | fallbacks per cause, under their own concurrency limit | `getFallback()` |
//! | [`cache`] | a request context and a request-scoped response cache | `HystrixRequestContext`, `HystrixRequestCache` |
//! | [`collapser`] | batching of concurrent requests into one call | `HystrixCollapser` |
//! | [`limit`] | adaptive concurrency limits: AIMD, Vegas, Gradient2 | Netflix/concurrency-limits |
//! | [`metrics`] | lock-free rolling counters, concurrency and latency percentiles | `HystrixCommandMetrics` |
//! | [`registry`] | commands and pools by key, the whole command as one layer | `HystrixCommand` |
//! | [`config`] | Hystrix's property names, from text or any serde format | Archaius properties |
//! | `stream` | `hystrix.stream` and a live HTML dashboard (feature `stream`) | `HystrixMetricsStreamServlet` |
//!
//! # Example
//!
//! A dependency behind a full Hystrix command: circuit breaker, timeout, semaphore
//! isolation, metrics, and a fallback when it fails.
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
//!     "hystrix.command.GetTitle.execution.isolation.strategy = SEMAPHORE\n\
//!      hystrix.command.GetTitle.execution.isolation.thread.timeoutInMilliseconds = 200",
//! )?)?;
//! let command = registry.command("GetTitle").group("Catalog").build()?;
//!
//! let mut titles = ServiceBuilder::new()
//!     .layer(command.fallback(PerCause::new().otherwise(|_| async { Ok("(unavailable)".to_string()) })))
//!     .layer(command.layer())
//!     .service_fn(|id: u32| async move { Ok::<_, netflix_hystrix::BoxError>(format!("title {id}")) });
//!
//! assert_eq!(titles.ready().await?.call(42).await?, "title 42");
//! assert_eq!(command.breaker().state(), netflix_hystrix::breaker::State::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `serde` | `Serialize`/`Deserialize` for [`config`] with Hystrix's property names |
//! | `stream` | the `stream` module: `hystrix.stream` and the dashboard, on hyper |
//! | `full` | everything |
//!
//! No feature is on by default: the core needs only tokio (`rt`, `time`, `sync`), tower's
//! service and layer traits, `pin-project-lite` and `tracing`.
//!
//! # Runtime
//!
//! Layers run on tokio and read all time from `tokio::time`, so tests can pause and advance
//! it. A circuit breaker starts a small background task (health snapshots, the end of the
//! wait in open) on the first runtime it sees.
//!
//! # Errors
//!
//! Services return [`BoxError`]; each layer's own failures are small types in its `error`
//! module (`BreakerOpen`, `Elapsed`, `BulkheadFull`, `PoolRejected`, `LimitExceeded`,
//! `FallbackError`), found with `downcast_ref`. Configuration and registry calls return
//! [`Error`].
//!
//! # Troubleshooting
//!
//! *"implementation of `From` is not general enough" when spawning a call.* rustc cannot
//! prove `Send` for a spawned future whose innermost `service_fn` returns
//! `Box<dyn Error + Send + Sync>`; tower's own middleware hits the same limitation. Give the
//! innermost service a concrete error type (any `std::error::Error + Send + Sync + 'static`).
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod classify;
pub mod collapser;
pub mod config;
mod error;
pub mod fallback;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod pool;
pub mod registry;
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub mod stream;
mod sync;
pub mod timeout;

pub use crate::error::{BoxError, Error, ErrorKind, Result};
