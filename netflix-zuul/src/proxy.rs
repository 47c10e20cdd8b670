//! The proxy endpoint: an origin's servers, load balancing, passive outlier ejection,
//! timeouts and Zuul's retry rules.
//!
//! # Circuit breaking
//!
//! Every origin is a `netflix-hystrix` command in the gateway's registry (key
//! `origin-<name>`): a [`Breaker`] with Hystrix's defaults unless the route table says
//! otherwise (open at 50% errors over 20 requests in 10 s, a trial after 5 s) and a
//! semaphore bulkhead as wide as its servers' connection caps. Each attempt is one
//! execution of the command (`Command::start`). A 5xx answer or a transport error is a
//! failure, a 4xx the caller's own (ignored). An open breaker fails
//! the request at once with 503 and is not retried; the origin's metrics are Hystrix's,
//! ready for `hystrix.stream`.
//!
//! # Retries
//!
//! As Zuul 2 decides them:
//! - a connect error, or a reset before any response, is retried whatever the method (the
//!   origin never saw the request, or never answered it);
//! - a read timeout, or a status listed in `retry_statuses`, only for idempotent methods
//!   (GET, HEAD, OPTIONS, PUT, DELETE, TRACE);
//! - always on a different server;
//! - only while nothing of the response has gone to the client, and only when the request
//!   body can be sent again (none, or buffered because it was small);
//! - within a **budget**: retries may add at most `retry_budget` (20%) to the requests
//!   recently sent, plus a floor of 10 a second, so that a failing origin is not hit by a
//!   storm of retries (the reason tower and Finagle budget retries instead of counting
//!   them per request).

use crate::body::{self, Body};
use crate::codec::RawHead;
use crate::context::Context;
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::route::{LbKind, OriginSpec};
use crate::upstream::{Answer, OutBody, Outgoing, Pool, Proxying};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use netflix_hystrix::breaker::Breaker;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Responses with a `Content-Length` up to this size are read whole before they are
/// answered (one write to the client instead of two); larger ones stream.
pub const SMALL_RESPONSE: u64 = 16 * 1024;

/// Request bodies up to this size are buffered so that a retry can send them again.
pub const REPLAYABLE_BODY: u64 = 64 * 1024;

/// One origin server's state.
#[derive(Debug)]
pub struct Server {
    /// Its address.
    pub addr: SocketAddr,
    authority: http::uri::Authority,
    /// Its HTTP/1.1 connections.
    pool: Pool,
    weight: u32,
    inflight: AtomicU64,
    /// Peak EWMA of the response latency, in microseconds (`f64` bits), and when it was
    /// last updated (microseconds since `epoch`). Atomics, not a lock: every answer
    /// updates them, from any worker; a lost update only delays the estimate.
    ewma: AtomicU64,
    ewma_at: AtomicU64,
    epoch: Instant,
    failures: AtomicU32,
    /// Out of rotation until then (`None`: in rotation). Behind a flag, so that the usual
    /// case (never ejected) reads neither the lock nor the clock.
    ejected_until: Mutex<Option<Instant>>,
    ejected: std::sync::atomic::AtomicBool,
    /// Taken out by active health checks.
    down: std::sync::atomic::AtomicBool,
    /// Health checks passed (positive) or failed (negative) in a row.
    streak: std::sync::atomic::AtomicI32,
    current_weight: Mutex<i64>,
}

/// The decay of the latency EWMA (Finagle's default 10 s).
const EWMA_DECAY: f64 = 10.0;
/// The latency assumed for a server not yet measured (1 ms, in µs).
const EWMA_START: f64 = 1_000.0;

impl Server {
    fn new(addr: SocketAddr, weight: u32, spec: &OriginSpec) -> Self {
        Self {
            addr,
            authority: addr
                .to_string()
                .parse()
                .expect("a socket address is an authority"),
            pool: Pool::new(
                addr,
                spec.max_connections_per_server,
                Duration::from_millis(spec.idle_timeout_ms),
                Duration::from_millis(spec.connect_timeout_ms),
            ),
            weight: weight.max(1),
            inflight: AtomicU64::new(0),
            ewma: AtomicU64::new(EWMA_START.to_bits()),
            ewma_at: AtomicU64::new(0),
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            ejected: std::sync::atomic::AtomicBool::new(false),
            down: std::sync::atomic::AtomicBool::new(false),
            streak: std::sync::atomic::AtomicI32::new(0),
            current_weight: Mutex::new(0),
        }
    }

    fn cost(&self) -> f64 {
        f64::from_bits(self.ewma.load(Ordering::Relaxed))
            * (self.inflight.load(Ordering::Relaxed) + 1) as f64
    }

    /// Records the latency of an answer, come at `now`, to a request sent at `started`.
    fn observe(&self, started: Instant, now: Instant) {
        let us = now.duration_since(started).as_secs_f64() * 1e6;
        let at = now.duration_since(self.epoch).as_micros() as u64;
        let dt = at.saturating_sub(self.ewma_at.swap(at, Ordering::Relaxed)) as f64 / 1e6;
        let e = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        // Peak EWMA: a slower observation is taken at once, a faster one decays in.
        let next = if us > e {
            us
        } else {
            let w = (-dt / EWMA_DECAY).exp();
            e * w + us * (1.0 - w)
        };
        self.ewma.store(next.to_bits(), Ordering::Relaxed);
    }

    /// A failure counts as a slow answer (Finagle's penalty), so P2C turns away from a
    /// server that fails fast long before ejection would.
    fn penalize(&self) {
        let e = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        self.ewma
            .store((e * 10.0).max(10_000.0).to_bits(), Ordering::Relaxed);
        let at = self.epoch.elapsed().as_micros() as u64;
        self.ewma_at.store(at, Ordering::Relaxed);
    }

    fn ejected(&self) -> bool {
        if self.down.load(Ordering::Relaxed) {
            return true;
        }
        if !self.ejected.load(Ordering::Relaxed) {
            return false;
        }
        let mut until = self.ejected_until.lock();
        match *until {
            Some(t) if t > Instant::now() => true,
            _ => {
                *until = None;
                self.ejected.store(false, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether active health checks have taken it out.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Requests in flight to it.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// HTTP/1.1 connections opened to it so far: with keep-alive working, far fewer than
    /// the requests sent.
    pub fn connections_opened(&self) -> u64 {
        self.pool.opened()
    }

    /// Idle HTTP/1.1 connections to it in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }
}

/// A retry budget: a token bucket filled by requests and drained by retries. Tokens are
/// counted in millionths in an atomic, so that the deposit every request makes takes no
/// lock (only a retry does).
#[derive(Debug)]
struct Budget {
    /// What a request deposits.
    per_request: u64,
    /// The most the bucket holds: 100 tokens plus what 1,000 requests deposit.
    cap: u64,
    tokens: AtomicU64,
    /// When the floor (10 retries a second) last refilled the bucket.
    refilled: Mutex<Instant>,
}

/// One token, in the bucket's unit.
const TOKEN: u64 = 1_000_000;

impl Budget {
    fn new(ratio: f64) -> Self {
        let per_request = (ratio.max(0.0) * TOKEN as f64) as u64;
        Self {
            per_request,
            cap: 100 * TOKEN + 1000 * per_request,
            tokens: AtomicU64::new(10 * TOKEN),
            refilled: Mutex::new(Instant::now()),
        }
    }

    fn deposit(&self) {
        if self.per_request == 0 {
            return;
        }
        let t = self.tokens.fetch_add(self.per_request, Ordering::Relaxed) + self.per_request;
        if t > self.cap {
            self.tokens.fetch_min(self.cap, Ordering::Relaxed);
        }
    }

    fn withdraw(&self) -> bool {
        {
            let mut last = self.refilled.lock();
            let now = Instant::now();
            let floor = (now.duration_since(*last).as_secs_f64() * 10.0 * TOKEN as f64) as u64;
            *last = now;
            if floor > 0 {
                self.tokens.fetch_add(floor, Ordering::Relaxed);
                self.tokens.fetch_min(self.cap, Ordering::Relaxed);
            }
        }
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(TOKEN)
            })
            .is_ok()
    }
}

/// Counters of an origin.
#[derive(Debug, Default)]
pub struct OriginStats {
    /// Attempts sent.
    pub attempts: AtomicU64,
    /// Retries sent.
    pub retries: AtomicU64,
    /// Retries refused by the budget.
    pub budget_refusals: AtomicU64,
    /// Servers ejected.
    pub ejections: AtomicU64,
}

/// How an origin's servers are spoken to.
#[derive(Clone)]
enum Transport {
    /// HTTP/1.1 over each server's own pool, driven by the request's task.
    Http1,
    /// HTTP/2 with prior knowledge: hyper's client, one multiplexed connection a server.
    Http2(Arc<Http2Clients>),
}

impl Transport {
    /// Sends `out` to `server`: the answer's head (with a body up to [`SMALL_RESPONSE`]
    /// read whole) within `timeout`.
    async fn send(
        &self,
        server: &Server,
        out: Outgoing<'_>,
        (started, timeout, deadline): (Instant, Duration, Instant),
    ) -> std::result::Result<Answer, netflix_hystrix::BoxError> {
        match self {
            Transport::Http1 => server
                .pool
                .send(out, SMALL_RESPONSE, (started, timeout, deadline))
                .await
                .map_err(Into::into),
            Transport::Http2(clients) => {
                let client = clients.client();
                let mut req = Request::new(match out.body {
                    OutBody::Full(b) => body::full(b),
                    OutBody::Stream(s) => s,
                });
                *req.method_mut() = out.method.clone();
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(http::uri::Scheme::HTTP);
                uri.authority = Some(server.authority.clone());
                uri.path_and_query = Some(out.path.clone());
                *req.uri_mut() = Uri::from_parts(uri)?;
                let mut headers = out.headers.clone();
                // (HTTP/2 has no protocol switch, and no hop-by-hop field.)
                strip_hop_by_hop(&mut headers);
                if out.proxying.forwarded {
                    append_forwarded(&mut headers);
                }
                *req.headers_mut() = headers;
                let addr = server.addr;
                let answer = async {
                    let res: Response<hyper::body::Incoming> = client.request(req).await?;
                    // A small body of known length is read whole, as over HTTP/1.1.
                    if body::content_length(res.headers()).is_some_and(|l| l <= SMALL_RESPONSE) {
                        let (parts, b) = res.into_parts();
                        return match b.collect().await {
                            Ok(b) => Ok(Ok(Response::from_parts(parts, body::full(b.to_bytes())))),
                            Err(e) => Ok(Err(Error::new(
                                ErrorKind::BrokenBody,
                                ErrorSource::Upstream,
                                format!("origin server {addr} broke off its body"),
                            )
                            .with_cause(e))),
                        };
                    }
                    Ok::<_, hyper_util::client::legacy::Error>(Ok::<_, Error>(res.map(body::boxed)))
                };
                match tokio::time::timeout(timeout, answer).await {
                    Err(_) => Err(Error::new(
                        ErrorKind::ReadTimeout,
                        ErrorSource::Upstream,
                        format!("origin server {addr} did not answer in {timeout:?}"),
                    )
                    .into()),
                    Ok(Ok(Ok(r))) => Ok((r, None)),
                    Ok(Ok(Err(e))) => Err(e.into()),
                    Ok(Err(e)) => {
                        let kind = if e.is_connect() {
                            ErrorKind::Connect
                        } else {
                            ErrorKind::Reset
                        };
                        Err(Error::new(
                            kind,
                            ErrorSource::Upstream,
                            format!("origin server {}: {kind:?} over HTTP/2", server.addr),
                        )
                        .with_cause(e)
                        .into())
                    }
                }
            }
        }
    }
}

/// HTTP/2 clients for an origin (hyper's, each with its pool of multiplexed connections):
/// one shared by the threads of ordinary runtimes, and one each for threads that keep to
/// their own connections (`Workers` threads: a connection's task and socket belong to
/// the runtime that opened it).
struct Http2Clients {
    connector: HttpConnector,
    idle_timeout: Duration,
    shared: std::sync::OnceLock<Client<HttpConnector, Body>>,
    own: Mutex<std::collections::HashMap<u64, Client<HttpConnector, Body>>>,
}

impl Http2Clients {
    /// The client the calling thread uses.
    fn client(&self) -> Client<HttpConnector, Body> {
        let new = || {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.idle_timeout)
                .http2_only(true)
                .build(self.connector.clone())
        };
        match crate::upstream::owner() {
            0 => self.shared.get_or_init(new).clone(),
            me => self.own.lock().entry(me).or_insert_with(new).clone(),
        }
    }
}

/// An origin's 5xx answer, as the failure its Hystrix command records.
#[derive(Debug)]
struct ServerError(http::StatusCode);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "origin answered {}", self.0)
    }
}

impl std::error::Error for ServerError {}

/// An origin: its servers and the client that calls them.
pub struct Origin {
    /// Its name.
    pub name: String,
    /// Its name, shared with the contexts of the requests sent to it.
    pub(crate) label: Arc<str>,
    /// Its settings.
    pub spec: OriginSpec,
    servers: Vec<Arc<Server>>,
    /// Its Hystrix command: every attempt is one execution of it (breaker, bulkhead,
    /// metrics), run directly rather than through the command's tower layer, which would
    /// cost a service clone (and a lease of metrics cells) and a boxed future per attempt.
    command: netflix_hystrix::registry::Command,
    transport: Transport,
    breaker: Breaker,
    next: AtomicUsize,
    rng: AtomicU64,
    budget: Budget,
    /// Its counters.
    pub stats: OriginStats,
}

pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether a request or response asks to switch protocols (WebSocket).
pub(crate) fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Strips hop-by-hop headers, keeping `Upgrade` (and `Connection: upgrade`) on an upgrade.
fn strip_hop_by_hop_keeping_upgrade(h: &mut HeaderMap) {
    let upgrade = is_upgrade(h)
        .then(|| h.get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(h);
    if let Some(u) = upgrade {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

use crate::codec::{
    HOP_BY_HOP_STANDARD, KEEP_ALIVE, X_FORWARDED_HOST, X_FORWARDED_PROTO, is_connection_option,
};

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names, noting which are present: most messages carry one
    // (`Connection`) or none, and only those are looked up again.
    let mut present = 0u8;
    for name in h.keys() {
        if let Some(i) = HOP_BY_HOP_STANDARD.iter().position(|n| n == name) {
            present |= 1 << i;
        } else if *name == KEEP_ALIVE {
            present |= 1 << 7;
        }
    }
    if present == 0 {
        return;
    }
    // Fields named in Connection are hop-by-hop too (its usual tokens name none).
    let mut named = Vec::new();
    if present & 1 != 0 {
        for v in h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for t in v.split(',').map(str::trim) {
                if is_connection_option(t.as_bytes()) {
                    continue;
                }
                if let Ok(n) = header::HeaderName::from_bytes(t.as_bytes()) {
                    named.push(n);
                }
            }
        }
    }
    for (i, n) in HOP_BY_HOP_STANDARD.into_iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
    if present & (1 << 7) != 0 {
        h.remove(KEEP_ALIVE);
    }
    for n in named {
        h.remove(n);
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("name", &self.name)
            .field("servers", &self.servers)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// An origin from its settings.
    ///
    /// # Errors
    ///
    /// A configuration error when a server address does not parse.
    pub fn new(
        name: &str,
        spec: OriginSpec,
        registry: &netflix_hystrix::registry::Registry,
    ) -> Result<Self> {
        let servers = spec
            .servers
            .iter()
            .map(|s| {
                s.addr()
                    .parse::<SocketAddr>()
                    .map(|a| Arc::new(Server::new(a, s.weight(), &spec)))
                    .map_err(|_| {
                        Error::config(format!("origin {name:?}: {:?} is not host:port", s.addr()))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let transport = if spec.http2 {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(Duration::from_millis(spec.connect_timeout_ms)));
            connector.set_nodelay(true);
            Transport::Http2(Arc::new(Http2Clients {
                connector,
                idle_timeout: Duration::from_millis(spec.idle_timeout_ms),
                shared: std::sync::OnceLock::new(),
                own: Mutex::new(std::collections::HashMap::new()),
            }))
        } else {
            Transport::Http1
        };
        // The origin is a Hystrix command in the gateway's registry: semaphore isolation as
        // wide as the servers' caps, no Hystrix timeout (the proxy's own timeouts apply), the
        // breaker as the route table says. Its metrics feed `hystrix.stream`.
        let key = format!("origin-{name}");
        let width = (spec.max_connections_per_server * servers.len()).clamp(1, u32::MAX as usize);
        let properties = netflix_hystrix::config::HystrixProperties::parse(&format!(
            "hystrix.command.{key}.execution.isolation.strategy = SEMAPHORE\n\
             hystrix.command.{key}.execution.isolation.semaphore.maxConcurrentRequests = {width}\n\
             hystrix.command.{key}.execution.timeout.enabled = false\n\
             hystrix.command.{key}.circuitBreaker.enabled = {}\n\
             hystrix.command.{key}.circuitBreaker.requestVolumeThreshold = {}\n\
             hystrix.command.{key}.circuitBreaker.errorThresholdPercentage = {}\n\
             hystrix.command.{key}.circuitBreaker.sleepWindowInMilliseconds = {}\n",
            spec.breaker_volume > 0,
            spec.breaker_volume.max(1),
            spec.breaker_error_percent,
            spec.breaker_sleep_ms,
        ))
        .map_err(|e| Error::config(format!("origin {name:?}: hystrix properties")).with_cause(e))?;
        registry.configure(&properties).map_err(|e| {
            Error::config(format!("origin {name:?}: hystrix properties")).with_cause(e)
        })?;
        let command = registry.command(key).group("zuul").build().map_err(|e| {
            Error::config(format!("origin {name:?}: hystrix command")).with_cause(e)
        })?;
        let breaker = command.breaker().clone();
        let checker = transport.clone();
        let origin = Self {
            breaker,
            command,
            transport,
            name: name.to_string(),
            label: Arc::from(name),
            budget: Budget::new(spec.retry_budget),
            spec,
            servers,
            next: AtomicUsize::new(0),
            rng: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            stats: OriginStats::default(),
        };
        Ok(origin.with_checker(checker).with_sweeper())
    }

    /// Starts closing idle connections past their timeout, or closed by the server, every
    /// few seconds (inside a runtime). The task ends when the origin is dropped.
    fn with_sweeper(self) -> Self {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self;
        };
        if self.spec.http2 {
            return self;
        }
        let servers: Vec<std::sync::Weak<Server>> =
            self.servers.iter().map(Arc::downgrade).collect();
        let every = Duration::from_millis(self.spec.idle_timeout_ms / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut alive = false;
                for s in servers.iter().filter_map(std::sync::Weak::upgrade) {
                    alive = true;
                    s.pool.sweep();
                }
                if !alive {
                    return;
                }
            }
        });
        self
    }

    /// Starts the active health checks (when configured and inside a runtime). The task
    /// holds the origin weakly and ends when the origin is dropped (after a reload).
    fn with_checker(self, transport: Transport) -> Self {
        let (Some(hc), Ok(rt)) = (
            self.spec.health_check.clone(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return self;
        };
        let servers: Vec<std::sync::Weak<Server>> =
            self.servers.iter().map(Arc::downgrade).collect();
        let name = self.name.clone();
        let Ok(path) = hc.path.parse::<http::uri::PathAndQuery>() else {
            tracing::warn!(origin = %name, path = %hc.path, "health check path is not a valid path: checks off");
            return self;
        };
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(hc.interval_ms.max(10)));
            loop {
                tick.tick().await;
                let mut alive = false;
                for w in &servers {
                    let Some(s) = w.upgrade() else { continue };
                    alive = true;
                    let check = Outgoing {
                        method: &Method::GET,
                        path: &path,
                        headers: &HeaderMap::new(),
                        body: OutBody::Full(Bytes::new()),
                        proxying: Proxying::default(),
                        // (Only the status is looked at.)
                        raw_answer: true,
                    };
                    let ok = matches!(
                        {
                            let (now, timeout) = (Instant::now(), Duration::from_millis(hc.timeout_ms));
                            transport.send(&s, check, (now, timeout, now + timeout)).await
                        },
                        Ok((r, _)) if r.status().is_success()
                    );
                    let streak = if ok {
                        s.streak.fetch_max(0, Ordering::Relaxed).max(0) + 1
                    } else {
                        s.streak.fetch_min(0, Ordering::Relaxed).min(0) - 1
                    };
                    s.streak.store(streak, Ordering::Relaxed);
                    if ok && streak >= hc.healthy_after as i32 && s.down.swap(false, Ordering::Relaxed) {
                        tracing::info!(origin = %name, server = %s.addr, "health check passed: server back");
                    }
                    if !ok && -streak >= hc.unhealthy_after as i32 && !s.down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(origin = %name, server = %s.addr, "health checks failed: server out");
                    }
                }
                if !alive {
                    return;
                }
            }
        });
        self
    }

    /// Its circuit breaker (state, metrics, forcing open or closed).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Its servers.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    fn random(&self) -> u64 {
        let mut x = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x ^= x >> 31;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 29)
    }

    /// Chooses a server by the origin's algorithm, avoiding `tried` and ejected or full
    /// servers (ejected ones only when nothing else is left).
    fn choose(&self, tried: &Tried, key: Option<&[u8]>) -> Option<usize> {
        let cap = self.spec.max_connections_per_server as u64;
        // One server: it, if it is usable at all (ejection is not a reason to fail).
        if self.servers.len() == 1 {
            return (!tried.contains(&0) && self.servers[0].inflight() < cap).then_some(0);
        }
        // The common case without allocation: P2C over two usable servers drawn at random.
        if self.spec.lb == LbKind::P2c && self.servers.len() >= 2 {
            let n = self.servers.len() as u64;
            let ok = |i: usize| {
                !tried.contains(&i)
                    && !self.servers[i].ejected()
                    && self.servers[i].inflight() < cap
            };
            let r = self.random();
            let a = (r % n) as usize;
            let b = ((a as u64 + 1 + (r >> 32) % (n - 1)) % n) as usize;
            match (ok(a), ok(b)) {
                (true, true) => {
                    return Some(if self.servers[a].cost() <= self.servers[b].cost() {
                        a
                    } else {
                        b
                    });
                }
                (true, false) => return Some(a),
                (false, true) => return Some(b),
                (false, false) => {}
            }
        }
        // The connection cap is hard; ejection is not: when every server is ejected, the
        // least bad is still tried rather than failing outright.
        let usable = |i: usize, strict: bool| {
            !tried.contains(&i)
                && self.servers[i].inflight() < cap
                && (!strict || !self.servers[i].ejected())
        };
        for strict in [true, false] {
            let candidates: Vec<usize> = (0..self.servers.len())
                .filter(|&i| usable(i, strict))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let pick = match self.spec.lb {
                LbKind::RoundRobin => {
                    candidates[self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()]
                }
                LbKind::Weighted => {
                    // Smooth weighted round robin (nginx): each pick adds every weight,
                    // takes the largest, and subtracts the total from it.
                    let total: i64 = candidates
                        .iter()
                        .map(|&i| i64::from(self.servers[i].weight))
                        .sum();
                    let mut best = candidates[0];
                    let mut best_w = i64::MIN;
                    for &i in &candidates {
                        let mut cw = self.servers[i].current_weight.lock();
                        *cw += i64::from(self.servers[i].weight);
                        if *cw > best_w {
                            best_w = *cw;
                            best = i;
                        }
                    }
                    *self.servers[best].current_weight.lock() -= total;
                    best
                }
                LbKind::Hash => {
                    let h = key.map_or(0, fnv);
                    *candidates
                        .iter()
                        .max_by_key(|&&i| mix(h ^ fnv(self.servers[i].addr.to_string().as_bytes())))
                        .expect("candidates are not empty")
                }
                LbKind::P2c => {
                    if candidates.len() == 1 {
                        candidates[0]
                    } else {
                        let r = self.random();
                        let a = candidates[(r % candidates.len() as u64) as usize];
                        let mut b =
                            candidates[((r >> 32) % (candidates.len() as u64 - 1)) as usize];
                        if b == a {
                            b = candidates[candidates.len() - 1];
                        }
                        if self.servers[a].cost() <= self.servers[b].cost() {
                            a
                        } else {
                            b
                        }
                    }
                }
            };
            return Some(pick);
        }
        None
    }

    /// Records an answer's latency where it decides something: P2C among two or more
    /// servers (it spares a shared write otherwise).
    fn observe(&self, server: &Server, started: Instant, now: Instant) {
        if self.spec.lb == LbKind::P2c && self.servers.len() > 1 {
            server.observe(started, now);
        }
    }

    fn failed(&self, i: usize) {
        let s = &self.servers[i];
        s.penalize();
        let n = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.spec.eject_after {
            s.failures.store(0, Ordering::Relaxed);
            s.ejected.store(true, Ordering::Relaxed);
            *s.ejected_until.lock() =
                Some(Instant::now() + Duration::from_millis(self.spec.eject_ms));
            self.stats.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(origin = %self.name, server = %s.addr, "server ejected after {n} failures");
        }
    }

    /// Forwards `req` (its path already rewritten) with retries; see the module docs.
    ///
    /// # Errors
    ///
    /// The last attempt's [`Error`] when every attempt failed, or the retry budget or the
    /// deadline stopped them.
    pub async fn forward(&self, req: Request<Body>, ctx: &mut Context) -> Result<Response<Body>> {
        self.forward_with(req, ctx, None, None).await
    }

    /// [`Origin::forward`]; with `raw`, an HTTP/1.1 origin's answer head is put there as
    /// it came, and the response's header map is left empty (for a caller that writes the
    /// head to the client and looks at nothing else in it). `now`: the time, when the
    /// caller has just read it.
    pub(crate) async fn forward_with(
        &self,
        req: Request<Body>,
        ctx: &mut Context,
        raw: Option<&mut Option<RawHead>>,
        now: Option<Instant>,
    ) -> Result<Response<Body>> {
        let (mut parts, body) = req.into_parts();
        let answer = self.forward_parts(&mut parts, body, ctx, raw, now).await;
        // The request's header map serves the next request parsed on this thread.
        crate::codec::give_header_map(std::mem::take(&mut parts.headers));
        answer
    }

    async fn forward_parts(
        &self,
        parts: &mut http::request::Parts,
        body: Body,
        ctx: &mut Context,
        raw: Option<&mut Option<RawHead>>,
        now: Option<Instant>,
    ) -> Result<Response<Body>> {
        self.budget.deposit();
        let mut arrived = now.unwrap_or_else(Instant::now);
        let deadline = arrived + Duration::from_millis(self.spec.deadline_ms);
        // HTTP/2 carries the host in the target (`:authority`), not in a field. (Only a
        // target with an authority can supply one: the usual HTTP/1.1 target, a path,
        // costs no lookup.)
        if let Some(authority) = parts.uri.authority() {
            if !parts.headers.contains_key(header::HOST) {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    parts.headers.insert(header::HOST, v);
                }
            }
        }
        // Hop-by-hop fields are left out, and X-Forwarded-* added, as the head is written.
        let proxying = Proxying {
            upgrade: is_upgrade(&parts.headers),
            forwarded: true,
        };
        // Small bodies are buffered so that they can be sent again. What the body says of
        // itself decides (the headers may have been stripped or disagree), and buffering
        // is bounded in time: a client that promises bytes and sends none is cut off.
        let hint = http_body::Body::size_hint(&body);
        let no_body = http_body::Body::is_end_stream(&body) || hint.exact() == Some(0);
        let (replay, mut stream): (Option<Bytes>, Option<Body>) = if no_body {
            (Some(Bytes::new()), None)
        } else if hint.upper().is_some_and(|u| u <= REPLAYABLE_BODY) {
            let wait = Duration::from_millis(self.spec.read_timeout_ms);
            let collected = tokio::time::timeout(wait, body.collect()).await;
            // (The body may have taken a while: the first attempt starts after it.)
            arrived = Instant::now();
            let b = match collected {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(e)) => {
                    return Err(Error::new(
                        ErrorKind::Reset,
                        ErrorSource::Downstream,
                        "the client's body broke off",
                    )
                    .with_cause(e));
                }
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::ReadTimeout,
                        ErrorSource::Downstream,
                        format!("the client did not send its body in {wait:?}"),
                    ));
                }
            };
            (Some(b), None)
        } else {
            (None, Some(body))
        };
        let key = match (self.spec.lb, &self.spec.hash_header) {
            (LbKind::Hash, Some(h)) => forwarded_value(&parts.headers, h),
            (LbKind::Hash, None) => Some(parts.uri.path().as_bytes().to_vec()),
            _ => None,
        };
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let mut tried = Tried::default();
        let mut last_err: Option<Error> = None;
        for attempt in 0..=self.spec.max_retries {
            if attempt > 0 {
                if !self.budget.withdraw() {
                    self.stats.budget_refusals.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            let Some(i) = self.choose(&tried, key.as_deref()) else {
                break;
            };
            tried.push(i);
            let server = &self.servers[i];
            ctx.attempts.push(server.addr);
            self.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let body = match (&replay, stream.take()) {
                (Some(b), _) => OutBody::Full(b.clone()),
                (None, Some(s)) => OutBody::Stream(s),
                (None, None) => break,
            };
            // (The first attempt starts as the request arrives here: no second look at
            // the clock.)
            let started = if attempt == 0 {
                arrived
            } else {
                Instant::now()
            };
            let timeout = Duration::from_millis(self.spec.read_timeout_ms)
                .min(deadline.saturating_duration_since(started));
            let out = Outgoing {
                method: &parts.method,
                path: &path_and_query,
                headers: &parts.headers,
                body,
                proxying,
                raw_answer: raw.is_some(),
            };
            let execution = match self.command.start_at(started) {
                Ok(e) => e,
                // Failing fast is the point: no retry, no ejection.
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::CircuitOpen,
                        ErrorSource::Upstream,
                        format!("origin {}: {e}", self.name),
                    ));
                }
            };
            server.inflight.fetch_add(1, Ordering::Relaxed);
            let result = self
                .transport
                .send(server, out, (started, timeout, deadline))
                .await;
            server.inflight.fetch_sub(1, Ordering::Relaxed);
            // One clock read for all that the answer's time goes to: the breaker's metrics,
            // the server's latency average, the passport, the deadline.
            let answered = Instant::now();
            // The client's own failure (its body broke off, or came too slowly) says nothing
            // of the origin: not a failure, not retried.
            let result = match result {
                Err(e)
                    if e.downcast_ref::<Error>()
                        .is_some_and(|e| e.error_source() == ErrorSource::Downstream) =>
                {
                    drop(execution);
                    return Err(match e.downcast::<Error>() {
                        Ok(e) => *e,
                        Err(e) => {
                            Error::new(ErrorKind::Reset, ErrorSource::Downstream, e.to_string())
                        }
                    });
                }
                other => other,
            };
            // A 5xx answer is a failure for the breaker, a 4xx the caller's own.
            match &result {
                Ok((r, _)) if r.status().is_server_error() => {
                    execution.failed_at(&(Box::new(ServerError(r.status())) as _), answered);
                }
                Ok(_) => execution.succeeded_at(answered),
                Err(e) => execution.failed_at(e, answered),
            }
            let can_replay = replay.is_some();
            let err = match result {
                Ok((res, raw_head)) => {
                    self.observe(server, started, answered);
                    let status = res.status().as_u16();
                    if self.spec.retry_statuses.contains(&status) {
                        self.failed(i);
                        if idempotent(&parts.method)
                            && can_replay
                            && attempt < self.spec.max_retries
                            && answered < deadline
                        {
                            last_err = Some(Error::new(
                                ErrorKind::Reset,
                                ErrorSource::Upstream,
                                format!("origin answered {status}"),
                            ));
                            // The response is dropped unread: nothing reached the client.
                            continue;
                        }
                    } else if server.failures.load(Ordering::Relaxed) != 0 {
                        // (Read first: a store on every answer would pull the line from
                        // whichever core wrote it last.)
                        server.failures.store(0, Ordering::Relaxed);
                    }
                    ctx.passport.add_at("origin responded", answered);
                    let (mut rp, rb) = res.into_parts();
                    if rp.status == http::StatusCode::SWITCHING_PROTOCOLS {
                        strip_hop_by_hop_keeping_upgrade(&mut rp.headers);
                        return Ok(Response::from_parts(rp, body::boxed(rb)));
                    }
                    if matches!(self.transport, Transport::Http2(_)) {
                        // (Our HTTP/1.1 client leaves them out as it parses.)
                        strip_hop_by_hop(&mut rp.headers);
                    }
                    if let (Some(slot), Some(head)) = (raw, raw_head) {
                        *slot = Some(head);
                    }
                    // (A small body of known length has been read whole by the transport,
                    // so that the client gets head and body in one write.)
                    return Ok(Response::from_parts(rp, rb));
                }
                Err(e) => {
                    self.failed(i);
                    match e.downcast::<Error>() {
                        Ok(e) if e.kind() == ErrorKind::ReadTimeout => {
                            self.observe(server, started, answered);
                            if answered >= deadline {
                                Error::new(
                                    ErrorKind::Deadline,
                                    ErrorSource::Upstream,
                                    format!(
                                        "origin {} at {}: the request's deadline passed",
                                        self.name, server.addr
                                    ),
                                )
                                .with_cause(*e)
                            } else {
                                *e
                            }
                        }
                        Ok(e) => *e,
                        Err(e) => Error::new(
                            ErrorKind::Reset,
                            ErrorSource::Upstream,
                            format!("origin {} at {}: {e}", self.name, server.addr),
                        )
                        .with_cause(e),
                    }
                }
            };
            let retry_allowed = can_replay
                && answered < deadline
                && match err.kind() {
                    ErrorKind::Connect | ErrorKind::Reset => true,
                    ErrorKind::ReadTimeout | ErrorKind::BrokenBody => idempotent(&parts.method),
                    _ => false,
                };
            last_err = Some(err);
            if !retry_allowed {
                break;
            }
        }
        Err(last_err.unwrap_or_else(|| {
            Error::new(
                ErrorKind::NoServer,
                ErrorSource::Upstream,
                format!("origin {} has no server to try", self.name),
            )
        }))
    }
}

fn append_forwarded(up: &mut HeaderMap) {
    if let Some(host) = up.get(header::HOST).cloned() {
        up.insert(X_FORWARDED_HOST, host);
    }
    up.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

/// The value of `name` in the request as the origin gets it (its `X-Forwarded-*` as the
/// gateway writes them, no hop-by-hop field): what a hash of that header balances on.
fn forwarded_value(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let name = header::HeaderName::from_bytes(name.as_bytes()).ok()?;
    if name == X_FORWARDED_HOST {
        headers.get(header::HOST).map(|v| v.as_bytes().to_vec())
    } else if name == X_FORWARDED_PROTO {
        Some(b"http".to_vec())
    } else if HOP_BY_HOP_STANDARD.contains(&name) || name == KEEP_ALIVE {
        None
    } else {
        headers.get(name).map(|v| v.as_bytes().to_vec())
    }
}

/// The servers a request has tried: a few inline, more on the heap (no allocation for the
/// usual one or two attempts).
#[derive(Debug, Default)]
struct Tried {
    inline: [usize; 4],
    len: usize,
    more: Vec<usize>,
}

impl Tried {
    fn contains(&self, i: &usize) -> bool {
        self.inline[..self.len.min(4)].contains(i) || self.more.contains(i)
    }

    fn push(&mut self, i: usize) {
        if self.len < 4 {
            self.inline[self.len] = i;
        } else {
            self.more.push(i);
        }
        self.len += 1;
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The error's response: 502 for origin failures, 504 for timeouts, 503 when no server
/// or budget is left; for the client's own failures, 408 when it was too slow and 400
/// otherwise.
pub fn error_response(e: &Error) -> Response<Body> {
    let status = match (e.error_source(), e.kind()) {
        (ErrorSource::Downstream, ErrorKind::ReadTimeout | ErrorKind::Deadline) => 408,
        (ErrorSource::Downstream, _) => 400,
        (_, ErrorKind::ReadTimeout | ErrorKind::Deadline) => 504,
        (_, ErrorKind::NoServer | ErrorKind::BudgetExhausted | ErrorKind::CircuitOpen) => 503,
        _ => 502,
    };
    let mut r = Response::new(body::full(format!("{e}\n")));
    *r.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_are_the_values_the_origin_gets() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("site"));
        h.insert("x-forwarded-host", HeaderValue::from_static("spoofed"));
        h.insert("x-user", HeaderValue::from_static("7"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        let key = |name: &str| forwarded_value(&h, name);
        assert_eq!(key("X-Forwarded-Host").as_deref(), Some(&b"site"[..]));
        assert_eq!(key("x-forwarded-proto").as_deref(), Some(&b"http"[..]));
        assert_eq!(key("x-user").as_deref(), Some(&b"7"[..]));
        assert_eq!(
            key("te"),
            None,
            "a hop-by-hop field never reaches the origin"
        );
        assert_eq!(key("x-absent"), None);
        assert_eq!(key("bad name"), None);
    }
}
