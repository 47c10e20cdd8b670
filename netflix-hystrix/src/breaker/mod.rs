//! Circuit breaking: stop calling a dependency that is failing, and try it again later.
//!
//! A [`Breaker`] is shared state: its [`State`], its policy and the command's
//! [`CommandMetrics`]. [`CircuitBreakerLayer`] applies it to any tower service; every
//! service built from the layer (and every clone of those) shares the one breaker.
//!
//! # Two profiles
//!
//! **Hystrix** (the default, [`HystrixConfig`]). The command's metrics keep a rolling 10 s
//! window; every 500 ms a health snapshot is taken, and if the window holds at least
//! `request_volume_threshold` (20) requests of which at least
//! `error_threshold_percentage` (50%) are errors (failures, timeouts and rejections;
//! short-circuited calls and bad requests do not count), the breaker opens. After
//! `sleep_window` (5 s) it goes half-open and exactly one trial call goes through: success
//! closes the breaker and resets the window; failure re-opens it for another sleep window.
//!
//! **resilience4j** ([`Resilience4jConfig`]). A count-based or time-based sliding window is
//! evaluated on every call: once it holds `minimum_number_of_calls`, a failure rate or
//! slow-call rate at or above its threshold opens the breaker. The wait in open is fixed or
//! a backoff function of the attempt; half-open permits N trial calls and decides on their
//! rates; half-open can be capped by a maximum wait. The states `DISABLED`, `FORCED_OPEN`
//! and `METRICS_ONLY`, manual transitions, `reset` and state-transition events behave as
//! resilience4j documents them.
//!
//! # What counts as a failure
//!
//! A [`Classify`](crate::classify::Classify) implementation decides per result. An ignored
//! result releases its permit and counts for nothing, so a caller's bad request never
//! re-opens a half-open breaker. See [`classify`](crate::classify).
//!
//! # Performance
//!
//! The closed path reads one atomic word in `poll_ready` and increments one counter in a
//! cell owned by the calling service clone when the call completes: no lock, no clock, no
//! reference count, no allocation. Rejecting a call reads the same word and writes one
//! counter that only the calling clone writes. Everything time-based (health snapshots,
//! the end of the wait in open) is done by a background task on `tokio::time`; see
//! `BENCHMARKS.md` for figures against `failsafe`, `recloser` and `tower-resilience`.
//!
//! # Differences from Hystrix and resilience4j
//!
//! * Only the trial call's own outcome decides a half-open breaker. Hystrix closes a
//!   half-open circuit when *any* call succeeds, including one admitted before it opened.
//! * A bad request (an [`Outcome::Ignored`](crate::classify::Outcome::Ignored) result)
//!   never re-opens a half-open breaker; Hystrix treats it as a failed trial.
//! * Leaving open is timer-driven, as with resilience4j's
//!   `automaticTransitionFromOpenToHalfOpenEnabled`: [`Breaker::state`] reports
//!   `HALF_OPEN` as soon as the wait ends, not at the next call.
//! * [`Breaker::reset`] cancels pending open and half-open deadlines (resilience4j's does
//!   not, so a stale timer can re-open a freshly reset breaker).
//! * A rejected call returns [`BreakerOpen`](error::BreakerOpen) as an error rather than a
//!   fallback value; wrap the breaker in [`FallbackLayer`](crate::fallback::FallbackLayer)
//!   for Hystrix-style fallbacks.
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use netflix_hystrix::breaker::{Breaker, State};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_hystrix::BoxError> {
//! let breaker = Breaker::new("GetUser");
//! let mut svc = ServiceBuilder::new()
//!     .layer(breaker.layer())
//!     .service_fn(|id: u32| async move { Ok::<_, netflix_hystrix::BoxError>(format!("user {id}")) });
//!
//! let user = svc.ready().await?.call(7).await?;
//! assert_eq!(user, "user 7");
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok(())
//! # }
//! ```

mod config;
mod driver;
pub mod error;
mod event;
pub mod future;
mod layer;
mod shared;
mod state;
mod window;

pub use self::config::{HystrixConfig, Resilience4jConfig, SlidingWindow, WaitInOpen};
pub use self::event::BreakerEvent;
pub use self::layer::CircuitBreakerLayer;
pub use self::state::State;
pub use self::window::WindowSnapshot;

use self::future::{Report, ResponseFuture, Tracked};
use self::shared::{Admission, Shared};
use crate::classify::DefaultClassifier;
use crate::error::{BoxError, Error, Result};
use crate::keys::CommandKey;
use crate::metrics::{CommandMetrics, Lease};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

// === Breaker ===

/// A circuit breaker: its state, policy and metrics. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.shared, f)
    }
}

/// Builds a [`Breaker`].
#[derive(Debug, Clone)]
pub struct BreakerBuilder {
    key: CommandKey,
    metrics: Option<CommandMetrics>,
    profile: ProfileConfig,
}

#[derive(Debug, Clone)]
enum ProfileConfig {
    Hystrix(HystrixConfig),
    Resilience4j(Resilience4jConfig),
}

impl BreakerBuilder {
    /// Records into (and, for the Hystrix profile, trips on) these metrics instead of new
    /// ones. The command key is then the metrics' key.
    pub fn metrics(mut self, metrics: CommandMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Uses the Hystrix profile with these settings (the default profile).
    pub fn hystrix(mut self, config: HystrixConfig) -> Self {
        self.profile = ProfileConfig::Hystrix(config);
        self
    }

    /// Uses the resilience4j profile with these settings.
    pub fn resilience4j(mut self, config: Resilience4jConfig) -> Self {
        self.profile = ProfileConfig::Resilience4j(config);
        self
    }

    /// Builds the breaker.
    ///
    /// # Errors
    ///
    /// When the profile's configuration is invalid.
    pub fn build(self) -> Result<Breaker> {
        let metrics = self
            .metrics
            .unwrap_or_else(|| CommandMetrics::new(self.key));
        let shared = match &self.profile {
            ProfileConfig::Hystrix(c) => Shared::new_hystrix(metrics, c)?,
            ProfileConfig::Resilience4j(c) => Shared::new_r4j(metrics, c)?,
        };
        let breaker = Breaker {
            shared: Arc::new(shared),
        };
        // Start the driver now if there is a runtime; otherwise the first call does.
        driver::try_start(&breaker.shared);
        Ok(breaker)
    }
}

impl Breaker {
    /// A breaker with the Hystrix profile and Hystrix's defaults.
    pub fn new(key: impl Into<CommandKey>) -> Self {
        Self::builder(key)
            .build()
            .expect("the default Hystrix configuration is valid")
    }

    /// Starts building a breaker for a command.
    pub fn builder(key: impl Into<CommandKey>) -> BreakerBuilder {
        BreakerBuilder {
            key: key.into(),
            metrics: None,
            profile: ProfileConfig::Hystrix(HystrixConfig::default()),
        }
    }

    /// A layer that applies this breaker, with the default classifier.
    pub fn layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(self.clone())
    }

    /// The command key.
    pub fn key(&self) -> &CommandKey {
        self.shared.name()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.state.load().state()
    }

    /// The command's metrics.
    pub fn metrics(&self) -> &CommandMetrics {
        &self.shared.metrics
    }

    /// Whether this breaker uses the resilience4j profile.
    pub fn is_resilience4j(&self) -> bool {
        self.shared.is_r4j()
    }

    /// The counts the breaker decides on: the resilience4j sliding window, or for the
    /// Hystrix profile the health window (calls and errors only).
    pub fn window(&self) -> WindowSnapshot {
        self.shared.window_snapshot(Instant::now())
    }

    /// The failure rate in percent, or `None` below the minimum number of calls
    /// (resilience4j's `-1`).
    pub fn failure_rate(&self) -> Option<f32> {
        self.shared.failure_rate(Instant::now())
    }

    /// When the current wait in open ends, if the breaker is open.
    pub fn open_until(&self) -> Option<Instant> {
        (self.state() == State::Open)
            .then(|| self.shared.open_until())
            .flatten()
    }

    /// Moves to `to` by hand, as resilience4j's `transitionToXxxState` methods do. Moving
    /// to the current state rebuilds it (fresh window, new wait) without an event.
    ///
    /// # Errors
    ///
    /// For the transitions resilience4j refuses: closed to half-open, and metrics-only to
    /// open or half-open.
    pub fn transition_to(&self, to: State) -> Result<()> {
        let from = self.state();
        if !from.can_transition_to(to) {
            return Err(Error::illegal_transition(from, to));
        }
        self.shared.transition(None, to, &[], Instant::now());
        Ok(())
    }

    /// Rejects every call until another transition (Hystrix's `forceOpen`).
    pub fn force_open(&self) {
        self.shared
            .transition(None, State::ForcedOpen, &[], Instant::now());
    }

    /// Admits every call and never trips until another transition (Hystrix's `forceClosed`).
    pub fn force_closed(&self) {
        self.shared
            .transition(None, State::Disabled, &[], Instant::now());
    }

    /// Returns to closed with a fresh window from any state, cancelling pending deadlines.
    pub fn reset(&self) {
        self.shared
            .transition(None, State::Closed, &[], Instant::now());
        self.shared.publish(BreakerEvent::Reset);
    }

    /// Calls `listener` for every [`BreakerEvent`]. Listeners run on the thread that caused
    /// the event; keep them short. A panicking listener is logged and skipped.
    pub fn on_event(&self, listener: impl Fn(&BreakerEvent) + Send + Sync + 'static) {
        self.shared.listeners.add(Arc::new(listener));
    }

    /// Applies new Hystrix settings at run time (thresholds, sleep window, force flags).
    ///
    /// # Errors
    ///
    /// When the settings are invalid or the breaker uses the resilience4j profile.
    pub fn set_hystrix_config(&self, config: &HystrixConfig) -> Result<()> {
        self.shared.reconfigure_hystrix(config)
    }

    /// Applies new resilience4j settings at run time. The sliding window's type and size
    /// cannot change.
    ///
    /// # Errors
    ///
    /// When the settings are invalid, change the window, or the breaker uses the Hystrix
    /// profile.
    pub fn set_resilience4j_config(&self, config: &Resilience4jConfig) -> Result<()> {
        self.shared.reconfigure_r4j(config)
    }
}

// === CircuitBreaker ===

/// A service guarded by a [`Breaker`].
///
/// `poll_ready` decides whether the next call may go through (taking a trial permit when
/// half-open); a rejected call completes at once with
/// [`BreakerOpen`](error::BreakerOpen). `call` panics if `poll_ready` did not return
/// `Ready(Ok(()))` first, as tower's contract allows.
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    classifier: C,
    shared: Arc<Shared>,
    lease: Lease,
    admission: Option<Admission>,
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
            // Each clone writes its own cell, so clones on different threads never share
            // a cache line.
            lease: self.lease.clone(),
            admission: None,
        }
    }
}

impl Breaker {
    /// Admits a call made without the service ([`Execution`](crate::registry::Execution)):
    /// what [`CircuitBreaker::call`] does, recording into `cell`. `None` when rejected
    /// (the short circuit is recorded).
    pub(crate) fn admit_direct(
        &self,
        cell: crate::metrics::cell::CellRef,
    ) -> Option<Tracked<DefaultClassifier>> {
        driver::ensure(&self.shared);
        match self.shared.admit() {
            Admission::Rejected => {
                cell.record(crate::metrics::EventType::ShortCircuited);
                self.shared.on_rejected();
                None
            }
            Admission::Normal(word) => {
                let report = self.shared.tracks_calls(word).then(|| Report::Normal {
                    word,
                    shared: self.shared.clone(),
                    start: self.shared.is_r4j().then(Instant::now),
                });
                Some(Tracked::new(DefaultClassifier, cell, report))
            }
            Admission::Trial(permit) => {
                let report = Report::Trial {
                    start: self.shared.is_r4j().then(Instant::now),
                    permit,
                };
                Some(Tracked::new(DefaultClassifier, cell, Some(report)))
            }
        }
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// Guards `inner` with `breaker`, classifying results with `classifier`.
    pub fn new(inner: S, breaker: Breaker, classifier: C) -> Self {
        let lease = breaker.shared.metrics.lease();
        Self {
            inner,
            classifier,
            shared: breaker.shared,
            lease,
            admission: None,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> Breaker {
        Breaker {
            shared: self.shared.clone(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service (giving back any trial permit taken by `poll_ready`).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: crate::classify::Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.admission.is_none() {
            driver::ensure(&self.shared);
            self.admission = Some(self.shared.admit());
        }
        if let Some(Admission::Rejected) = self.admission {
            // Rejections need nothing from the inner service.
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                self.admission = None;
                Poll::Ready(Err(e.into()))
            }
            other => other.map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let admission = self
            .admission
            .take()
            .expect("CircuitBreaker::call without a successful poll_ready");
        let cell = self.lease.cell();
        match admission {
            Admission::Rejected => {
                cell.record_short_circuit();
                self.shared.on_rejected();
                ResponseFuture::rejected()
            }
            Admission::Normal(word) => {
                let report = if self.shared.tracks_calls(word) {
                    Some(Report::Normal {
                        word,
                        shared: self.shared.clone(),
                        start: self.shared.is_r4j().then(Instant::now),
                    })
                } else {
                    None
                };
                let tracked = Tracked::new(self.classifier.clone(), cell, report);
                ResponseFuture::new(self.inner.call(req), tracked)
            }
            Admission::Trial(permit) => {
                let report = Report::Trial {
                    start: self.shared.is_r4j().then(Instant::now),
                    permit,
                };
                let tracked = Tracked::new(self.classifier.clone(), cell, Some(report));
                ResponseFuture::new(self.inner.call(req), tracked)
            }
        }
    }
}
