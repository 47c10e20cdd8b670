use super::State;
use crate::classify::Outcome;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Something a circuit breaker did, as resilience4j's `CircuitBreakerEvent` names it.
///
/// Per-call events (`Success`, `Error`, `IgnoredError`, `NotPermitted`) are built only when a
/// listener is registered, and, as in resilience4j, are not published while the breaker is
/// [`State::Disabled`] or [`State::ForcedOpen`]. State transitions and resets always are.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// A call succeeded. `elapsed` is measured by the resilience4j profile only.
    Success {
        /// How long the call took.
        elapsed: Option<Duration>,
    },
    /// A call failed (a failure, a timeout or a rejection downstream).
    Error {
        /// How long the call took.
        elapsed: Option<Duration>,
        /// What kind of failure.
        outcome: Outcome,
    },
    /// A call's result was classified as ignored.
    IgnoredError {
        /// How long the call took.
        elapsed: Option<Duration>,
    },
    /// A call was rejected because the breaker is open (or half-open with no permit left).
    NotPermitted,
    /// The breaker changed state.
    StateTransition {
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
    },
    /// The breaker was reset.
    Reset,
    /// The failure rate crossed its threshold (published when it trips the breaker, or
    /// once in [`State::MetricsOnly`]).
    FailureRateExceeded {
        /// The failure rate, in percent.
        rate: f32,
    },
    /// The slow-call rate crossed its threshold.
    SlowCallRateExceeded {
        /// The slow-call rate, in percent.
        rate: f32,
    },
}

impl BreakerEvent {
    /// Whether this event is always published, whatever the state.
    pub(crate) fn forced(&self) -> bool {
        matches!(
            self,
            BreakerEvent::StateTransition { .. } | BreakerEvent::Reset
        )
    }
}

type Listener = Arc<dyn Fn(&BreakerEvent) + Send + Sync>;

/// The listeners of one breaker. Checking for "none" is one relaxed load, so the data path
/// builds no event when nobody listens.
pub(crate) struct Listeners {
    any: AtomicBool,
    list: RwLock<Vec<Listener>>,
}

impl Listeners {
    pub(crate) fn new() -> Self {
        Self {
            any: AtomicBool::new(false),
            list: RwLock::new(Vec::new()),
        }
    }

    pub(crate) fn add(&self, f: Listener) {
        self.list
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(f);
        self.any.store(true, Ordering::Release);
    }

    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Publishes to every listener. A listener that panics is logged and skipped, as
    /// resilience4j catches consumer exceptions.
    pub(crate) fn publish(&self, name: &str, event: &BreakerEvent) {
        if !self.any() {
            return;
        }
        let list = self
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for l in list {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(event)));
            if r.is_err() {
                tracing::error!(
                    breaker = name,
                    ?event,
                    "circuit breaker event listener panicked"
                );
            }
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.list.read().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("Listeners").field("count", &n).finish()
    }
}
