//! The breaker's closed and open paths allocate nothing per call.
//!
//! The global allocator counts every thread's allocations, so this binary runs without the
//! test harness (`harness = false` in Cargo.toml): libtest runs a test on a thread of its
//! own while its main thread waits, and that thread's first blocking receive allocates, at
//! a moment that depends on scheduling. Here `main` is the only thread.

#![allow(
    clippy::print_stdout,
    reason = "a harness-less test reports like libtest does"
)]

use netflix_hystrix::breaker::{Breaker, Resilience4jConfig, State};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn call<S: Service<u64>>(svc: &mut S) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    match pin!(svc.call(1)).poll(&mut cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => panic!("the inner service is ready at once"),
    }
}

/// Allocations made by `n` calls after a warm-up call.
fn allocations_per_call<S: Service<u64>>(mut svc: S, n: usize) -> usize {
    call(&mut svc);
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        call(&mut svc);
    }
    region.change().allocations
}

fn main() {
    closed_and_open_paths_allocate_nothing();
    println!("test closed_and_open_paths_allocate_nothing ... ok");
}

fn closed_and_open_paths_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let bare = || service_fn(|x: u64| ready(Ok::<u64, std::convert::Infallible>(x)));

    // The counter works: a service that boxes its answer allocates once per call.
    let boxing = service_fn(|x: u64| ready(Ok::<_, std::convert::Infallible>(Box::new(x))));
    assert_eq!(allocations_per_call(boxing, 100), 100, "control");

    let hystrix = Breaker::new("alloc");
    assert_eq!(
        allocations_per_call(hystrix.layer().layer(bare()), 10_000),
        0,
        "closed"
    );
    hystrix.force_open();
    let mut svc = hystrix.layer().layer(bare());
    assert!(!call(&mut svc), "rejected while open");
    assert_eq!(allocations_per_call(svc, 10_000), 0, "open");

    let r4j = Breaker::builder("alloc-r4j")
        .resilience4j(Resilience4jConfig::default())
        .build()
        .unwrap();
    assert_eq!(
        allocations_per_call(r4j.layer().layer(bare()), 10_000),
        0,
        "r4j closed"
    );
    r4j.transition_to(State::Open).unwrap();
    assert_eq!(
        allocations_per_call(r4j.layer().layer(bare()), 10_000),
        0,
        "r4j open"
    );
}
