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
