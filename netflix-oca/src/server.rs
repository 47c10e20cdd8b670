//! The segment server: byte ranges over HTTP/1.1 and HTTP/2, from the chunk store (an
//! edge or regional appliance) or from a directory (the origin).
//!
//! For every GET and HEAD it:
//! 1. decodes and checks the path (no `..`, no empty or dot segments, no NUL or
//!    backslash: no path can escape the store);
//! 2. checks the signed-URL token when a [`UrlSigner`] is set (403 otherwise);
//! 3. finds the file's metadata (the store, else a fill source: 404 when none has it);
//! 4. answers conditionals and ranges as RFC 9110 says ([`crate::http::range::evaluate`]):
//!    200, 206 with one range or `multipart/byteranges`, 304, 412 or 416;
//! 5. streams the bytes chunk by chunk, from memory without a copy, from disk after a
//!    checksum, or from a fill in flight as they arrive.
//!
//! A request from another tier (the `x-oca-fill` header) waits for whole, checked chunks
//! and gets a `Content-Digest` (RFC 9530) for the bytes it asked for.
//!
//! # Example
//!
//! ```no_run
//! use netflix_oca::server::OcaServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let origin = OcaServer::origin("/srv/titles")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! origin.serve(listener, std::future::pending()).await
//! # }
//! ```

use crate::fill::{ChunkSource, FillError, Filler, Upstream};
use crate::http::client::{FILL_HEADER, digest_header};
use crate::http::range::{Answer, ByteRange, Conditions, Validators, evaluate, http_date};
use crate::http::sign::{UrlSigner, Verdict};
use crate::store::{ObjectMeta, sha256};
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Chooses extra fill sources for a path, tried before the filler's own tiers: the peer
/// that holds the file by placement. Given the path; returns the sources in order.
pub type PeerRoute = Arc<dyn Fn(&str) -> Vec<Arc<dyn Upstream>> + Send + Sync>;

/// The usual [`PeerRoute`] of a cluster: a file is first asked of the other nodes that
/// placement puts its title on (`copies` of them; see [`crate::placement::title_of`]), by
/// name in `peers`; `me` is never asked.
pub fn placement_route(
    placement: crate::placement::Placement,
    me: impl Into<String>,
    peers: std::collections::HashMap<String, Arc<dyn Upstream>>,
    copies: usize,
) -> PeerRoute {
    let me = me.into();
    Arc::new(move |path: &str| {
        let title = crate::placement::title_of(path);
        placement
            .replicas(title.as_bytes(), copies.max(1))
            .into_iter()
            .map(|i| placement.node(i).name())
            .filter(|n| *n != me)
            .filter_map(|n| peers.get(n).cloned())
            .collect()
    })
}

enum Backend {
    Edge(Arc<Filler>),
    Directory(PathBuf),
}

/// Counters of a server, for health reports.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Body bytes sent.
    pub bytes: AtomicU64,
    /// Requests in progress (the appliance's load).
    pub active: AtomicU64,
    /// 403 answers.
    pub forbidden: AtomicU64,
    /// 404 answers.
    pub not_found: AtomicU64,
    /// Responses cut short by a failed fill.
    pub aborted: AtomicU64,
}

struct Inner {
    backend: Backend,
    signer: Option<UrlSigner>,
    peers: Option<PeerRoute>,
    cors: Option<HeaderValue>,
    stats: Arc<ServerStats>,
    draining: AtomicBool,
    accepting: AtomicBool,
    /// Session tokens seen while accepting, with their expiry (unix seconds).
    sessions: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
    killed: tokio::sync::watch::Sender<bool>,
}

/// An appliance's HTTP server (or the origin's).
#[derive(Clone)]
pub struct OcaServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OcaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcaServer")
            .field("signed", &self.inner.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl OcaServer {
    /// An appliance serving from `filler`'s store, filling misses from its tiers.
    pub fn edge(filler: Arc<Filler>) -> Self {
        Self::with_backend(Backend::Edge(filler))
    }

    /// The origin: files under `root`, served as they are.
    ///
    /// # Errors
    ///
    /// When `root` does not exist.
    pub fn origin(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::with_backend(Backend::Directory(
            root.as_ref().canonicalize()?,
        )))
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                signer: None,
                peers: None,
                cors: None,
                stats: Arc::new(ServerStats::default()),
                draining: AtomicBool::new(false),
                accepting: AtomicBool::new(true),
                sessions: parking_lot::Mutex::new(std::collections::HashMap::new()),
                killed: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configure a server before cloning or serving it")
    }

    /// Requires a valid signed-URL token on every request.
    ///
    /// # Panics
    ///
    /// When called after the server was cloned.
    #[must_use]
    pub fn signed(mut self, signer: UrlSigner) -> Self {
        self.inner_mut().signer = Some(signer);
        self
    }

    /// Lets web pages of `allow_origin` (an origin such as `https://www.example.com`, or
    /// `*` for any) read what this server serves: every answer carries
    /// `Access-Control-Allow-Origin` and exposes the range and validator headers, and a
    /// preflight `OPTIONS` is answered with 204 allowing `GET` and `HEAD` with `Range`
    /// and the conditional headers. Browser players (hls.js, dash.js) fetch segments from
    /// appliances on other origins than their page, so a CDN for them needs this.
    ///
    /// # Panics
    ///
    /// When called after the server was cloned.
    ///
    /// # Example
    ///
    /// ```
    /// use http::HeaderValue;
    /// use netflix_oca::server::OcaServer;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let dir = std::env::temp_dir();
    /// let server = OcaServer::origin(&dir)?.cors(HeaderValue::from_static("*"));
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn cors(mut self, allow_origin: HeaderValue) -> Self {
        self.inner_mut().cors = Some(allow_origin);
        self
    }

    /// Sets the peer route: extra fill sources per path (see [`PeerRoute`]).
    ///
    /// # Panics
    ///
    /// When called after the server was cloned.
    #[must_use]
    pub fn peers(mut self, route: PeerRoute) -> Self {
        self.inner_mut().peers = Some(route);
        self
    }

    /// Whether new sessions are taken. An appliance that is draining, or has lost its
    /// control plane for too long, stops taking new sessions: a request whose title token
    /// (see [`UrlSigner::sign_scope`]) it has not seen before gets 503 with `Retry-After`,
    /// while the sessions already playing go on. Requests without a title token are not
    /// sessions and are always served.
    pub fn set_accepting(&self, accepting: bool) {
        if self.inner.accepting.swap(accepting, Ordering::Relaxed) != accepting {
            tracing::info!(
                accepting,
                "new sessions {}",
                if accepting { "taken again" } else { "refused" }
            );
        }
    }

    /// Whether new sessions are taken.
    pub fn accepting(&self) -> bool {
        self.inner.accepting.load(Ordering::Relaxed)
    }

    /// Stops serving at once, as a crash would: the listener closes and every open
    /// connection is dropped mid-response. For fault drills (a killed appliance).
    pub fn kill(&self) {
        self.inner.killed.send_replace(true);
    }

    /// Whether [`serve`](Self::serve) is shutting down.
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Admits a request carrying session token `token` (expiring at `exp`).
    fn admit(&self, token: &str, exp: u64) -> bool {
        let mut seen = self.inner.sessions.lock();
        if seen.contains_key(token) {
            return true;
        }
        if !self.accepting() {
            return false;
        }
        if seen.len() > 100_000 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            seen.retain(|_, e| *e >= now);
        }
        seen.insert(token.to_string(), exp);
        true
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.inner.stats
    }

    /// The filler, for an edge.
    pub fn filler(&self) -> Option<&Arc<Filler>> {
        match &self.inner.backend {
            Backend::Edge(f) => Some(f),
            Backend::Directory(_) => None,
        }
    }

    /// Answers one request (for embedding the server in another hyper or tower stack).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<OcaBody> {
        let stats = &self.inner.stats;
        stats.active.fetch_add(1, Ordering::Relaxed);
        let mut res = match &self.inner.cors {
            Some(_) if req.method() == Method::OPTIONS => {
                let mut r = status(StatusCode::NO_CONTENT);
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(
                        "Range, If-Range, If-Match, If-None-Match, If-Modified-Since",
                    ),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                r
            }
            _ => self.answer(req).await,
        };
        if let Some(origin) = &self.inner.cors {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(
                    "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified",
                ),
            );
            if origin != "*" {
                h.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
        stats.active.fetch_sub(1, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        match res.status() {
            StatusCode::FORBIDDEN => stats.forbidden.fetch_add(1, Ordering::Relaxed),
            StatusCode::NOT_FOUND => stats.not_found.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        res
    }

    /// Serves connections from `listener` (HTTP/1.1 with keep-alive, and HTTP/2 by prior
    /// knowledge) until `shutdown` completes; then stops accepting and lets the requests in
    /// progress finish.
    ///
    /// # Errors
    ///
    /// Never in practice: accept errors (out of file descriptors) are logged and retried.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        let mut killed = self.inner.killed.subscribe();
        loop {
            let (stream, _) = tokio::select! {
                () = wait_killed(&mut killed) => return Ok(()),
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
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let this = this.clone();
                async move { Ok::<_, std::convert::Infallible>(this.handle(req).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            let mut killed = self.inner.killed.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    r = conn => if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    () = wait_killed(&mut killed) => {}
                }
            });
        }
        self.inner.draining.store(true, Ordering::Relaxed);
        graceful.shutdown().await;
        Ok(())
    }

    async fn answer<B>(&self, req: Request<B>) -> Response<OcaBody> {
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let mut raw_path = req.uri().path();
        if let Some(signer) = &self.inner.signer {
            if let Some((verdict, inner)) = signer.verify_scoped(raw_path, SystemTime::now()) {
                if verdict != Verdict::Valid {
                    tracing::debug!(path = raw_path, ?verdict, "refused");
                    return status(StatusCode::FORBIDDEN);
                }
                let token = &raw_path[..raw_path.len() - inner.len()];
                let exp = token
                    .split('/')
                    .nth(2)
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                if !self.admit(token, exp) {
                    let mut r = status(StatusCode::SERVICE_UNAVAILABLE);
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    return r;
                }
                raw_path = inner;
            } else {
                let verdict = signer.verify(raw_path, req.uri().query(), SystemTime::now());
                if verdict != Verdict::Valid {
                    tracing::debug!(path = raw_path, ?verdict, "refused");
                    return status(StatusCode::FORBIDDEN);
                }
            }
        }
        let Some(path) = clean_path(raw_path) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let fill = req
            .headers()
            .get(FILL_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let first: Vec<Arc<dyn Upstream>> = match (&self.inner.peers, fill.as_deref()) {
            (Some(route), None | Some("tier")) => route(&path),
            _ => Vec::new(),
        };
        let meta = match self.meta(&path, &first).await {
            Ok(m) => m,
            Err(FillError::NotFound) => return status(StatusCode::NOT_FOUND),
            Err(e) => {
                tracing::warn!(path, error = %e, "no source could give the file's metadata");
                return status(StatusCode::BAD_GATEWAY);
            }
        };
        let h = req.headers();
        let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
        let conditions = Conditions {
            if_match: get(header::IF_MATCH),
            if_none_match: get(header::IF_NONE_MATCH),
            if_modified_since: get(header::IF_MODIFIED_SINCE),
            if_unmodified_since: get(header::IF_UNMODIFIED_SINCE),
            if_range: get(header::IF_RANGE),
            range: get(header::RANGE),
        };
        let validators = Validators {
            etag: meta.etag.clone(),
            last_modified: meta.last_modified,
        };
        let answer = evaluate(&conditions, &validators, meta.len);
        let mut res = match &answer {
            Answer::NotModified => status(StatusCode::NOT_MODIFIED),
            Answer::PreconditionFailed => return status(StatusCode::PRECONDITION_FAILED),
            Answer::NotSatisfiable => {
                let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE);
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{}", meta.len)).expect("ascii"),
                );
                return r;
            }
            Answer::Full | Answer::Partial(_) => {
                let range = match &answer {
                    Answer::Partial(r) => *r,
                    _ => ByteRange {
                        start: 0,
                        end: meta.len,
                    },
                };
                let body = if fill.is_some() {
                    // Another tier: whole, checked bytes and their digest.
                    match self.read_all(&meta, range, &first).await {
                        Ok(bytes) => {
                            self.inner
                                .stats
                                .bytes
                                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            let digest = digest_header(&sha256(&bytes));
                            let mut b = if head {
                                OcaBody::empty()
                            } else {
                                OcaBody::ready(vec![bytes])
                            };
                            b.digest = Some(digest);
                            b
                        }
                        Err(e) => {
                            tracing::warn!(path, error = %e, "fill for another tier failed");
                            return status(StatusCode::BAD_GATEWAY);
                        }
                    }
                } else if head {
                    OcaBody::empty()
                } else {
                    self.stream(&meta, range, &first).await
                };
                let mut r = Response::new(OcaBody::empty());
                if let Answer::Partial(r0) = &answer {
                    *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                    r.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&r0.content_range(meta.len)).expect("ascii"),
                    );
                }
                if let Some(d) = &body.digest {
                    r.headers_mut().insert(
                        "content-digest",
                        HeaderValue::from_str(d).expect("base64 is ascii"),
                    );
                }
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, range.len().into());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&path)),
                );
                *r.body_mut() = body;
                r
            }
            Answer::Multipart(ranges) => {
                let boundary = format!(
                    "oca{:016x}",
                    xxhash_rust::xxh3::xxh3_64(meta.etag.as_bytes())
                );
                let ctype = content_type(&path);
                let mut parts = Vec::new();
                for (i, r) in ranges.iter().enumerate() {
                    let head_part = format!(
                        "{}--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: {}\r\n\r\n",
                        if i == 0 { "" } else { "\r\n" },
                        r.content_range(meta.len)
                    );
                    parts.push(Bytes::from(head_part));
                    if !head {
                        match self.read_all(&meta, *r, &first).await {
                            Ok(b) => parts.push(b),
                            Err(_) => return status(StatusCode::BAD_GATEWAY),
                        }
                    } else {
                        parts.push(Bytes::new());
                    }
                }
                parts.push(Bytes::from(format!("\r\n--{boundary}--\r\n")));
                let head_len: u64 = parts.iter().map(|p| p.len() as u64).sum::<u64>()
                    + if head {
                        ranges.iter().map(ByteRange::len).sum()
                    } else {
                        0
                    };
                let mut r = Response::new(if head {
                    OcaBody::empty()
                } else {
                    OcaBody::ready(parts)
                });
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                        .expect("ascii"),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, head_len.into());
                r
            }
        };
        let hs = res.headers_mut();
        hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&meta.etag) {
            hs.insert(header::ETAG, v);
        }
        hs.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&http_date(meta.last_modified)).expect("ascii"),
        );
        res
    }

    async fn meta(
        &self,
        path: &str,
        first: &[Arc<dyn Upstream>],
    ) -> Result<Arc<ObjectMeta>, FillError> {
        match &self.inner.backend {
            Backend::Edge(f) => f.meta(path, first).await,
            Backend::Directory(root) => {
                let root = root.clone();
                let path = path.to_string();
                tokio::task::spawn_blocking(move || directory_meta(&root, &path))
                    .await
                    .map_err(|_| FillError::Abandoned)?
                    .map(Arc::new)
            }
        }
    }

    /// The bytes of `range`, whole (for other tiers and multipart answers).
    async fn read_all(
        &self,
        meta: &Arc<ObjectMeta>,
        range: ByteRange,
        first: &[Arc<dyn Upstream>],
    ) -> Result<Bytes, FillError> {
        match &self.inner.backend {
            Backend::Directory(root) => {
                let file = root.join(&meta.path);
                tokio::task::spawn_blocking(move || read_file_range(&file, range))
                    .await
                    .map_err(|_| FillError::Abandoned)?
                    .map_err(|e| FillError::Exhausted(e.to_string()))
            }
            Backend::Edge(filler) => {
                let size = filler.store().chunk_size();
                let mut out = BytesMut::with_capacity(range.len() as usize);
                for index in range.start / size..range.end.div_ceil(size) {
                    let chunk = match filler.chunk(meta, index, first.to_vec(), false).await {
                        ChunkSource::Ready(b) => b,
                        ChunkSource::Flying(r) => r.collect().await?,
                    };
                    out.extend_from_slice(&slice_chunk(&chunk, index * size, range));
                }
                Ok(out.freeze())
            }
        }
    }

    /// A body that streams `range`: ready at once when every chunk is in memory, else fed
    /// by a task that follows fills as they arrive.
    async fn stream(
        &self,
        meta: &Arc<ObjectMeta>,
        range: ByteRange,
        first: &[Arc<dyn Upstream>],
    ) -> OcaBody {
        let stats = self.inner.stats.clone();
        stats.bytes.fetch_add(range.len(), Ordering::Relaxed);
        let filler = match &self.inner.backend {
            Backend::Edge(f) => f.clone(),
            Backend::Directory(root) => {
                let file = root.join(&meta.path);
                return match tokio::task::spawn_blocking(move || read_file_range(&file, range))
                    .await
                {
                    Ok(Ok(b)) => OcaBody::ready(vec![b]),
                    _ => OcaBody::failed(),
                };
            }
        };
        let size = filler.store().chunk_size();
        let indices = range.start / size..range.end.div_ceil(size);
        // The fast path: everything in memory, no task, no copy.
        let mut ready = Vec::new();
        for index in indices.clone() {
            match filler
                .store()
                .get_memory(crate::store::ChunkId::new(&meta.path, index))
            {
                Some(c) => ready.push(slice_chunk(&c.data, index * size, range)),
                None => break,
            }
        }
        if ready.len() as u64 == indices.end - indices.start {
            return OcaBody::ready(ready);
        }
        let (tx, rx) = mpsc::channel(8);
        let meta = meta.clone();
        let first = first.to_vec();
        tokio::spawn(async move {
            for index in indices {
                let chunk_start = index * size;
                let source = filler.chunk(&meta, index, first.clone(), false).await;
                let mut at = chunk_start;
                let send = |piece: Bytes, at: &mut u64| {
                    let piece_range = ByteRange {
                        start: *at,
                        end: *at + piece.len() as u64,
                    };
                    *at += piece.len() as u64;
                    let s = piece_range.start.max(range.start);
                    let e = piece_range.end.min(range.end);
                    (s < e).then(|| {
                        piece.slice(
                            (s - piece_range.start) as usize..(e - piece_range.start) as usize,
                        )
                    })
                };
                match source {
                    ChunkSource::Ready(b) => {
                        if let Some(p) = send(b, &mut at) {
                            if tx.send(Ok(p)).await.is_err() {
                                return;
                            }
                        }
                    }
                    ChunkSource::Flying(mut reader) => {
                        // One piece is always held back until the next arrives or the fill
                        // is checked: a fill that fails its checksum must not let the client
                        // receive every byte it was promised and take the body as complete.
                        let mut held: Option<Bytes> = None;
                        loop {
                            match reader.next().await {
                                Some(Ok(b)) => {
                                    if let Some(p) = held.take().and_then(|h| send(h, &mut at)) {
                                        if tx.send(Ok(p)).await.is_err() {
                                            return;
                                        }
                                    }
                                    held = Some(b);
                                }
                                None => {
                                    if let Some(p) = held.take().and_then(|h| send(h, &mut at)) {
                                        if tx.send(Ok(p)).await.is_err() {
                                            return;
                                        }
                                    }
                                    break;
                                }
                                Some(Err(e)) => {
                                    stats.aborted.fetch_add(1, Ordering::Relaxed);
                                    let _ = tx.send(Err(io::Error::other(e))).await;
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        });
        OcaBody {
            kind: Kind::Channel(rx),
            digest: None,
        }
    }
}

async fn wait_killed(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|k| *k).await;
}

fn slice_chunk(chunk: &Bytes, chunk_start: u64, range: ByteRange) -> Bytes {
    let s = range.start.max(chunk_start) - chunk_start;
    let e = (range.end.min(chunk_start + chunk.len() as u64)).saturating_sub(chunk_start);
    if s >= e {
        Bytes::new()
    } else {
        chunk.slice(s as usize..e as usize)
    }
}

fn status(code: StatusCode) -> Response<OcaBody> {
    let mut r = Response::new(OcaBody::empty());
    *r.status_mut() = code;
    if code.is_client_error() || code.is_server_error() {
        r.headers_mut().insert(header::CONTENT_LENGTH, 0.into());
    }
    r
}

/// Decodes a request path and checks it: `None` for anything that could name something
/// outside the store (`..`, `.`, empty segments, NUL, backslashes, invalid escapes).
pub fn clean_path(raw: &str) -> Option<String> {
    let raw = raw.strip_prefix('/')?;
    let mut bytes = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let h = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&h).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let path = String::from_utf8(bytes).ok()?;
    if path.is_empty() || path.len() > 1024 || path.contains(['\0', '\\']) {
        return None;
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return None;
    }
    Some(path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("m4s") => "video/iso.segment",
        Some("mp4" | "m4v") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("ts") => "video/mp2t",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn directory_meta(root: &Path, path: &str) -> Result<ObjectMeta, FillError> {
    let full = root.join(path);
    let canon = full.canonicalize().map_err(|_| FillError::NotFound)?;
    // Symbolic links out of the root are refused like any other escape.
    if !canon.starts_with(root) {
        return Err(FillError::NotFound);
    }
    let md = std::fs::metadata(&canon).map_err(|_| FillError::NotFound)?;
    if !md.is_file() {
        return Err(FillError::NotFound);
    }
    let modified = md.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let secs = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(ObjectMeta {
        path: path.to_string(),
        len: md.len(),
        etag: format!("\"{:x}-{:x}\"", md.len(), nanos),
        last_modified: UNIX_EPOCH + std::time::Duration::from_secs(secs),
    })
}

fn read_file_range(file: &Path, range: ByteRange) -> io::Result<Bytes> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    f.seek(SeekFrom::Start(range.start))?;
    let mut buf = vec![0u8; range.len() as usize];
    f.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

enum Kind {
    Ready(VecDeque<Bytes>),
    Channel(mpsc::Receiver<io::Result<Bytes>>),
    Failed,
}

/// The body of the server's responses.
pub struct OcaBody {
    kind: Kind,
    digest: Option<String>,
}

impl std::fmt::Debug for OcaBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcaBody").finish_non_exhaustive()
    }
}

impl OcaBody {
    fn empty() -> Self {
        Self::ready(Vec::new())
    }

    fn ready(parts: Vec<Bytes>) -> Self {
        Self {
            kind: Kind::Ready(parts.into_iter().filter(|p| !p.is_empty()).collect()),
            digest: None,
        }
    }

    fn failed() -> Self {
        Self {
            kind: Kind::Failed,
            digest: None,
        }
    }
}

impl Body for OcaBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Ready(parts) => Poll::Ready(parts.pop_front().map(|b| Ok(Frame::data(b)))),
            Kind::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
            Kind::Failed => {
                this.kind = Kind::Ready(VecDeque::new());
                Poll::Ready(Some(Err(io::Error::other("the file could not be read"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Ready(p) if p.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Ready(p) => SizeHint::with_exact(p.iter().map(|b| b.len() as u64).sum()),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(clean_path("/a/b.m4s").as_deref(), Some("a/b.m4s"));
        assert_eq!(clean_path("/a%20b/c.m4s").as_deref(), Some("a b/c.m4s"));
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/a/%2e%2e/b",
            "/a//b",
            "/./a",
            "/a/.",
            "/",
            "/a%00b",
            "/a%5cb",
            "/a%zz",
            "/a%2",
            "relative",
            "/%2e%2e%2fetc%2fpasswd",
        ] {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunk_slicing() {
        let c = Bytes::from_static(b"0123456789");
        assert_eq!(
            &slice_chunk(&c, 10, ByteRange { start: 12, end: 15 })[..],
            b"234"
        );
        assert_eq!(
            &slice_chunk(&c, 10, ByteRange { start: 0, end: 12 })[..],
            b"01"
        );
        assert_eq!(
            &slice_chunk(&c, 10, ByteRange { start: 18, end: 40 })[..],
            b"89"
        );
        assert!(slice_chunk(&c, 10, ByteRange { start: 20, end: 40 }).is_empty());
    }
}
