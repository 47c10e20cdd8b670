//! What one request leaves behind, seen from outside: its passport (as an outbound filter
//! reads it), the gateway's count by status class, and the access log through `tracing`.
//! (A test binary of its own: a `tracing` subscriber set for one test must not race with
//! other tests' threads registering the same call sites.)

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use netflix_zuul::Gateway;
use netflix_zuul::filter::{FilterChain, outbound_fn};
use netflix_zuul::route::RouteTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// An origin that answers every request on a connection with `200 hello`.
async fn hello_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                        if s.write_all(answer).await.is_err() {
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
    addr
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn status(
    c: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
) -> u16 {
    let res = c
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let s = res.status().as_u16();
    let _ = res.into_body().collect().await;
    s
}

// (One thread: the subscriber set for this test sees the gateway's events.)
#[tokio::test(flavor = "current_thread")]
async fn a_request_leaves_its_passport_status_class_and_access_log() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let good = hello_origin().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let routes = RouteTable::from_json(&format!(
        r#"{{
        "origins": {{ "good": {{ "servers": ["{good}"] }}, "dead": {{ "servers": ["{dead}"], "max_retries": 0 }} }},
        "routes": [
            {{ "name": "ok", "path_prefix": "/ok", "endpoint": {{ "proxy": "good" }} }},
            {{ "name": "down", "path_prefix": "/down", "endpoint": {{ "proxy": "dead" }} }}
        ]
    }}"#
    ))
    .unwrap();
    // An outbound filter writes down the passport as it stands.
    let seen: Arc<parking_lot::Mutex<Vec<(&'static str, Duration)>>> = Arc::default();
    let s = seen.clone();
    let chain = FilterChain::builder()
        .outbound(outbound_fn("passport", 0, move |_, ctx| {
            *s.lock() = ctx.passport.states().to_vec();
            Ok(())
        }))
        .build()
        .unwrap();
    let gw = Gateway::new(routes, chain).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(gw.clone().serve(l, std::future::pending()));
    let c = Client::builder(TokioExecutor::new()).build_http();
    assert_eq!(status(&c, format!("http://{addr}/ok")).await, 200);
    let states = seen.lock().clone();
    let names: Vec<_> = states.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["received", "routed", "origin responded"]);
    assert!(states.windows(2).all(|w| w[0].1 <= w[1].1), "{states:?}");
    assert!(states[2].1 > Duration::ZERO, "{states:?}");
    assert_eq!(status(&c, format!("http://{addr}/nowhere")).await, 404);
    assert_eq!(status(&c, format!("http://{addr}/down")).await, 502);
    let by_class: Vec<u64> = gw
        .stats()
        .by_class
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .collect();
    assert_eq!(by_class, [0, 0, 1, 0, 1, 1]);
    let text = String::from_utf8(log.0.lock().clone()).unwrap();
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("netflix_zuul::access"))
        .collect();
    assert_eq!(access.len(), 3, "{text}");
    for (line, (status, route)) in access
        .iter()
        .zip([("200", "ok"), ("404", "-"), ("502", "down")])
    {
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(
            line.contains(&format!("route={route}"))
                || line.contains(&format!("route=\"{route}\"")),
            "{line}"
        );
    }
}
