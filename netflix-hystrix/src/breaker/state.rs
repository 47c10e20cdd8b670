//! The breaker's lock-free state core: one atomic word for the state, and the half-open
//! permit and result accounting.
//!
//! Every transition is a compare-and-swap on a word that holds the state and a generation
//! number bumped by each transition. A caller that decided on a transition from what it saw
//! wins only if nothing changed since, so concurrent callers that all see a threshold
//! crossed produce exactly one transition (and one event). Half-open permits and results
//! carry the generation too: a trial admitted in an earlier half-open period can neither
//! return a permit to, nor count a result in, a later one. `loom` checks these claims
//! (`RUSTFLAGS="--cfg netflix_loom" cargo test -p netflix-hystrix --lib loom`).

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::fmt;

/// The state of a circuit breaker (resilience4j's six states; Hystrix uses the first three
/// plus forced open and forced closed, which map to [`State::ForcedOpen`] and
/// [`State::Disabled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls flow; outcomes are recorded and may trip the breaker.
    Closed = 0,
    /// Calls are rejected until the wait in open ends.
    Open = 1,
    /// A limited number of trial calls decide whether to close or re-open.
    HalfOpen = 2,
    /// Calls always flow and the breaker never changes state by itself (Hystrix's
    /// `circuitBreaker.forceClosed` or `circuitBreaker.enabled = false`).
    Disabled = 3,
    /// Calls are always rejected (Hystrix's `circuitBreaker.forceOpen`).
    ForcedOpen = 4,
    /// Calls always flow; outcomes are recorded and threshold events published, but the
    /// breaker never trips.
    MetricsOnly = 5,
}

impl State {
    const fn from_u8(v: u8) -> State {
        match v {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::Disabled,
            4 => State::ForcedOpen,
            _ => State::MetricsOnly,
        }
    }

    /// The resilience4j name, for example `"HALF_OPEN"`.
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
            State::Disabled => "DISABLED",
            State::ForcedOpen => "FORCED_OPEN",
            State::MetricsOnly => "METRICS_ONLY",
        }
    }

    /// Whether calls are refused in this state (ignoring half-open permits).
    pub const fn rejects(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }

    /// Whether the circuit counts as open on the dashboard (`isCircuitBreakerOpen`).
    pub const fn is_open(self) -> bool {
        matches!(self, State::Open | State::HalfOpen | State::ForcedOpen)
    }

    /// Whether per-call events are published in this state (resilience4j's `allowPublish`).
    pub(crate) const fn publishes(self) -> bool {
        !matches!(self, State::Disabled | State::ForcedOpen)
    }

    /// Whether resilience4j allows a manual transition from `self` to `to`.
    pub const fn can_transition_to(self, to: State) -> bool {
        !matches!(
            (self, to),
            (State::Closed, State::HalfOpen)
                | (State::MetricsOnly, State::Open)
                | (State::MetricsOnly, State::HalfOpen)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A state plus the generation that identifies one stay in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u32);

const GEN_SHIFT: u32 = 8;
const GEN_MASK: u32 = (1 << 24) - 1;

impl Word {
    #[inline]
    pub(crate) fn state(self) -> State {
        State::from_u8(self.0 as u8)
    }

    #[inline]
    pub(crate) fn generation(self) -> u32 {
        self.0 >> GEN_SHIFT
    }

    pub(crate) fn next(self, to: State) -> Word {
        let generation = (self.generation() + 1) & GEN_MASK;
        Word((generation << GEN_SHIFT) | to as u32)
    }
}

/// The state word.
pub(crate) struct StateCell {
    word: AtomicU32,
}

impl StateCell {
    pub(crate) fn new(state: State) -> Self {
        Self {
            word: AtomicU32::new(state as u32),
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    /// Moves from exactly `from` to `to`; fails if anything changed since `from` was read.
    pub(crate) fn transition(&self, from: Word, to: State) -> Result<Word, Word> {
        let next = from.next(to);
        self.word
            .compare_exchange(from.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| next)
            .map_err(Word)
    }
}

/// Half-open permits: the generation in the high 32 bits, permits left in the low 32.
///
/// Every operation is sequentially consistent: they run only while half-open, an x86
/// read-modify-write is a full barrier anyway, and the strongest ordering keeps the model
/// checker's weak-memory approximations out of the argument.
pub(crate) struct Permits {
    word: AtomicU64,
}

impl Permits {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
        }
    }

    /// Arms `n` permits for the half-open stay `generation`. Call before publishing the
    /// half-open state word.
    pub(crate) fn reset(&self, generation: u32, n: u32) {
        // A swap, not a store: every write to the word is then a read-modify-write, so a
        // stale `release` racing this reset is ordered against it and sees the new
        // generation. (C11 already guarantees that for a store; loom's model of a store
        // racing a compare-and-swap is weaker, and the swap costs nothing here.)
        self.word.swap(
            (u64::from(generation) << 32) | u64::from(n),
            Ordering::SeqCst,
        );
    }

    /// Takes a permit of `generation`, if one is left.
    #[inline]
    pub(crate) fn try_acquire(&self, generation: u32) -> bool {
        self.word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                ((w >> 32) as u32 == generation && w as u32 > 0).then(|| w - 1)
            })
            .is_ok()
    }

    /// Gives a permit back (the trial was ignored or cancelled). A permit of an earlier
    /// generation is not given back.
    pub(crate) fn release(&self, generation: u32) {
        let _ = self
            .word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                ((w >> 32) as u32 == generation).then(|| w + 1)
            });
    }

    #[cfg(all(test, not(netflix_loom)))]
    pub(crate) fn left(&self) -> u32 {
        self.word.load(Ordering::SeqCst) as u32
    }
}

/// The results of half-open trials: generation (16 bits), completed, failed and slow
/// (16 bits each), so that one compare-and-swap records a result atomically.
pub(crate) struct TrialResults {
    word: AtomicU64,
}

/// Counts of trials recorded in one half-open stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trials {
    pub(crate) completed: u32,
    pub(crate) failed: u32,
    pub(crate) slow: u32,
}

/// The most permits a half-open state can hand out (the counters are 16 bits wide).
pub(crate) const MAX_TRIALS: u32 = u16::MAX as u32;

impl TrialResults {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
        }
    }

    pub(crate) fn reset(&self, generation: u32) {
        self.word
            .swap(u64::from(generation & 0xFFFF) << 48, Ordering::SeqCst);
    }

    /// Records one trial of `generation`. Returns the counts including it, or `None` when
    /// the trial belongs to an earlier half-open stay (and was not counted).
    pub(crate) fn record(&self, generation: u32, failed: bool, slow: bool) -> Option<Trials> {
        let g = u64::from(generation & 0xFFFF);
        let add = 1 | (u64::from(failed) << 16) | (u64::from(slow) << 32);
        self.word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w >> 48 == g && (w & 0xFFFF) < u64::from(MAX_TRIALS)).then(|| w + add)
            })
            .ok()
            .map(|old| unpack(old + add))
    }
}

fn unpack(w: u64) -> Trials {
    Trials {
        completed: (w & 0xFFFF) as u32,
        failed: ((w >> 16) & 0xFFFF) as u32,
        slow: ((w >> 32) & 0xFFFF) as u32,
    }
}

#[cfg(all(test, not(netflix_loom)))]
mod tests {
    use super::*;

    #[test]
    fn transitions_bump_the_generation() {
        let cell = StateCell::new(State::Closed);
        let w0 = cell.load();
        assert_eq!(w0.state(), State::Closed);
        let w1 = cell.transition(w0, State::Open).unwrap();
        assert_eq!(w1.state(), State::Open);
        assert_eq!(w1.generation(), w0.generation() + 1);
        // A stale decision loses.
        assert_eq!(cell.transition(w0, State::Open), Err(w1));
    }

    #[test]
    fn generation_wraps_within_its_bits() {
        let w = Word((GEN_MASK << GEN_SHIFT) | State::Closed as u32);
        assert_eq!(w.next(State::Open).generation(), 0);
        assert_eq!(w.next(State::Open).state(), State::Open);
    }

    #[test]
    fn permits_are_per_generation() {
        let p = Permits::new();
        p.reset(7, 2);
        assert!(!p.try_acquire(6));
        assert!(p.try_acquire(7));
        assert!(p.try_acquire(7));
        assert!(!p.try_acquire(7));
        p.release(6);
        assert_eq!(p.left(), 0);
        p.release(7);
        assert!(p.try_acquire(7));
    }

    #[test]
    fn trial_results_ignore_old_generations() {
        let r = TrialResults::new();
        r.reset(3);
        assert_eq!(r.record(2, true, false), None);
        assert_eq!(
            r.record(3, true, false),
            Some(Trials {
                completed: 1,
                failed: 1,
                slow: 0
            })
        );
        assert_eq!(
            r.record(3, false, true),
            Some(Trials {
                completed: 2,
                failed: 1,
                slow: 1
            })
        );
    }

    #[test]
    fn manual_transition_rules_match_resilience4j() {
        use State::*;
        let all = [Closed, Open, HalfOpen, Disabled, ForcedOpen, MetricsOnly];
        let refused: Vec<_> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| !a.can_transition_to(*b))
            .collect();
        assert_eq!(
            refused,
            [
                (Closed, HalfOpen),
                (MetricsOnly, Open),
                (MetricsOnly, HalfOpen)
            ]
        );
    }
}

#[cfg(all(test, netflix_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Exactly N of N+1 concurrent callers get a half-open permit.
    #[test]
    fn loom_exactly_n_admissions_in_half_open() {
        loom::model(|| {
            let permits = Arc::new(Permits::new());
            permits.reset(1, 2);
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let p = permits.clone();
                    thread::spawn(move || p.try_acquire(1))
                })
                .collect();
            let admitted = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|a| *a)
                .count();
            assert_eq!(admitted, 2);
        });
    }

    /// A permit released by a trial of an older generation never lets an extra call in.
    #[test]
    fn loom_stale_release_never_adds_a_permit() {
        loom::model(|| {
            let permits = Arc::new(Permits::new());
            permits.reset(1, 1);
            assert!(permits.try_acquire(1));
            let stale = {
                let p = permits.clone();
                thread::spawn(move || p.release(1))
            };
            let rearm = {
                let p = permits.clone();
                thread::spawn(move || p.reset(2, 1))
            };
            stale.join().unwrap();
            rearm.join().unwrap();
            let mut admitted = 0;
            while permits.try_acquire(2) {
                admitted += 1;
            }
            assert_eq!(admitted, 1);
        });
    }

    /// Concurrent callers that all decide to trip produce exactly one transition.
    #[test]
    fn loom_exactly_one_transition_per_trip() {
        loom::model(|| {
            let cell = Arc::new(StateCell::new(State::Closed));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let c = cell.clone();
                    thread::spawn(move || {
                        let seen = c.load();
                        seen.state() == State::Closed && c.transition(seen, State::Open).is_ok()
                    })
                })
                .collect();
            let wins = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|w| *w)
                .count();
            assert_eq!(wins, 1);
            assert_eq!(cell.load().state(), State::Open);
        });
    }

    /// With N trials completing concurrently, exactly one sees the N-th result and decides.
    #[test]
    fn loom_exactly_one_decision_per_half_open() {
        loom::model(|| {
            let results = Arc::new(TrialResults::new());
            results.reset(5);
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let r = results.clone();
                    thread::spawn(move || r.record(5, i == 0, false).unwrap().completed == 3)
                })
                .collect();
            let deciders = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|d| *d)
                .count();
            assert_eq!(deciders, 1);
        });
    }
}
