//! Adaptive concurrency limits: what Netflix moved to after Hystrix.
//!
//! A fixed bulkhead needs someone to guess the right size. An adaptive limit finds it: like
//! TCP congestion control, it raises the number of calls allowed in flight while latency
//! stays flat and lowers it when latency grows or calls are dropped. The algorithms are
//! those of [Netflix/concurrency-limits](https://github.com/Netflix/concurrency-limits),
//! ported rule for rule with the same defaults:
//!
//! * [`Aimd`]: additive increase, multiplicative decrease on drops and timeouts.
//! * [`Vegas`]: TCP Vegas's queue estimate from the ratio of no-load to current RTT.
//! * [`Gradient2`]: the gradient between a long-term average RTT and the current one.
//!
//! Each algorithm is a plain state machine ([`Limit::on_sample`]) that does no I/O, so it
//! can be tested and driven by hand. [`AdaptiveLimitLayer`] is the limiter (Java's
//! `SimpleLimiter`): it admits a call while fewer than `limit` are in flight, rejects it
//! with [`LimitExceeded`](error::LimitExceeded) otherwise, and feeds each completed call's
//! round-trip time back to the algorithm.
//!
//! # Which results are samples
//!
//! The layer's classifier decides, as the Java listeners' `onSuccess`, `onDropped` and
//! `onIgnore` do: a success is a sample; a timeout or a downstream rejection is a sample
//! with `did_drop` (the call was dropped); a failure or an ignored result gives no sample
//! (an exception says nothing about capacity).
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::limit::{AdaptiveLimitLayer, Gradient2};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let limiter = AdaptiveLimitLayer::new(Gradient2::default());
//! let mut svc = ServiceBuilder::new()
//!     .layer(limiter.clone())
//!     .service_fn(|x: u32| async move { Ok::<_, netflix_hystrix::BoxError>(x) });
//! svc.ready().await?.call(1).await?;
//! assert_eq!(limiter.limit(), 20);
//! # Ok(())
//! # }
//! ```

pub mod error;

use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::error::{BoxError, Result, ensure};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// A concurrency-limit algorithm: Java's `Limit`.
pub trait Limit: Send + 'static {
    /// The current limit.
    fn limit(&self) -> u32;

    /// Takes one sample (a call's round-trip time, the calls in flight when it started,
    /// itself included, and whether it was dropped) and returns the new limit.
    fn on_sample(&mut self, rtt: Duration, inflight: u32, did_drop: bool) -> u32;
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Java's `Log10RootIntFunction`: `max(1, floor(log10(x)))`.
fn log10_root(x: i32) -> i32 {
    if x < 100 { 1 } else { x.ilog10() as i32 }
}

// === AIMD ===

/// Additive increase, multiplicative decrease (`AIMDLimit`).
///
/// On a drop or a call slower than `timeout`, the limit is multiplied by `backoff_ratio`;
/// otherwise, if at least half the limit was in use, it grows by one. It always stays
/// within `[min_limit, max_limit]`.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: u32,
    config: AimdConfig,
}

/// Settings of [`Aimd`]. Defaults are Java's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AimdConfig {
    /// Default 20.
    pub initial_limit: u32,
    /// Default 20.
    pub min_limit: u32,
    /// Default 200.
    pub max_limit: u32,
    /// In `[0.5, 1.0)`. Default 0.9.
    pub backoff_ratio: f64,
    /// A call slower than this counts as a drop. Default 5 s.
    pub timeout: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
        }
    }
}

impl Aimd {
    /// An AIMD limit.
    ///
    /// # Errors
    ///
    /// When `backoff_ratio` is outside `[0.5, 1.0)` or `timeout` is zero.
    pub fn new(config: AimdConfig) -> Result<Self> {
        let r = config.backoff_ratio;
        ensure((0.5..1.0).contains(&r), "backoffRatio", || {
            format!("{r} is outside [0.5, 1.0)")
        })?;
        ensure(!config.timeout.is_zero(), "timeout", || {
            "must be positive".into()
        })?;
        Ok(Self {
            limit: config.initial_limit,
            config,
        })
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new(AimdConfig::default()).expect("the default AIMD configuration is valid")
    }
}

impl Limit for Aimd {
    fn limit(&self) -> u32 {
        self.limit
    }

    fn on_sample(&mut self, rtt: Duration, inflight: u32, did_drop: bool) -> u32 {
        let c = &self.config;
        let mut limit = i64::from(self.limit);
        if did_drop || rtt > c.timeout {
            limit = (limit as f64 * c.backoff_ratio) as i64;
        } else if i64::from(inflight) * 2 >= limit {
            limit += 1;
        }
        let limit = limit
            .max(i64::from(c.min_limit))
            .min(i64::from(c.max_limit));
        self.limit = limit as u32;
        self.limit
    }
}

// === Vegas ===

/// TCP Vegas (`VegasLimit`): estimate the queue from how far the current RTT is above the
/// no-load RTT, grow while it is short, shrink when it is long or calls drop. The no-load
/// RTT is re-probed every 15 to 30 × limit samples.
pub struct Vegas {
    estimated: f64,
    rtt_noload: i64,
    probe_count: u64,
    probe_jitter: f64,
    rng: u64,
    config: VegasConfig,
}

/// Settings of [`Vegas`]. Defaults are Java's; the queue thresholds are Java's default
/// functions (`alpha = 3·log10(limit)`, `beta = 6·log10(limit)`, `threshold =
/// log10(limit)`, increase and decrease by `log10(limit)`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VegasConfig {
    /// Default 20.
    pub initial_limit: u32,
    /// Default 1000.
    pub max_concurrency: u32,
    /// In `[0, 1]`. Default 1.0 (no smoothing).
    pub smoothing: f64,
    /// Default 30.
    pub probe_multiplier: u32,
    /// Seeds the probe jitter (Java uses `ThreadLocalRandom`), for reproducible runs.
    pub seed: u64,
}

impl Default for VegasConfig {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            max_concurrency: 1000,
            smoothing: 1.0,
            probe_multiplier: 30,
            seed: 0x5eed,
        }
    }
}

impl fmt::Debug for Vegas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vegas")
            .field("estimated", &self.estimated)
            .field(
                "rtt_noload",
                &Duration::from_nanos(self.rtt_noload.max(0) as u64),
            )
            .finish_non_exhaustive()
    }
}

impl Vegas {
    /// A Vegas limit.
    ///
    /// # Errors
    ///
    /// When `smoothing` is outside `[0, 1]`.
    pub fn new(config: VegasConfig) -> Result<Self> {
        let s = config.smoothing;
        ensure((0.0..=1.0).contains(&s), "smoothing", || {
            format!("{s} is outside [0, 1]")
        })?;
        let mut v = Self {
            estimated: f64::from(config.initial_limit),
            rtt_noload: 0,
            probe_count: 0,
            probe_jitter: 0.0,
            rng: config.seed,
            config,
        };
        v.reset_probe_jitter();
        Ok(v)
    }

    /// Uniform in `[0.5, 1.0)`, as `ThreadLocalRandom.nextDouble(0.5, 1)`.
    fn reset_probe_jitter(&mut self) {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.probe_jitter = 0.5 + unit * 0.5;
    }

    fn should_probe(&self) -> bool {
        self.probe_jitter * f64::from(self.config.probe_multiplier) * self.estimated
            <= self.probe_count as f64
    }

    fn update_estimated(
        &mut self,
        rtt: i64,
        rtt_noload: i64,
        inflight: u32,
        did_drop: bool,
    ) -> u32 {
        let est = self.estimated;
        let queue = (est * (1.0 - rtt_noload as f64 / rtt as f64)).ceil() as i32;
        let decrease = |l: f64| l - f64::from(log10_root(l as i32));
        let new = if did_drop {
            decrease(est)
        } else if f64::from(inflight) * 2.0 < est {
            return est as u32;
        } else {
            let l = est as i32;
            let (alpha, beta, threshold) = (3 * log10_root(l), 6 * log10_root(l), log10_root(l));
            if queue <= threshold {
                est + f64::from(beta)
            } else if queue < alpha {
                est + f64::from(log10_root(est as i32))
            } else if queue > beta {
                decrease(est)
            } else {
                return est as u32;
            }
        };
        let new = new.min(f64::from(self.config.max_concurrency)).max(1.0);
        let s = self.config.smoothing;
        let new = (1.0 - s) * est + s * new;
        self.estimated = new;
        new as u32
    }
}

impl Default for Vegas {
    fn default() -> Self {
        Self::new(VegasConfig::default()).expect("the default Vegas configuration is valid")
    }
}

impl Limit for Vegas {
    fn limit(&self) -> u32 {
        self.estimated as u32
    }

    fn on_sample(&mut self, rtt: Duration, inflight: u32, did_drop: bool) -> u32 {
        let rtt = nanos(rtt);
        if rtt <= 0 {
            // Java throws on a zero RTT; a sample that carries no information is skipped.
            return self.limit();
        }
        self.probe_count += 1;
        if self.should_probe() {
            self.reset_probe_jitter();
            self.probe_count = 0;
            self.rtt_noload = rtt;
            return self.limit();
        }
        let noload = self.rtt_noload;
        if noload == 0 || rtt < noload {
            self.rtt_noload = rtt;
            return self.limit();
        }
        self.update_estimated(rtt, noload, inflight, did_drop)
    }
}

// === Gradient2 ===

/// The gradient between long-term and current RTT (`Gradient2Limit`): when the current RTT
/// rises above the long-term average (beyond a tolerance), shrink by that ratio; otherwise
/// grow by the queue allowance. Smoothed, and bounded by `[min_limit, max_concurrency]`.
#[derive(Debug, Clone)]
pub struct Gradient2 {
    estimated: f64,
    long_rtt: ExpAvg,
    config: Gradient2Config,
}

/// Settings of [`Gradient2`]. Defaults are Java's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Gradient2Config {
    /// Default 20.
    pub initial_limit: u32,
    /// Default 20.
    pub min_limit: u32,
    /// Default 200.
    pub max_concurrency: u32,
    /// In `[0, 1]`. Default 0.2.
    pub smoothing: f64,
    /// The queue allowance added each step. Default 4.
    pub queue_size: u32,
    /// Samples in the long-term RTT average. Default 600.
    pub long_window: u32,
    /// How far above the long-term RTT the current one may go before shrinking; at least
    /// 1.0. Default 1.5.
    pub rtt_tolerance: f64,
}

impl Default for Gradient2Config {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 20,
            max_concurrency: 200,
            smoothing: 0.2,
            queue_size: 4,
            long_window: 600,
            rtt_tolerance: 1.5,
        }
    }
}

/// Java's `ExpAvgMeasurement`: a plain mean over a warm-up, then an exponential average.
#[derive(Debug, Clone)]
struct ExpAvg {
    value: f64,
    sum: f64,
    count: u32,
    window: u32,
    warmup: u32,
}

impl ExpAvg {
    fn add(&mut self, sample: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / f64::from(self.count);
        } else {
            let factor = 2.0 / (f64::from(self.window) + 1.0);
            self.value = self.value * (1.0 - factor) + sample * factor;
        }
        self.value
    }
}

impl Gradient2 {
    /// A Gradient2 limit.
    ///
    /// # Errors
    ///
    /// When `rtt_tolerance` is below 1 or `smoothing` outside `[0, 1]`.
    pub fn new(config: Gradient2Config) -> Result<Self> {
        let t = config.rtt_tolerance;
        ensure(t >= 1.0, "rttTolerance", || format!("{t} is below 1.0"))?;
        let s = config.smoothing;
        ensure((0.0..=1.0).contains(&s), "smoothing", || {
            format!("{s} is outside [0, 1]")
        })?;
        Ok(Self {
            estimated: f64::from(config.initial_limit),
            long_rtt: ExpAvg {
                value: 0.0,
                sum: 0.0,
                count: 0,
                window: config.long_window,
                warmup: 10,
            },
            config,
        })
    }
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self::new(Gradient2Config::default()).expect("the default Gradient2 configuration is valid")
    }
}

impl Limit for Gradient2 {
    fn limit(&self) -> u32 {
        self.estimated as u32
    }

    fn on_sample(&mut self, rtt: Duration, inflight: u32, _did_drop: bool) -> u32 {
        let c = &self.config;
        let est = self.estimated;
        let queue = f64::from(c.queue_size);
        let short = nanos(rtt) as f64;
        let long = self.long_rtt.add(short);
        // Drift recovery: the load went away, so let the long-term RTT come down faster.
        if long / short > 2.0 {
            self.long_rtt.value *= 0.95;
        }
        if f64::from(inflight) < est / 2.0 {
            return est as u32;
        }
        let gradient = (c.rtt_tolerance * long / short).clamp(0.5, 1.0);
        let new = est * gradient + queue;
        let new = est * (1.0 - c.smoothing) + new * c.smoothing;
        let new = new
            .min(f64::from(c.max_concurrency))
            .max(f64::from(c.min_limit));
        self.estimated = new;
        new as u32
    }
}

// === limiter ===

struct Shared {
    limit: AtomicU32,
    in_flight: AtomicU32,
    rejected: AtomicU64,
    algorithm: Mutex<Box<dyn Limit>>,
}

impl Shared {
    fn sample(&self, rtt: Duration, inflight: u32, did_drop: bool) {
        // One lock per sample, as Java's `AbstractLimit.onSample` is synchronized.
        let mut alg = self
            .algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limit = alg.on_sample(rtt, inflight, did_drop);
        self.limit.store(limit.max(1), Relaxed);
    }
}

/// The limiter: admits calls while fewer than the algorithm's limit are in flight. The
/// layer is also the handle; clones share one limit.
pub struct AdaptiveLimitLayer<C = DefaultClassifier> {
    shared: Arc<Shared>,
    classifier: C,
}

impl<C: Clone> Clone for AdaptiveLimitLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for AdaptiveLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimitLayer")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl AdaptiveLimitLayer {
    /// A limiter driven by `algorithm`.
    pub fn new(algorithm: impl Limit) -> Self {
        Self {
            shared: Arc::new(Shared {
                limit: AtomicU32::new(algorithm.limit().max(1)),
                in_flight: AtomicU32::new(0),
                rejected: AtomicU64::new(0),
                algorithm: Mutex::new(Box::new(algorithm)),
            }),
            classifier: DefaultClassifier,
        }
    }
}

impl<C> AdaptiveLimitLayer<C> {
    /// Uses `classifier` to decide which results are samples, drops or neither.
    pub fn classifier<C2>(self, classifier: C2) -> AdaptiveLimitLayer<C2> {
        AdaptiveLimitLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.shared.limit.load(Relaxed)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Relaxed)
    }

    /// Calls rejected since creation.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Relaxed)
    }
}

impl<S, C: Clone> Layer<S> for AdaptiveLimitLayer<C> {
    type Service = AdaptiveLimit<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit {
            inner,
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            permit: None,
        }
    }
}

/// A service under an adaptive concurrency limit. Built by [`AdaptiveLimitLayer`].
pub struct AdaptiveLimit<S, C = DefaultClassifier> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
    permit: Option<Option<Permit>>,
}

impl<S: Clone, C: Clone> Clone for AdaptiveLimit<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            permit: None,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdaptiveLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// One admitted call: the in-flight count when it started, and when.
struct Permit {
    shared: Arc<Shared>,
    inflight: u32,
    start: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, AcqRel);
    }
}

impl<S, C, Req> Service<Req> for AdaptiveLimit<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        if self.permit.is_none() {
            let limit = self.shared.limit.load(Relaxed);
            let admitted = self
                .shared
                .in_flight
                .fetch_update(AcqRel, Relaxed, |n| (n < limit).then_some(n + 1));
            self.permit = Some(admitted.ok().map(|n| Permit {
                shared: self.shared.clone(),
                inflight: n + 1,
                start: Instant::now(),
            }));
        }
        if let Some(None) = self.permit {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                self.permit = None;
                Poll::Ready(Err(e.into()))
            }
            other => other.map_err(Into::into),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self
            .permit
            .take()
            .expect("AdaptiveLimit::call without a successful poll_ready")
        {
            None => {
                self.shared.rejected.fetch_add(1, Relaxed);
                ResponseFuture {
                    inner: None,
                    permit: None,
                    classifier: self.classifier.clone(),
                }
            }
            Some(mut permit) => {
                // The RTT is measured from the call, not from when readiness was granted.
                permit.start = Instant::now();
                ResponseFuture {
                    inner: Some(self.inner.call(req)),
                    permit: Some(permit),
                    classifier: self.classifier.clone(),
                }
            }
        }
    }
}

pin_project! {
    /// The response, or [`LimitExceeded`](error::LimitExceeded).
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        permit: Option<Permit>,
        classifier: C,
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = std::result::Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(Box::new(error::LimitExceeded::new())));
        };
        let r = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(permit) = this.permit.take() {
            let rtt = permit.start.elapsed();
            let (inflight, shared) = (permit.inflight, permit.shared.clone());
            // Leave the in-flight count first, as Java's listeners do.
            drop(permit);
            match this.classifier.classify(r.as_ref()) {
                Outcome::Success => shared.sample(rtt, inflight, false),
                Outcome::Timeout | Outcome::SemaphoreRejected | Outcome::ThreadPoolRejected => {
                    shared.sample(rtt, inflight, true)
                }
                _ => {}
            }
        }
        Poll::Ready(r)
    }
}

#[cfg(test)]
mod tests;
