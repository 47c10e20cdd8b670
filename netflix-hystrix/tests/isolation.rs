//! Bulkheads, thread pools and timeouts: rejection rules, waiting, cancellation, metrics.

use netflix_hystrix::BoxError;
use netflix_hystrix::bulkhead::{BulkheadConfig, BulkheadLayer, error::BulkheadFull};
use netflix_hystrix::metrics::{CommandMetrics, EventType};
use netflix_hystrix::pool::{ThreadPool, ThreadPoolConfig, error::PoolRejected};
use netflix_hystrix::timeout::{TimeoutLayer, error::Elapsed};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_test::assert_ready_ok;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

/// A service whose calls wait until the gate opens.
fn gated() -> (
    watch::Sender<bool>,
    impl Service<u32, Response = u32, Error = BoxError, Future = impl Send> + Clone + Send + 'static,
) {
    let (tx, rx) = watch::channel(false);
    let svc = tower::service_fn(move |x: u32| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|open| *open).await;
            Ok::<_, BoxError>(x)
        }
    });
    (tx, svc)
}

#[tokio::test]
async fn semaphore_bulkhead_rejects_at_once_when_full() {
    let bulkhead = BulkheadLayer::new(BulkheadConfig::new(2)).unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(bulkhead.clone());
    assert_ready_ok!(svc.poll_ready());
    let a = svc.call(1);
    assert_ready_ok!(svc.poll_ready());
    let b = svc.call(2);
    assert_eq!(bulkhead.in_flight(), 2);
    // Full: readiness is granted, but the call fails at once without reaching the service.
    assert_ready_ok!(svc.poll_ready());
    let err = svc.call(3).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    assert_eq!(bulkhead.rejected_calls(), 1);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 1);
    send.send_response(10);
    assert_eq!(a.await.unwrap(), 10);
    assert_eq!(bulkhead.in_flight(), 1);
    drop(b); // a dropped call releases its permit too
    assert_eq!(bulkhead.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_waits_a_bounded_time() {
    let cfg = BulkheadConfig::new(1).max_wait(Duration::from_millis(100));
    let bulkhead = BulkheadLayer::new(cfg).unwrap();
    let (open, inner) = gated();
    let svc = bulkhead.clone().layer(inner);
    let first = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    // The second call waits for room, and gets it when the first finishes.
    let second = tokio::spawn(svc.clone().oneshot(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    open.send(true).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    // Nobody frees room within 100 ms: rejected.
    let (_closed, inner) = gated();
    let svc = bulkhead.clone().layer(inner);
    let _holder = tokio::spawn(svc.clone().oneshot(3));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(4).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    assert!(
        BulkheadLayer::new(BulkheadConfig::new(0))
            .unwrap_err()
            .is_config()
    );
}

#[tokio::test(start_paused = true)]
async fn bulkhead_limit_changes_at_run_time() {
    let bulkhead = BulkheadLayer::new(BulkheadConfig::new(1)).unwrap();
    let (_gate, inner) = gated();
    let svc = bulkhead.clone().layer(inner);
    let _a = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    assert!(
        svc.clone()
            .oneshot(2)
            .await
            .unwrap_err()
            .is::<BulkheadFull>()
    );
    bulkhead.reconfigure(&BulkheadConfig::new(2)).unwrap();
    let b = tokio::spawn(svc.clone().oneshot(3));
    tokio::task::yield_now().await;
    assert!(!b.is_finished(), "admitted under the raised limit");
    assert_eq!(bulkhead.in_flight(), 2);
}

fn pool(core: u32, max: u32, queue: Option<u32>, threshold: u32) -> ThreadPool {
    let mut c = ThreadPoolConfig::default();
    c.core_size = core;
    c.maximum_size = max;
    c.allow_maximum_size_to_diverge_from_core_size = max > core;
    c.max_queue_size = queue;
    c.queue_size_rejection_threshold = threshold;
    c.keep_alive = Duration::from_secs(1);
    ThreadPool::new("pool", c).unwrap()
}

#[tokio::test(start_paused = true)]
async fn synchronous_pool_rejects_when_every_worker_is_busy() {
    let p = pool(2, 2, None, 5);
    let (open, inner) = gated();
    let svc = p.layer().layer(inner);
    let a = tokio::spawn(svc.clone().oneshot(1));
    let b = tokio::spawn(svc.clone().oneshot(2));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(3).await.unwrap_err();
    assert!(err.is::<PoolRejected>(), "{err}");
    let s = p.snapshot();
    assert_eq!((s.active_count(), s.pool_size(), s.queue_size()), (2, 2, 0));
    open.send(true).unwrap();
    assert_eq!(a.await.unwrap().unwrap(), 1);
    assert_eq!(b.await.unwrap().unwrap(), 2);
    tokio::task::yield_now().await;
    // Idle core workers take calls without growing the pool.
    assert_eq!(svc.clone().oneshot(4).await.unwrap(), 4);
    let s = p.snapshot();
    assert_eq!(s.completed_task_count(), 3);
    assert_eq!(s.largest_pool_size(), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    let s = p.snapshot();
    assert_eq!(s.rolling_rejected(), 1);
    assert_eq!(s.rolling_executed(), 3);
    assert_eq!(s.rolling_max_active(), 2);
}

#[tokio::test(start_paused = true)]
async fn queued_pool_honours_the_rejection_threshold() {
    // One worker, a queue of 10, but reject beyond 2 queued (Hystrix's dynamic cap).
    let p = pool(1, 1, Some(10), 2);
    let (open, inner) = gated();
    let svc = p.layer().layer(inner);
    let mut calls: Vec<_> = (0..3)
        .map(|i| tokio::spawn(svc.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(p.snapshot().queue_size(), 2);
    assert!(
        svc.clone()
            .oneshot(9)
            .await
            .unwrap_err()
            .is::<PoolRejected>()
    );
    // Raise the threshold at run time: one more fits.
    let mut c = ThreadPoolConfig::default();
    c.core_size = 1;
    c.max_queue_size = Some(10);
    c.queue_size_rejection_threshold = 3;
    p.reconfigure(&c).unwrap();
    calls.push(tokio::spawn(svc.clone().oneshot(3)));
    tokio::task::yield_now().await;
    assert_eq!(p.snapshot().queue_size(), 3);
    open.send(true).unwrap();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), i as u32);
    }
}

#[tokio::test(start_paused = true)]
async fn pool_grows_to_maximum_and_shrinks_after_keep_alive() {
    let p = pool(1, 3, None, 5);
    let (open, inner) = gated();
    let svc = p.layer().layer(inner);
    let calls: Vec<_> = (0..3)
        .map(|i| tokio::spawn(svc.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(p.snapshot().pool_size(), 3);
    assert!(
        svc.clone()
            .oneshot(9)
            .await
            .unwrap_err()
            .is::<PoolRejected>()
    );
    open.send(true).unwrap();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        p.snapshot().pool_size(),
        1,
        "extra workers left after keep-alive"
    );
    assert_eq!(p.snapshot().largest_pool_size(), 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_cancels_the_work() {
    let p = pool(1, 1, Some(5), 5);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let svc = p.layer().layer(tower::service_fn(move |_: ()| {
        let r = r.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            r.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        }
    }));
    let timed = TimeoutLayer::new(Duration::from_millis(10)).layer(svc);
    let err = timed.oneshot(()).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "the work was cancelled, not left running"
    );
    assert_eq!(p.snapshot().active_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn timeout_records_events_and_changes_at_run_time() {
    let metrics = CommandMetrics::new("slow");
    let timeout = TimeoutLayer::new(Duration::from_millis(50)).metrics(metrics.clone());
    let svc = timeout
        .clone()
        .layer(tower::service_fn(|d: u64| async move {
            tokio::time::sleep(Duration::from_millis(d)).await;
            Ok::<_, BoxError>(d)
        }));
    assert_eq!(svc.clone().oneshot(10).await.unwrap(), 10);
    assert!(svc.clone().oneshot(100).await.unwrap_err().is::<Elapsed>());
    timeout.set_timeout(Duration::from_millis(200));
    assert_eq!(svc.clone().oneshot(100).await.unwrap(), 100);
    timeout.set_timeout(None);
    assert_eq!(timeout.timeout(), None);
    assert_eq!(svc.clone().oneshot(10_000).await.unwrap(), 10_000);
    assert_eq!(metrics.snapshot().cumulative().get(EventType::Timeout), 1);
}
