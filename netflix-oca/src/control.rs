//! The control plane: health and inventory reports in, fill manifests and steering out.
//!
//! Every appliance runs a [`ControlClient`] that reports to the [`ControlPlane`] every few
//! seconds (load, bytes served, disk state, the titles it holds) and fetches its cluster's
//! [`FillManifest`]. An appliance that cannot reach the control plane for longer than
//! [`ControlClient::lost_after`] stops taking new sessions until it can again (see
//! [`OcaServer::set_accepting`]); one put in drain mode reports it and takes none.
//!
//! The control plane's HTTP interface (JSON):
//!
//! | request | answer |
//! |---|---|
//! | `POST /report` with a [`HealthReport`] | 204 |
//! | `GET /manifest/<cluster>` | the cluster's [`FillManifest`] |
//! | `GET /steer?ip=<addr>&title=<id>&path=<file>` | a [`SteerAnswer`], or 403/404/503 with `{"error": ...}` |
//! | `GET /live?title=<id>` | `{"title": ..., "live": bool}` |
//! | `GET /reports` | the latest [`HealthReport`] of every node |
//!
//! # Example
//!
//! ```no_run
//! use netflix_oca::control::{ControlClient, ControlPlane};
//! use netflix_oca::http::sign::UrlSigner;
//! use netflix_oca::steering::{LiveRule, Steering};
//! # use netflix_oca::fill::{FillConfig, Filler};
//! # use netflix_oca::server::OcaServer;
//! # use netflix_oca::store::{ChunkStore, StoreConfig};
//! # use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let store = Arc::new(ChunkStore::open(StoreConfig::default())?);
//! # let edge = OcaServer::edge(Arc::new(Filler::new(store, Vec::new(), FillConfig::default())));
//! let steering = Steering::new(UrlSigner::new(b"secret".to_vec()), LiveRule { copies: 2, clusters: 1 });
//! let control = ControlPlane::new(steering);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(control.clone().serve(listener, std::future::pending()));
//!
//! // On each appliance: report every 2 s, stop new sessions after 10 s without answer.
//! let client = ControlClient::new(addr, edge, "isp-a", "isp-a-oca-1", "http://10.1.0.1")
//!     .interval(Duration::from_secs(2))
//!     .lost_after(Duration::from_secs(10));
//! tokio::spawn(client.run(std::future::pending()));
//! # Ok(()) }
//! ```

use crate::proactive::FillManifest;
use crate::server::OcaServer;
use crate::steering::{NodeStatus, SteerAnswer, SteerError, Steering};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What an appliance reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    /// Its cluster.
    pub cluster: String,
    /// Its name (as placement knows it).
    pub node: String,
    /// Where clients reach it.
    pub base_url: String,
    /// Requests in progress.
    pub active: u64,
    /// Its load as a fraction of its cap.
    pub load: f64,
    /// Body bytes served since it started.
    pub bytes_served: u64,
    /// Whether a disk has failed.
    pub disk_failed: bool,
    /// Whether it is draining.
    pub draining: bool,
    /// Whether it takes new sessions.
    pub accepting: bool,
    /// The titles it holds in full.
    pub titles: Vec<String>,
    /// Memory and disk hit counters, for dashboards.
    pub memory_hits: u64,
    /// Chunks served from disk.
    pub disk_hits: u64,
    /// Chunk misses (fills).
    pub misses: u64,
}

/// The control plane's state and HTTP interface.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    steering: Arc<RwLock<Steering>>,
    manifests: Arc<RwLock<HashMap<String, FillManifest>>>,
    reports: Arc<RwLock<HashMap<(String, String), HealthReport>>>,
}

impl ControlPlane {
    /// A control plane steering with `steering`.
    pub fn new(steering: Steering) -> Self {
        Self {
            steering: Arc::new(RwLock::new(steering)),
            manifests: Arc::default(),
            reports: Arc::default(),
        }
    }

    /// The steering state.
    pub fn steering(&self) -> &Arc<RwLock<Steering>> {
        &self.steering
    }

    /// Publishes a cluster's fill manifest (replacing the last one).
    pub fn publish(&self, manifest: FillManifest) {
        self.manifests
            .write()
            .insert(manifest.cluster.clone(), manifest);
    }

    /// Takes a report: steering sees it at once.
    pub fn report(&self, r: HealthReport) {
        let status = NodeStatus {
            base_url: r.base_url.clone(),
            titles: r.titles.clone(),
            load: r.load,
            healthy: !r.disk_failed,
            accepting: r.accepting && !r.draining,
        };
        self.steering.write().report(&r.cluster, &r.node, status);
        self.reports
            .write()
            .insert((r.cluster.clone(), r.node.clone()), r);
    }

    /// The latest report of every node.
    pub fn reports(&self) -> Vec<HealthReport> {
        let mut v: Vec<HealthReport> = self.reports.read().values().cloned().collect();
        v.sort_by(|a, b| (&a.cluster, &a.node).cmp(&(&b.cluster, &b.node)));
        v
    }

    /// Steers (see [`Steering::steer`]).
    ///
    /// # Errors
    ///
    /// As [`Steering::steer`].
    pub fn steer(
        &self,
        ip: std::net::IpAddr,
        title: &str,
        path: &str,
    ) -> Result<SteerAnswer, SteerError> {
        self.steering.read().steer(ip, title, path)
    }

    /// Answers one request of the HTTP interface.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.replace("%2F", "/").replace("%3A", ":"))
        };
        match (req.method(), path.as_str()) {
            (&Method::POST, "/report") => {
                let Ok(body) = req.into_body().collect().await else {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "unreadable body"}),
                    );
                };
                match serde_json::from_slice::<HealthReport>(&body.to_bytes()) {
                    Ok(r) => {
                        self.report(r);
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": e.to_string()}),
                    ),
                }
            }
            (&Method::GET, p) if p.starts_with("/manifest/") => {
                let cluster = &p["/manifest/".len()..];
                match self.manifests.read().get(cluster) {
                    Some(m) => json(StatusCode::OK, m),
                    None => json(
                        StatusCode::NOT_FOUND,
                        &serde_json::json!({"error": "no manifest"}),
                    ),
                }
            }
            (&Method::GET, "/steer") => {
                let (Some(ip), Some(title), Some(file)) =
                    (param("ip"), param("title"), param("path"))
                else {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "ip, title and path are required"}),
                    );
                };
                let Ok(ip) = ip.parse() else {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "bad ip"}),
                    );
                };
                match self.steer(ip, &title, &file) {
                    Ok(a) => json(StatusCode::OK, &a),
                    Err(e) => {
                        let code = match e {
                            SteerError::UnknownClient(_) => StatusCode::FORBIDDEN,
                            SteerError::NotLive(_) => StatusCode::NOT_FOUND,
                            _ => StatusCode::SERVICE_UNAVAILABLE,
                        };
                        json(code, &serde_json::json!({"error": e.to_string()}))
                    }
                }
            }
            (&Method::GET, "/live") => {
                let title = param("title").unwrap_or_default();
                let live = self.steering.read().is_live(&title);
                json(
                    StatusCode::OK,
                    &serde_json::json!({"title": title, "live": live}),
                )
            }
            (&Method::GET, "/reports") => json(StatusCode::OK, &self.reports()),
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no such endpoint"}),
            ),
        }
    }

    /// Serves the HTTP interface until `shutdown` completes.
    ///
    /// # Errors
    ///
    /// Never in practice: accept errors are logged and retried.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "control plane accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return Ok(()),
            };
            let this = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, std::convert::Infallible>(this.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

fn json<T: serde::Serialize + ?Sized>(code: StatusCode, v: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// Called with each new manifest (to run a proactive fill).
pub type OnManifest = Arc<dyn Fn(FillManifest) + Send + Sync>;

/// An appliance's side of the control plane: periodic reports and manifest fetches, and
/// the loss rule.
pub struct ControlClient {
    control: SocketAddr,
    server: OcaServer,
    cluster: String,
    node: String,
    base_url: String,
    interval: Duration,
    lost_after: Duration,
    max_active: u64,
    draining: Arc<std::sync::atomic::AtomicBool>,
    on_manifest: Option<OnManifest>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ControlClient {
    /// A client for appliance `node` of `cluster`, reachable by players at `base_url`,
    /// serving with `server`, reporting to the control plane at `control`. Reports every
    /// 2 s; new sessions stop after 10 s without the control plane; the load cap is 256
    /// requests in progress.
    pub fn new(
        control: SocketAddr,
        server: OcaServer,
        cluster: impl Into<String>,
        node: impl Into<String>,
        base_url: impl Into<String>,
    ) -> Self {
        Self {
            control,
            server,
            cluster: cluster.into(),
            node: node.into(),
            base_url: base_url.into(),
            interval: Duration::from_secs(2),
            lost_after: Duration::from_secs(10),
            max_active: 256,
            draining: Arc::default(),
            on_manifest: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sets the report interval.
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets how long without the control plane before new sessions stop (T).
    #[must_use]
    pub fn lost_after(mut self, d: Duration) -> Self {
        self.lost_after = d;
        self
    }

    /// Sets the requests in progress that count as full load.
    #[must_use]
    pub fn max_active(mut self, n: u64) -> Self {
        self.max_active = n.max(1);
        self
    }

    /// Runs `f` on every new manifest.
    #[must_use]
    pub fn on_manifest(mut self, f: OnManifest) -> Self {
        self.on_manifest = Some(f);
        self
    }

    /// A switch for drain mode: set it and the appliance reports draining and takes no new
    /// sessions.
    pub fn drain_switch(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.draining.clone()
    }

    fn report(&self, manifest: Option<&FillManifest>) -> HealthReport {
        let stats = self.server.stats();
        let active = stats.active.load(Ordering::Relaxed);
        let (store, disk_failed) = match self.server.filler() {
            Some(f) => {
                let s = f.store().stats();
                (Some((f.store().clone(), s)), s.disk_failed)
            }
            None => (None, false),
        };
        let titles = match (&store, manifest) {
            (Some((st, _)), Some(m)) => m
                .titles
                .iter()
                .filter(|t| !t.files.is_empty() && t.files.iter().all(|f| st.holds_file(f)))
                .map(|t| t.title.clone())
                .collect(),
            _ => Vec::new(),
        };
        let draining = self.draining.load(Ordering::Relaxed);
        HealthReport {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            base_url: self.base_url.clone(),
            active,
            load: active as f64 / self.max_active as f64,
            bytes_served: stats.bytes.load(Ordering::Relaxed),
            disk_failed,
            draining,
            accepting: self.server.accepting() && !draining,
            titles,
            memory_hits: store.as_ref().map_or(0, |s| s.1.memory_hits),
            disk_hits: store.as_ref().map_or(0, |s| s.1.disk_hits),
            misses: store.as_ref().map_or(0, |s| s.1.misses),
        }
    }

    async fn post_report(&self, r: &HealthReport) -> bool {
        let req = Request::post(format!("http://{}/report", self.control))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                serde_json::to_vec(r).unwrap_or_default(),
            )))
            .expect("a valid request");
        matches!(
            tokio::time::timeout(self.interval, self.client.request(req)).await,
            Ok(Ok(res)) if res.status().is_success()
        )
    }

    async fn fetch_manifest(&self) -> Option<FillManifest> {
        let req = Request::get(format!("http://{}/manifest/{}", self.control, self.cluster))
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let res = tokio::time::timeout(self.interval, self.client.request(req))
            .await
            .ok()?
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let body = res.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    }

    /// Reports and fetches until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_ok = Instant::now();
        let mut manifest: Option<FillManifest> = None;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut shutdown => return,
            }
            let draining = self.draining.load(Ordering::Relaxed);
            let report = self.report(manifest.as_ref());
            if self.post_report(&report).await {
                last_ok = Instant::now();
                if let Some(m) = self.fetch_manifest().await {
                    if manifest.as_ref() != Some(&m) {
                        manifest = Some(m.clone());
                        if let Some(f) = &self.on_manifest {
                            f(m);
                        }
                    }
                }
            }
            let lost = last_ok.elapsed() > self.lost_after;
            if lost && self.server.accepting() {
                tracing::warn!(node = %self.node, "control plane lost: no new sessions");
            }
            self.server.set_accepting(!lost && !draining);
        }
    }
}
