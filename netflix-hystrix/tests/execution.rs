//! `Command::start`: an execution run by the caller records what the command's layer
//! records for the same calls (events, concurrency, latency), opens and closes the same
//! breaker, and takes the same bulkhead permits.

use netflix_hystrix::BoxError;
use netflix_hystrix::config::HystrixProperties;
use netflix_hystrix::metrics::EventType;
use netflix_hystrix::registry::Registry;
use std::time::Duration;
use tower::{Layer, ServiceExt};

fn registry(key: &str, width: u32) -> Registry {
    let r = Registry::new();
    r.configure(
        &HystrixProperties::parse(&format!(
            "hystrix.command.{key}.execution.isolation.strategy = SEMAPHORE\n\
             hystrix.command.{key}.execution.isolation.semaphore.maxConcurrentRequests = {width}\n\
             hystrix.command.{key}.execution.timeout.enabled = false\n\
             hystrix.command.{key}.circuitBreaker.requestVolumeThreshold = 4\n\
             hystrix.command.{key}.circuitBreaker.sleepWindowInMilliseconds = 1000\n"
        ))
        .unwrap(),
    )
    .unwrap();
    r
}

#[tokio::test(start_paused = true)]
async fn an_execution_counts_as_the_layer_counts() {
    let via_layer = registry("c", 2).command("c").build().unwrap();
    let direct = registry("c", 2).command("c").build().unwrap();
    // The same script through both: two successes, a failure, a call given up.
    let outcomes: [Result<(), &'static str>; 4] = [Ok(()), Ok(()), Err("boom"), Ok(())];
    for (i, o) in outcomes.into_iter().enumerate() {
        let give_up = i == 3;
        // The layer.
        let svc = via_layer
            .layer()
            .layer(tower::service_fn(move |_: ()| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                o.map_err(BoxError::from)
            }));
        if give_up {
            let call = svc.oneshot(());
            let _ = tokio::time::timeout(Duration::from_millis(5), call).await;
        } else {
            let _ = svc.oneshot(()).await;
        }
        // The execution.
        let e = direct.start().unwrap();
        assert_eq!(direct.metrics().current_concurrency(), 1);
        tokio::time::sleep(Duration::from_millis(if give_up { 5 } else { 10 })).await;
        match (give_up, o) {
            (true, _) => drop(e),
            (false, Ok(())) => e.succeeded(),
            (false, Err(m)) => e.failed(&BoxError::from(m)),
        }
        assert_eq!(direct.metrics().current_concurrency(), 0);
    }
    // Percentiles come from completed buckets (10 s by default).
    tokio::time::advance(Duration::from_secs(11)).await;
    let (a, b) = (via_layer.metrics().snapshot(), direct.metrics().snapshot());
    for ev in [EventType::Success, EventType::Failure, EventType::Cancelled] {
        assert_eq!(a.cumulative().get(ev), b.cumulative().get(ev), "{ev:?}");
    }
    assert_eq!(b.cumulative().get(EventType::Success), 2);
    assert_eq!(b.cumulative().get(EventType::Failure), 1);
    assert_eq!(b.cumulative().get(EventType::Cancelled), 1);
    assert_eq!(a.latency_execute().count(), b.latency_execute().count());
    assert_eq!(
        b.latency_execute().percentile(100.0),
        Some(Duration::from_millis(10))
    );
    assert_eq!(a.latency_total().count(), b.latency_total().count());
}

#[tokio::test(start_paused = true)]
async fn executions_open_the_breaker_and_fill_the_bulkhead() {
    let command = registry("d", 2).command("d").build().unwrap();
    // The bulkhead: two at once, the third rejected.
    let (one, two) = (command.start().unwrap(), command.start().unwrap());
    let third = command.start().unwrap_err();
    assert!(third.is::<netflix_hystrix::bulkhead::error::BulkheadFull>());
    one.succeeded();
    two.succeeded();
    // The breaker: failures over the volume threshold open it at the next health
    // snapshot...
    for _ in 0..5 {
        command.start().unwrap().failed(&BoxError::from("down"));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let open = command.start().unwrap_err();
    assert!(
        open.is::<netflix_hystrix::breaker::error::BreakerOpen>(),
        "{open}"
    );
    // ...and after the sleep window a trial goes through; its success closes it.
    let mut trial = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(e) = command.start() {
            trial = Some(e);
            break;
        }
    }
    let trial = trial.expect("a trial within 5 s of the breaker opening");
    assert!(
        command.start().is_err(),
        "one trial at a time while half-open"
    );
    trial.succeeded();
    command.start().unwrap().succeeded();
    tokio::time::advance(Duration::from_secs(11)).await;
    let c = *command.metrics().snapshot().cumulative();
    assert_eq!(c.get(EventType::SemaphoreRejected), 1);
    assert!(c.get(EventType::ShortCircuited) >= 1);
    assert_eq!(
        command.breaker().state(),
        netflix_hystrix::breaker::State::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn an_execution_at_given_times_records_their_difference() {
    let command = registry("at", 2).command("at").build().unwrap();
    let sent = tokio::time::Instant::now();
    // The clock moves on; the latencies come from the times given, not from it.
    tokio::time::advance(Duration::from_millis(50)).await;
    command
        .start_at(sent)
        .unwrap()
        .succeeded_at(sent + Duration::from_millis(20));
    let e = command.start_at(sent).unwrap();
    e.failed_at(&BoxError::from("down"), sent + Duration::from_millis(30));
    // A time before the start counts as no time at all.
    command
        .start_at(sent)
        .unwrap()
        .succeeded_at(sent - Duration::from_millis(1));
    tokio::time::advance(Duration::from_secs(11)).await;
    let m = command.metrics().snapshot();
    assert_eq!(m.cumulative().get(EventType::Success), 2);
    assert_eq!(m.cumulative().get(EventType::Failure), 1);
    assert_eq!(m.latency_execute().count(), 3);
    assert_eq!(
        m.latency_execute().percentile(100.0),
        Some(Duration::from_millis(30))
    );
    assert_eq!(m.latency_execute().percentile(0.0), Some(Duration::ZERO));
}
