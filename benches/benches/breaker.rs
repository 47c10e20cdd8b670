//! Circuit breakers side by side: netflix-hystrix (both profiles) against failsafe,
//! recloser, tower-resilience and a bare tower service, closed and open, on one and two
//! threads. Run with `scripts/bench-hystrix.sh`, which also writes the comparison table.
//!
//! Every case does the same work per iteration: make the breaker decide, call a service
//! (or future) that is ready at once, and poll the response to completion with a no-op
//! waker. No runtime scheduling is measured, so the figures are the breakers' own cost.
#![allow(missing_docs, clippy::print_stdout, reason = "a benchmark binary")]
#![allow(
    clippy::disallowed_types,
    reason = "benchmarks time with the real clock"
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tower::{Service, service_fn};

/// Polls a future to completion. Every breaker's future completes on its first poll
/// except under contention (tower-resilience's tokio mutex), which is re-polled at once.
#[inline(always)]
fn poll_now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// One call through a tower service: readiness, call, response.
#[inline(always)]
fn tower_call<S: Service<u64>>(svc: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(_)) => unreachable!("benchmarked services never fail"),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    poll_now(svc.call(black_box(1)))
}

type Bare = tower::util::ServiceFn<fn(u64) -> Ready<Result<u64, Infallible>>>;

fn bare() -> Bare {
    service_fn(|x: u64| ready(Ok::<u64, Infallible>(x)))
}

/// Something a benchmark thread can call: each thread gets its own clone.
trait Caller: Clone + Send + 'static {
    fn call_once(&mut self);
}

#[derive(Clone)]
struct TowerCaller<S>(S);

impl<S> Caller for TowerCaller<S>
where
    S: Service<u64> + Clone + Send + 'static,
{
    #[inline(always)]
    fn call_once(&mut self) {
        let _ = black_box(tower_call(&mut self.0));
    }
}

struct Failsafe<P: failsafe::failure_policy::FailurePolicy>(failsafe::StateMachine<P, ()>);

impl<P: failsafe::failure_policy::FailurePolicy> Clone for Failsafe<P> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<P> Caller for Failsafe<P>
where
    P: failsafe::failure_policy::FailurePolicy + Send + Sync + 'static,
{
    #[inline(always)]
    fn call_once(&mut self) {
        let f =
            failsafe::futures::CircuitBreaker::call(&self.0, ready(Ok::<u64, ()>(black_box(1))));
        let _ = black_box(poll_now(f));
    }
}

#[derive(Clone)]
struct Recloser(recloser::AsyncRecloser);

impl Caller for Recloser {
    #[inline(always)]
    fn call_once(&mut self) {
        let _ = black_box(poll_now(self.0.call(ready(Ok::<u64, ()>(black_box(1))))));
    }
}

/// Long-lived threads, each calling its own clone, as a server's worker threads do. Each
/// round runs `iters` calls on every thread at once and reports the slowest thread's time,
/// so that `time / iters` is the cost of one call as each thread sees it.
struct Workers {
    jobs: Vec<mpsc::Sender<(u64, Arc<Barrier>)>>,
    done: mpsc::Receiver<Duration>,
}

impl Workers {
    fn new<C: Caller>(caller: &C, threads: usize) -> Self {
        let runtime = tokio::runtime::Handle::current();
        let (done_tx, done) = mpsc::channel();
        let jobs = (0..threads)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<(u64, Arc<Barrier>)>();
                let mut c = caller.clone();
                let rt = runtime.clone();
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    // Some peers need a runtime context (tower-resilience sleeps when contended).
                    let _enter = rt.enter();
                    while let Ok((iters, barrier)) = rx.recv() {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            c.call_once();
                        }
                        let _ = done.send(start.elapsed());
                    }
                });
                tx
            })
            .collect();
        Self { jobs, done }
    }

    fn round(&self, iters: u64) -> Duration {
        let barrier = Arc::new(Barrier::new(self.jobs.len()));
        for j in &self.jobs {
            j.send((iters, barrier.clone())).expect("worker alive");
        }
        (0..self.jobs.len())
            .map(|_| self.done.recv().expect("worker alive"))
            .max()
            .unwrap_or_default()
    }
}

fn bench_one<C: Caller>(c: &mut Criterion, group: &str, name: &str, caller: C) {
    let mut g = c.benchmark_group(group);
    for threads in [1usize, 2] {
        g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
            if t == 1 {
                let mut local = caller.clone();
                b.iter(|| local.call_once());
            } else {
                let workers = Workers::new(&caller, t);
                b.iter_custom(|iters| workers.round(iters));
            }
        });
    }
    g.finish();
}

fn breakers(c: &mut Criterion) {
    // A runtime for netflix-hystrix's background driver (it is not on the measured path).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();

    // --- closed path ---
    bench_one(c, "breaker/closed", "bare", TowerCaller(bare()));
    {
        use netflix_hystrix::breaker::Breaker;
        let b = Breaker::new("bench");
        bench_one(
            c,
            "breaker/closed",
            "netflix-hystrix",
            TowerCaller(b.layer().layer_on(bare())),
        );
        let r4j = Breaker::builder("bench-r4j")
            .resilience4j(Default::default())
            .build()
            .expect("default config");
        bench_one(
            c,
            "breaker/closed",
            "netflix-hystrix-r4j",
            TowerCaller(r4j.layer().layer_on(bare())),
        );
    }
    bench_one(
        c,
        "breaker/closed",
        "failsafe",
        Failsafe(failsafe::Config::new().build()),
    );
    bench_one(
        c,
        "breaker/closed",
        "recloser",
        Recloser(recloser::AsyncRecloser::from(recloser::Recloser::default())),
    );
    {
        use tower_resilience::circuitbreaker::CircuitBreakerLayer;
        let layer = CircuitBreakerLayer::builder()
            .build()
            .expect("default config");
        let svc = tower::Layer::layer(&layer, bare());
        bench_one(c, "breaker/closed", "tower-resilience", TowerCaller(svc));
    }

    // --- open path: every breaker opened for an hour ---
    {
        use netflix_hystrix::breaker::Breaker;
        let b = Breaker::new("bench-open");
        b.force_open();
        let svc = b.layer().layer_on(bare());
        bench_one(c, "breaker/open", "netflix-hystrix", TowerCaller(svc));
        let r4j = Breaker::builder("bench-open-r4j")
            .resilience4j(Default::default())
            .build()
            .expect("default config");
        r4j.transition_to(netflix_hystrix::breaker::State::Open)
            .expect("closed to open is allowed");
        bench_one(
            c,
            "breaker/open",
            "netflix-hystrix-r4j",
            TowerCaller(r4j.layer().layer_on(bare())),
        );
    }
    {
        use failsafe::{Config, backoff, failure_policy};
        let open = Config::new()
            .failure_policy(failure_policy::consecutive_failures(
                1,
                backoff::constant(Duration::from_secs(3600)),
            ))
            .build();
        let _ = failsafe::CircuitBreaker::call(&open, || Err::<(), ()>(()));
        assert!(!failsafe::CircuitBreaker::is_call_permitted(&open));
        bench_one(c, "breaker/open", "failsafe", Failsafe(open));
    }
    {
        let open = recloser::AsyncRecloser::from(
            recloser::Recloser::custom()
                .closed_len(1)
                .open_wait(Duration::from_secs(3600))
                .build(),
        );
        let _ = poll_now(open.call(ready(Err::<(), ()>(()))));
        let _ = poll_now(open.call(ready(Err::<(), ()>(()))));
        assert!(matches!(
            poll_now(open.call(ready(Ok::<(), ()>(())))),
            Err(recloser::Error::Rejected)
        ));
        bench_one(c, "breaker/open", "recloser", Recloser(open));
    }
    {
        use tower_resilience::circuitbreaker::CircuitBreakerLayer;
        let (layer, handle) = CircuitBreakerLayer::builder()
            .wait_duration_in_open(Duration::from_secs(3600))
            .build_with_handle()
            .expect("config");
        let svc = tower::Layer::layer(&layer, bare());
        rt.block_on(handle.force_open());
        assert!(handle.is_open());
        bench_one(c, "breaker/open", "tower-resilience", TowerCaller(svc));
    }
}

/// Applies a layer without importing `tower::Layer` at every call site.
trait LayerOn {
    fn layer_on<S>(&self, s: S) -> <Self as tower::Layer<S>>::Service
    where
        Self: tower::Layer<S>,
    {
        tower::Layer::layer(self, s)
    }
}

impl<C> LayerOn for netflix_hystrix::breaker::CircuitBreakerLayer<C> {}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = breakers
}
criterion_main!(benches);
