//! A circuit breaker trips on a failing dependency, rejects calls while open, lets one trial
//! through after the sleep window, and closes again when the dependency recovers.
//!
//! Run it with `cargo run -p netflix-hystrix --example breaker`. It takes about two seconds.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use netflix_hystrix::BoxError;
use netflix_hystrix::breaker::{Breaker, BreakerEvent, HystrixConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower::{Layer, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut config = HystrixConfig::default();
    config.request_volume_threshold = 5;
    config.sleep_window = Duration::from_millis(800);
    let breaker = Breaker::builder("flaky-dependency")
        .hystrix(config)
        .build()?;
    breaker.on_event(|e| {
        if let BreakerEvent::StateTransition { from, to } = e {
            println!("    breaker: {from} -> {to}");
        }
    });

    // The dependency fails until we flip the switch.
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let dependency = tower::service_fn(move |id: u32| {
        let up = h.load(Ordering::Relaxed);
        async move {
            if up {
                Ok::<_, BoxError>(format!("user {id}"))
            } else {
                Err::<String, BoxError>("connection refused".into())
            }
        }
    });
    let svc = breaker.layer().layer(dependency);

    println!("1. the dependency is down: calls fail");
    for id in 0..6 {
        let r = svc.clone().oneshot(id).await;
        println!("    call {id}: {}", r.unwrap_or_else(|e| e.to_string()));
    }
    println!("2. the next health snapshot (every 500 ms) trips the breaker");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = svc.clone().oneshot(6).await;
    println!(
        "    call 6: {} (rejected without calling the dependency)",
        r.unwrap_err()
    );

    println!(
        "3. the dependency recovers; after the sleep window one trial call closes the breaker"
    );
    healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = svc.clone().oneshot(7).await?;
    println!("    call 7: {r}");
    println!("    state: {}", breaker.state());
    Ok(())
}
