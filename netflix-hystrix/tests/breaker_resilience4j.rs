//! The resilience4j profile's documented state machine, driven with paused time.

mod support;

use netflix_hystrix::breaker::{
    Breaker, BreakerEvent, CircuitBreaker, Resilience4jConfig, SlidingWindow, State, WaitInOpen,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::time::sleep;
use tower::Layer;

type Events = Arc<Mutex<Vec<BreakerEvent>>>;

fn breaker(
    config: Resilience4jConfig,
) -> (Breaker, CircuitBreaker<Scripted, BadIsIgnored>, Events) {
    let breaker = Breaker::builder("r4j")
        .resilience4j(config)
        .build()
        .unwrap();
    let events: Events = Default::default();
    let sink = events.clone();
    breaker.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    let svc = breaker.layer().classifier(BadIsIgnored).layer(Scripted);
    (breaker, svc, events)
}

fn count_based(size: u32, min: u32) -> Resilience4jConfig {
    let mut c = Resilience4jConfig::default();
    c.sliding_window = SlidingWindow::count_based(size);
    c.minimum_number_of_calls = min;
    c.wait_in_open = WaitInOpen::fixed(Duration::from_secs(1));
    c.permitted_calls_in_half_open = 3;
    c
}

fn transitions(events: &Events) -> Vec<(State, State)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::StateTransition { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn trips_on_the_call_that_reaches_the_minimum() {
    let (b, mut svc, events) = breaker(count_based(10, 5));
    for _ in 0..4 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    assert_eq!(
        b.state(),
        State::Closed,
        "below the minimum number of calls"
    );
    assert_eq!(
        b.failure_rate(),
        None,
        "resilience4j reports -1 below the minimum"
    );
    events.lock().unwrap().clear();
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open, "evaluated on every call");
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(events[0], BreakerEvent::Error { .. }),
        "{events:?}"
    );
    assert_eq!(events[1], BreakerEvent::FailureRateExceeded { rate: 100.0 });
    assert_eq!(
        events[2],
        BreakerEvent::StateTransition {
            from: State::Closed,
            to: State::Open
        }
    );
    assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
}

#[tokio::test(start_paused = true)]
async fn count_window_keeps_only_the_last_n_calls() {
    let (b, mut svc, _) = breaker(count_based(4, 4));
    // F S S S: 25%.
    call(&mut svc, Req::Fail).await.unwrap_err();
    for _ in 0..3 {
        call(&mut svc, Req::Ok).await.unwrap();
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.failure_rate(), Some(25.0));
    // S S S F: the first failure left the window, so still 25%.
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(b.window().calls(), 4);
    assert_eq!(b.failure_rate(), Some(25.0));
    // S S F F: 50% trips.
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_on_the_slow_call_rate() {
    let mut cfg = count_based(4, 4);
    cfg.slow_call_duration_threshold = Duration::from_millis(100);
    cfg.slow_call_rate_threshold = 50.0;
    let (b, mut svc, events) = breaker(cfg);
    call(&mut svc, Req::Ok).await.unwrap();
    call(&mut svc, Req::Slow(Duration::from_millis(100)))
        .await
        .unwrap(); // not slow: strictly longer
    call(&mut svc, Req::Slow(Duration::from_millis(150)))
        .await
        .unwrap();
    assert_eq!(b.state(), State::Closed);
    call(&mut svc, Req::Slow(Duration::from_millis(101)))
        .await
        .unwrap();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.window().slow_calls(), 2);
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&BreakerEvent::SlowCallRateExceeded { rate: 50.0 })
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_seconds() {
    let mut cfg = Resilience4jConfig::default();
    cfg.sliding_window = SlidingWindow::time_based(3);
    cfg.minimum_number_of_calls = 4;
    let (b, mut svc, _) = breaker(cfg);
    for _ in 0..3 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    sleep(Duration::from_secs(3)).await;
    // The three failures are three seconds old: gone.
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(b.window().calls(), 1);
    assert_eq!(b.state(), State::Closed);
    for _ in 0..3 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn half_open_permits_n_trials_and_decides_on_their_rate() {
    let (b, mut svc, events) = breaker(count_based(4, 4));
    for _ in 0..4 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);
    sleep(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(b.state(), State::HalfOpen);
    // Three permits: hold them all, then a fourth call is rejected.
    let mut held = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut s = svc.clone();
        held.push(tokio::spawn(
            async move { call(&mut s, Req::Wait(rx)).await },
        ));
        senders.push(tx);
    }
    settle().await;
    assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
    // Two successes and one failure: 33% < 50%, so it closes after the third.
    for (i, tx) in senders.into_iter().enumerate() {
        tx.send(i != 0).unwrap();
        settle().await;
        if i < 2 {
            assert_eq!(b.state(), State::HalfOpen);
        }
    }
    for h in held {
        let _ = h.await.unwrap();
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        transitions(&events),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
    assert_eq!(b.window().calls(), 0, "closing starts a fresh window");
}

#[tokio::test(start_paused = true)]
async fn failed_trials_reopen_with_the_next_backoff_attempt() {
    let mut cfg = count_based(2, 2);
    cfg.permitted_calls_in_half_open = 1;
    cfg.wait_in_open = WaitInOpen::exponential(Duration::from_millis(500), 1.5);
    let (b, mut svc, _) = breaker(cfg);
    call(&mut svc, Req::Fail).await.unwrap_err();
    call(&mut svc, Req::Fail).await.unwrap_err();
    let now = tokio::time::Instant::now();
    assert_eq!(b.open_until().unwrap() - now, Duration::from_millis(500));
    sleep(Duration::from_millis(500)).await;
    settle().await;
    assert_eq!(b.state(), State::HalfOpen);
    call(&mut svc, Req::Fail).await.unwrap_err();
    let now = tokio::time::Instant::now();
    assert_eq!(b.open_until().unwrap() - now, Duration::from_millis(750));
    sleep(Duration::from_millis(750)).await;
    settle().await;
    call(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    // Closing reset the attempts: the next trip waits 500 ms again.
    call(&mut svc, Req::Fail).await.unwrap_err();
    call(&mut svc, Req::Fail).await.unwrap_err();
    let now = tokio::time::Instant::now();
    assert_eq!(b.open_until().unwrap() - now, Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn max_wait_in_half_open_moves_on_regardless() {
    let mut cfg = count_based(2, 2);
    cfg.max_wait_in_half_open = Duration::from_secs(2);
    let (b, mut svc, _) = breaker(cfg);
    call(&mut svc, Req::Fail).await.unwrap_err();
    call(&mut svc, Req::Fail).await.unwrap_err();
    sleep(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(b.state(), State::HalfOpen);
    call(&mut svc, Req::Ok).await.unwrap(); // 1 of 2 needed trials
    sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(b.state(), State::Open, "the half-open wait ran out");
}

#[tokio::test(start_paused = true)]
async fn ignored_errors_release_permits_and_count_for_nothing() {
    let mut cfg = count_based(2, 2);
    cfg.permitted_calls_in_half_open = 1;
    let (b, mut svc, events) = breaker(cfg);
    call(&mut svc, Req::Bad).await.unwrap();
    assert_eq!(b.window().calls(), 0);
    call(&mut svc, Req::Fail).await.unwrap_err();
    call(&mut svc, Req::Fail).await.unwrap_err();
    sleep(Duration::from_secs(1)).await;
    settle().await;
    call(&mut svc, Req::Bad).await.unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    call(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    let ignored = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, BreakerEvent::IgnoredError { .. }))
        .count();
    assert_eq!(ignored, 2);
}

#[tokio::test(start_paused = true)]
async fn disabled_forced_open_and_metrics_only() {
    let (b, mut svc, events) = breaker(count_based(2, 2));
    b.transition_to(State::Disabled).unwrap();
    for _ in 0..5 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.window().calls(), 0, "disabled records nothing");

    b.transition_to(State::ForcedOpen).unwrap();
    events.lock().unwrap().clear();
    assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
    assert!(
        !events.lock().unwrap().contains(&BreakerEvent::NotPermitted),
        "forced open publishes no per-call events"
    );

    b.transition_to(State::MetricsOnly).unwrap();
    events.lock().unwrap().clear();
    for _ in 0..5 {
        call(&mut svc, Req::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::MetricsOnly, "never trips");
    let exceeded = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, BreakerEvent::FailureRateExceeded { .. }))
        .count();
    assert_eq!(exceeded, 1, "published once");
}

#[tokio::test(start_paused = true)]
async fn manual_transitions_follow_resilience4j_rules() {
    let (b, _svc, events) = breaker(count_based(2, 2));
    let err = b.transition_to(State::HalfOpen).unwrap_err();
    assert!(err.is_illegal_transition(), "{err}");
    assert_eq!(
        err.to_string(),
        "illegal circuit breaker transition from CLOSED to HALF_OPEN"
    );
    b.transition_to(State::Closed).unwrap();
    assert!(transitions(&events).is_empty(), "same state: no event");
    b.transition_to(State::Open).unwrap();
    b.transition_to(State::HalfOpen).unwrap();
    b.transition_to(State::MetricsOnly).unwrap();
    assert!(b.transition_to(State::Open).is_err());
    b.reset();
    assert_eq!(b.state(), State::Closed);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.last(), Some(&BreakerEvent::Reset));
    assert_eq!(
        transitions(&Arc::new(Mutex::new(events))),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::MetricsOnly),
            (State::MetricsOnly, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn reset_cancels_pending_deadlines() {
    let mut cfg = count_based(2, 2);
    cfg.max_wait_in_half_open = Duration::from_secs(1);
    let (b, _svc, _) = breaker(cfg);
    b.transition_to(State::Open).unwrap();
    sleep(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(b.state(), State::HalfOpen);
    b.reset();
    sleep(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(b.state(), State::Closed, "no stale timer re-opens it");
}

#[tokio::test(start_paused = true)]
async fn initial_state_and_runtime_config() {
    let mut cfg = count_based(2, 2);
    cfg.initial_state = State::ForcedOpen;
    let (b, mut svc, _) = breaker(cfg.clone());
    assert_eq!(b.state(), State::ForcedOpen);
    b.reset();
    let mut stricter = cfg.clone();
    stricter.failure_rate_threshold = 100.0;
    b.set_resilience4j_config(&stricter).unwrap();
    call(&mut svc, Req::Ok).await.unwrap();
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(
        b.state(),
        State::Closed,
        "50% is below the new 100% threshold"
    );
    let mut other_window = cfg;
    other_window.sliding_window = SlidingWindow::count_based(3);
    assert!(
        b.set_resilience4j_config(&other_window)
            .unwrap_err()
            .is_config()
    );
    assert!(b.set_hystrix_config(&Default::default()).is_err());
}
