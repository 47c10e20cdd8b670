//! The gateway: inbound filters, one endpoint, outbound filters, on hyper.
//!
//! Every answer is logged as a `tracing` event at `info` with the target
//! `netflix_zuul::access` (client, method, path, status, route, origin, attempts, time):
//! the access log, switched on and off by the subscriber's filter.
//!
//! For every request: the passport starts; the inbound filters run in order (any may
//! answer at once); the route table picks a route (none: 404); its endpoint answers (a
//! static response, or the proxy to an origin); the outbound filters run on whatever
//! answered; the response streams back. The route table can be replaced while running
//! ([`Gateway::reload`]): requests in flight finish on the table they started with, and
//! origins whose settings did not change keep their connections and health.

use crate::body::{self, Body};
use crate::codec::RawHead;
use crate::context::Context;
use crate::error::Result;
use crate::filter::{FilterChain, Flow};
use crate::proxy::{Origin, error_response};
use crate::route::{EndpointSpec, RouteTable};
use crate::traffic::{OriginOverride, ShadowTo};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::time::Instant;

struct Table {
    routes: RouteTable,
    /// The routes' names, shared with each request's context.
    names: Vec<Arc<str>>,
    /// The routes' counters, found once here rather than by name for every request.
    route_metrics: Vec<Arc<crate::metrics::RouteMetrics>>,
    /// Each proxy route's origin, likewise.
    route_origins: Vec<Option<Arc<Origin>>>,
    origins: HashMap<String, Arc<Origin>>,
}

/// Counters of a gateway.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Answers by status class: 1xx..5xx at indices 1..5.
    pub by_class: [AtomicU64; 6],
    /// Requests no route matched.
    pub unrouted: AtomicU64,
    /// Requests in progress.
    pub active: AtomicU64,
}

/// A running gateway's shared state; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    table: Arc<RwLock<Arc<Table>>>,
    chain: FilterChain,
    stats: Arc<GatewayStats>,
    registry: netflix_hystrix::registry::Registry,
    stream: netflix_hystrix::stream::HystrixStream,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `routes` and `chain`.
    ///
    /// # Errors
    ///
    /// A configuration error when the table does not check.
    pub fn new(routes: RouteTable, chain: FilterChain) -> Result<Self> {
        let registry = netflix_hystrix::registry::Registry::new();
        let metrics = Arc::<crate::metrics::Metrics>::default();
        let table = Self::compile(routes, None, &registry, &metrics)?;
        Ok(Self {
            table: Arc::new(RwLock::new(Arc::new(table))),
            chain,
            stats: Arc::default(),
            stream: netflix_hystrix::stream::HystrixStream::new(registry.clone()),
            registry,
            metrics,
        })
    }

    /// The Hystrix registry holding one command per origin (`origin-<name>`).
    pub fn registry(&self) -> &netflix_hystrix::registry::Registry {
        &self.registry
    }

    /// The origins' `hystrix.stream` (routes reach it with the `hystrix_stream` endpoint).
    pub fn hystrix_stream(&self) -> &netflix_hystrix::stream::HystrixStream {
        &self.stream
    }

    fn compile(
        routes: RouteTable,
        old: Option<&Table>,
        registry: &netflix_hystrix::registry::Registry,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Table> {
        routes.check()?;
        let mut origins = HashMap::new();
        for (name, spec) in &routes.origins {
            let reuse = old
                .and_then(|t| t.origins.get(name))
                .filter(|o| o.spec == *spec)
                .cloned();
            let o = match reuse {
                Some(o) => o,
                None => Arc::new(Origin::new(name, spec.clone(), registry)?),
            };
            origins.insert(name.clone(), o);
        }
        let names = routes
            .routes
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        let route_metrics = routes
            .routes
            .iter()
            .map(|r| metrics.route(&r.name))
            .collect();
        let route_origins = routes
            .routes
            .iter()
            .map(|r| match &r.endpoint {
                EndpointSpec::Proxy(o) => origins.get(o).cloned(),
                _ => None,
            })
            .collect();
        Ok(Table {
            routes,
            names,
            route_metrics,
            route_origins,
            origins,
        })
    }

    /// Replaces the route table while running; see the module docs.
    ///
    /// # Errors
    ///
    /// A configuration error when the new table does not check (the old one stays).
    pub fn reload(&self, routes: RouteTable) -> Result<()> {
        let current = self.table.read().clone();
        let next = Self::compile(routes, Some(&current), &self.registry, &self.metrics)?;
        *self.table.write() = Arc::new(next);
        tracing::info!("route table reloaded");
        Ok(())
    }

    /// The filter chain (to switch filters off and on).
    pub fn filters(&self) -> &FilterChain {
        &self.chain
    }

    /// Per-route counters and latency histograms.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Everything the gateway counts, in Prometheus' text format: routes (answers by status
    /// class, latency histograms), origins (attempts, retries, budget refusals, ejections,
    /// circuit state, requests in flight per server) and requests in progress.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        self.metrics.render(&mut out);
        let table = self.table.read().clone();
        out.push_str("# TYPE zuul_origin_attempts_total counter\n# TYPE zuul_origin_retries_total counter\n# TYPE zuul_origin_budget_refusals_total counter\n# TYPE zuul_origin_ejections_total counter\n# TYPE zuul_origin_circuit_open gauge\n# TYPE zuul_origin_server_inflight gauge\n");
        for (name, o) in &table.origins {
            let n = crate::metrics::escape(name);
            let st = &o.stats;
            for (metric, counter) in [
                ("attempts", &st.attempts),
                ("retries", &st.retries),
                ("budget_refusals", &st.budget_refusals),
                ("ejections", &st.ejections),
            ] {
                let _ = writeln!(
                    out,
                    "zuul_origin_{metric}_total{{origin=\"{n}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
            let open = u8::from(o.breaker().state() != netflix_hystrix::breaker::State::Closed);
            let _ = writeln!(out, "zuul_origin_circuit_open{{origin=\"{n}\"}} {open}");
            for s in o.servers() {
                let _ = writeln!(
                    out,
                    "zuul_origin_server_inflight{{origin=\"{n}\",server=\"{}\"}} {}",
                    s.addr,
                    s.inflight()
                );
            }
        }
        let _ = writeln!(
            out,
            "# TYPE zuul_active_requests gauge\nzuul_active_requests {}",
            self.stats.active.load(Ordering::Relaxed)
        );
        out
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<GatewayStats> {
        &self.stats
    }

    /// The origin called `name`, in the current table.
    pub fn origin(&self, name: &str) -> Option<Arc<Origin>> {
        self.table.read().origins.get(name).cloned()
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        self.handle_from(req, None).await
    }

    /// Answers one request from the client at `client`.
    pub async fn handle_from(
        &self,
        req: Request<Body>,
        client: Option<std::net::SocketAddr>,
    ) -> Response<Body> {
        self.answer(req, client, None).await
    }

    /// [`handle_from`](Self::handle_from) for our own HTTP/1.1 connections, which write
    /// the answer's head and look at nothing else in it: with `raw`, and no outbound filter
    /// to look at the answer either, a proxied answer's head is put there as the origin
    /// wrote it, and the response's own header map is left empty (no map is built).
    pub(crate) async fn answer(
        &self,
        mut req: Request<Body>,
        client: Option<std::net::SocketAddr>,
        raw: Option<&mut Option<RawHead>>,
    ) -> Response<Body> {
        let raw = raw.filter(|_| !self.chain.has_outbound());
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        let mut ctx = Context {
            client,
            ..Context::default()
        };
        // (For outbound filters that compress: with none, nothing reads it.)
        if self.chain.has_outbound() {
            ctx.accept_encoding = req.headers().get(header::ACCEPT_ENCODING).cloned();
        }
        let access = tracing::enabled!(target: "netflix_zuul::access", tracing::Level::INFO)
            .then(|| (req.method().clone(), req.uri().path().to_string()));
        // (The passport starts now: "received" is at zero, with no clock read.)
        ctx.passport
            .add_after("received", std::time::Duration::ZERO);
        let table = self.table.read().clone();
        let (mut res, routed) = match self.chain.run_inbound(&mut req, &mut ctx).await {
            Flow::Respond(r) => (r, None),
            Flow::Continue => self.endpoint(&table, req, &mut ctx, raw).await,
        };
        self.chain.run_outbound(&mut res, &mut ctx).await;
        let elapsed = ctx.passport.elapsed();
        ctx.passport.add_after("responded", elapsed);
        match routed {
            Some(i) => table.route_metrics[i].record(res.status().as_u16(), elapsed),
            None => self.metrics.record(
                ctx.route.as_deref().unwrap_or("(none)"),
                res.status().as_u16(),
                elapsed,
            ),
        }
        let class = (res.status().as_u16() / 100).min(5) as usize;
        self.stats.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        if let Some((method, path)) = access {
            tracing::info!(
                target: "netflix_zuul::access",
                client = ?ctx.client,
                %method,
                path,
                status = res.status().as_u16(),
                route = ctx.route.as_deref().unwrap_or("-"),
                origin = ctx.origin.as_deref().unwrap_or("-"),
                attempts = ctx.attempts.len(),
                elapsed_us = elapsed.as_micros() as u64,
                "access"
            );
        }
        res
    }

    /// The endpoint's answer, and the index of the route that matched.
    async fn endpoint(
        &self,
        table: &Table,
        mut req: Request<Body>,
        ctx: &mut Context,
        raw: Option<&mut Option<RawHead>>,
    ) -> (Response<Body>, Option<usize>) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host());
        let Some(i) = table
            .routes
            .find(req.method(), host, req.uri().path(), req.headers())
        else {
            self.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            let mut r = Response::new(body::full("no route\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return (r, None);
        };
        let route = &table.routes.routes[i];
        ctx.route = Some(table.names[i].clone());
        // (One clock read: the passport's, and the proxy's start of its first attempt.)
        let routed = Instant::now();
        ctx.passport.add_at("routed", routed);
        let res = match &route.endpoint {
            EndpointSpec::Static {
                status,
                body: text,
                content_type,
            } => {
                let mut r = Response::new(body::full(text.clone()));
                *r.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                let ct = content_type.as_deref().unwrap_or("text/plain");
                if let Ok(v) = HeaderValue::from_str(ct) {
                    r.headers_mut().insert(header::CONTENT_TYPE, v);
                }
                r
            }
            EndpointSpec::HystrixStream => {
                let (parts, b) = self.stream.handle(&req).into_parts();
                Response::from_parts(parts, body::boxed(b))
            }
            EndpointSpec::Metrics => {
                let mut r = Response::new(body::full(self.prometheus()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            EndpointSpec::Proxy(route_origin) => {
                // A filter may have moved this request to another origin (a canary).
                // The route's own origin was found when the table was compiled.
                let own = || {
                    table.route_origins[i]
                        .as_ref()
                        .unwrap_or_else(|| &table.origins[route_origin])
                };
                let origin: &Arc<Origin> = match ctx.extensions.get::<OriginOverride>() {
                    Some(OriginOverride(o)) => table.origins.get(o).unwrap_or_else(|| {
                        tracing::warn!(route = %route.name, origin = %o, "a filter chose an unknown origin");
                        own()
                    }),
                    None => own(),
                };
                let name = origin.label.clone();
                ctx.origin = Some(origin.label.clone());
                if route.strip_prefix {
                    if let Some(prefix) = &route.path_prefix {
                        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                        let rest = pq.strip_prefix(prefix.trim_end_matches('/')).unwrap_or(pq);
                        let rest = if rest.starts_with('/') {
                            rest.to_string()
                        } else {
                            format!("/{rest}")
                        };
                        if let Ok(u) = rest.parse() {
                            *req.uri_mut() = u;
                        }
                    }
                }
                if let Some(ShadowTo(shadow)) = ctx.extensions.get::<ShadowTo>().cloned() {
                    match table.origins.get(&shadow) {
                        Some(target) => match mirror(req, target.clone()).await {
                            Ok(r) => req = r,
                            Err(e) => return (error_response(&e), Some(i)),
                        },
                        None => tracing::warn!(origin = %shadow, "shadow origin unknown"),
                    }
                }
                // A protocol switch (WebSocket): the client's side of the upgrade is taken
                // now, the origin's from its 101, and the two are spliced.
                let client_upgrade = crate::proxy::is_upgrade(req.headers()).then(|| {
                    match req
                        .extensions_mut()
                        .remove::<crate::downstream::ClientUpgrade>()
                        .and_then(|u| u.0.lock().take())
                    {
                        Some(ours) => ClientSide::Ours(ours),
                        None => ClientSide::Hyper(hyper::upgrade::on(&mut req)),
                    }
                });
                match origin.forward_with(req, ctx, raw, Some(routed)).await {
                    Ok(mut r) => {
                        if let (Some(down), StatusCode::SWITCHING_PROTOCOLS) =
                            (client_upgrade, r.status())
                        {
                            // The origin's side: our own HTTP/1.1 connection, or hyper's
                            // (HTTP/2 origins).
                            let ours = r
                                .extensions_mut()
                                .remove::<crate::upstream::UpgradedSlot>()
                                .and_then(|slot| slot.0.lock().take());
                            let theirs = ours.is_none().then(|| hyper::upgrade::on(&mut r));
                            let origin_name = name.clone();
                            tokio::spawn(async move {
                                let down: Result<Box<dyn crate::downstream::Io>, String> =
                                    match down {
                                        ClientSide::Ours(rx) => {
                                            rx.await.map_err(|_| "the client went away".into())
                                        }
                                        ClientSide::Hyper(on) => match on.await {
                                            Ok(u) => Ok(Box::new(TokioIo::new(u))),
                                            Err(e) => Err(format!("client upgrade: {e}")),
                                        },
                                    };
                                let up: Result<Box<dyn crate::downstream::Io>, String> =
                                    match (ours, theirs) {
                                        (Some(up), _) => Ok(Box::new(up)),
                                        (None, Some(on)) => match on.await {
                                            Ok(u) => Ok(Box::new(TokioIo::new(u))),
                                            Err(e) => Err(format!("origin upgrade: {e}")),
                                        },
                                        (None, None) => Err("no upgraded connection".into()),
                                    };
                                let spliced = match (down, up) {
                                    (Ok(mut down), Ok(mut up)) => {
                                        tokio::io::copy_bidirectional(&mut down, &mut up)
                                            .await
                                            .map(drop)
                                            .map_err(|e| e.to_string())
                                    }
                                    (Err(e), _) | (_, Err(e)) => Err(e),
                                };
                                if let Err(e) = spliced {
                                    tracing::debug!(origin = %origin_name, error = %e, "upgraded connection ended");
                                }
                            });
                        }
                        r
                    }
                    Err(e) => {
                        tracing::warn!(route = %route.name, origin = %name, error = %e, "proxy failed");
                        error_response(&e)
                    }
                }
            }
        };
        (res, Some(i))
    }

    /// Serves connections (HTTP/1.1 with keep-alive, and HTTP/2 by prior knowledge) until
    /// `shutdown` completes; then stops accepting, finishes the requests in flight and closes
    /// idle keep-alive connections (a graceful drain).
    ///
    /// # Errors
    ///
    /// Never in practice: accept errors are logged and retried.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_with(listener, shutdown, None).await
    }

    /// Like [`serve`](Self::serve), over TLS: HTTP/2 or HTTP/1.1 as ALPN negotiates
    /// (feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: crate::tls::TlsConfig,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_with(listener, shutdown, Some(tls.acceptor()))
            .await
    }

    pub(crate) async fn serve_with(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        tls: Option<Acceptor>,
    ) -> std::io::Result<()> {
        // HTTP/2 connections (hyper's) drain through `graceful`; HTTP/1.1 connections (ours)
        // watch `drain`; each holds a `done` sender, so the last one to end closes `done_rx`.
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let this = self.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            let drain = drain_rx.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let _done = done;
                match tls {
                    None => this.serve_conn(stream, peer, watcher, drain).await,
                    #[cfg(feature = "tls")]
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        );
                        match handshake.await {
                            Ok(Ok(s)) => this.serve_conn(s, peer, watcher, drain).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    #[cfg(not(feature = "tls"))]
                    Some(never) => match never {},
                }
            });
        }
        let _ = drain_tx.send(true);
        drop(done_tx);
        tokio::join!(graceful.shutdown(), done_rx.recv());
        Ok(())
    }

    async fn serve_conn<I: crate::downstream::ServerIo>(
        self,
        io: I,
        peer: std::net::SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
        drain: tokio::sync::watch::Receiver<bool>,
    ) {
        match crate::downstream::serve(self.clone(), io, peer, drain).await {
            crate::downstream::Outcome::Done => {}
            crate::downstream::Outcome::Http2(io) => {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let this = self.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            this.handle_from(req.map(body::boxed), Some(peer)).await,
                        )
                    }
                });
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(io), svc);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
                }
            }
        }
    }
}

/// The gateway as a [`tower::Service`]: to run it inside another server or under tower
/// middleware, instead of [`Gateway::serve`]. Each call is [`Gateway::handle`].
///
/// # Example
///
/// ```
/// use netflix_zuul::{Gateway, body, filter::FilterChain, route::RouteTable};
/// use tower::ServiceExt as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let routes = RouteTable::from_json(
///     r#"{ "routes": [ { "name": "hi", "path": "/hi", "endpoint": { "static": { "status": 200, "body": "hi" } } } ] }"#,
/// )?;
/// let gateway = Gateway::new(routes, FilterChain::default())?;
/// let req = http::Request::get("/hi").body(body::empty())?;
/// let res = gateway.oneshot(req).await?;
/// assert_eq!(res.status(), 200);
/// # Ok(())
/// # }
/// ```
impl tower::Service<Request<Body>> for Gateway {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = std::result::Result<Response<Body>, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let gateway = self.clone();
        Box::pin(async move { Ok(gateway.handle(req).await) })
    }
}

/// The client's side of a protocol switch: from our HTTP/1.1 loop, or from hyper.
enum ClientSide {
    Ours(tokio::sync::oneshot::Receiver<Box<dyn crate::downstream::Io>>),
    Hyper(hyper::upgrade::OnUpgrade),
}

#[cfg(feature = "tls")]
pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "tls"))]
/// Without TLS there is no acceptor (an empty enum, as `Infallible`, but not `Copy`, so
/// the code that clones the real one reads the same either way).
#[derive(Clone)]
pub(crate) enum Acceptor {}

/// Sends a copy of `req` to `shadow` in the background (answers ignored) and returns the
/// request to forward. Only requests whose body is known to be empty or small enough to
/// buffer are mirrored; a client that breaks its body off or does not send it in time
/// fails the request.
async fn mirror(req: Request<Body>, shadow: Arc<Origin>) -> Result<Request<Body>> {
    let (parts, b) = req.into_parts();
    let small = http_body::Body::size_hint(&b)
        .upper()
        .is_some_and(|u| u <= crate::proxy::REPLAYABLE_BODY);
    if !small {
        return Ok(Request::from_parts(parts, b));
    }
    let wait = std::time::Duration::from_millis(shadow.spec.read_timeout_ms);
    let bytes = match tokio::time::timeout(wait, b.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            return Err(crate::Error::new(
                crate::ErrorKind::Reset,
                crate::ErrorSource::Downstream,
                "the client's body broke off",
            )
            .with_cause(e));
        }
        Err(_) => {
            return Err(crate::Error::new(
                crate::ErrorKind::ReadTimeout,
                crate::ErrorSource::Downstream,
                format!("the client did not send its body in {wait:?}"),
            ));
        }
    };
    let mut copy = Request::new(body::full(bytes.clone()));
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.headers_mut() = parts.headers.clone();
    tokio::spawn(async move {
        let mut ctx = Context::default();
        if let Err(e) = shadow.forward(copy, &mut ctx).await {
            tracing::debug!(origin = %shadow.name, error = %e, "shadow request failed");
        }
    });
    Ok(Request::from_parts(parts, body::full(bytes)))
}
