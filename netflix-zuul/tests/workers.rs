//! `Workers`: the gateway on several threads, each with its own single-threaded runtime
//! and listening socket, over real sockets; shutdown drains every worker.

use netflix_zuul::Gateway;
use netflix_zuul::filter::{FilterChain, Flow, inbound_fn};
use netflix_zuul::route::RouteTable;
use netflix_zuul::workers::Workers;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One request for `path` on a new connection; the answer's body.
async fn get_path(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    answer.split("\r\n\r\n").nth(1).unwrap().to_string()
}

async fn get(addr: std::net::SocketAddr) -> String {
    get_path(addr, "/hi").await
}

/// An origin answering `ok` to every request, on keep-alive connections; it counts them.
async fn origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "current_thread")]
async fn workers_share_the_load_and_drain_on_shutdown() {
    // Each request notes the thread that served it.
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let seen = threads.clone();
    let chain = FilterChain::builder()
        .inbound(inbound_fn("thread", 0, move |_, _| {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            seen.lock().unwrap().insert(name);
            Flow::Continue
        }))
        .build()
        .unwrap();
    let (origin, origin_connections) = origin().await;
    let routes = RouteTable::from_json(&format!(
        r#"{{ "origins": {{ "o": {{ "servers": ["{origin}"] }} }},
             "routes": [ {{ "name": "hi", "path": "/hi", "endpoint": {{ "static": {{ "status": 200, "body": "hi" }} }} }},
                         {{ "name": "p", "path": "/p", "endpoint": {{ "proxy": "o" }} }} ] }}"#
    ))
    .unwrap();
    let gateway = Gateway::new(routes, chain).unwrap();
    let workers = Workers::bind("127.0.0.1:0".parse().unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(workers.threads(), 2);
    let addr = workers.local_addr();
    assert_ne!(addr.port(), 0);
    // The port is taken: a second gateway on it is an error, not a silent share.
    let second = Workers::bind(addr, 2).await;
    assert_eq!(
        second.unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse,
        "a second gateway on a taken port"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(workers.serve(gateway, async {
        let _ = stopped.await;
    }));

    // Connections spread over both workers: the kernel picks a socket per connection, so
    // 64 connections all landing on one of two would be a 1 in 2^63 chance.
    for _ in 0..64 {
        assert_eq!(get(addr).await, "hi");
    }
    let names = threads.lock().unwrap().clone();
    assert_eq!(
        names,
        HashSet::from(["zuul-worker-0".to_string(), "zuul-worker-1".to_string()]),
        "requests are served on the worker threads, both of them"
    );

    // Proxied one at a time, each worker reuses the one origin connection it opened
    // (and keeps to its own): two at most, however many requests.
    for _ in 0..64 {
        assert_eq!(get_path(addr, "/p").await, "ok");
    }
    let opened = origin_connections.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&opened),
        "{opened} origin connections for 64 requests one at a time"
    );

    // An idle keep-alive connection is closed by the drain, and serve returns.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 256];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("every worker drains")
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the idle connection is closed");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after the drain"
    );
}
