//! Serves a directory through a netflix-oca edge, from memory, for the serving benchmark
//! (`scripts/bench-oca-serve.sh`): an origin on the directory, an edge filling from it,
//! every file fetched once so the edge holds it in memory, then `READY <addr>` on stdout.
//! Runs until stdin closes.
//!
//! `ocaserve DIR [THREADS]` (THREADS: the edge runtime's workers, default 1).
#![allow(clippy::print_stdout, reason = "a benchmark tool reports its address")]

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use netflix_oca::fill::{FillConfig, Filler, Upstream};
use netflix_oca::http::client::HttpUpstream;
use netflix_oca::server::OcaServer;
use netflix_oca::store::{ChunkStore, StoreConfig};
use std::io::Read as _;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: ocaserve DIR [THREADS]")?;
    let threads: usize = args.next().map_or(Ok(1), |t| t.parse())?;
    // The origin runs on its own runtime so that the edge's workers are the edge's alone.
    let origin_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let origin_listener = origin_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let origin_addr = origin_listener.local_addr()?;
    let origin = OcaServer::origin(&dir)?;
    std::thread::spawn(move || {
        origin_rt.block_on(origin.serve(origin_listener, std::future::pending()))
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Arc::new(ChunkStore::open(StoreConfig {
            memory_bytes: 4 << 30,
            chunk_size: 2 << 20,
            ..StoreConfig::default()
        })?);
        let tiers: Vec<Arc<dyn Upstream>> =
            vec![Arc::new(HttpUpstream::new("origin", origin_addr))];
        let edge = OcaServer::edge(Arc::new(Filler::new(store, tiers, FillConfig::default())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(edge.serve(listener, std::future::pending()));
        // Warm: every file once.
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut files = 0;
        for e in std::fs::read_dir(&dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let res = client.get(format!("http://{addr}/{name}").parse()?).await?;
            let _ = res.into_body().collect().await?;
            files += 1;
        }
        println!("READY {addr} ({files} files in memory)");
        // Until stdin closes.
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        })
        .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
