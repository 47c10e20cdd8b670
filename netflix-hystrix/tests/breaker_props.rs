//! Property tests: whatever the sequence of successes, failures, bad requests, slow calls,
//! cancellations and waits, a breaker never lets more than its permitted number of trial
//! calls be in flight in one half-open period, never admits a call while open, and only
//! makes transitions its state machine allows.

mod support;

use netflix_hystrix::breaker::{
    Breaker, BreakerEvent, HystrixConfig, Resilience4jConfig, SlidingWindow, State, WaitInOpen,
};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};

#[derive(Debug, Clone)]
enum Op {
    Ok,
    Fail,
    Bad,
    /// Start a call that stays in flight.
    Hold,
    /// Finish the oldest call in flight: success or failure.
    Finish(bool),
    /// Drop the oldest call in flight.
    Cancel,
    /// Let time pass (milliseconds).
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Ok),
        3 => Just(Op::Fail),
        1 => Just(Op::Bad),
        2 => Just(Op::Hold),
        2 => any::<bool>().prop_map(Op::Finish),
        1 => Just(Op::Cancel),
        2 => (1u64..3_000).prop_map(Op::Wait),
    ]
}

fn allowed(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Closed) | (HalfOpen, Open)
    )
}

fn run(breaker: Breaker, permitted: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let sink = transitions.clone();
        breaker.on_event(move |e| {
            if let BreakerEvent::StateTransition { from, to } = e {
                sink.lock().unwrap().push((*from, *to));
            }
        });
        let mut svc = breaker.layer().classifier(BadIsIgnored).layer(Scripted);
        // Calls in flight: their finish switch, and the half-open period they are a trial of.
        let mut held: Vec<(
            oneshot::Sender<bool>,
            tokio::task::JoinHandle<()>,
            Option<usize>,
        )> = Vec::new();
        // Which half-open period we are in: permits belong to one period.
        let period = |t: &Mutex<Vec<(State, State)>>| {
            t.lock()
                .unwrap()
                .iter()
                .filter(|(_, to)| *to == State::HalfOpen)
                .count()
        };
        for op in ops {
            let state = breaker.state();
            let now = period(&transitions);
            let trials = held
                .iter()
                .filter(|h| h.2 == Some(now) && !h.1.is_finished())
                .count();
            match op {
                Op::Ok | Op::Fail | Op::Bad => {
                    let req = match op {
                        Op::Ok => Req::Ok,
                        Op::Fail => Req::Fail,
                        _ => Req::Bad,
                    };
                    let r = call(&mut svc, req).await;
                    if state == State::Open {
                        prop_assert!(r.as_ref().is_err_and(is_open), "admitted while open");
                    }
                    if state == State::HalfOpen && trials >= permitted {
                        prop_assert!(r.as_ref().is_err_and(is_open), "too many trials");
                    }
                }
                Op::Hold => {
                    let (tx, rx) = oneshot::channel();
                    let ready = svc.ready().await.unwrap();
                    let fut = ready.call(Req::Wait(rx));
                    let trial = state == State::HalfOpen;
                    let h = tokio::spawn(async move {
                        let _ = fut.await;
                    });
                    tokio::task::yield_now().await;
                    // A rejected call finishes at once and is no trial.
                    let admitted = !h.is_finished();
                    if admitted {
                        prop_assert!(state != State::Open, "admitted while open");
                        if trial {
                            prop_assert!(
                                trials < permitted,
                                "{} trials in flight, {} permitted",
                                trials + 1,
                                permitted
                            );
                        }
                    }
                    held.push((tx, h, (trial && admitted).then_some(now)));
                }
                Op::Finish(ok) => {
                    if !held.is_empty() {
                        let (tx, h, _) = held.remove(0);
                        let _ = tx.send(ok);
                        h.await.unwrap();
                    }
                }
                Op::Cancel => {
                    if !held.is_empty() {
                        let (_, h, _) = held.remove(0);
                        h.abort();
                        let _ = h.await;
                    }
                }
                Op::Wait(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
            settle().await;
        }
        let transitions = transitions.lock().unwrap().clone();
        for w in transitions.windows(2) {
            prop_assert_eq!(w[0].1, w[1].0, "transitions chain");
        }
        for (from, to) in transitions {
            prop_assert!(allowed(from, to), "{} -> {}", from, to);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hystrix_admits_at_most_one_trial(ops in proptest::collection::vec(op(), 1..120)) {
        let mut c = HystrixConfig::default();
        c.request_volume_threshold = 3;
        c.sleep_window = Duration::from_millis(1_000);
        let b = Breaker::builder("prop-hystrix").hystrix(c).build().unwrap();
        run(b, 1, ops)?;
    }

    #[test]
    fn resilience4j_admits_at_most_n_trials(
        ops in proptest::collection::vec(op(), 1..120),
        permitted in 1u32..4,
        time_based in any::<bool>(),
    ) {
        let mut c = Resilience4jConfig::default();
        c.sliding_window = if time_based { SlidingWindow::time_based(3) } else { SlidingWindow::count_based(4) };
        c.minimum_number_of_calls = 3;
        c.permitted_calls_in_half_open = permitted;
        c.wait_in_open = WaitInOpen::fixed(Duration::from_millis(1_000));
        c.max_wait_in_half_open = Duration::from_millis(4_000);
        let b = Breaker::builder("prop-r4j").resilience4j(c).build().unwrap();
        run(b, permitted as usize, ops)?;
    }
}
