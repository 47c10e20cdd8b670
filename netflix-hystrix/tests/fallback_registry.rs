//! Fallbacks per cause with their events and limit, and the registry's command stack with
//! Hystrix properties applied at creation and at run time.

mod support;

use netflix_hystrix::BoxError;
use netflix_hystrix::breaker::{Breaker, State};
use netflix_hystrix::config::{CommandProperties, HystrixProperties};
use netflix_hystrix::fallback::{
    BoxFuture, Cause, FallbackLayer, PerCause, error::FallbackError, fallback_with,
};
use netflix_hystrix::metrics::EventType;
use netflix_hystrix::registry::Registry;
use netflix_hystrix::timeout::TimeoutLayer;
use std::time::Duration;
use support::*;
use tokio::sync::oneshot;
use tower::{Layer, ServiceBuilder, ServiceExt};

fn labelled() -> PerCause<Resp> {
    PerCause::new()
        .failed(|_| async { Ok(Resp::Ok) })
        .timed_out(|_| async { Err::<Resp, BoxError>("timeout fallback failed".into()) })
}

#[tokio::test(start_paused = true)]
async fn fallbacks_by_cause_with_events() {
    let breaker = Breaker::new("fb");
    let metrics = breaker.metrics().clone();
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(labelled())
                .metrics(metrics.clone())
                .classifier(BadIsIgnored),
        )
        .layer(breaker.layer().classifier(BadIsIgnored))
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(Scripted);

    // Failure → fallback succeeds.
    assert_eq!(svc.clone().oneshot(Req::Fail).await.unwrap(), Resp::Ok);
    // Timeout → fallback fails: both errors are kept.
    let err = svc
        .clone()
        .oneshot(Req::Slow(Duration::from_secs(1)))
        .await
        .unwrap_err();
    let fe = err
        .downcast_ref::<FallbackError>()
        .expect("a fallback error");
    assert!(fe.is_failed());
    assert_eq!(fe.cause(), Cause::TimedOut);
    assert!(
        fe.primary()
            .is::<netflix_hystrix::timeout::error::Elapsed>()
    );
    assert_eq!(
        fe.fallback().unwrap().to_string(),
        "timeout fallback failed"
    );
    // Short-circuited → no fallback for that cause: the original error.
    breaker.force_open();
    let err = svc.clone().oneshot(Req::Ok).await.unwrap_err();
    assert!(is_open(&err));
    breaker.reset();
    // A bad request never falls back.
    assert_eq!(svc.clone().oneshot(Req::Bad).await.unwrap(), Resp::Bad);

    tokio::time::advance(Duration::from_secs(1)).await;
    let c = *metrics.snapshot().cumulative();
    assert_eq!(c.get(EventType::FallbackSuccess), 1);
    assert_eq!(c.get(EventType::FallbackFailure), 1);
    assert_eq!(c.get(EventType::FallbackMissing), 1);
    assert_eq!(c.get(EventType::Failure), 1);
    assert_eq!(c.get(EventType::Timeout), 1);
    assert_eq!(c.get(EventType::ShortCircuited), 1);
    assert_eq!(c.get(EventType::BadRequest), 1);
    assert_eq!(
        c.exceptions_thrown(),
        1 + 1 + 1,
        "bad request, fallback failure, fallback missing"
    );
}

#[tokio::test(start_paused = true)]
async fn the_fallback_limit_rejects_extra_fallbacks() {
    let metrics = netflix_hystrix::metrics::CommandMetrics::new("limited");
    let (release, wait) = oneshot::channel::<()>();
    let wait = std::sync::Arc::new(tokio::sync::Mutex::new(Some(wait)));
    let slow_fallback = PerCause::new().failed(move |_| {
        let wait = wait.clone();
        async move {
            if let Some(w) = wait.lock().await.take() {
                let _ = w.await;
            }
            Ok(Resp::Ok)
        }
    });
    let svc = FallbackLayer::new(slow_fallback)
        .max_concurrent(1)
        .metrics(metrics.clone())
        .layer(Scripted);
    let first = tokio::spawn(svc.clone().oneshot(Req::Fail));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(Req::Fail).await.unwrap_err();
    let fe = err.downcast_ref::<FallbackError>().unwrap();
    assert!(fe.is_rejected());
    assert_eq!(fe.to_string(), "call failed and its fallback was rejected");
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Resp::Ok);
    assert_eq!(
        metrics
            .snapshot()
            .cumulative()
            .get(EventType::FallbackRejection),
        1
    );
}

#[tokio::test]
async fn fallback_with_request_data() {
    let policy = fallback_with(
        |req: &Req| matches!(req, Req::Fail),
        |was_fail: bool, cause, _err| -> Option<BoxFuture<Resp>> {
            (was_fail && cause == Cause::Failed)
                .then(|| Box::pin(async { Ok(Resp::Bad) }) as BoxFuture<Resp>)
        },
    );
    let svc = FallbackLayer::new(policy).layer(Scripted);
    assert_eq!(svc.clone().oneshot(Req::Fail).await.unwrap(), Resp::Bad);
}

#[tokio::test(start_paused = true)]
async fn registry_builds_the_stack_and_applies_properties_at_run_time() {
    let registry = Registry::new();
    registry
        .configure(
            &HystrixProperties::parse(
                "hystrix.command.default.circuitBreaker.requestVolumeThreshold = 4\n\
                 hystrix.command.Deps.execution.isolation.strategy = SEMAPHORE\n\
                 hystrix.command.Deps.execution.isolation.semaphore.maxConcurrentRequests = 1\n\
                 hystrix.command.Deps.execution.isolation.thread.timeoutInMilliseconds = 50",
            )
            .unwrap(),
        )
        .unwrap();
    let mut in_code = CommandProperties::default();
    in_code.circuit_breaker_error_threshold_percentage = Some(75);
    let cmd = registry
        .command("Deps")
        .properties(in_code)
        .build()
        .unwrap();
    // The same key gives the same command.
    let again = registry.command("Deps").build().unwrap();
    assert!(std::ptr::eq(cmd.metrics().key(), again.metrics().key()) || cmd.key() == again.key());
    let s = cmd.settings();
    assert_eq!(s.breaker.request_volume_threshold, 4);
    assert_eq!(
        s.breaker.error_threshold_percentage, 75,
        "code over defaults"
    );
    assert_eq!(s.semaphore_max_concurrent, 1);
    assert_eq!(s.timeout, Duration::from_millis(50));

    let svc = cmd.layer().layer(Scripted);
    // The timeout applies.
    assert!(
        svc.clone()
            .oneshot(Req::Slow(Duration::from_secs(1)))
            .await
            .is_err()
    );
    // The semaphore applies.
    let (tx, rx) = oneshot::channel();
    let held = tokio::spawn(svc.clone().oneshot(Req::Wait(rx)));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(Req::Ok).await.unwrap_err();
    assert!(err.is::<netflix_hystrix::bulkhead::error::BulkheadFull>());
    tx.send(true).unwrap();
    held.await.unwrap().unwrap();

    // Run-time change: force the circuit open by property.
    registry
        .configure(
            &HystrixProperties::parse("hystrix.command.Deps.circuitBreaker.forceOpen=true")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(cmd.breaker().state(), State::ForcedOpen);
    assert!(is_open(&svc.clone().oneshot(Req::Ok).await.unwrap_err()));
    // An invalid change is refused and nothing is applied.
    let bad = HystrixProperties::parse(
        "hystrix.command.Deps.circuitBreaker.errorThresholdPercentage=150",
    )
    .unwrap();
    assert!(registry.configure(&bad).unwrap_err().is_config());
    assert_eq!(cmd.settings().breaker.error_threshold_percentage, 75);

    tokio::time::advance(Duration::from_secs(1)).await;
    let c = *cmd.metrics().snapshot().cumulative();
    assert_eq!(c.get(EventType::Timeout), 1);
    assert_eq!(c.get(EventType::SemaphoreRejected), 1);
    assert_eq!(c.get(EventType::Success), 1);
    assert_eq!(c.get(EventType::ShortCircuited), 1);
    assert!(registry.get("Deps").is_some());
    assert!(registry.get("Other").is_none());
}

#[tokio::test(start_paused = true)]
async fn command_request_cache_and_fallback_record_into_the_command() {
    let registry = Registry::new();
    let cmd = registry.command("Cached").build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(cmd.request_cache(|r: &u32| Some(*r)))
        .layer(cmd.fallback(PerCause::new().otherwise(|_| async { Ok(0u32) })))
        .layer(cmd.layer())
        .service(tower::service_fn(|x: u32| async move {
            if x == 13 {
                Err::<u32, BoxError>("unlucky".into())
            } else {
                Ok(x)
            }
        }));
    netflix_hystrix::cache::RequestContext::new()
        .scope(async {
            assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
            assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
            assert_eq!(svc.clone().oneshot(13).await.unwrap(), 0);
        })
        .await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let c = *cmd.metrics().snapshot().cumulative();
    assert_eq!(c.get(EventType::ResponseFromCache), 1);
    assert_eq!(c.get(EventType::Success), 1);
    assert_eq!(c.get(EventType::Failure), 1);
    assert_eq!(c.get(EventType::FallbackSuccess), 1);
}
