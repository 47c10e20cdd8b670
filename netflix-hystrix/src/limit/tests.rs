//! Vectors from Netflix/concurrency-limits' own unit tests (AIMDLimitTest, VegasLimitTest,
//! Gradient2LimitTest), plus the limiter's admission rule.

use super::*;
use proptest::prelude::*;
use tower::ServiceExt;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn aimd(initial: u32, min: u32, max: u32) -> Aimd {
    Aimd::new(AimdConfig {
        initial_limit: initial,
        min_limit: min,
        max_limit: max,
        ..AimdConfig::default()
    })
    .unwrap()
}

#[test]
fn aimd_matches_java() {
    // increaseOnSuccess: initial 20, inflight 10 (half in use) → 21.
    assert_eq!(aimd(20, 20, 200).on_sample(ms(1), 10, false), 21);
    // decreaseOnDrops: initial 30 → 27.
    assert_eq!(aimd(30, 20, 200).on_sample(ms(1), 0, true), 27);
    // successOverflow: capped at max.
    assert_eq!(aimd(21, 0, 21).on_sample(ms(1), 21, false), 21);
    // A call slower than the timeout is a drop.
    assert_eq!(
        aimd(100, 20, 200).on_sample(Duration::from_secs(6), 50, false),
        90
    );
    // App-limited: fewer than half in use, no growth.
    assert_eq!(aimd(20, 20, 200).on_sample(ms(1), 9, false), 20);
    // Clamped to the minimum.
    assert_eq!(aimd(20, 20, 200).on_sample(ms(1), 0, true), 20);
    let bad = AimdConfig {
        backoff_ratio: 1.0,
        ..AimdConfig::default()
    };
    assert!(Aimd::new(bad).is_err());
}

fn vegas(initial: u32, max: u32) -> Vegas {
    Vegas::new(VegasConfig {
        initial_limit: initial,
        max_concurrency: max,
        ..VegasConfig::default()
    })
    .unwrap()
}

#[test]
fn vegas_matches_java() {
    // increaseLimit: the first sample sets the no-load RTT; no queue → +beta.
    let mut v = vegas(10, 20);
    assert_eq!(v.on_sample(ms(10), 10, false), 10);
    assert_eq!(v.on_sample(ms(10), 11, false), 16);
    // decreaseLimit: a long queue → -log10.
    let mut v = vegas(10, 20);
    v.on_sample(ms(10), 10, false);
    assert_eq!(v.on_sample(ms(50), 11, false), 9);
    // noChangeIfWithinThresholds.
    let mut v = vegas(10, 20);
    v.on_sample(ms(10), 10, false);
    assert_eq!(v.on_sample(ms(14), 14, false), 10);
    // decreaseSmoothing-free default: a drop decreases.
    let mut v = vegas(10, 20);
    v.on_sample(ms(10), 10, false);
    assert_eq!(v.on_sample(ms(10), 10, true), 9);
    // increaseLimitWithDefaults: initial 10000, max 20000.
    let mut v = vegas(10_000, 20_000);
    assert_eq!(v.on_sample(Duration::from_secs(10), 5000, false), 10_000);
    assert_eq!(v.on_sample(Duration::from_secs(10), 6000, false), 10_024);
}

#[test]
fn log10_root_matches_the_java_table() {
    for (x, want) in [
        (0, 1),
        (9, 1),
        (10, 1),
        (99, 1),
        (100, 2),
        (999, 2),
        (1000, 3),
        (10_000, 4),
    ] {
        assert_eq!(log10_root(x), want, "log10_root({x})");
    }
}

#[test]
fn gradient2_matches_java() {
    let mut g = Gradient2::default();
    assert_eq!(g.on_sample(ms(10), 20, false), 20); // 20.8
    assert_eq!(g.on_sample(ms(10), 20, false), 21); // 21.6
    // App-limited: below half the limit, nothing changes.
    let before = g.estimated;
    g.on_sample(ms(10), 5, false);
    assert_eq!(g.estimated, before);
    // RTT doubles: the gradient bottoms out at 0.5 and the limit shrinks toward the minimum.
    let mut g = Gradient2::default();
    for _ in 0..50 {
        g.on_sample(ms(10), 200, false);
    }
    let grown = g.limit();
    assert!(grown > 40, "{grown}");
    for _ in 0..20 {
        g.on_sample(ms(100), 200, false);
    }
    assert!(g.limit() < grown, "{} < {grown}", g.limit());
}

proptest! {
    #[test]
    fn limits_stay_in_bounds(samples in proptest::collection::vec((1u64..2_000, 0u32..400, any::<bool>()), 1..300)) {
        let mut a = Aimd::default();
        let mut v = Vegas::default();
        let mut g = Gradient2::default();
        for (rtt, inflight, drop) in samples {
            let rtt = ms(rtt);
            let la = a.on_sample(rtt, inflight, drop);
            prop_assert!((20..=200).contains(&la));
            let lv = v.on_sample(rtt, inflight, drop);
            prop_assert!((1..=1000).contains(&lv));
            let lg = g.on_sample(rtt, inflight, drop);
            prop_assert!((20..=200).contains(&lg));
        }
    }
}

#[tokio::test]
async fn the_limiter_rejects_above_the_limit() {
    let limiter = AdaptiveLimitLayer::new(aimd(2, 1, 200));
    // Each call waits for its own gate, so the test decides the order.
    let svc = limiter.clone().layer(tower::service_fn(
        |mut gate: tokio::sync::watch::Receiver<bool>| async move {
            let _ = gate.wait_for(|open| *open).await;
            Ok::<_, BoxError>(())
        },
    ));
    let (open_a, gate_a) = tokio::sync::watch::channel(false);
    let (open_b, gate_b) = tokio::sync::watch::channel(false);
    let a = tokio::spawn(svc.clone().oneshot(gate_a)); // in flight: 1
    tokio::task::yield_now().await;
    let b = tokio::spawn(svc.clone().oneshot(gate_b)); // in flight: 2
    tokio::task::yield_now().await;
    assert_eq!(limiter.in_flight(), 2);
    let (_never, gate_c) = tokio::sync::watch::channel(false);
    let err = svc.clone().oneshot(gate_c).await.unwrap_err();
    assert!(err.is::<error::LimitExceeded>());
    assert_eq!(
        crate::classify::classify_error(&err),
        Outcome::SemaphoreRejected
    );
    // a (started with 1 in flight, half of 2): 2 → 3. b (started with 2, 2·2 ≥ 3): 3 → 4.
    open_a.send(true).unwrap();
    a.await.unwrap().unwrap();
    assert_eq!(limiter.limit(), 3);
    open_b.send(true).unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(limiter.limit(), 4);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(limiter.rejected(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_drops() {
    let limiter = AdaptiveLimitLayer::new(aimd(100, 20, 200));
    let svc =
        limiter.clone().layer(
            crate::timeout::TimeoutLayer::new(ms(10)).layer(tower::service_fn(|_: ()| async {
                tokio::time::sleep(ms(50)).await;
                Ok::<_, BoxError>(())
            })),
        );
    svc.oneshot(()).await.unwrap_err();
    assert_eq!(limiter.limit(), 90);
}
