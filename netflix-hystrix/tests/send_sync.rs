//! Public handles are `Send + Sync` and response futures are `Send`, checked at compile time
//! (a failure here is a compile error).
#![allow(dead_code)]

use netflix_hystrix::BoxError;
use std::future::Ready;

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

type Inner = Ready<Result<u32, BoxError>>;

#[test]
fn handles_are_send_and_sync() {
    send_sync::<netflix_hystrix::breaker::Breaker>();
    send_sync::<netflix_hystrix::breaker::CircuitBreakerLayer>();
    send_sync::<netflix_hystrix::metrics::CommandMetrics>();
    send_sync::<netflix_hystrix::bulkhead::BulkheadLayer>();
    send_sync::<netflix_hystrix::pool::ThreadPool>();
    send_sync::<netflix_hystrix::timeout::TimeoutLayer>();
    send_sync::<netflix_hystrix::registry::Registry>();
    send_sync::<netflix_hystrix::registry::Command>();
    send_sync::<netflix_hystrix::registry::Execution<'static>>();
    send_sync::<netflix_hystrix::cache::RequestContext>();
    send_sync::<netflix_hystrix::limit::AdaptiveLimitLayer>();
    send_sync::<netflix_hystrix::Error>();
}

#[test]
fn response_futures_are_send() {
    use netflix_hystrix::classify::DefaultClassifier;
    send::<netflix_hystrix::breaker::future::ResponseFuture<Inner, DefaultClassifier>>();
    send::<netflix_hystrix::timeout::future::ResponseFuture<Inner>>();
    send::<netflix_hystrix::bulkhead::ResponseFuture<Inner>>();
    send::<netflix_hystrix::pool::ResponseFuture<u32>>();
    send::<netflix_hystrix::limit::ResponseFuture<Inner, DefaultClassifier>>();
    send::<netflix_hystrix::metrics::LatencyFuture<Inner>>();
    send::<netflix_hystrix::collapser::ResponseFuture<u32>>();
    send::<netflix_hystrix::cache::ResponseFuture<Inner, u32>>();
    send::<netflix_hystrix::registry::IsolatedFuture<Inner, u32>>();
}
