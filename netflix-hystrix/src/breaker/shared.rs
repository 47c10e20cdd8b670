//! The breaker's shared state and its two policies.

use super::config::{HystrixConfig, Resilience4jConfig, SlidingWindow, WaitInOpen};
use super::event::{BreakerEvent, Listeners};
use super::state::{Permits, State, StateCell, TrialResults, Word};
use super::window::{Call, Window, WindowSnapshot};
use crate::classify::Outcome;
use crate::error::{Error, Result};
use crate::keys::CommandKey;
use crate::metrics::{CommandMetrics, HealthCounts};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `poll_ready` decided for the next call.
pub(crate) enum Admission {
    /// Closed, metrics-only or disabled: the call goes through. Carries the state word it
    /// was admitted under.
    Normal(Word),
    /// Half-open: the call is a trial and holds a permit.
    Trial(TrialPermit),
    /// Open, forced open, or half-open with no permit left.
    Rejected,
}

/// A half-open permit; given back when dropped unless the trial completed.
pub(crate) struct TrialPermit {
    shared: Arc<Shared>,
    word: Word,
    armed: bool,
}

impl TrialPermit {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn word(&self) -> Word {
        self.word
    }

    /// The trial completed; its outcome, not this guard, decides what happens.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TrialPermit {
    fn drop(&mut self) {
        if self.armed {
            self.shared.permits.release(self.word.generation());
        }
    }
}

// === profiles ===

pub(crate) struct HystrixLive {
    volume: AtomicU32,
    percentage: AtomicU32,
    sleep_nanos: AtomicU64,
    /// Whether the current forced/disabled state came from the configuration, so that
    /// clearing the flag closes the circuit again.
    forced_by_config: AtomicBool,
}

impl HystrixLive {
    fn store(&self, c: &HystrixConfig) {
        self.volume.store(c.request_volume_threshold, Relaxed);
        self.percentage.store(c.error_threshold_percentage, Relaxed);
        self.sleep_nanos.store(
            u64::try_from(c.sleep_window.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    fn sleep(&self) -> Duration {
        Duration::from_nanos(self.sleep_nanos.load(Relaxed))
    }

    fn should_trip(&self, h: HealthCounts) -> bool {
        h.total_requests() >= u64::from(self.volume.load(Relaxed))
            && h.error_percentage() >= self.percentage.load(Relaxed)
    }
}

struct R4jRest {
    wait_in_open: WaitInOpen,
    max_wait_in_half_open: Duration,
    state_after_max_wait: State,
}

pub(crate) struct R4jLive {
    window: Window,
    kind: SlidingWindow,
    failure_threshold: AtomicU32,
    slow_threshold: AtomicU32,
    slow_nanos: AtomicU64,
    minimum: AtomicU32,
    trials_to_decide: AtomicU32,
    permitted: AtomicU32,
    /// The generation of the closed (or metrics-only) stay whose calls fill the window.
    window_epoch: AtomicU32,
    failure_published: AtomicBool,
    slow_published: AtomicBool,
    rest: Mutex<R4jRest>,
}

/// A threshold check's result (resilience4j's `CircuitBreakerMetrics.Result`).
#[derive(Debug, Clone, Copy)]
struct Verdict {
    failure: Option<f32>,
    slow: Option<f32>,
}

impl Verdict {
    fn exceeded(self) -> bool {
        self.failure.is_some() || self.slow.is_some()
    }

    fn events(self) -> Vec<BreakerEvent> {
        let mut v = Vec::new();
        if let Some(rate) = self.failure {
            v.push(BreakerEvent::FailureRateExceeded { rate });
        }
        if let Some(rate) = self.slow {
            v.push(BreakerEvent::SlowCallRateExceeded { rate });
        }
        v
    }
}

impl R4jLive {
    fn new(c: &Resilience4jConfig) -> Self {
        let r = Self {
            window: Window::new(c.sliding_window),
            kind: c.sliding_window,
            failure_threshold: AtomicU32::new(0),
            slow_threshold: AtomicU32::new(0),
            slow_nanos: AtomicU64::new(0),
            minimum: AtomicU32::new(0),
            trials_to_decide: AtomicU32::new(0),
            permitted: AtomicU32::new(0),
            window_epoch: AtomicU32::new(0),
            failure_published: AtomicBool::new(false),
            slow_published: AtomicBool::new(false),
            rest: Mutex::new(R4jRest {
                wait_in_open: c.wait_in_open.clone(),
                max_wait_in_half_open: c.max_wait_in_half_open,
                state_after_max_wait: c.state_after_max_wait,
            }),
        };
        r.store(c);
        r
    }

    fn store(&self, c: &Resilience4jConfig) {
        self.failure_threshold
            .store(c.failure_rate_threshold.to_bits(), Relaxed);
        self.slow_threshold
            .store(c.slow_call_rate_threshold.to_bits(), Relaxed);
        self.slow_nanos.store(
            u64::try_from(c.slow_call_duration_threshold.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        self.minimum.store(c.effective_minimum(), Relaxed);
        self.trials_to_decide.store(c.trials_to_decide(), Relaxed);
        self.permitted
            .store(c.permitted_calls_in_half_open, Relaxed);
        let mut rest = lock(&self.rest);
        rest.wait_in_open = c.wait_in_open.clone();
        rest.max_wait_in_half_open = c.max_wait_in_half_open;
        rest.state_after_max_wait = c.state_after_max_wait;
    }

    fn is_slow(&self, elapsed: Option<Duration>) -> bool {
        elapsed.is_some_and(|e| e.as_nanos() > u128::from(self.slow_nanos.load(Relaxed)))
    }

    /// resilience4j's `checkIfThresholdsExceeded`: no verdict below the minimum of calls.
    fn check(&self, s: WindowSnapshot, minimum: u32) -> Verdict {
        if s.calls() == 0 || s.calls() < u64::from(minimum) {
            return Verdict {
                failure: None,
                slow: None,
            };
        }
        let (fr, sr) = (s.failure_rate(), s.slow_call_rate());
        let ft = f32::from_bits(self.failure_threshold.load(Relaxed));
        let st = f32::from_bits(self.slow_threshold.load(Relaxed));
        Verdict {
            failure: (fr >= ft).then_some(fr),
            slow: (sr >= st).then_some(sr),
        }
    }
}

pub(crate) enum Profile {
    Hystrix(HystrixLive),
    R4j(R4jLive),
}

// === Shared ===

#[derive(Default)]
struct Timers {
    open_until: Option<Instant>,
    half_open_until: Option<Instant>,
    attempts: u32,
}

pub(crate) struct Shared {
    name: CommandKey,
    pub(crate) state: StateCell,
    pub(crate) permits: Permits,
    trials: TrialResults,
    pub(crate) metrics: CommandMetrics,
    pub(crate) profile: Profile,
    timers: Mutex<Timers>,
    /// Serialises transitions (never taken on the per-call path).
    transition_lock: Mutex<()>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) driver_running: AtomicBool,
    pub(crate) listeners: Listeners,
    base: Instant,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state.load().state())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Wakes a parked driver so that it notices and exits.
        self.notify.notify_one();
    }
}

impl Shared {
    pub(crate) fn new_hystrix(metrics: CommandMetrics, c: &HystrixConfig) -> Result<Self> {
        c.validate()?;
        let live = HystrixLive {
            volume: AtomicU32::new(0),
            percentage: AtomicU32::new(0),
            sleep_nanos: AtomicU64::new(0),
            forced_by_config: AtomicBool::new(c.forced_state().is_some()),
        };
        live.store(c);
        let initial = c.forced_state().unwrap_or(State::Closed);
        Ok(Self::new(metrics, Profile::Hystrix(live), initial))
    }

    pub(crate) fn new_r4j(metrics: CommandMetrics, c: &Resilience4jConfig) -> Result<Self> {
        c.validate()?;
        let shared = Self::new(metrics, Profile::R4j(R4jLive::new(c)), State::Closed);
        if c.initial_state != State::Closed {
            shared.transition(None, c.initial_state, &[], Instant::now());
        }
        Ok(shared)
    }

    fn new(metrics: CommandMetrics, profile: Profile, initial: State) -> Self {
        Self {
            name: metrics.key().clone(),
            state: StateCell::new(initial),
            permits: Permits::new(),
            trials: TrialResults::new(),
            metrics,
            profile,
            timers: Mutex::new(Timers::default()),
            transition_lock: Mutex::new(()),
            notify: Arc::new(Notify::new()),
            driver_running: AtomicBool::new(false),
            listeners: Listeners::new(),
            base: Instant::now(),
        }
    }

    pub(crate) fn name(&self) -> &CommandKey {
        &self.name
    }

    pub(crate) fn is_r4j(&self) -> bool {
        matches!(self.profile, Profile::R4j(_))
    }

    /// Decides whether the next call may go through. One atomic load when closed or open.
    #[inline]
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let w = self.state.load();
        match w.state() {
            State::Closed | State::MetricsOnly | State::Disabled => Admission::Normal(w),
            State::Open | State::ForcedOpen => Admission::Rejected,
            State::HalfOpen => {
                if self.permits.try_acquire(w.generation()) {
                    Admission::Trial(TrialPermit {
                        shared: self.clone(),
                        word: w,
                        armed: true,
                    })
                } else {
                    Admission::Rejected
                }
            }
        }
    }

    /// Whether the response future must call back into the breaker for a normal call.
    #[inline]
    pub(crate) fn tracks_calls(&self, admitted: Word) -> bool {
        (self.is_r4j() && admitted.state() != State::Disabled) || self.listeners.any()
    }

    pub(crate) fn publish(&self, event: BreakerEvent) {
        if !self.listeners.any() {
            return;
        }
        if event.forced() || self.state.load().state().publishes() {
            self.listeners.publish(self.name.as_str(), &event);
        }
    }

    #[inline]
    pub(crate) fn on_rejected(&self) {
        if self.listeners.any() {
            self.publish(BreakerEvent::NotPermitted);
        }
    }

    fn publish_call(&self, outcome: Outcome, elapsed: Option<Duration>) {
        if !self.listeners.any() {
            return;
        }
        self.publish(match outcome {
            Outcome::Success => BreakerEvent::Success { elapsed },
            Outcome::Ignored => BreakerEvent::IgnoredError { elapsed },
            outcome => BreakerEvent::Error { elapsed, outcome },
        });
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_secs()
    }

    /// A normal (non-trial) call completed.
    pub(crate) fn on_complete(
        &self,
        admitted: Word,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: Instant,
    ) {
        self.publish_call(outcome, elapsed);
        let Profile::R4j(r) = &self.profile else {
            return;
        };
        if outcome == Outcome::Ignored || admitted.state() == State::Disabled {
            return;
        }
        let call = Call {
            failed: outcome.is_error(),
            slow: r.is_slow(elapsed),
        };
        let snapshot = r
            .window
            .record(admitted.generation(), self.second(now), call);
        let current = self.state.load();
        if current != admitted {
            // The breaker moved on; the call still counts in the window it was admitted
            // into (resilience4j keeps recording into an open breaker's metrics).
            return;
        }
        let verdict = r.check(snapshot, r.minimum.load(Relaxed));
        match current.state() {
            State::Closed if verdict.exceeded() => {
                self.transition(Some(current), State::Open, &verdict.events(), now);
            }
            State::MetricsOnly if verdict.exceeded() => {
                if let Some(rate) = verdict.failure {
                    if !r.failure_published.swap(true, AcqRel) {
                        self.publish(BreakerEvent::FailureRateExceeded { rate });
                    }
                }
                if let Some(rate) = verdict.slow {
                    if !r.slow_published.swap(true, AcqRel) {
                        self.publish(BreakerEvent::SlowCallRateExceeded { rate });
                    }
                }
            }
            _ => {}
        }
    }

    /// A half-open trial completed.
    pub(crate) fn on_trial_complete(
        &self,
        admitted: Word,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: Instant,
    ) {
        self.publish_call(outcome, elapsed);
        let generation = admitted.generation();
        if outcome == Outcome::Ignored {
            // The caller's own mistake says nothing about the dependency: let the next
            // call be the trial instead.
            self.permits.release(generation);
            return;
        }
        match &self.profile {
            Profile::Hystrix(_) => {
                let to = if outcome.is_error() {
                    State::Open
                } else {
                    State::Closed
                };
                self.transition(Some(admitted), to, &[], now);
            }
            Profile::R4j(r) => {
                let slow = r.is_slow(elapsed);
                let Some(trials) = self.trials.record(generation, outcome.is_error(), slow) else {
                    return;
                };
                let needed = r.trials_to_decide.load(Relaxed);
                if trials.completed == needed {
                    let s = WindowSnapshot::from_counts(
                        u64::from(trials.completed),
                        u64::from(trials.failed),
                        u64::from(trials.slow),
                        0,
                    );
                    let to = if r.check(s, needed).exceeded() {
                        State::Open
                    } else {
                        State::Closed
                    };
                    self.transition(Some(admitted), to, &[], now);
                }
            }
        }
    }

    /// Moves to `to` if the state is still `expected` (any state when `None`), with the
    /// side effects of entering `to`. Publishes `pre` and then the transition event.
    /// Returns whether this call made the transition.
    pub(crate) fn transition(
        &self,
        expected: Option<Word>,
        to: State,
        pre: &[BreakerEvent],
        now: Instant,
    ) -> bool {
        let from = {
            let _serial = lock(&self.transition_lock);
            let current = self.state.load();
            if expected.is_some_and(|e| e != current) {
                return false;
            }
            let next_generation = current.next(to).generation();
            if to == State::HalfOpen {
                let permitted = match &self.profile {
                    Profile::Hystrix(_) => 1,
                    Profile::R4j(r) => r.permitted.load(Relaxed),
                };
                self.trials.reset(next_generation);
                self.permits.reset(next_generation, permitted);
            }
            let Ok(new) = self.state.transition(current, to) else {
                // Every transition holds the lock, so the word cannot have moved.
                return false;
            };
            self.enter(new, now);
            current.state()
        };
        for e in pre {
            self.publish(e.clone());
        }
        if from != to {
            tracing::info!(breaker = %self.name, %from, %to, "circuit breaker state transition");
            self.publish(BreakerEvent::StateTransition { from, to });
        }
        self.notify.notify_one();
        true
    }

    /// Side effects of entering a state. Called with the transition lock held.
    fn enter(&self, new: Word, now: Instant) {
        let mut t = lock(&self.timers);
        t.open_until = None;
        t.half_open_until = None;
        match new.state() {
            State::Closed | State::MetricsOnly => {
                t.attempts = 0;
                match &self.profile {
                    Profile::Hystrix(_) => self.metrics.reset_health(),
                    Profile::R4j(r) => {
                        r.window_epoch.store(new.generation(), Release);
                        r.failure_published.store(false, Release);
                        r.slow_published.store(false, Release);
                    }
                }
            }
            State::Disabled => t.attempts = 0,
            State::Open => {
                t.attempts = t.attempts.saturating_add(1);
                let wait = match &self.profile {
                    Profile::Hystrix(h) => h.sleep(),
                    Profile::R4j(r) => lock(&r.rest).wait_in_open.wait_for(t.attempts),
                };
                t.open_until = Some(now + wait);
            }
            State::ForcedOpen => t.attempts = t.attempts.saturating_add(1),
            State::HalfOpen => {
                if let Profile::R4j(r) = &self.profile {
                    let max = lock(&r.rest).max_wait_in_half_open;
                    if !max.is_zero() {
                        t.half_open_until = Some(now + max);
                    }
                }
            }
        }
    }

    /// The driver's work at `now`: the Hystrix health check when due, and the open and
    /// half-open deadlines. Returns when to wake next (`None`: only when notified).
    pub(crate) fn on_wake(&self, now: Instant, next_tick: &mut Option<Instant>) -> Option<Instant> {
        if let Profile::Hystrix(h) = &self.profile {
            let tick = *next_tick.get_or_insert_with(|| self.metrics.next_health_boundary());
            if now >= tick {
                let health = self.metrics.health_tick(now);
                let w = self.state.load();
                if w.state() == State::Closed && h.should_trip(health) {
                    tracing::warn!(
                        breaker = %self.name,
                        requests = health.total_requests(),
                        error_percentage = health.error_percentage(),
                        "circuit breaker tripped"
                    );
                    self.transition(Some(w), State::Open, &[], now);
                }
                *next_tick = Some(self.metrics.next_health_boundary());
            }
        }
        // At most two deadline transitions can be due at once (open, then half-open).
        for _ in 0..2 {
            let (w, open_until, half_open_until, after) = {
                let _serial = lock(&self.transition_lock);
                let t = lock(&self.timers);
                let after = match &self.profile {
                    Profile::R4j(r) => lock(&r.rest).state_after_max_wait,
                    Profile::Hystrix(_) => State::Open,
                };
                (self.state.load(), t.open_until, t.half_open_until, after)
            };
            let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
            if w.state() == State::Open && due(open_until) {
                self.transition(Some(w), State::HalfOpen, &[], now);
            } else if w.state() == State::HalfOpen && due(half_open_until) {
                self.transition(Some(w), after, &[], now);
            } else {
                let deadline = match w.state() {
                    State::Open => open_until,
                    State::HalfOpen => half_open_until,
                    _ => None,
                };
                return [deadline, *next_tick].into_iter().flatten().min();
            }
        }
        Some(now)
    }

    pub(crate) fn open_until(&self) -> Option<Instant> {
        lock(&self.timers).open_until
    }

    pub(crate) fn window_snapshot(&self, now: Instant) -> WindowSnapshot {
        match &self.profile {
            Profile::Hystrix(_) => {
                let h = self.metrics.health();
                WindowSnapshot::from_counts(h.total_requests(), h.error_count(), 0, 0)
            }
            Profile::R4j(r) => r
                .window
                .snapshot(r.window_epoch.load(Acquire), self.second(now)),
        }
    }

    pub(crate) fn failure_rate(&self, now: Instant) -> Option<f32> {
        let s = self.window_snapshot(now);
        match &self.profile {
            Profile::Hystrix(h) => (s.calls() >= u64::from(h.volume.load(Relaxed)))
                .then(|| self.metrics.health().error_percentage() as f32),
            Profile::R4j(r) => (s.calls() > 0 && s.calls() >= u64::from(r.minimum.load(Relaxed)))
                .then(|| s.failure_rate()),
        }
    }

    pub(crate) fn reconfigure_hystrix(&self, c: &HystrixConfig) -> Result<()> {
        let Profile::Hystrix(h) = &self.profile else {
            return Err(Error::config(
                "profile",
                "this breaker uses the resilience4j profile",
            ));
        };
        c.validate()?;
        h.store(c);
        let now = Instant::now();
        match c.forced_state() {
            Some(s) => {
                if self.state.load().state() != s {
                    self.transition(None, s, &[], now);
                }
                h.forced_by_config.store(true, Relaxed);
            }
            None => {
                if h.forced_by_config.swap(false, Relaxed) {
                    let w = self.state.load();
                    if matches!(w.state(), State::ForcedOpen | State::Disabled) {
                        self.transition(Some(w), State::Closed, &[], now);
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn reconfigure_r4j(&self, c: &Resilience4jConfig) -> Result<()> {
        let Profile::R4j(r) = &self.profile else {
            return Err(Error::config(
                "profile",
                "this breaker uses the Hystrix profile",
            ));
        };
        c.validate()?;
        if c.sliding_window != r.kind {
            return Err(Error::config(
                "slidingWindowType",
                "the sliding window's type and size are fixed when the breaker is built",
            ));
        }
        r.store(c);
        Ok(())
    }
}
