//! The gateway over real HTTP on loopback, against in-process origins with injected faults:
//! routing, filters, load balancing, Zuul's retry rules (no non-idempotent request is ever
//! delivered twice; nothing is sent again once the answer has begun or when the body was a
//! stream; the retry budget), the deadline and connect timeout, ejection, traffic control,
//! a reload under load with zero failed requests, HTTP/2.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use netflix_zuul::Gateway;
use netflix_zuul::filter::{FilterChain, Flow, inbound_fn, outbound_fn};
use netflix_zuul::route::RouteTable;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Status(u16),
    Slow(Duration),
}

/// An origin server that answers `server=<name> <method> <path> <body bytes>` and counts
/// what it received.
struct Origin {
    addr: SocketAddr,
    mode: Arc<parking_lot::Mutex<Mode>>,
    seen: Arc<parking_lot::Mutex<HashMap<String, u64>>>,
    total: Arc<AtomicU64>,
}

async fn origin(name: &'static str) -> Origin {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mode = Arc::new(parking_lot::Mutex::new(Mode::Ok));
    let seen: Arc<parking_lot::Mutex<HashMap<String, u64>>> = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    let (m, s, t) = (mode.clone(), seen.clone(), total.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let (m, s, t) = (m.clone(), s.clone(), t.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (m, s, t) = (m.clone(), s.clone(), t.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let canary = req
                            .headers()
                            .get("x-via")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        t.fetch_add(1, Ordering::SeqCst);
                        *s.lock().entry(format!("{method} {path}")).or_default() += 1;
                        let mode = *m.lock();
                        if let Mode::Slow(d) = mode {
                            tokio::time::sleep(d).await;
                        }
                        let mut r = Response::new(Full::new(Bytes::from(format!(
                            "server={name} {method} {path} {} {canary}",
                            body.len()
                        ))));
                        if path == "/big" {
                            r = Response::new(Full::new(Bytes::from(
                                "{\"k\": \"value\"} ".repeat(500),
                            )));
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                        }
                        if let Mode::Status(c) = mode {
                            *r.status_mut() = StatusCode::from_u16(c).unwrap();
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Origin {
        addr,
        mode,
        seen,
        total,
    }
}

/// A port that accepts and immediately drops every connection (a reset before any byte).
async fn resetter() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            drop(s);
        }
    });
    addr
}

fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start(g: Gateway) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(g.serve(l, std::future::pending()));
    addr
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    c: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = c
        .request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, text)
}

/// A GET's status and whether its body arrived whole; `None` when no answer came.
async fn get_whole(c: &Client<HttpConnector, Full<Bytes>>, url: &str) -> Option<(u16, bool)> {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let res = c.request(req).await.ok()?;
    let status = res.status().as_u16();
    Some((status, res.into_body().collect().await.is_ok()))
}

/// The same GET sent twice, and both answers' bodies (for stickiness).
async fn get_twice(
    c: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let first = send(c, "GET", url, headers, "").await.1;
    (first, send(c, "GET", url, headers, "").await.1)
}

fn table(json: &str) -> RouteTable {
    RouteTable::from_json(json).unwrap()
}

/// A table that proxies every request to the origin `name` at `server`.
fn all_to(name: &str, server: SocketAddr) -> RouteTable {
    table(&format!(
        r#"{{
        "origins": {{ "{name}": {{ "servers": ["{server}"] }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "{name}" }} }} ]
    }}"#
    ))
}

/// A table with a route `/NAME` to an origin NAME for each (NAME, the origin's fields in
/// JSON).
fn route_per_origin(origins: &[(&str, String)]) -> RouteTable {
    let specs: Vec<String> = origins
        .iter()
        .map(|(n, spec)| format!(r#""{n}": {{ {spec} }}"#))
        .collect();
    let routes: Vec<String> = origins
        .iter()
        .map(|(n, _)| {
            format!(
                r#"{{ "name": "{n}", "path_prefix": "/{n}", "endpoint": {{ "proxy": "{n}" }} }}"#
            )
        })
        .collect();
    table(&format!(
        r#"{{ "origins": {{ {} }}, "routes": [ {} ] }}"#,
        specs.join(", "),
        routes.join(", ")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_filters_and_endpoints() {
    let api = origin("api").await;
    let routes = table(&format!(
        r#"{{
        "origins": {{ "api": {{ "servers": ["{}"] }} }},
        "routes": [
            {{ "name": "health", "path": "/healthz", "endpoint": {{ "static": {{ "body": "ok" }} }} }},
            {{ "name": "v2", "host": "api.example.com", "path_prefix": "/v2/", "strip_prefix": true, "endpoint": {{ "proxy": "api" }} }},
            {{ "name": "titles", "path_prefix": "/titles/", "methods": ["GET", "POST"], "endpoint": {{ "proxy": "api" }} }}
        ]
    }}"#,
        api.addr
    ));
    let chain = FilterChain::builder()
        .inbound(inbound_fn("bad-agents", 0, |req, _| {
            match req.headers().get("user-agent") {
                Some(ua) if ua.as_bytes().starts_with(b"BadBot") => Flow::respond(403, "no bots"),
                _ => Flow::Continue,
            }
        }))
        .inbound(inbound_fn("tag", 10, |req, _| {
            req.headers_mut().insert("x-via", "zuul".parse().unwrap());
            Flow::Continue
        }))
        .outbound(outbound_fn("server-header", 0, |res, ctx| {
            let route = ctx.route.clone().unwrap_or_default();
            res.headers_mut().insert("x-route", route.parse().unwrap());
            Ok(())
        }))
        .build()
        .unwrap();
    let gw = Gateway::new(routes, chain).unwrap();
    let addr = start(gw.clone()).await;
    let c = client();
    assert_eq!(
        send(&c, "GET", &format!("http://{addr}/healthz"), &[], "").await,
        (200, "ok".into())
    );
    assert_eq!(
        send(&c, "GET", &format!("http://{addr}/nowhere"), &[], "")
            .await
            .0,
        404
    );
    let (s, t) = send(
        &c,
        "POST",
        &format!("http://{addr}/titles/81"),
        &[],
        "hello",
    )
    .await;
    assert_eq!((s, t.as_str()), (200, "server=api POST /titles/81 5 zuul"));
    assert_eq!(
        send(&c, "DELETE", &format!("http://{addr}/titles/81"), &[], "")
            .await
            .0,
        404,
        "method not routed"
    );
    let (s, t) = send(
        &c,
        "GET",
        &format!("http://{addr}/v2/titles/9?x=1"),
        &[("host", "api.example.com")],
        "",
    )
    .await;
    assert_eq!(
        (s, t.as_str()),
        (200, "server=api GET /titles/9 0 zuul"),
        "prefix stripped"
    );
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("http://{addr}/titles/1"),
            &[("user-agent", "BadBot/1.0")],
            ""
        )
        .await,
        (403, "no bots".into())
    );
    // Switched off at run time: the bot gets through.
    gw.filters().disable("bad-agents");
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("http://{addr}/titles/1"),
            &[("user-agent", "BadBot/1.0")],
            ""
        )
        .await
        .0,
        200
    );
    gw.filters().enable("bad-agents");
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("http://{addr}/titles/1"),
            &[("user-agent", "BadBot/1.0")],
            ""
        )
        .await
        .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_zuuls_rules_and_never_deliver_a_post_twice() {
    let good = origin("good").await;
    let sick = origin("sick").await;
    *sick.mode.lock() = Mode::Status(503);
    let slow = origin("slow").await;
    *slow.mode.lock() = Mode::Slow(Duration::from_millis(400));
    let reset = resetter().await;
    let dead = closed_port();
    let routes = |servers: &[SocketAddr]| {
        let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
        table(&format!(
            r#"{{
            "origins": {{ "o": {{ "servers": [{}], "lb": "round_robin", "max_retries": 1, "read_timeout_ms": 150, "eject_after": 1000 }} }},
            "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
        }}"#,
            list.join(",")
        ))
    };
    let c = client();
    // Connect errors and resets: retried for any method, on the other server.
    for bad in [dead, reset] {
        let gw = Gateway::new(routes(&[bad, good.addr]), FilterChain::default()).unwrap();
        let addr = start(gw).await;
        for i in 0..4 {
            for method in ["GET", "POST"] {
                let (s, t) = send(
                    &c,
                    method,
                    &format!("http://{addr}/x-{}-{i}", bad.port()),
                    &[],
                    "b",
                )
                .await;
                assert_eq!(s, 200, "{method} after {bad}");
                assert!(t.starts_with("server=good"), "{t}");
            }
        }
    }
    // A 503: retried for GET, not for POST; the POST reaches the sick origin once and its
    // 503 goes back to the client.
    let gw = Gateway::new(routes(&[sick.addr, good.addr]), FilterChain::default()).unwrap();
    let addr = start(gw.clone()).await;
    for _ in 0..6 {
        let (s, _) = send(&c, "GET", &format!("http://{addr}/get"), &[], "").await;
        assert_eq!(s, 200);
    }
    for i in 0..6 {
        let (s, t) = send(&c, "POST", &format!("http://{addr}/post-{i}"), &[], "pay").await;
        assert!(s == 200 || s == 503, "{s} {t}");
    }
    // A read timeout: retried for GET, not for POST.
    let gw2 = Gateway::new(routes(&[slow.addr, good.addr]), FilterChain::default()).unwrap();
    let addr2 = start(gw2).await;
    for _ in 0..4 {
        assert_eq!(
            send(&c, "GET", &format!("http://{addr2}/t"), &[], "")
                .await
                .0,
            200
        );
    }
    for i in 0..4 {
        let (s, _) = send(&c, "POST", &format!("http://{addr2}/tpost-{i}"), &[], "x").await;
        assert!(s == 200 || s == 504, "{s}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Retry safety: no POST was ever delivered twice, to any server.
    for o in [&good, &sick, &slow] {
        for (k, n) in o.seen.lock().iter() {
            if k.starts_with("POST") {
                assert_eq!(*n, 1, "{k} delivered {n} times");
            }
        }
    }
    // Distinct POSTs an origin received under a path prefix.
    let posts = |o: &Origin, prefix: &str| {
        o.seen
            .lock()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    };
    assert_eq!(
        posts(&good, "POST /post-") + posts(&sick, "POST /post-"),
        6,
        "each POST delivered exactly once"
    );
    // After a read timeout too: a POST sent again would show on both servers.
    assert_eq!(
        posts(&good, "POST /tpost-") + posts(&slow, "POST /tpost-"),
        4,
        "no POST is sent again after a read timeout"
    );
    assert!(
        posts(&slow, "POST /tpost-") >= 1,
        "a POST met the slow server"
    );
    assert!(gw.origin("o").unwrap().stats.retries.load(Ordering::SeqCst) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_and_ejection() {
    let a = origin("a").await;
    let b = origin("b").await;
    let c = client();
    let lb = |kind: &str, extra: &str| {
        table(&format!(
            r#"{{
            "origins": {{ "o": {{ "servers": [{{"addr": "{}", "weight": 2}}, "{}"], "lb": "{kind}" {extra} }} }},
            "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
        }}"#,
            a.addr, b.addr
        ))
    };
    let count = |body: &[String], name: &str| {
        body.iter()
            .filter(|t| t.starts_with(&format!("server={name}")))
            .count()
    };
    // Weighted: 2 to 1.
    let addr = start(Gateway::new(lb("weighted", ""), FilterChain::default()).unwrap()).await;
    let mut bodies = Vec::new();
    for _ in 0..30 {
        bodies.push(
            send(&c, "GET", &format!("http://{addr}/w"), &[], "")
                .await
                .1,
        );
    }
    assert_eq!((count(&bodies, "a"), count(&bodies, "b")), (20, 10));
    // Hash: a user always lands on the same server.
    let addr = start(
        Gateway::new(
            lb("hash", r#", "hash_header": "x-user""#),
            FilterChain::default(),
        )
        .unwrap(),
    )
    .await;
    for user in ["1", "2", "3", "4"] {
        let first = send(
            &c,
            "GET",
            &format!("http://{addr}/h"),
            &[("x-user", user)],
            "",
        )
        .await
        .1;
        for _ in 0..5 {
            let again = send(
                &c,
                "GET",
                &format!("http://{addr}/h"),
                &[("x-user", user)],
                "",
            )
            .await
            .1;
            assert_eq!(again[..8], first[..8]);
        }
    }
    // A server answering 502: round robin ejects it after 5 failures, and P2C turns away
    // from it at its first failures (a failure costs like a slow answer).
    *b.mode.lock() = Mode::Status(502);
    let sent_to_b = |kind: &'static str, requests: usize| {
        let (lb, c, b_total) = (&lb, &c, b.total.clone());
        async move {
            let extra = r#", "max_retries": 0, "retry_statuses": [502], "breaker_volume": 0"#;
            let gw = Gateway::new(lb(kind, extra), FilterChain::default()).unwrap();
            let addr = start(gw.clone()).await;
            let before = b_total.load(Ordering::SeqCst);
            for _ in 0..requests {
                let _ = send(c, "GET", &format!("http://{addr}/p"), &[], "").await;
            }
            let ejections = gw
                .origin("o")
                .unwrap()
                .stats
                .ejections
                .load(Ordering::SeqCst);
            (b_total.load(Ordering::SeqCst) - before, ejections)
        }
    };
    assert_eq!(
        sent_to_b("round_robin", 40).await,
        (5, 1),
        "b was ejected after 5 failures"
    );
    let (to_b, _) = sent_to_b("p2c", 60).await;
    assert!(to_b <= 6, "P2C sent b {to_b} of 60");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_fails_no_request() {
    let a = origin("a").await;
    let b = origin("b").await;
    let routes = |o: &Origin| {
        table(&format!(
            r#"{{
            "origins": {{ "o": {{ "servers": ["{}"] }} }},
            "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
        }}"#,
            o.addr
        ))
    };
    let gw = Gateway::new(routes(&a), FilterChain::default()).unwrap();
    let addr = start(gw.clone()).await;
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (failures, done) = (failures.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            for _ in 0..150 {
                let (s, _) = send(&c, "GET", &format!("http://{addr}/r"), &[], "").await;
                if s != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let mut flips = 0;
    while done.load(Ordering::SeqCst) < 1200 {
        gw.reload(routes(if flips % 2 == 0 { &b } else { &a }))
            .unwrap();
        flips += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(flips > 5, "{flips} reloads");
    assert!(a.total.load(Ordering::SeqCst) > 0 && b.total.load(Ordering::SeqCst) > 0);
    // A bad table is refused and the old one stays.
    let mut bad = routes(&a);
    bad.routes[0].endpoint = netflix_zuul::route::EndpointSpec::Proxy("nowhere".into());
    assert!(gw.reload(bad).is_err());
    assert_eq!(
        send(&client(), "GET", &format!("http://{addr}/r"), &[], "")
            .await
            .0,
        200
    );
    // An empty table is a table: every request is unrouted.
    assert!(
        gw.reload(RouteTable::from_json(r#"{"routes":[]}"#).unwrap())
            .is_ok()
    );
    assert_eq!(
        send(&client(), "GET", &format!("http://{addr}/r"), &[], "")
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let api = origin("api").await;
    let routes = all_to("api", api.addr);
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let res = h2
                .request(
                    Request::get(format!("http://{addr}/s/{i}"))
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.version(), http::Version::HTTP_2);
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert!(
            t.await
                .unwrap()
                .starts_with(&format!("server=api GET /s/{i}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_control_end_to_end() {
    use netflix_zuul::traffic::{Deny, RateLimit, Shadow, Split, Sticky};
    let main = origin("main").await;
    let canary = origin("canary").await;
    let mirror = origin("mirror").await;
    let routes = table(&format!(
        r#"{{
        "origins": {{ "main": {{ "servers": ["{}"] }}, "canary": {{ "servers": ["{}"] }}, "mirror": {{ "servers": ["{}"] }} }},
        "routes": [ {{ "name": "api", "path_prefix": "/api/", "endpoint": {{ "proxy": "main" }} }} ]
    }}"#,
        main.addr, canary.addr, mirror.addr
    ));
    let chain = FilterChain::builder()
        .inbound(Deny::new().header("x-evil", None))
        .inbound(RateLimit::per_header("x-user", 0.001, 50.0))
        .inbound(Split::canary(
            "/api/",
            "canary",
            0.2,
            Sticky::Header("x-user".into()),
        ))
        .inbound(Shadow::new("/api/", "mirror", 1.0))
        .build()
        .unwrap();
    let addr = start(Gateway::new(routes, chain).unwrap()).await;
    let c = client();
    let mut on_canary = 0;
    for user in 0..100 {
        let u = user.to_string();
        let (first, again) =
            get_twice(&c, &format!("http://{addr}/api/t"), &[("x-user", &u)]).await;
        assert_eq!(first[..10], again[..10], "user {user} stays on one side");
        on_canary += usize::from(first.starts_with("server=canary"));
    }
    assert!(
        (8..=35).contains(&on_canary),
        "{on_canary} of 100 users on the canary"
    );
    // Every request was mirrored, and the mirror's answers went nowhere.
    for _ in 0..50 {
        if mirror.total.load(Ordering::SeqCst) >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mirror.total.load(Ordering::SeqCst), 200);
    // Bad requests, then a user over its budget.
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("http://{addr}/api/t"),
            &[("x-evil", "1")],
            ""
        )
        .await
        .0,
        403
    );
    let mut statuses = Vec::new();
    for _ in 0..55 {
        statuses.push(
            send(
                &c,
                "GET",
                &format!("http://{addr}/api/t"),
                &[("x-user", "greedy")],
                "",
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 50);
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_breaker_opens_and_fails_fast() {
    let broken = origin("broken").await;
    *broken.mode.lock() = Mode::Status(500);
    let routes = table(&format!(
        r#"{{
        "origins": {{ "o": {{ "servers": ["{}"], "max_retries": 0, "breaker_volume": 5, "breaker_sleep_ms": 60000, "eject_after": 1000 }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
    }}"#,
        broken.addr
    ));
    let gw = Gateway::new(routes, FilterChain::default()).unwrap();
    let addr = start(gw.clone()).await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(
            send(&c, "GET", &format!("http://{addr}/b"), &[], "")
                .await
                .0,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let origin = gw.origin("o").unwrap();
    assert_eq!(
        origin.breaker().state(),
        netflix_hystrix::breaker::State::Open,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&503),
        "an open breaker fails fast: {statuses:?}"
    );
    assert!(
        broken.total.load(Ordering::SeqCst) < 40,
        "the origin was spared"
    );
    let failures = origin
        .breaker()
        .metrics()
        .snapshot()
        .cumulative()
        .get(netflix_hystrix::metrics::EventType::Failure);
    assert!(
        failures >= 5,
        "{failures} failures in the command's metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_hystrix_stream_endpoints() {
    let api = origin("api").await;
    let routes = table(&format!(
        r#"{{
        "origins": {{ "api": {{ "servers": ["{}"] }} }},
        "routes": [
            {{ "name": "metrics", "path": "/metrics", "endpoint": "metrics" }},
            {{ "name": "hystrix", "path": "/hystrix.stream", "endpoint": "hystrix_stream" }},
            {{ "name": "api", "path_prefix": "/api/", "endpoint": {{ "proxy": "api" }} }}
        ]
    }}"#,
        api.addr
    ));
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(
            send(&c, "GET", &format!("http://{addr}/api/x"), &[], "")
                .await
                .0,
            200
        );
    }
    let (s, text) = send(&c, "GET", &format!("http://{addr}/metrics"), &[], "").await;
    assert_eq!(s, 200);
    assert!(
        text.contains("zuul_requests_total{route=\"api\",class=\"2xx\"} 10"),
        "{text}"
    );
    assert!(text.contains("zuul_request_duration_seconds_count{route=\"api\"} 10"));
    assert!(text.contains("zuul_origin_attempts_total{origin=\"api\"} 10"));
    assert!(text.contains("zuul_origin_circuit_open{origin=\"api\"} 0"));
    // hystrix.stream: the first event names the origin's command.
    let res = c
        .request(
            Request::get(format!("http://{addr}/hystrix.stream"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("origin-api") && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&d));
                }
            }
            _ => break,
        }
    }
    assert!(
        seen.contains("\"type\":\"HystrixCommand\"") && seen.contains("origin-api"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phases_object_sees_each_request_with_its_own_context() {
    use netflix_zuul::phases::Phases;
    use netflix_zuul::{Body, Context};
    struct Api {
        logged: Arc<AtomicU64>,
    }
    struct Ctx {
        user: String,
    }
    impl Phases for Api {
        type Ctx = Ctx;
        fn new_ctx(&self) -> Ctx {
            Ctx {
                user: String::new(),
            }
        }
        fn request(&self, req: &mut Request<Body>, ctx: &mut Ctx, _: &mut Context) -> Flow {
            match req.headers().get("x-user").and_then(|v| v.to_str().ok()) {
                Some(u) => {
                    ctx.user = u.to_string();
                    Flow::Continue
                }
                None => Flow::respond(401, "who are you?"),
            }
        }
        fn response(
            &self,
            res: &mut Response<Body>,
            ctx: &mut Ctx,
            _: &mut Context,
        ) -> netflix_zuul::Result<()> {
            res.headers_mut()
                .insert("x-served-user", ctx.user.parse().unwrap());
            Ok(())
        }
        fn logging(&self, _: &Response<Body>, _: &Ctx, _: &Context) {
            self.logged.fetch_add(1, Ordering::SeqCst);
        }
    }
    let api = origin("api").await;
    let routes = all_to("api", api.addr);
    let logged = Arc::new(AtomicU64::new(0));
    let chain = FilterChain::builder()
        .phases(Api {
            logged: logged.clone(),
        })
        .build()
        .unwrap();
    let addr = start(Gateway::new(routes, chain).unwrap()).await;
    let c = client();
    assert_eq!(
        send(&c, "GET", &format!("http://{addr}/a"), &[], "")
            .await
            .0,
        401
    );
    for user in ["ann", "bob"] {
        let res = c
            .request(
                Request::get(format!("http://{addr}/a"))
                    .header("x-user", user)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-served-user"], user);
    }
    assert_eq!(logged.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_a_server_out_and_back() {
    let a = origin("a").await;
    let b = origin("b").await;
    *b.mode.lock() = Mode::Status(503);
    let routes = table(&format!(
        r#"{{
        "origins": {{ "o": {{ "servers": ["{}", "{}"], "lb": "round_robin", "max_retries": 0, "breaker_volume": 0, "eject_after": 1000,
                          "health_check": {{ "path": "/healthz", "interval_ms": 50, "unhealthy_after": 2, "healthy_after": 1 }} }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
    }}"#,
        a.addr, b.addr
    ));
    let gw = Gateway::new(routes, FilterChain::default()).unwrap();
    let addr = start(gw.clone()).await;
    let origin = gw.origin("o").unwrap();
    let down = |i: usize| origin.servers()[i].is_down();
    for _ in 0..100 {
        if down(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(down(1) && !down(0));
    let c = client();
    for _ in 0..10 {
        let (s, t) = send(&c, "GET", &format!("http://{addr}/x"), &[], "").await;
        assert_eq!((s, &t[..8]), (200, "server=a"));
    }
    *b.mode.lock() = Mode::Ok;
    for _ in 0..100 {
        if !down(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!down(1), "b is back after a passing check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brotli_or_gzip_for_clients_that_accept_them() {
    use netflix_zuul::compress::{Brotli, Gzip};
    use std::io::Read as _;
    let api = origin("api").await;
    let routes = all_to("api", api.addr);
    let chain = FilterChain::builder()
        .outbound(Brotli::new(["application/json"]))
        .outbound(Gzip::new(["application/json"]))
        .build()
        .unwrap();
    let addr = start(Gateway::new(routes, chain).unwrap()).await;
    let c = client();
    let plain = "{\"k\": \"value\"} ".repeat(500);
    // A client that accepts brotli gets it.
    let res = c
        .request(
            Request::get(format!("http://{addr}/big"))
                .header("accept-encoding", "gzip, br")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "br");
    let br = res.into_body().collect().await.unwrap().to_bytes();
    assert!(br.len() < plain.len() / 10);
    let mut out = String::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, plain);
    // One that refuses it (q=0) gets gzip.
    let res = c
        .request(
            Request::get(format!("http://{addr}/big"))
                .header("accept-encoding", "br;q=0, gzip")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let len: usize = res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let gz = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(gz.len(), len, "Content-Length fixed after the body changed");
    assert!(gz.len() < plain.len() / 10);
    let mut out = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, plain);
    // No gzip for clients that do not ask, nor for small or other bodies.
    let (s, t) = send(&c, "GET", &format!("http://{addr}/big"), &[], "").await;
    assert_eq!((s, t.len()), (200, plain.len()));
    let res = c
        .request(
            Request::get(format!("http://{addr}/small"))
                .header("accept-encoding", "gzip")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!res.headers().contains_key("content-encoding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_origins() {
    // An origin that speaks HTTP/2 only and says which version it saw.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("{:?}", req.version()),
                    ))))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let routes = table(&format!(
        r#"{{
        "origins": {{ "h2": {{ "servers": ["{o}"], "http2": true }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "h2" }} }} ]
    }}"#
    ));
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(
            send(&c, "GET", &format!("http://{addr}/v"), &[], "").await,
            (200, "HTTP/2.0".to_string())
        );
    }
}

/// A raw origin that reads a request head and answers with `reply`, then closes: faults a
/// real server will not produce on demand.
async fn raw_origin(reply: &'static [u8]) -> (SocketAddr, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
                // A lingering close, as real servers do: what the client is still sending
                // is read and dropped, so the close is not a reset that destroys the answer.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {}
                })
                .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_body_is_never_passed_on_as_complete() {
    // A big body cut short: streamed, so the client's transfer breaks off.
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 50_000));
    let big: &'static [u8] = Box::leak(big.into_boxed_slice());
    let (half_big, _) = raw_origin(big).await;
    // A small body cut short: read whole first, so it fails before any byte is sent, and
    // a GET is retried on the healthy server while a POST gets 502.
    let (half_small, _) =
        raw_origin(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a part").await;
    let good = origin("good").await;
    let routes = route_per_origin(&[
        (
            "big",
            format!(r#""servers": ["{half_big}"], "max_retries": 0"#),
        ),
        (
            "small",
            format!(
                r#""servers": ["{half_small}", "{}"], "lb": "round_robin", "max_retries": 1, "eject_after": 1000"#,
                good.addr
            ),
        ),
    ]);
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let c = client();
    // The break can reach the client before or after the response head; either way it
    // never sees a complete response.
    let got = get_whole(&c, &format!("http://{addr}/big")).await;
    assert!(
        matches!(got, None | Some((200, false))),
        "the client sees the body break off: {got:?}"
    );
    for i in 0..4 {
        let (s, t) = send(&c, "GET", &format!("http://{addr}/small/{i}"), &[], "").await;
        assert_eq!((s, &t[..11]), (200, "server=good"));
    }
    let mut posts = Vec::new();
    for i in 0..4 {
        posts.push(
            send(&c, "POST", &format!("http://{addr}/small/p{i}"), &[], "x")
                .await
                .0,
        );
    }
    assert!(posts.contains(&502) && posts.contains(&200), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_response_is_relayed() {
    // The origin refuses a large upload before reading it.
    let (early, hits) = raw_origin(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!",
    )
    .await;
    let routes = table(&format!(
        r#"{{
        "origins": {{ "o": {{ "servers": ["{early}"], "max_retries": 1 }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
    }}"#
    ));
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let upload = "u".repeat(2 << 20);
    let (s, t) = send(
        &client(),
        "POST",
        &format!("http://{addr}/upload"),
        &[],
        &upload,
    )
    .await;
    assert_eq!((s, t.as_str()), (413, "too big!"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a streamed upload is not sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_proxied() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // An origin that accepts the upgrade and echoes what it reads, upper-cased.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = upgrade.await {
                            let mut io = TokioIo::new(up);
                            let mut buf = [0u8; 64];
                            while let Ok(n) = io.read(&mut buf).await {
                                if n == 0
                                    || io.write_all(&buf[..n].to_ascii_uppercase()).await.is_err()
                                {
                                    break;
                                }
                            }
                        }
                    });
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    r.headers_mut()
                        .insert("upgrade", "websocket".parse().unwrap());
                    r.headers_mut()
                        .insert("connection", "upgrade".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let routes = table(&format!(
        r#"{{
        "origins": {{ "ws": {{ "servers": ["{o}"] }} }},
        "routes": [ {{ "name": "ws", "path_prefix": "/ws", "endpoint": {{ "proxy": "ws" }} }} ]
    }}"#
    ));
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in ["hello", "over the gateway"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg.to_ascii_uppercase().as_bytes());
    }
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_alpn_h2_and_http1() {
    use netflix_zuul::tls::TlsConfig;
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = TlsConfig::from_pem(
        cert.cert.pem().as_bytes(),
        cert.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap();
    let api = origin("api").await;
    let routes = all_to("api", api.addr);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(
        Gateway::new(routes, FilterChain::default())
            .unwrap()
            .serve_tls(l, tls, std::future::pending()),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    #[allow(deprecated, reason = "the ring provider, as the gateway uses")]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    for (alpn, want) in [
        (&b"h2"[..], http::Version::HTTP_2),
        (&b"http/1.1"[..], http::Version::HTTP_11),
    ] {
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let io = TokioIo::new(stream);
        let req = Request::get("https://localhost/tls")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = if want == http::Version::HTTP_2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let mut req = req;
            req.headers_mut()
                .insert("host", "localhost".parse().unwrap());
            send.send_request(req).await.unwrap()
        };
        assert_eq!(res.version(), want);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"server=api GET /tls"), "{body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_per_server_is_hard() {
    let slow = origin("slow").await;
    *slow.mode.lock() = Mode::Slow(Duration::from_millis(300));
    let routes = table(&format!(
        r#"{{
        "origins": {{ "o": {{ "servers": ["{}"], "max_connections_per_server": 2, "max_retries": 0 }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
    }}"#,
        slow.addr
    ));
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 20)).await;
            send(&client(), "GET", &format!("http://{addr}/c{i}"), &[], "")
                .await
                .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
    assert_eq!(slow.total.load(Ordering::SeqCst), 2);
}

/// Sends `head` and `body` on a new connection and returns the answer's status.
async fn raw_request(addr: SocketAddr, head_and_body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head_and_body).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_once_the_answer_has_begun_or_for_a_streamed_body() {
    // Each origin has a healthy second server, so a retry would have somewhere to go.
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 50_000));
    let big: &'static [u8] = Box::leak(big.into_boxed_slice());
    let (half_big, half_hits) = raw_origin(big).await;
    let good = origin("good").await;
    let dead = closed_port();
    let retried = r#""lb": "round_robin", "max_retries": 1, "eject_after": 1000"#;
    let routes = route_per_origin(&[
        (
            "big",
            format!(r#""servers": ["{half_big}", "{}"], {retried}"#, good.addr),
        ),
        (
            "up",
            format!(r#""servers": ["{dead}", "{}"], {retried}"#, good.addr),
        ),
    ]);
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let c = client();
    // A GET whose answer broke off after its head: idempotent, but the answer had begun,
    // so it is not sent again (round robin: one GET to each server).
    let mut complete = 0;
    for _ in 0..2 {
        let got = get_whole(&c, &format!("http://{addr}/big")).await;
        complete += usize::from(matches!(got, Some((_, true))));
    }
    assert_eq!(complete, 1, "only the healthy server's answer is whole");
    assert_eq!(half_hits.load(Ordering::SeqCst), 1);
    assert_eq!(good.seen.lock().get("GET /big").copied(), Some(1));
    // A body of unknown length is streamed to the origin, and cannot be sent again: the
    // attempt on the closed port fails, and is not retried on the healthy server.
    let upload = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut statuses = vec![
        raw_request(addr, upload).await,
        raw_request(addr, upload).await,
    ];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502]);
    assert_eq!(good.seen.lock().get("POST /up").copied(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_retries() {
    let (a, b) = (resetter().await, resetter().await);
    // Breaker off and no ejection: every request fails its first attempt and asks for a
    // retry, which only the budget can refuse.
    let routes = table(&format!(
        r#"{{
        "origins": {{ "o": {{ "servers": ["{a}", "{b}"], "lb": "round_robin", "max_retries": 1,
            "eject_after": 100000, "breaker_volume": 0 }} }},
        "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ]
    }}"#
    ));
    let gw = Gateway::new(routes, FilterChain::default()).unwrap();
    let addr = start(gw.clone()).await;
    let c = client();
    let n = 200;
    for i in 0..n {
        let (s, _) = send(&c, "GET", &format!("http://{addr}/{i}"), &[], "").await;
        assert_eq!(s, 502);
    }
    let stats = &gw.origin("o").unwrap().stats;
    let (retries, refused) = (
        stats.retries.load(Ordering::SeqCst),
        stats.budget_refusals.load(Ordering::SeqCst),
    );
    assert_eq!(retries + refused, n, "each request asked for one retry");
    // 10 tokens to start, 0.2 a request, and 10 a second at least: far fewer than 200.
    assert!(refused > 0, "{retries} retries, {refused} refused");
    assert!(retries >= 10, "{retries} retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_and_the_connect_timeout_end_a_request() {
    // Connect timeout 500 ms unless set.
    let defaults = table(r#"{ "origins": { "o": { "servers": ["127.0.0.1:1"] } }, "routes": [] }"#);
    assert_eq!(defaults.origins["o"].connect_timeout_ms, 500);
    // A server slower than the deadline, though within the read timeout: 504.
    let slow = origin("slow").await;
    *slow.mode.lock() = Mode::Slow(Duration::from_millis(600));
    // A listener whose accept queue is full: a new connection's handshake never completes.
    let full = tokio::net::TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(1).unwrap();
    let blackhole = full.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..2 {
        queued.push(std::net::TcpStream::connect(blackhole).unwrap());
    }
    let routes = route_per_origin(&[
        (
            "slow",
            format!(
                r#""servers": ["{}"], "read_timeout_ms": 5000, "deadline_ms": 150, "max_retries": 0"#,
                slow.addr
            ),
        ),
        (
            "hole",
            format!(r#""servers": ["{blackhole}"], "connect_timeout_ms": 100, "max_retries": 0"#),
        ),
    ]);
    let addr = start(Gateway::new(routes, FilterChain::default()).unwrap()).await;
    let c = client();
    // (The outer bound only keeps a broken build from hanging the suite.)
    let bound = Duration::from_secs(20);
    let (s, t) = tokio::time::timeout(
        bound,
        send(&c, "GET", &format!("http://{addr}/slow"), &[], ""),
    )
    .await
    .expect("the deadline ends the request");
    assert_eq!(s, 504, "{t}");
    assert!(t.contains("deadline"), "{t}");
    let (s, t) = tokio::time::timeout(
        bound,
        send(&c, "GET", &format!("http://{addr}/hole"), &[], ""),
    )
    .await
    .expect("the connect timeout ends the request");
    assert_eq!(s, 502, "{t}");
    drop(queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shared_across_origins_sticky_by_cookie_and_limited_per_client() {
    use netflix_zuul::traffic::{RateLimit, Split, Sticky};
    let (a, b, c3) = (origin("a").await, origin("b").await, origin("c").await);
    // Requests under /a/ are split across the three origins.
    let servers = |o: &Origin| format!(r#""servers": ["{}"]"#, o.addr);
    let routes = route_per_origin(&[("a", servers(&a)), ("b", servers(&b)), ("c", servers(&c3))]);
    // Weights 1:1:2 over three origins, a user kept by the `uid` cookie.
    let chain = FilterChain::builder()
        .inbound(Split::new(
            "/a/",
            vec![("a".into(), 1.0), ("b".into(), 1.0), ("c".into(), 2.0)],
            Sticky::Cookie("uid".into()),
        ))
        .build()
        .unwrap();
    let addr = start(Gateway::new(routes.clone(), chain).unwrap()).await;
    let c = client();
    let mut on: HashMap<String, u32> = HashMap::new();
    for user in 0..200 {
        let cookie = format!("theme=dark; uid={user}");
        let (first, again) =
            get_twice(&c, &format!("http://{addr}/a/x"), &[("cookie", &cookie)]).await;
        assert_eq!(first[..8], again[..8], "user {user} stays with one origin");
        *on.entry(first[..8].to_string()).or_default() += 1;
    }
    let share = |o: &str| on.get(o).copied().unwrap_or(0);
    assert!((25..=80).contains(&share("server=a")), "{on:?}");
    assert!((25..=80).contains(&share("server=b")), "{on:?}");
    assert!((65..=135).contains(&share("server=c")), "{on:?}");
    // Per client address: a burst of 5, then 429 (every request here comes from
    // 127.0.0.1).
    let chain = FilterChain::builder()
        .inbound(RateLimit::per_client(0.001, 5.0))
        .build()
        .unwrap();
    let addr = start(Gateway::new(routes, chain).unwrap()).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            send(&c, "GET", &format!("http://{addr}/a/x"), &[], "")
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
}

/// An inbound filter that decides after awaiting (a token check against a slow store):
/// a known token continues with the user's name added, any other gets 401.
struct AsyncAuth;

impl netflix_zuul::filter::InboundFilter for AsyncAuth {
    fn name(&self) -> &str {
        "async-auth"
    }
    fn order(&self) -> i32 {
        0
    }
    fn apply<'a>(
        &'a self,
        req: &'a mut Request<netflix_zuul::Body>,
        _ctx: &'a mut netflix_zuul::Context,
    ) -> netflix_zuul::filter::Step<'a, Flow> {
        netflix_zuul::filter::Step::Async(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if req
                .headers()
                .get("authorization")
                .is_some_and(|t| t == "token-7")
            {
                req.headers_mut().insert("x-via", "user-7".parse().unwrap());
                Flow::Continue
            } else {
                Flow::respond(401, "unknown token")
            }
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_inbound_filter_decides_after_awaiting() {
    let o = origin("o").await;
    let routes = all_to("o", o.addr);
    let chain = FilterChain::builder().inbound(AsyncAuth).build().unwrap();
    let addr = start(Gateway::new(routes, chain).unwrap()).await;
    let c = client();
    let url = format!("http://{addr}/me");
    let (s, t) = send(&c, "GET", &url, &[("authorization", "token-7")], "").await;
    assert_eq!((s, t.as_str()), (200, "server=o GET /me 0 user-7"));
    let (s, t) = send(&c, "GET", &url, &[("authorization", "token-8")], "").await;
    assert_eq!((s, t.trim()), (401, "unknown token"));
    assert_eq!(
        o.total.load(Ordering::SeqCst),
        1,
        "the refused request never left"
    );
}
