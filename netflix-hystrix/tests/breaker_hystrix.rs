//! The Hystrix profile's documented state machine, driven with paused time.

mod support;

use netflix_hystrix::breaker::{Breaker, BreakerEvent, CircuitBreaker, HystrixConfig, State};
use netflix_hystrix::metrics::EventType;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::sync::oneshot;
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt};

fn setup() -> (Breaker, CircuitBreaker<Scripted, BadIsIgnored>) {
    let breaker = Breaker::new("dep");
    let svc = breaker.layer().classifier(BadIsIgnored).layer(Scripted);
    (breaker, svc)
}

async fn run(
    svc: &mut impl Service<Req, Response = Resp, Error = netflix_hystrix::BoxError>,
    ok: usize,
    fail: usize,
) {
    for _ in 0..ok {
        call(svc, Req::Ok).await.unwrap();
    }
    for _ in 0..fail {
        assert!(!is_open(&call(svc, Req::Fail).await.unwrap_err()));
    }
}

/// Lets the next health snapshot (every 500 ms) run.
async fn next_snapshot() {
    sleep(Duration::from_millis(500)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn trips_at_volume_and_error_percentage() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 10, 10).await; // 20 requests, 50% errors
    assert_eq!(
        breaker.state(),
        State::Closed,
        "health is sampled, not checked per call"
    );
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Open);
    let err = call(&mut svc, Req::Ok).await.unwrap_err();
    assert!(is_open(&err), "{err}");
    assert_eq!(err.to_string(), "circuit breaker is open");
}

#[tokio::test(start_paused = true)]
async fn below_volume_threshold_never_trips() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 19).await; // 19 requests, 100% errors
    next_snapshot().await;
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn below_error_percentage_never_trips() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 11, 9).await; // 45% errors
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Closed);
    // One more failure makes 10 of 21 = 47%: still closed.
    run(&mut svc, 0, 1).await;
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_and_short_circuits_do_not_count() {
    let (breaker, mut svc) = setup();
    for _ in 0..50 {
        call(&mut svc, Req::Bad).await.unwrap();
    }
    run(&mut svc, 0, 19).await;
    next_snapshot().await;
    assert_eq!(
        breaker.state(),
        State::Closed,
        "bad requests are not in the volume"
    );
    let h = breaker.metrics().health();
    assert_eq!((h.total_requests(), h.error_count()), (19, 19));
}

#[tokio::test(start_paused = true)]
async fn window_forgets_after_ten_seconds() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 15).await;
    sleep(Duration::from_secs(11)).await;
    run(&mut svc, 0, 5).await;
    next_snapshot().await;
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the first 15 failures aged out"
    );
}

#[tokio::test(start_paused = true)]
async fn exactly_one_trial_after_the_sleep_window_and_success_closes() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 20).await;
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Open);

    // Just before the sleep window ends everything is rejected.
    sleep(Duration::from_millis(4_900)).await;
    assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
    sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(breaker.state(), State::HalfOpen);

    // The trial is in flight: every other call is rejected.
    let (tx, rx) = oneshot::channel();
    let mut trial_svc = svc.clone();
    let trial = tokio::spawn(async move { call(&mut trial_svc, Req::Wait(rx)).await });
    settle().await;
    for _ in 0..5 {
        assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
    }
    tx.send(true).unwrap();
    assert_eq!(trial.await.unwrap().unwrap(), Resp::Ok);
    assert_eq!(breaker.state(), State::Closed);
    // Success reset the window: 19 fresh failures do not trip it.
    assert_eq!(breaker.metrics().health().total_requests(), 0);
    run(&mut svc, 0, 19).await;
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_for_another_sleep_window() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 20).await;
    next_snapshot().await;
    sleep(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(breaker.state(), State::HalfOpen);
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(breaker.state(), State::Open);
    let until = breaker.open_until().unwrap();
    assert_eq!(until - tokio::time::Instant::now(), Duration::from_secs(5));
    sleep(Duration::from_millis(4_999)).await;
    assert_eq!(breaker.state(), State::Open);
    sleep(Duration::from_millis(2)).await;
    settle().await;
    assert_eq!(breaker.state(), State::HalfOpen);
}

// See the point 3: Hystrix re-opens a half-open circuit on a bad request.
#[tokio::test(start_paused = true)]
async fn ignored_trial_releases_the_permit() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 20).await;
    next_snapshot().await;
    sleep(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(call(&mut svc, Req::Bad).await.unwrap(), Resp::Bad);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "a bad request decides nothing"
    );
    // The next call is the trial.
    call(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn cancelled_trial_releases_the_permit() {
    let (breaker, mut svc) = setup();
    run(&mut svc, 0, 20).await;
    next_snapshot().await;
    sleep(Duration::from_secs(5)).await;
    settle().await;
    let (_tx, rx) = oneshot::channel::<bool>();
    let fut = svc.ready().await.unwrap().call(Req::Wait(rx));
    drop(fut);
    call(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        breaker
            .metrics()
            .snapshot()
            .cumulative()
            .get(EventType::Cancelled),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn force_open_and_force_closed() {
    let (breaker, mut svc) = setup();
    breaker.force_open();
    assert!(is_open(&call(&mut svc, Req::Ok).await.unwrap_err()));
    breaker.force_closed();
    run(&mut svc, 0, 40).await;
    next_snapshot().await;
    assert_eq!(
        breaker.state(),
        State::Disabled,
        "forced closed never trips"
    );
    // Through configuration, as Hystrix's properties do.
    let mut cfg = HystrixConfig::default();
    cfg.force_open = true;
    breaker.set_hystrix_config(&cfg).unwrap();
    assert_eq!(breaker.state(), State::ForcedOpen);
    cfg.force_open = false;
    breaker.set_hystrix_config(&cfg).unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn thresholds_change_at_run_time() {
    let (breaker, mut svc) = setup();
    let mut cfg = HystrixConfig::default();
    cfg.request_volume_threshold = 5;
    cfg.error_threshold_percentage = 80;
    cfg.sleep_window = Duration::from_secs(1);
    breaker.set_hystrix_config(&cfg).unwrap();
    run(&mut svc, 1, 4).await; // 5 requests, 80%
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Open);
    sleep(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(breaker.state(), State::HalfOpen);
    cfg.error_threshold_percentage = 101;
    assert!(breaker.set_hystrix_config(&cfg).unwrap_err().is_config());
}

#[tokio::test(start_paused = true)]
async fn events_and_metrics_record_what_happened() {
    let (breaker, mut svc) = setup();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    breaker.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    run(&mut svc, 0, 20).await;
    next_snapshot().await;
    for _ in 0..3 {
        call(&mut svc, Req::Ok).await.unwrap_err();
    }
    advance(Duration::from_secs(1)).await;
    let s = breaker.metrics().snapshot();
    assert_eq!(s.cumulative().get(EventType::Failure), 20);
    assert_eq!(s.cumulative().get(EventType::ShortCircuited), 3);
    let events = events.lock().unwrap();
    let transitions: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, BreakerEvent::StateTransition { .. }))
        .collect();
    assert_eq!(
        transitions,
        [&BreakerEvent::StateTransition {
            from: State::Closed,
            to: State::Open
        }]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == BreakerEvent::NotPermitted)
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let (breaker, svc) = setup();
    let mut clones: Vec<_> = (0..4).map(|_| svc.clone()).collect();
    for c in clones.iter_mut() {
        run(c, 0, 5).await;
    }
    next_snapshot().await;
    assert_eq!(breaker.state(), State::Open);
    drop(clones);
    assert_eq!(
        breaker
            .metrics()
            .snapshot()
            .cumulative()
            .get(EventType::Failure),
        20
    );
}

#[tokio::test]
async fn works_on_a_multi_thread_runtime_with_real_time() {
    let breaker = Breaker::builder("mt")
        .hystrix({
            let mut c = HystrixConfig::default();
            c.request_volume_threshold = 4;
            c
        })
        .build()
        .unwrap();
    let mut svc = breaker.layer().classifier(BadIsIgnored).layer(Scripted);
    run(&mut svc, 0, 4).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while breaker.state() != State::Open && tokio::time::Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(breaker.state(), State::Open);
}
