//! `hystrix.stream`: live metrics as server-sent events, and a dashboard that draws them.
//!
//! [`HystrixStream`] serves, from a [`Registry`]:
//!
//! * `GET /hystrix.stream`: every 500 ms, one `data: {json}` event per command
//!   (`HystrixCommand`), then per thread pool (`HystrixThreadPool`), then per collapser
//!   (`HystrixCollapser`), then a `ping: ` keep-alive. Every field hystrix-dashboard and
//!   Turbine read is there, under its exact name, so the original dashboard and Turbine can
//!   consume it. Concurrent streams are capped (default 5, Hystrix's
//!   `hystrix.config.stream.maxConcurrentConnections`); past the cap the answer is `503`.
//! * `GET /` (and `/hystrix`): a self-contained HTML dashboard that draws every circuit
//!   live: the circle sized by request rate and coloured by error percentage, the rate
//!   sparkline, the counters, circuit state and latency percentiles, as the Hystrix
//!   dashboard does, plus the thread pools.
//!
//! Commands that use semaphore isolation get a *synthetic* thread-pool panel per pool key,
//! built from their bulkhead numbers, so the pool panel stays useful.
//!
//! Serve it on its own port with [`HystrixStream::bind`], or mount
//! [`HystrixStream::handle`] in another hyper or tower server.
//!
//! # Example
//!
//! ```no_run
//! use netflix_hystrix::registry::Registry;
//! use netflix_hystrix::stream::HystrixStream;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), netflix_hystrix::Error> {
//! let registry = Registry::new();
//! let server = HystrixStream::new(registry).bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("dashboard at http://{}/", server.local_addr());
//! # Ok(())
//! # }
//! ```

mod json;

use crate::collapser::{Collapser, CollapserConfig, CollapserSnapshot};
use crate::config::IsolationStrategy;
use crate::error::{Error, Result};
use crate::registry::Registry;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Interval, MissedTickBehavior};

const DASHBOARD: &str = include_str!("dashboard.html");

type CollapserReport = Arc<dyn Fn() -> (String, CollapserSnapshot, CollapserConfig) + Send + Sync>;

struct Inner {
    registry: Registry,
    interval: Duration,
    max_connections: usize,
    active: AtomicUsize,
    collapsers: Mutex<Vec<CollapserReport>>,
    /// The last round of events and when it was taken, shared by every open stream so that
    /// the metrics are read once per interval however many dashboards watch.
    round: Mutex<Option<(tokio::time::Instant, Arc<Vec<String>>)>>,
}

/// Serves `hystrix.stream` and the dashboard for a [`Registry`]. Cheap to clone.
#[derive(Clone)]
pub struct HystrixStream {
    inner: Arc<Inner>,
}

impl fmt::Debug for HystrixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HystrixStream")
            .field("interval", &self.inner.interval)
            .field("max_connections", &self.inner.max_connections)
            .field("active", &self.active_streams())
            .finish()
    }
}

impl HystrixStream {
    /// Streams `registry`'s commands and pools every 500 ms, to at most 5 clients.
    pub fn new(registry: Registry) -> Self {
        Self::with_options(registry, Duration::from_millis(500), 5)
    }

    /// Streams every `interval` (`hystrix.stream.dashboard.intervalInMilliseconds`) to at
    /// most `max_connections` clients (`hystrix.config.stream.maxConcurrentConnections`).
    pub fn with_options(registry: Registry, interval: Duration, max_connections: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                interval: interval.max(Duration::from_millis(1)),
                max_connections,
                active: AtomicUsize::new(0),
                collapsers: Mutex::new(Vec::new()),
                round: Mutex::new(None),
            }),
        }
    }

    /// Adds a collapser's `HystrixCollapser` object to the stream.
    pub fn add_collapser<S, Req, Res>(&self, collapser: &Collapser<S, Req, Res>)
    where
        S: Send + 'static,
        Req: Send + 'static,
        Res: Send + 'static,
    {
        let c = collapser.clone();
        self.inner
            .collapsers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(move || {
                (c.key().to_string(), c.snapshot(), c.config().clone())
            }));
    }

    /// Streams open now.
    pub fn active_streams(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// The current round of events, taken at most once per half interval and shared by
    /// every open stream.
    fn shared_round(&self) -> Arc<Vec<String>> {
        let now = tokio::time::Instant::now();
        let mut round = self
            .inner
            .round
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, events)) = round.as_ref() {
            if now.duration_since(*at) < self.inner.interval / 2 {
                return events.clone();
            }
        }
        let events = Arc::new(self.events());
        *round = Some((now, events.clone()));
        events
    }

    /// One round of events, as the stream sends it every interval.
    pub fn events(&self) -> Vec<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let registry = &self.inner.registry;
        let mut out = Vec::new();
        let commands = registry.commands();
        let snapshots: Vec<_> = commands.iter().map(|c| c.metrics().snapshot()).collect();
        for (c, m) in commands.iter().zip(&snapshots) {
            out.push(json::command(now, c, m, &c.settings()));
        }
        // Real pools for thread-isolated commands; synthetic ones from the bulkheads of
        // semaphore-isolated commands whose pool key no thread-isolated command uses.
        let mut thread_keys = BTreeMap::new();
        let mut synthetic: BTreeMap<String, json::PoolNumbers> = BTreeMap::new();
        for (c, m) in commands.iter().zip(&snapshots) {
            let s = c.settings();
            let key = c.thread_pool_key().as_str().to_string();
            match s.isolation {
                IsolationStrategy::Thread => {
                    thread_keys.insert(key, c.thread_pool().clone());
                }
                IsolationStrategy::Semaphore => {
                    let r = m.rolling();
                    let b = c.bulkhead();
                    let n = synthetic.entry(key).or_default();
                    let max = u64::from(b.max_concurrent_calls());
                    n.active += u64::from(b.in_flight());
                    n.completed += b.permitted_calls();
                    n.core += max;
                    n.largest += max;
                    n.maximum += max;
                    n.size += max;
                    n.tasks += b.permitted_calls();
                    n.rolling_executed += [
                        crate::metrics::EventType::Success,
                        crate::metrics::EventType::Failure,
                        crate::metrics::EventType::Timeout,
                        crate::metrics::EventType::BadRequest,
                    ]
                    .iter()
                    .map(|e| r.get(*e))
                    .sum::<u64>();
                    n.rolling_max_active = n.rolling_max_active.max(m.rolling_max_concurrency());
                    n.rolling_rejected += r.get(crate::metrics::EventType::SemaphoreRejected);
                    n.window = u64::try_from(c.metrics().config().rolling_stats_window.as_millis())
                        .unwrap_or(u64::MAX);
                }
            }
        }
        for (key, pool) in &thread_keys {
            out.push(json::thread_pool(now, key, &(&pool.snapshot()).into()));
        }
        for (key, n) in &synthetic {
            if !thread_keys.contains_key(key) {
                out.push(json::thread_pool(now, key, n));
            }
        }
        let collapsers = self
            .inner
            .collapsers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for report in collapsers {
            let (name, snapshot, config) = report();
            out.push(json::collapser(now, &name, &snapshot, &config));
        }
        out
    }

    /// Answers one request: the stream, the dashboard, or 404/405/503.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<StreamBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
        }
        match req.uri().path() {
            "/hystrix.stream" => self.open_stream(),
            "/" | "/hystrix" | "/index.html" => Response::builder()
                .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                .body(StreamBody::full(DASHBOARD))
                .expect("a static response is valid"),
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn open_stream(&self) -> Response<StreamBody> {
        let inner = &self.inner;
        let admitted = inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < inner.max_connections).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "MaxConcurrentConnections reached: {}\n",
                    inner.max_connections
                ),
            );
        }
        let mut interval = tokio::time::interval(inner.interval);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let body = StreamBody {
            kind: Kind::Sse(Box::new(Sse {
                stream: self.clone(),
                interval,
            })),
        };
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream;charset=UTF-8")
            .header(
                header::CACHE_CONTROL,
                "no-cache, no-store, max-age=0, must-revalidate",
            )
            .header(header::PRAGMA, "no-cache")
            .body(body)
            .expect("a static response is valid")
    }

    /// Serves on `addr` until the returned [`StreamServer`] is dropped.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn bind(self, addr: SocketAddr) -> Result<StreamServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io)?;
        let local = listener.local_addr().map_err(Error::io)?;
        tracing::info!(addr = %local, "hystrix.stream listening");
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "hystrix.stream accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let stream = self.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let res = stream.handle(&req);
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await
                    {
                        tracing::debug!(%peer, error = %e, "hystrix.stream connection ended");
                    }
                });
            }
        });
        Ok(StreamServer { addr: local, task })
    }
}

fn plain(status: StatusCode, text: &str) -> Response<StreamBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(StreamBody::full(text.to_string()))
        .expect("a static response is valid")
}

/// A running `hystrix.stream` server. Dropping it stops accepting; open streams end with
/// their connections.
#[derive(Debug)]
pub struct StreamServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StreamServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === body ===

/// The body of a [`HystrixStream`] response: a fixed page, or the endless event stream.
pub struct StreamBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Sse(Box<Sse>),
}

struct Sse {
    stream: HystrixStream,
    interval: Interval,
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.stream.inner.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamBody {
    fn full(b: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(b.into())),
        }
    }
}

impl fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Full(_) => "StreamBody::Full",
            Kind::Sse(_) => "StreamBody::Sse",
        })
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Sse(sse) => match sse.interval.poll_tick(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => {
                    let mut chunk = String::new();
                    for e in sse.stream.shared_round().iter() {
                        chunk.push_str("data: ");
                        chunk.push_str(e);
                        chunk.push_str("\n\n");
                    }
                    chunk.push_str("ping: \n\n");
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Sse(_) => SizeHint::default(),
        }
    }
}
