use super::CommandMetrics;
use crate::error::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// Which latency a [`LatencyLayer`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `latencyExecute` and the concurrency counts: place it right around the dependency,
    /// inside the breaker and the bulkhead, so it sees only calls that actually run.
    Execution,
    /// `latencyTotal`: place it outermost, so it sees what the caller waited for.
    Total,
}

/// Records call latency (and, for [`Measure::Execution`], current and rolling-maximum
/// concurrency) into a command's metrics.
///
/// # Example
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use netflix_hystrix::metrics::{CommandMetrics, LatencyLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netflix_hystrix::BoxError> {
/// let metrics = CommandMetrics::new("GetUser");
/// let mut svc = ServiceBuilder::new()
///     .layer(LatencyLayer::total(metrics.clone()))
///     .layer(LatencyLayer::execution(metrics.clone()))
///     .service_fn(|_: ()| async { Ok::<_, netflix_hystrix::BoxError>(()) });
/// svc.ready().await?.call(()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LatencyLayer {
    metrics: CommandMetrics,
    measure: Measure,
}

impl LatencyLayer {
    /// Measures execution latency and concurrency.
    pub fn execution(metrics: CommandMetrics) -> Self {
        Self {
            metrics,
            measure: Measure::Execution,
        }
    }

    /// Measures total latency.
    pub fn total(metrics: CommandMetrics) -> Self {
        Self {
            metrics,
            measure: Measure::Total,
        }
    }
}

impl<S> Layer<S> for LatencyLayer {
    type Service = LatencyService<S>;

    fn layer(&self, inner: S) -> LatencyService<S> {
        LatencyService {
            inner,
            metrics: self.metrics.clone(),
            measure: self.measure,
        }
    }
}

/// A service whose latency is recorded. Built by [`LatencyLayer`].
#[derive(Clone)]
pub struct LatencyService<S> {
    inner: S,
    metrics: CommandMetrics,
    measure: Measure,
}

impl<S: fmt::Debug> fmt::Debug for LatencyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyService")
            .field("inner", &self.inner)
            .field("measure", &self.measure)
            .finish()
    }
}

impl<S, Req> Service<Req> for LatencyService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = LatencyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.measure == Measure::Execution {
            self.metrics.execution_started();
        }
        LatencyFuture {
            inner: self.inner.call(req),
            guard: Some(Guard {
                metrics: self.metrics.clone(),
                measure: self.measure,
                start: Instant::now(),
            }),
        }
    }
}

struct Guard {
    metrics: CommandMetrics,
    measure: Measure,
    start: Instant,
}

impl Guard {
    fn finish(self, completed: bool) {
        let elapsed = self.start.elapsed();
        match self.measure {
            Measure::Execution => {
                self.metrics.execution_finished();
                if completed {
                    self.metrics.record_execute_latency(elapsed);
                }
            }
            Measure::Total => {
                if completed {
                    self.metrics.record_total_latency(elapsed);
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`LatencyService`]. Dropping it before completion (a cancelled call)
    /// still ends the execution for the concurrency count, but records no latency.
    pub struct LatencyFuture<F> {
        #[pin]
        inner: F,
        guard: Option<Guard>,
    }

    impl<F> PinnedDrop for LatencyFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(g) = this.project().guard.take() {
                g.finish(false);
            }
        }
    }
}

impl<F> fmt::Debug for LatencyFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for LatencyFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let r = ready!(this.inner.poll(cx));
        if let Some(g) = this.guard.take() {
            g.finish(true);
        }
        Poll::Ready(r.map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn records_latency_and_concurrency() {
        let metrics = CommandMetrics::new("cmd");
        let mut svc = LatencyLayer::execution(metrics.clone()).layer(tower::service_fn(
            |d: Duration| async move {
                tokio::time::sleep(d).await;
                Ok::<_, BoxError>(())
            },
        ));
        let slow = svc.ready().await.unwrap().call(Duration::from_millis(40));
        assert_eq!(metrics.current_concurrency(), 1);
        slow.await.unwrap();
        let cancelled = svc.ready().await.unwrap().call(Duration::from_secs(1));
        drop(cancelled);
        assert_eq!(metrics.current_concurrency(), 0);
        tokio::time::advance(Duration::from_secs(60)).await;
        let s = metrics.snapshot();
        assert_eq!(s.latency_execute().count(), 1);
        assert_eq!(
            s.latency_execute().percentile(100.0),
            Some(Duration::from_millis(40))
        );
    }
}
