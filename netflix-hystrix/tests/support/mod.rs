//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use netflix_hystrix::BoxError;
use netflix_hystrix::classify::{Classify, Outcome, classify_error};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tower::{Service, ServiceExt};

/// What the scripted dependency should do with a request.
#[derive(Debug)]
pub enum Req {
    Ok,
    Fail,
    /// The caller's mistake: answered, but classified as ignored.
    Bad,
    /// Succeeds after a delay.
    Slow(Duration),
    /// Waits for the test to answer.
    Wait(oneshot::Receiver<bool>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Ok,
    Bad,
}

/// A dependency driven by the request.
#[derive(Clone, Default)]
pub struct Scripted;

impl Service<Req> for Scripted {
    type Response = Resp;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        Box::pin(async move {
            match req {
                Req::Ok => Ok(Resp::Ok),
                Req::Fail => Err("dependency failed".into()),
                Req::Bad => Ok(Resp::Bad),
                Req::Slow(d) => {
                    tokio::time::sleep(d).await;
                    Ok(Resp::Ok)
                }
                Req::Wait(rx) => match rx.await {
                    Ok(true) => Ok(Resp::Ok),
                    _ => Err("dependency failed".into()),
                },
            }
        })
    }
}

/// Bad responses are the caller's fault.
#[derive(Clone, Copy, Default)]
pub struct BadIsIgnored;

impl Classify<Resp> for BadIsIgnored {
    fn classify(&self, result: Result<&Resp, &BoxError>) -> Outcome {
        match result {
            Ok(Resp::Ok) => Outcome::Success,
            Ok(Resp::Bad) => Outcome::Ignored,
            Err(e) => classify_error(e),
        }
    }
}

/// Calls once: `Ok` with the response or the error.
pub async fn call<S>(svc: &mut S, req: Req) -> Result<Resp, BoxError>
where
    S: Service<Req, Response = Resp, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

/// Whether an error is the breaker's rejection.
pub fn is_open(e: &BoxError) -> bool {
    e.is::<netflix_hystrix::breaker::error::BreakerOpen>()
}

/// Lets spawned tasks (the breaker's driver) run.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
