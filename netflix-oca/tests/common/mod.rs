//! Helpers: an origin directory of test files, servers on free loopback ports, and an HTTP
//! client that reads whole responses.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a part of the helpers"
)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use netflix_oca::fill::{FillConfig, Filler, Upstream};
use netflix_oca::http::client::HttpUpstream;
use netflix_oca::server::OcaServer;
use netflix_oca::store::{ChunkStore, StoreConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Deterministic test bytes: a file's content is a function of its name and length.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "netflix-oca-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An origin directory holding `files` (path, length).
pub fn origin_dir(name: &str, files: &[(&str, usize)]) -> TempDir {
    let dir = TempDir::new(name);
    for (i, (path, len)) in files.iter().enumerate() {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content(i as u64 + 1, *len)).unwrap();
    }
    dir
}

/// A running server; stopped (gracefully) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub server: OcaServer,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start(server: OcaServer) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let s = server.clone();
    tokio::spawn(async move {
        s.serve(listener, async {
            let _ = rx.await;
        })
        .await
    });
    Running {
        addr,
        server,
        stop: Some(tx),
    }
}

pub async fn start_origin(dir: &Path) -> Running {
    start(OcaServer::origin(dir).unwrap()).await
}

pub fn store(chunk_size: u64, disk: Option<&Path>) -> Arc<ChunkStore> {
    Arc::new(
        ChunkStore::open(StoreConfig {
            chunk_size,
            memory_bytes: 64 << 20,
            disk_dir: disk.map(Path::to_path_buf),
            disk_bytes: 256 << 20,
            ..StoreConfig::default()
        })
        .unwrap(),
    )
}

pub fn filler(store: Arc<ChunkStore>, tiers: Vec<Arc<dyn Upstream>>) -> Arc<Filler> {
    Arc::new(Filler::new(store, tiers, FillConfig::default()))
}

/// An edge appliance filling from `upstream` (an origin or a parent).
pub async fn start_edge(upstream: SocketAddr, chunk_size: u64) -> Running {
    let tiers: Vec<Arc<dyn Upstream>> = vec![Arc::new(HttpUpstream::new("origin", upstream))];
    start(OcaServer::edge(filler(store(chunk_size, None), tiers))).await
}

/// An edge whose only fill source is `up` (an in-process upstream).
pub async fn start_edge_with(up: Arc<dyn Upstream>, chunk_size: u64) -> Running {
    start(OcaServer::edge(filler(store(chunk_size, None), vec![up]))).await
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a GET (or another method) with headers; returns the response with its whole body.
pub async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Response<Bytes> {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = client
        .request(b.body(Empty::new()).unwrap())
        .await
        .expect("a response");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("a whole body").to_bytes();
    Response::from_parts(parts, bytes)
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    fetch(&client(), "GET", url, headers).await
}

pub fn header<'a>(r: &'a Response<Bytes>, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

// === an in-process upstream for faults a real server will not produce on demand ===

use netflix_oca::fill::{BoxFuture, Fetched, FillError};
use netflix_oca::http::range::ByteRange;
use netflix_oca::store::{ObjectMeta, Sha, sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a [`Scripted`] upstream does wrong.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send the body in frames of this many bytes (default: one frame)...
    pub frame: usize,
    /// ...this long apart.
    pub frame_delay: Duration,
    /// Break off after this many bytes of the body.
    pub break_after: Option<usize>,
    /// Flip a bit in the body (but declare the digest of the true bytes).
    pub corrupt: bool,
}

impl Script {
    /// A slow upstream: `frame` bytes every `every`.
    pub fn trickle(frame: usize, every: Duration) -> Self {
        Self {
            frame,
            frame_delay: every,
            ..Self::default()
        }
    }
}

/// An upstream serving one file from memory, as scripted.
#[derive(Debug)]
pub struct Scripted {
    pub name: String,
    pub meta: ObjectMeta,
    pub data: Bytes,
    pub script: Script,
    pub gets: AtomicU64,
}

impl Scripted {
    pub fn new(name: &str, path: &str, data: Vec<u8>, script: Script) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            meta: ObjectMeta {
                path: path.into(),
                len: data.len() as u64,
                etag: "\"scripted\"".into(),
                last_modified: std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
            data: Bytes::from(data),
            script,
            gets: AtomicU64::new(0),
        })
    }
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(http_body::Frame::data).map_err(|e| Box::new(e) as _)))
    }
}

impl Upstream for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn head<'a>(&'a self, _path: &'a str) -> BoxFuture<'a, Result<ObjectMeta, FillError>> {
        Box::pin(async move { Ok(self.meta.clone()) })
    }

    fn get<'a>(
        &'a self,
        _path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Fetched, FillError>> {
        Box::pin(async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.script.delay).await;
            let truth = self.data.slice(range.start as usize..range.end as usize);
            let digest = sha256(&truth);
            let mut bytes = truth.to_vec();
            if self.script.corrupt {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x10;
            }
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let script = self.script.clone();
            tokio::spawn(async move {
                let frame = if script.frame == 0 {
                    bytes.len().max(1)
                } else {
                    script.frame
                };
                let mut sent = 0;
                for piece in bytes.chunks(frame) {
                    if let Some(limit) = script.break_after {
                        if sent + piece.len() > limit {
                            let _ = tx
                                .send(Ok(Bytes::copy_from_slice(&piece[..limit - sent])))
                                .await;
                            let _ = tx
                                .send(Err(std::io::Error::other("connection reset")))
                                .await;
                            return;
                        }
                    }
                    sent += piece.len();
                    if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(script.frame_delay).await;
                }
            });
            Ok(Fetched {
                meta: self.meta.clone(),
                range,
                digest: Some(digest),
                body: http_body_util::BodyExt::boxed(ChannelBody(rx)),
            })
        })
    }

    fn digest<'a>(
        &'a self,
        _path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Sha, FillError>> {
        Box::pin(async move { Ok(sha256(&self.data[range.start as usize..range.end as usize])) })
    }
}

/// Like [`fetch`], but a body that breaks off is an `Err`, not a panic.
pub async fn try_get(url: &str) -> Result<(http::StatusCode, Bytes), String> {
    let res = client()
        .request(Request::get(url).body(Empty::new()).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
