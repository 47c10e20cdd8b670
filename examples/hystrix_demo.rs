//! `hystrix_demo`: a flaky service run through netflix-hystrix, with the live dashboard.
//!
//! Three dependencies sit behind Hystrix commands from one [`Registry`]: `GetUser` on a
//! thread pool, `GetRecommendations` behind a semaphore bulkhead with a fallback, and a
//! slow `Search` behind a tight timeout. Ratings are fetched through a request collapser.
//! A bounded load generator drives them; a quarter of the way through, the recommendations
//! dependency goes down, its circuit opens, callers get the fallback, and the circuit
//! closes again once the dependency recovers. Progress lines print every two seconds, and
//! `hystrix.stream` plus the dashboard are served on loopback while it runs.
//!
//! ```text
//! cargo run --release --example hystrix_demo -- [--duration SECS] [--rps N] [--port P] [--keep-serving]
//! ```
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use anyhow::Context as _;
use examples::Flags;
use netflix_hystrix::BoxError;
use netflix_hystrix::breaker::{BreakerEvent, State};
use netflix_hystrix::cache::RequestContext;
use netflix_hystrix::collapser::{Collapser, CollapserConfig};
use netflix_hystrix::config::HystrixProperties;
use netflix_hystrix::fallback::PerCause;
use netflix_hystrix::registry::{Command, Registry};
use netflix_hystrix::stream::HystrixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const PROPERTIES: &str = "
hystrix.command.default.circuitBreaker.requestVolumeThreshold = 20
hystrix.command.GetUser.execution.isolation.thread.timeoutInMilliseconds = 500
hystrix.command.GetRecommendations.execution.isolation.strategy = SEMAPHORE
hystrix.command.GetRecommendations.execution.isolation.semaphore.maxConcurrentRequests = 50
hystrix.command.GetRecommendations.circuitBreaker.sleepWindowInMilliseconds = 2000
hystrix.command.Search.execution.isolation.strategy = SEMAPHORE
hystrix.command.Search.execution.isolation.semaphore.maxConcurrentRequests = 100
hystrix.command.Search.execution.isolation.thread.timeoutInMilliseconds = 120
hystrix.threadpool.UserService.coreSize = 30
hystrix.threadpool.UserService.maxQueueSize = 100
hystrix.threadpool.UserService.queueSizeRejectionThreshold = 50
";

/// What the simulated dependencies fail with. A concrete error type rather than a boxed one:
/// rustc cannot prove `Send` for a spawned future whose `service_fn` returns
/// `Box<dyn Error>` (the same happens with tower's own middleware).
#[derive(Debug)]
struct DependencyError(&'static str);

impl std::fmt::Display for DependencyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DependencyError {}

/// A deterministic random stream for the simulated dependencies.
struct Dice(AtomicU64);

impl Dice {
    fn roll(&self) -> f64 {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn latency(&self, min_ms: f64, max_ms: f64) -> Duration {
        Duration::from_secs_f64((min_ms + self.roll() * (max_ms - min_ms)) / 1000.0)
    }
}

fn line(cmd: &Command) -> String {
    let s = cmd.metrics().snapshot();
    let h = s.health();
    let window = cmd.metrics().config().rolling_stats_window.as_secs_f64();
    format!(
        "{:<19} {:<10} {:>6.0}/s  err {:>3}%  p99 {:>4} ms  fallback {:>5}",
        cmd.key().as_str(),
        cmd.breaker().state().name(),
        h.total_requests() as f64 / window,
        h.error_percentage(),
        s.latency_execute()
            .percentile(99.0)
            .unwrap_or_default()
            .as_millis(),
        s.rolling()
            .get(netflix_hystrix::metrics::EventType::FallbackSuccess),
    )
}

/// One page view: the user (twice, the second from the request cache), then their
/// recommendations, a search and their rating, concurrently.
async fn serve_page<U, R, S, T>(
    id: u32,
    users: U,
    recs: R,
    search: S,
    ratings: T,
) -> Result<(), BoxError>
where
    U: tower::Service<u32, Response = String, Error = BoxError> + Clone,
    R: tower::Service<String, Response = Vec<String>, Error = BoxError>,
    S: tower::Service<u32, Response = usize, Error = BoxError>,
    T: tower::Service<u32, Response = f64, Error = BoxError>,
{
    let user = users.clone().oneshot(id).await?;
    let _again = users.oneshot(id).await?;
    let (r, s, t) = tokio::join!(
        recs.oneshot(user),
        search.oneshot(id % 7),
        ratings.oneshot(id)
    );
    r?;
    s?;
    t?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let flags = Flags::from_env();
    let duration = Duration::from_secs(flags.get("--duration", 30u64)?);
    let rps: u64 = flags.get("--rps", 200)?;
    let port: u16 = flags.get("--port", 0)?;
    anyhow::ensure!(
        rps > 0 && rps <= 20_000,
        "--rps must be between 1 and 20000"
    );

    let registry = Registry::new();
    registry
        .configure(&HystrixProperties::parse(PROPERTIES)?)
        .context("demo properties")?;
    let get_user = registry.command("GetUser").group("UserService").build()?;
    let recs = registry
        .command("GetRecommendations")
        .group("Personalization")
        .build()?;
    let search = registry.command("Search").group("Search").build()?;
    recs.breaker().on_event(|e| {
        if let BreakerEvent::StateTransition { from, to } = e {
            println!("  >> GetRecommendations circuit {from} -> {to}");
        }
    });

    let dice = Arc::new(Dice(AtomicU64::new(7)));
    let recs_down = Arc::new(AtomicBool::new(false));

    let d = dice.clone();
    let users = ServiceBuilder::new()
        .layer(get_user.request_cache(|id: &u32| Some(*id)))
        .layer(get_user.layer())
        .service_fn(move |id: u32| {
            let (lat, fail) = (d.latency(2.0, 15.0), d.roll() < 0.01);
            async move {
                tokio::time::sleep(lat).await;
                if fail {
                    Err(DependencyError("user service: connection reset"))
                } else {
                    Ok(format!("user-{id}"))
                }
            }
        });
    let d = dice.clone();
    let down = recs_down.clone();
    let recommendations = ServiceBuilder::new()
        .layer(recs.fallback(
            PerCause::new().otherwise(|_| async { Ok(vec!["popular: The Crown".to_string()]) }),
        ))
        .layer(recs.layer())
        .service_fn(move |_user: String| {
            let (lat, fail) = (
                d.latency(5.0, 25.0),
                down.load(Ordering::Relaxed) || d.roll() < 0.02,
            );
            async move {
                tokio::time::sleep(lat).await;
                if fail {
                    Err(DependencyError("recommendations: 503"))
                } else {
                    Ok(vec!["for you: Stranger Things".to_string()])
                }
            }
        });
    let d = dice.clone();
    let searches = ServiceBuilder::new()
        .layer(search.fallback(PerCause::new().timed_out(|_| async { Ok(0usize) })))
        .layer(search.layer())
        .service_fn(move |_query: u32| {
            let lat = d.latency(20.0, 160.0);
            async move {
                tokio::time::sleep(lat).await;
                Ok::<_, DependencyError>(42usize)
            }
        });
    let ratings_batch = tower::service_fn(|ids: Vec<u32>| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok::<_, DependencyError>(
            ids.iter()
                .map(|id| f64::from(id % 5) + 0.5)
                .collect::<Vec<_>>(),
        )
    });
    // Global scope: ratings wanted by concurrent page views within 10 ms go in one call.
    let mut batching = CollapserConfig::default();
    batching.scope = netflix_hystrix::collapser::Scope::Global;
    let ratings = Collapser::new("GetRatings", ratings_batch, batching)?;

    let stream = HystrixStream::new(registry.clone());
    stream.add_collapser(&ratings);
    let server = stream
        .clone()
        .bind(([127, 0, 0, 1], port).into())
        .await
        .context("binding the dashboard")?;
    println!("hystrix dashboard: http://{}/", server.local_addr());
    println!(
        "hystrix.stream:    http://{}/hystrix.stream",
        server.local_addr()
    );
    println!(
        "driving {rps} requests/s for {} s; the recommendations dependency is down from 25% to 65% of the run\n",
        duration.as_secs()
    );

    let start = Instant::now();
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut report = tokio::time::interval(Duration::from_secs(2));
    let mut i: u32 = 0;
    // The load loop is bounded by `--duration` (and so by count: at most rps × duration).
    while start.elapsed() < duration {
        tokio::select! {
            _ = tick.tick() => {}
            _ = report.tick() => {
                println!("[{:>5.1}s] served {} requests, {} failed", start.elapsed().as_secs_f64(), served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
                for c in [&get_user, &recs, &search] {
                    println!("  {}", line(c));
                }
                continue;
            }
        }
        let frac = start.elapsed().as_secs_f64() / duration.as_secs_f64();
        recs_down.store((0.25..0.65).contains(&frac), Ordering::Relaxed);
        i = i.wrapping_add(1);
        let (users, recommendations, searches, ratings) = (
            users.clone(),
            recommendations.clone(),
            searches.clone(),
            ratings.clone(),
        );
        let (served, failed) = (served.clone(), failed.clone());
        tokio::spawn(RequestContext::new().scope(async move {
            let page = serve_page(i % 500, users, recommendations, searches, ratings).await;
            match page {
                Ok(()) => served.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("\nsummary after {} s:", duration.as_secs());
    println!(
        "  pages served {}, failed {}",
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    for c in [&get_user, &recs, &search] {
        let cum = *c.metrics().snapshot().cumulative();
        println!(
            "  {:<19} success {:>6}  failure {:>5}  timeout {:>5}  short-circuited {:>5}  fallback ok {:>5}  state {}",
            c.key().as_str(),
            cum.get(netflix_hystrix::metrics::EventType::Success),
            cum.get(netflix_hystrix::metrics::EventType::Failure),
            cum.get(netflix_hystrix::metrics::EventType::Timeout),
            cum.get(netflix_hystrix::metrics::EventType::ShortCircuited),
            cum.get(netflix_hystrix::metrics::EventType::FallbackSuccess),
            c.breaker().state(),
        );
    }
    let ratings_seen = ratings.snapshot();
    println!(
        "  GetRatings collapser: {} requests in {} batches over the last 10 s",
        ratings_seen.rolling_requests_batched(),
        ratings_seen.rolling_batches()
    );
    let opened = recs
        .metrics()
        .snapshot()
        .cumulative()
        .get(netflix_hystrix::metrics::EventType::ShortCircuited)
        > 0;
    println!(
        "  the recommendations circuit {} while its dependency was down, and is {} now",
        if opened { "opened" } else { "did not open" },
        if recs.breaker().state() == State::Closed {
            "closed"
        } else {
            "not yet closed"
        }
    );

    if flags.has("--keep-serving") {
        println!(
            "\ndashboard still at http://{}/ (Ctrl-C to stop)",
            server.local_addr()
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
