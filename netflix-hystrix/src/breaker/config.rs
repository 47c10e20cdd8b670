use super::State;
use super::state::MAX_TRIALS;
use crate::error::{Result, ensure};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The Hystrix profile: trip on the error percentage of a rolling window, sampled every
/// health-snapshot interval; one trial call after the sleep window. Defaults are Hystrix's.
///
/// The window itself (10 s in 10 buckets, snapshots every 500 ms) belongs to the command's
/// [`CommandMetrics`](crate::metrics::CommandMetrics) and is set with
/// [`MetricsConfig`](crate::metrics::MetricsConfig).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use netflix_hystrix::breaker::{Breaker, HystrixConfig};
///
/// let mut config = HystrixConfig::default();
/// config.request_volume_threshold = 10;
/// config.sleep_window = Duration::from_secs(2);
/// let breaker = Breaker::builder("GetUser").hystrix(config).build()?;
/// assert_eq!(breaker.state(), netflix_hystrix::breaker::State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HystrixConfig {
    /// `circuitBreaker.enabled`. When false the breaker starts [`State::Disabled`]. Default `true`.
    pub enabled: bool,
    /// `circuitBreaker.requestVolumeThreshold`: the fewest requests in the window before the
    /// breaker may trip. Default 20.
    pub request_volume_threshold: u32,
    /// `circuitBreaker.errorThresholdPercentage`: trip at or above this error percentage
    /// (0 to 100). Default 50.
    pub error_threshold_percentage: u32,
    /// `circuitBreaker.sleepWindowInMilliseconds`: how long to reject before a trial call.
    /// Default 5 s.
    pub sleep_window: Duration,
    /// `circuitBreaker.forceOpen`: reject every call. Default `false`.
    pub force_open: bool,
    /// `circuitBreaker.forceClosed`: allow every call whatever the errors. Default `false`.
    pub force_closed: bool,
}

impl Default for HystrixConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            request_volume_threshold: 20,
            error_threshold_percentage: 50,
            sleep_window: Duration::from_secs(5),
            force_open: false,
            force_closed: false,
        }
    }
}

impl HystrixConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// When the error threshold is above 100.
    pub fn validate(&self) -> Result<()> {
        ensure(
            self.error_threshold_percentage <= 100,
            "circuitBreaker.errorThresholdPercentage",
            || format!("{} is above 100", self.error_threshold_percentage),
        )
    }

    /// The state these settings ask for, if they force one.
    pub(crate) fn forced_state(&self) -> Option<State> {
        if self.force_open {
            Some(State::ForcedOpen)
        } else if self.force_closed || !self.enabled {
            Some(State::Disabled)
        } else {
            None
        }
    }
}

/// How resilience4j's sliding window counts calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `size` calls.
    CountBased {
        /// How many calls.
        size: u32,
    },
    /// The calls of the last `seconds` whole seconds (the current one included).
    TimeBased {
        /// How many seconds.
        seconds: u32,
    },
}

impl SlidingWindow {
    /// A count-based window of `size` calls.
    pub const fn count_based(size: u32) -> Self {
        SlidingWindow::CountBased { size }
    }

    /// A time-based window of `seconds` seconds.
    pub const fn time_based(seconds: u32) -> Self {
        SlidingWindow::TimeBased { seconds }
    }

    pub(crate) fn size(self) -> u32 {
        match self {
            SlidingWindow::CountBased { size } => size,
            SlidingWindow::TimeBased { seconds } => seconds,
        }
    }
}

/// How long resilience4j's breaker waits in open before half-open, by attempt number
/// (1 for the first trip, +1 for each re-open from half-open, back to 1 after closing):
/// resilience4j's `IntervalFunction`.
#[derive(Clone)]
pub struct WaitInOpen {
    kind: WaitKind,
}

#[derive(Clone)]
enum WaitKind {
    Fixed(Duration),
    Exponential {
        initial: Duration,
        multiplier: f64,
        max: Option<Duration>,
        randomization: Option<(f64, Arc<Mutex<SplitMix64>>)>,
    },
    Custom(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

impl WaitInOpen {
    /// Always the same wait. resilience4j's default is 60 s.
    pub fn fixed(wait: Duration) -> Self {
        Self {
            kind: WaitKind::Fixed(wait),
        }
    }

    /// `initial`, then multiplied by `multiplier` (truncated to whole milliseconds at each
    /// step, as `IntervalFunction.ofExponentialBackoff` does) for each further attempt.
    pub fn exponential(initial: Duration, multiplier: f64) -> Self {
        Self {
            kind: WaitKind::Exponential {
                initial,
                multiplier,
                max: None,
                randomization: None,
            },
        }
    }

    /// Caps an exponential wait (ignored by the other kinds).
    pub fn max(mut self, cap: Duration) -> Self {
        if let WaitKind::Exponential { max, .. } = &mut self.kind {
            *max = Some(cap);
        }
        self
    }

    /// Randomises an exponential wait by ± `factor` (0 to 1; resilience4j's default is 0.5)
    /// with a seeded generator, so runs are reproducible.
    pub fn randomized(mut self, factor: f64, seed: u64) -> Self {
        if let WaitKind::Exponential { randomization, .. } = &mut self.kind {
            *randomization = Some((factor, Arc::new(Mutex::new(SplitMix64(seed)))));
        }
        self
    }

    /// Any function of the attempt number.
    pub fn custom(f: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self {
            kind: WaitKind::Custom(Arc::new(f)),
        }
    }

    /// The wait for attempt `attempt` (1-based; 0 is treated as 1).
    pub fn wait_for(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        match &self.kind {
            WaitKind::Fixed(d) => *d,
            WaitKind::Custom(f) => f(attempt),
            WaitKind::Exponential {
                initial,
                multiplier,
                max,
                randomization,
            } => {
                let mut ms = initial.as_millis() as f64;
                for _ in 1..attempt {
                    ms = (ms * multiplier).trunc();
                    if ms >= 1e15 {
                        break;
                    }
                }
                if let Some((factor, rng)) = randomization {
                    let delta = factor * ms;
                    let (lo, hi) = (ms - delta, ms + delta);
                    let r = rng
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .next_f64();
                    ms = (lo + r * (hi - lo + 1.0)).max(1.0).trunc();
                }
                let d = Duration::from_millis(ms as u64);
                max.map_or(d, |m| d.min(m))
            }
        }
    }

    fn validate(&self) -> Result<()> {
        match &self.kind {
            WaitKind::Fixed(d) => ensure(d.as_millis() >= 1, "waitDurationInOpenState", || {
                "must be at least 1 ms".into()
            }),
            WaitKind::Exponential {
                initial,
                multiplier,
                max,
                randomization,
            } => {
                ensure(
                    initial.as_millis() >= 1,
                    "waitIntervalFunctionInOpenState",
                    || "the initial interval must be at least 1 ms".into(),
                )?;
                ensure(
                    *multiplier >= 1.0 && multiplier.is_finite(),
                    "waitIntervalFunctionInOpenState",
                    || format!("multiplier {multiplier} must be a finite number >= 1"),
                )?;
                if let Some(m) = max {
                    ensure(
                        m.as_millis() >= 1,
                        "waitIntervalFunctionInOpenState",
                        || "the maximum interval must be at least 1 ms".into(),
                    )?;
                }
                if let Some((f, _)) = randomization {
                    ensure(
                        (0.0..=1.0).contains(f),
                        "waitIntervalFunctionInOpenState",
                        || format!("randomization factor {f} is outside 0..=1"),
                    )?;
                }
                Ok(())
            }
            WaitKind::Custom(_) => Ok(()),
        }
    }
}

impl fmt::Debug for WaitInOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            WaitKind::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            WaitKind::Exponential {
                initial,
                multiplier,
                max,
                randomization,
            } => f
                .debug_struct("Exponential")
                .field("initial", initial)
                .field("multiplier", multiplier)
                .field("max", max)
                .field("randomization", &randomization.as_ref().map(|r| r.0))
                .finish(),
            WaitKind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A tiny deterministic generator (SplitMix64) for randomised waits.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The resilience4j profile: trip on the failure rate or slow-call rate of a count- or
/// time-based sliding window, evaluated on every call; N trial calls in half-open.
/// Defaults are resilience4j's.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use netflix_hystrix::breaker::{Breaker, Resilience4jConfig, SlidingWindow, WaitInOpen};
///
/// let mut config = Resilience4jConfig::default();
/// config.sliding_window = SlidingWindow::time_based(30);
/// config.minimum_number_of_calls = 20;
/// config.slow_call_duration_threshold = Duration::from_millis(300);
/// config.slow_call_rate_threshold = 80.0;
/// config.wait_in_open = WaitInOpen::exponential(Duration::from_secs(1), 2.0).max(Duration::from_secs(60));
/// let breaker = Breaker::builder("search").resilience4j(config).build()?;
/// assert!(breaker.is_resilience4j());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resilience4jConfig {
    /// `failureRateThreshold`: trip at or above this failure percentage, in (0, 100]. Default 50.
    pub failure_rate_threshold: f32,
    /// `slowCallRateThreshold`: trip at or above this slow-call percentage, in (0, 100].
    /// Default 100.
    pub slow_call_rate_threshold: f32,
    /// `slowCallDurationThreshold`: calls longer than this are slow. Default 60 s.
    pub slow_call_duration_threshold: Duration,
    /// `permittedNumberOfCallsInHalfOpenState`: trial calls in half-open (1 to 65535). Default 10.
    pub permitted_calls_in_half_open: u32,
    /// `maxWaitDurationInHalfOpenState`: leave half-open after this long whatever the
    /// trials say; zero waits for the trials. Default zero.
    pub max_wait_in_half_open: Duration,
    /// `transitionToStateAfterWaitDuration`: where that leads, [`State::Open`] or
    /// [`State::Closed`]. Default open.
    pub state_after_max_wait: State,
    /// `slidingWindowType` and `slidingWindowSize`. Default count-based, 100 calls.
    pub sliding_window: SlidingWindow,
    /// `minimumNumberOfCalls`: the fewest calls before rates are computed (capped at the
    /// window size for count-based windows). Default 100.
    pub minimum_number_of_calls: u32,
    /// `waitIntervalFunctionInOpenState`. Default a fixed 60 s.
    pub wait_in_open: WaitInOpen,
    /// `initialState`. Default closed.
    pub initial_state: State,
}

impl Default for Resilience4jConfig {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration_threshold: Duration::from_secs(60),
            permitted_calls_in_half_open: 10,
            max_wait_in_half_open: Duration::ZERO,
            state_after_max_wait: State::Open,
            sliding_window: SlidingWindow::count_based(100),
            minimum_number_of_calls: 100,
            wait_in_open: WaitInOpen::fixed(Duration::from_secs(60)),
            initial_state: State::Closed,
        }
    }
}

impl Resilience4jConfig {
    /// Checks the values with resilience4j's rules.
    ///
    /// # Errors
    ///
    /// When a rate is outside (0, 100], a count is zero, a duration is too short, or the
    /// state after the half-open wait is neither open nor closed.
    pub fn validate(&self) -> Result<()> {
        let f = self.failure_rate_threshold;
        ensure(f > 0.0 && f <= 100.0, "failureRateThreshold", || {
            format!("{f} is outside (0, 100]")
        })?;
        let s = self.slow_call_rate_threshold;
        ensure(s > 0.0 && s <= 100.0, "slowCallRateThreshold", || {
            format!("{s} is outside (0, 100]")
        })?;
        ensure(
            !self.slow_call_duration_threshold.is_zero(),
            "slowCallDurationThreshold",
            || "must be at least 1 ns".into(),
        )?;
        let p = self.permitted_calls_in_half_open;
        ensure(
            (1..=MAX_TRIALS).contains(&p),
            "permittedNumberOfCallsInHalfOpenState",
            || format!("{p} is outside 1..={MAX_TRIALS}"),
        )?;
        ensure(
            matches!(self.state_after_max_wait, State::Open | State::Closed),
            "transitionToStateAfterWaitDuration",
            || format!("{} is neither OPEN nor CLOSED", self.state_after_max_wait),
        )?;
        ensure(self.sliding_window.size() >= 1, "slidingWindowSize", || {
            "must be at least 1".into()
        })?;
        ensure(
            self.minimum_number_of_calls >= 1,
            "minimumNumberOfCalls",
            || "must be at least 1".into(),
        )?;
        self.wait_in_open.validate()
    }

    /// The minimum number of calls as the closed window applies it.
    pub(crate) fn effective_minimum(&self) -> u32 {
        match self.sliding_window {
            SlidingWindow::CountBased { size } => self.minimum_number_of_calls.min(size),
            SlidingWindow::TimeBased { .. } => self.minimum_number_of_calls,
        }
    }

    /// How many trial results decide a half-open stay.
    pub(crate) fn trials_to_decide(&self) -> u32 {
        self.minimum_number_of_calls
            .min(self.permitted_calls_in_half_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_wait(w: &WaitInOpen, attempts: &[u64]) {
        let got: Vec<u64> = (1..=attempts.len() as u32)
            .map(|a| w.wait_for(a).as_millis() as u64)
            .collect();
        assert_eq!(got, attempts);
    }

    #[test]
    fn waits_match_interval_function() {
        check_wait(
            &WaitInOpen::fixed(Duration::from_secs(60)),
            &[60_000, 60_000],
        );
        // ofExponentialBackoff(500, 1.5): truncated at each step.
        check_wait(
            &WaitInOpen::exponential(Duration::from_millis(500), 1.5),
            &[500, 750, 1125, 1687, 2530],
        );
        check_wait(
            &WaitInOpen::exponential(Duration::from_millis(5000), 1.5),
            &[5000, 7500],
        );
        check_wait(
            &WaitInOpen::exponential(Duration::from_millis(500), 2.0).max(Duration::from_secs(1)),
            &[500, 1000, 1000],
        );
        check_wait(
            &WaitInOpen::custom(|a| Duration::from_millis(u64::from(a))),
            &[1, 2, 3],
        );
    }

    #[test]
    fn randomized_waits_stay_in_range_and_repeat() {
        let a = WaitInOpen::exponential(Duration::from_millis(1000), 1.0).randomized(0.5, 42);
        let b = WaitInOpen::exponential(Duration::from_millis(1000), 1.0).randomized(0.5, 42);
        for _ in 0..100 {
            let (x, y) = (a.wait_for(1), b.wait_for(1));
            assert_eq!(x, y);
            assert!((500..=1500).contains(&(x.as_millis() as u64)), "{x:?}");
        }
    }

    #[test]
    fn resilience4j_validation() {
        assert!(Resilience4jConfig::default().validate().is_ok());
        let bad = [
            Resilience4jConfig {
                failure_rate_threshold: 0.0,
                ..Default::default()
            },
            Resilience4jConfig {
                slow_call_rate_threshold: 101.0,
                ..Default::default()
            },
            Resilience4jConfig {
                permitted_calls_in_half_open: 0,
                ..Default::default()
            },
            Resilience4jConfig {
                minimum_number_of_calls: 0,
                ..Default::default()
            },
            Resilience4jConfig {
                sliding_window: SlidingWindow::count_based(0),
                ..Default::default()
            },
            Resilience4jConfig {
                state_after_max_wait: State::HalfOpen,
                ..Default::default()
            },
            Resilience4jConfig {
                wait_in_open: WaitInOpen::fixed(Duration::ZERO),
                ..Default::default()
            },
            Resilience4jConfig {
                slow_call_duration_threshold: Duration::ZERO,
                ..Default::default()
            },
        ];
        for c in bad {
            let e = c.validate().unwrap_err();
            assert!(e.is_config(), "{e}");
        }
    }

    #[test]
    fn minimum_calls_capped_for_count_windows() {
        let c = Resilience4jConfig {
            sliding_window: SlidingWindow::count_based(10),
            ..Default::default()
        };
        assert_eq!(c.effective_minimum(), 10);
        let c = Resilience4jConfig {
            sliding_window: SlidingWindow::time_based(10),
            ..Default::default()
        };
        assert_eq!(c.effective_minimum(), 100);
        assert_eq!(Resilience4jConfig::default().trials_to_decide(), 10);
    }

    #[test]
    fn hystrix_forced_states() {
        assert_eq!(HystrixConfig::default().forced_state(), None);
        let c = HystrixConfig {
            force_open: true,
            force_closed: true,
            ..Default::default()
        };
        assert_eq!(c.forced_state(), Some(State::ForcedOpen));
        let c = HystrixConfig {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(c.forced_state(), Some(State::Disabled));
        let c = HystrixConfig {
            error_threshold_percentage: 101,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
