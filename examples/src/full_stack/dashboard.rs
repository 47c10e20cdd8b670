//! The page: an hls.js player that plays the title through the gateway (`/play`) and the
//! OCAs it names, beside a live dashboard (circuits, OCA hit ratios, every simulated
//! player's bitrate and buffer). It is served on loopback behind the gateway, which
//! routes every path it does not know here.
//!
//! `GET /` is the page, `GET /hls.min.js` the player library (installed by
//! `scripts/setup.sh` under `target/js`), `GET /state.json` the dashboard's data, and
//! `GET /report?j=JSON` takes the page's own verdict on its playback (the browser test
//! reads it).

use super::players::Board;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use netflix_evcache::EvCache;
use netflix_hystrix::metrics::EventType;
use netflix_hystrix::registry::Registry;
use netflix_oca::server::OcaServer;
use netflix_zuul::Gateway;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// The page.
const PAGE: &str = include_str!("page.html");

/// One appliance as the dashboard shows it.
#[derive(Debug, Clone)]
pub(crate) struct Appliance {
    pub(crate) name: String,
    pub(crate) tier: &'static str,
    /// `host:port`, as players' URLs name it.
    pub(crate) host: String,
    pub(crate) server: OcaServer,
}

/// What the dashboard reads.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) started: Instant,
    pub(crate) appliances: Vec<Appliance>,
    pub(crate) registry: Registry,
    pub(crate) gateway: Gateway,
    pub(crate) store: EvCache,
    pub(crate) board: Board,
    /// What happened, as (seconds since the start, text).
    pub(crate) events: Arc<Mutex<Vec<(f64, String)>>>,
    /// The appliances and zones killed so far.
    pub(crate) killed: Arc<Mutex<Vec<String>>>,
    /// Each appliance's chunk hits and misses when the players started: hit ratios count
    /// from there, leaving out the proactive fill's lookups.
    pub(crate) baseline: Arc<Mutex<Vec<(u64, u64, u64)>>>,
}

/// Locks `m`, whether or not a holder panicked (the data is counters and text).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sources {
    /// Notes an event (also logged).
    pub(crate) fn event(&self, text: String) {
        let t = self.started.elapsed().as_secs_f64();
        tracing::info!(target: "full_stack", "{text}");
        lock(&self.events).push((t, text));
    }

    /// Each appliance's chunk hits and misses so far.
    pub(crate) fn counts(appliances: &[Appliance]) -> Vec<(u64, u64, u64)> {
        appliances
            .iter()
            .map(|a| {
                let (hits, misses) = a
                    .server
                    .filler()
                    .map(|f| f.store().stats())
                    .map_or((0, 0), |s| (s.memory_hits + s.disk_hits, s.misses));
                (
                    hits,
                    misses,
                    a.server.stats().requests.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// The name of the appliance at `host` (or `host` itself).
    pub(crate) fn name_of(&self, host: &str) -> String {
        self.appliances
            .iter()
            .find(|a| a.host == host)
            .map_or_else(|| host.to_string(), |a| a.name.clone())
    }

    /// Counts hit ratios from now on.
    pub(crate) fn reset_hit_ratios(&self) {
        *lock(&self.baseline) = Self::counts(&self.appliances);
    }

    /// The dashboard's data.
    pub(crate) fn state(&self) -> serde_json::Value {
        let killed = lock(&self.killed).clone();
        let baseline = lock(&self.baseline).clone();
        let circuits: Vec<_> = self
            .registry
            .commands()
            .iter()
            .map(|c| {
                let m = c.metrics().snapshot();
                let total = m.cumulative();
                serde_json::json!({
                    "command": c.key().as_str(),
                    "state": format!("{:?}", c.breaker().state()),
                    "successes": total.get(EventType::Success),
                    "failures": total.get(EventType::Failure),
                    "short_circuited": total.get(EventType::ShortCircuited),
                    "timeouts": total.get(EventType::Timeout),
                })
            })
            .collect();
        let ocas: Vec<_> = self
            .appliances
            .iter()
            .zip(Self::counts(&self.appliances))
            .enumerate()
            .map(|(i, (a, (hits, misses, requests)))| {
                let s = a.server.stats();
                let (h0, m0, r0) = baseline.get(i).copied().unwrap_or((0, 0, 0));
                let (hits, misses) = (hits.saturating_sub(h0), misses.saturating_sub(m0));
                serde_json::json!({
                    "name": a.name,
                    "tier": a.tier,
                    "alive": !killed.contains(&a.name),
                    "requests": requests.saturating_sub(r0),
                    "bytes": s.bytes.load(Ordering::Relaxed),
                    "active": s.active.load(Ordering::Relaxed),
                    "hits": hits,
                    "misses": misses,
                    "hit_ratio": ratio(hits, misses),
                })
            })
            .collect();
        let stats = self.gateway.stats();
        let class = |i: usize| stats.by_class[i].load(Ordering::Relaxed);
        let route = self.gateway.metrics().route("play");
        let ms = |q: f64| route.latency.quantile(q).as_secs_f64() * 1000.0;
        let mut players = lock(&self.board).clone();
        for p in &mut players {
            p.oca = self.name_of(&p.oca);
        }
        let events: Vec<_> = lock(&self.events)
            .iter()
            .map(|(t, e)| serde_json::json!({ "t": t, "text": e }))
            .collect();
        serde_json::json!({
            "elapsed_s": self.started.elapsed().as_secs_f64(),
            "circuits": circuits,
            "ocas": ocas,
            "players": players,
            "gateway": {
                "2xx": class(2), "4xx": class(4), "5xx": class(5),
                "play_answers": route.latency.count(),
                "play_p50_ms": ms(0.5), "play_p99_ms": ms(0.99),
            },
            "cache": {
                "fallback_reads": self.store.metrics().fallbacks,
                "zones_killed": killed.iter().filter(|k| k.starts_with("zone-")).count(),
            },
            "events": events,
        })
    }
}

/// Hits over lookups, or 0 with none.
pub(crate) fn ratio(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

/// The dashboard server: its listener is bound first (the gateway routes to it), then it
/// serves once the sources exist.
pub(crate) struct Dashboard {
    listener: TcpListener,
    hls_js: PathBuf,
    /// The verdicts pages sent to `/report`.
    pub(crate) reports: Arc<Mutex<Vec<String>>>,
}

impl Dashboard {
    /// Binds a free loopback port.
    pub(crate) async fn bind(hls_js: PathBuf) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the dashboard's port: {e}"))?;
        Ok(Self {
            listener,
            hls_js,
            reports: Arc::default(),
        })
    }

    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("a bound listener")
    }

    /// Serves until the task is dropped with the runtime.
    pub(crate) fn serve(self, sources: Sources) -> tokio::task::JoinHandle<()> {
        let Self {
            listener,
            hls_js,
            reports,
        } = self;
        let hls_js = Arc::new(hls_js);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (sources, hls_js, reports) = (sources.clone(), hls_js.clone(), reports.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (sources, hls_js, reports) =
                            (sources.clone(), hls_js.clone(), reports.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(&req, &sources, &hls_js, &reports).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    }
}

fn respond(
    status: StatusCode,
    ctype: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

async fn answer(
    req: &Request<Incoming>,
    sources: &Sources,
    hls_js: &std::path::Path,
    reports: &Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/state.json" => respond(
            StatusCode::OK,
            "application/json",
            sources.state().to_string(),
        ),
        "/hls.min.js" => match tokio::fs::read(hls_js).await {
            Ok(js) => respond(StatusCode::OK, "text/javascript", js),
            Err(e) => {
                tracing::warn!(target: "full_stack", "{}: {e}; run `scripts/setup.sh test`", hls_js.display());
                respond(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "hls.js is not installed: run scripts/setup.sh test\n",
                )
            }
        },
        "/report" => {
            let json = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("j="))
                .map(percent_decode)
                .unwrap_or_default();
            tracing::info!(target: "full_stack", "page: {json}");
            lock(reports).push(json);
            respond(StatusCode::OK, "text/plain", "ok\n")
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Decodes `%XX` escapes (what `encodeURIComponent` writes).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
