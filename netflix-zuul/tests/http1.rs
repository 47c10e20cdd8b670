//! HTTP/1.1 on the wire, both sides of the gateway, with raw sockets: what a general client
//! library would hide. Clients: pipelining, chunked and `Expect: 100-continue` uploads,
//! HTTP/1.0, HEAD, malformed and ambiguous requests (400, 431), an unread body skipped,
//! graceful drain. Origins: connection reuse, a keep-alive connection closed under the
//! pool, idle connections closed, chunked answers with trailers, 1xx answers, bodies
//! delimited by the close.

use netflix_zuul::Gateway;
use netflix_zuul::filter::FilterChain;
use netflix_zuul::route::RouteTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// An origin that reads whole requests (Content-Length or chunked) and answers each with
/// `reply(request number on this connection, head, body)`; it counts connections.
async fn scripted_origin(
    reply: impl Fn(u64, &str, &[u8]) -> Vec<u8> + Send + Sync + 'static,
    close_after: Option<u64>,
) -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicU64::new(0));
    let reply = Arc::new(reply);
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0.. {
                    let Some((head, body)) = read_request(&mut s, &mut buf).await else {
                        return;
                    };
                    if s.write_all(&reply(n, &head, &body)).await.is_err() {
                        return;
                    }
                    if close_after.is_some_and(|c| n + 1 >= c) {
                        return; // closes without saying so: the keep-alive race
                    }
                }
            });
        }
    });
    (addr, conns)
}

/// Reads one request (head and body) from `s`, `buf` holding what was read beyond it.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(l) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        let n: usize = l.trim().parse().unwrap();
        while buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = s.read(&mut chunk).await.ok()?;
            if got == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..got]);
        }
        body = buf.drain(..n).collect();
    } else if lower.contains("transfer-encoding: chunked") {
        // Until the last chunk and the empty trailer section.
        loop {
            if let Some(i) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                let raw: Vec<u8> = buf.drain(..i + 5).collect();
                body = dechunk(&raw);
                break;
            }
            let mut chunk = [0u8; 4096];
            let got = s.read(&mut chunk).await.ok()?;
            if got == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..got]);
        }
    }
    Some((head, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let i = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..i]).unwrap(), 16).unwrap();
        raw = &raw[i + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn gateway(routes: &str) -> Gateway {
    Gateway::new(
        RouteTable::from_json(routes).unwrap(),
        FilterChain::default(),
    )
    .unwrap()
}

fn proxy_to(origin: SocketAddr, extra: &str) -> Gateway {
    gateway(&format!(
        r#"{{ "origins": {{ "o": {{ "servers": ["{origin}"], "max_retries": 0 {extra} }} }},
             "routes": [ {{ "name": "static", "path": "/static", "endpoint": {{ "static": {{ "status": 200, "body": "hello" }} }} }},
                         {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ] }}"#
    ))
}

async fn start(
    g: Gateway,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        g.serve(l, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, task)
}

/// Reads one response from `s`: (status line, head, body). Bodies by Content-Length or
/// chunked; `None` when the connection closed first.
async fn response(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Option<(String, String, Vec<u8>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
    let status = head.lines().next().unwrap().to_string();
    let lower = head.to_ascii_lowercase();
    if head_only || status.contains(" 100 ") || status.contains(" 304 ") {
        return Some((status, head, Vec::new()));
    }
    let body = if let Some(l) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        let n: usize = l.trim().parse().unwrap();
        while buf.len() < n {
            let mut chunk = [0u8; 8192];
            let got = s.read(&mut chunk).await.ok()?;
            if got == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..got]);
        }
        buf.drain(..n).collect()
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            if let Some(i) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                let raw: Vec<u8> = buf.drain(..i + 5).collect();
                break dechunk(&raw);
            }
            let mut chunk = [0u8; 8192];
            let got = s.read(&mut chunk).await.ok()?;
            if got == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..got]);
        }
    } else {
        // Delimited by the close.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.ok()?;
        buf.extend_from_slice(&rest);
        std::mem::take(buf)
    };
    Some((status, head, body))
}

async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pipeline_upload_chunked_and_speak_http_1_0() {
    let (origin, _) = scripted_origin(
        |_, head, body| {
            let path = head.split_whitespace().nth(1).unwrap().to_string();
            ok(&format!("{path} {}", String::from_utf8_lossy(body)))
        },
        None,
    )
    .await;
    let (addr, _stop, _) = start(proxy_to(origin, "")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();

    // Three requests in one write: three answers, in order.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /static HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await
    .unwrap();
    for want in ["/a ", "hello", "/c abc"] {
        let (status, _, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }

    // A chunked upload, sent in pieces, reaches the origin whole.
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"6;ext=1\r\n world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (_, _, body) = response(&mut s, &mut buf, false).await.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "/up hello world");

    // A DELETE with a chunked body: the body reaches the origin (the method does not say
    // there is none).
    s.write_all(b"DELETE /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (_, _, body) = response(&mut s, &mut buf, false).await.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "/d hello");

    // Expect: 100-continue gets its 100 before the body is sent.
    s.write_all(b"PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = response(&mut s, &mut buf, false).await.unwrap();
    assert_eq!(status, "HTTP/1.1 100 Continue");
    s.write_all(b"ok").await.unwrap();
    let (status, _, body) = response(&mut s, &mut buf, false).await.unwrap();
    assert_eq!(
        (status.as_str(), &body[..]),
        ("HTTP/1.1 200 OK", &b"/e ok"[..])
    );

    // HEAD: the length, no body, and the connection stays in step.
    s.write_all(b"HEAD /static HTTP/1.1\r\nHost: x\r\n\r\nGET /static HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (_, head, _) = response(&mut s, &mut buf, true).await.unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: 5"),
        "{head}"
    );
    let (_, _, body) = response(&mut s, &mut buf, false).await.unwrap();
    assert_eq!(body, b"hello");

    // A body the static endpoint never reads is skipped: the next request still works.
    s.write_all(b"POST /static HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nxxxxGET /static HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..2 {
        let (_, _, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(body, b"hello");
    }

    // HTTP/1.0: closed after the answer unless it asks to keep the connection.
    let mut old = TcpStream::connect(addr).await.unwrap();
    let mut obuf = Vec::new();
    old.write_all(b"GET /static HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = response(&mut old, &mut obuf, false).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"));
    assert!(
        head.to_ascii_lowercase().contains("connection: keep-alive"),
        "{head}"
    );
    old.write_all(b"GET /static HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let (_, head, _) = response(&mut old, &mut obuf, false).await.unwrap();
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(closed(&mut old).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_ambiguous_requests_are_refused() {
    let (origin, _) = scripted_origin(|_, _, _| ok("never"), None).await;
    let (addr, _stop, _) = start(proxy_to(origin, "")).await;
    let cases: [(&[u8], &str); 6] = [
        // Exactly one Host: none (in HTTP/1.1), or two that could be read either way.
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: public\r\nHost: admin\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", "400"),
        // Both framings: a request two parties could read two ways (smuggling).
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "400"),
    ];
    for (raw, code) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let (status, _, _) = response(&mut s, &mut Vec::new(), false).await.unwrap();
        assert!(
            status.starts_with(&format!("HTTP/1.1 {code}")),
            "{status} for {raw:?}"
        );
        assert!(closed(&mut s).await);
    }
    // A head over 64 KiB.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..800 {
        raw.extend_from_slice(format!("x-{i}: {}\r\n", "v".repeat(90)).as_bytes());
    }
    let _ = s.write_all(&raw).await;
    let (status, _, _) = response(&mut s, &mut Vec::new(), false).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_connections_are_reused_and_a_closed_one_is_replaced() {
    // Keep-alive origin: 20 sequential requests ride one connection.
    let (origin, conns) = scripted_origin(|n, _, _| ok(&format!("n={n}")), None).await;
    let g = proxy_to(origin, "");
    let (addr, _stop, _) = start(g.clone()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..20 {
        s.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (_, _, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), format!("n={i}"));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert_eq!(g.origin("o").unwrap().servers()[0].connections_opened(), 1);

    // An origin that closes every connection after one answer without saying so: the
    // pooled connection is found closed (or fails under the request, for a GET) and a new
    // one is used; no request fails, even with no retries allowed.
    let (racy, racy_conns) = scripted_origin(|_, _, _| ok("fresh"), Some(1)).await;
    let (addr, _stop2, _) = start(proxy_to(racy, "")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..10 {
        s.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, _, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(
            (status.as_str(), &body[..]),
            ("HTTP/1.1 200 OK", &b"fresh"[..])
        );
    }
    assert_eq!(racy_conns.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_origin_connections_are_closed() {
    let (origin, _) = scripted_origin(|_, _, _| ok("x"), None).await;
    let g = proxy_to(origin, r#", "idle_timeout_ms": 200"#);
    let (addr, _stop, _) = start(g.clone()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    response(&mut s, &mut Vec::new(), false).await.unwrap();
    let server = g.origin("o").unwrap().servers()[0].clone();
    assert_eq!(server.idle_connections(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.idle_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle connection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_answers_chunked_informational_and_close_delimited() {
    let (origin, _) = scripted_origin(
        |_, head, _| {
            let path = head.split_whitespace().nth(1).unwrap();
            match path {
                "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\nx-checksum: 7\r\n\r\n".to_vec(),
                "/early-hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal".to_vec(),
                _ => b"HTTP/1.0 200 OK\r\n\r\nuntil the close".to_vec(),
            }
        },
        Some(3),
    )
    .await;
    let (addr, _stop, _) = start(proxy_to(origin, "")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for (path, want) in [
        ("/chunked", "wikipedia"),
        ("/early-hints", "final"),
        ("/close", "until the close"),
    ] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, _, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        assert_eq!(String::from_utf8(body).unwrap(), want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
    let (origin, _) = scripted_origin(|_, _, _| ok("answer"), None).await;
    let g = proxy_to(origin, "");
    let (addr, stop, task) = start(g).await;
    // An idle keep-alive connection, and one whose request is in flight.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /static HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    response(&mut idle, &mut Vec::new(), false).await.unwrap();
    let mut busy = TcpStream::connect(addr).await.unwrap();
    // Half a request: in flight from the gateway's point of view once it completes.
    busy.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    // The idle connection is closed at once.
    assert!(
        closed(&mut idle).await,
        "an idle keep-alive connection is closed on drain"
    );
    // The request already started is finished, and its connection closed after it.
    busy.write_all(b"\r\n").await.unwrap();
    let (status, head, body) = response(&mut busy, &mut Vec::new(), false).await.unwrap();
    assert_eq!(
        (status.as_str(), &body[..]),
        ("HTTP/1.1 200 OK", &b"answer"[..])
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(closed(&mut busy).await);
    // And serve returns once every connection is done; new connections are refused.
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("serve returns after the drain")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_never_a_reason_to_send_a_post_again() {
    // Two servers answering with conflicting lengths: the origin has acted on the request.
    let bad = |_: u64, _: &str, _: &[u8]| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec()
    };
    let (a, a_conns) = scripted_origin(bad, None).await;
    let (b, b_conns) = scripted_origin(bad, None).await;
    let g = gateway(&format!(
        r#"{{ "origins": {{ "o": {{ "servers": ["{a}", "{b}"], "lb": "round_robin", "max_retries": 1, "eject_after": 1000 }} }},
             "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ] }}"#
    ));
    let (addr, _stop, _) = start(g).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        .await
        .unwrap();
    let (status, _, _) = response(&mut s, &mut Vec::new(), false).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 502"), "{status}");
    let sent = a_conns.load(Ordering::SeqCst) + b_conns.load(Ordering::SeqCst);
    assert_eq!(sent, 1, "the POST went to one server only");
    // A GET may go again, to the other server.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = response(&mut s, &mut Vec::new(), false).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 502"), "{status}");
    assert_eq!(a_conns.load(Ordering::SeqCst), 2);
    assert_eq!(b_conns.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_go_no_further_than_one_hop() {
    // The origin echoes the request head it got as its body, and answers with every kind
    // of hop-by-hop field beside an end-to-end one.
    let (origin, _) = scripted_origin(
        |_, head, _| {
            format!(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Origin-Hop\r\nX-Origin-Hop: 1\r\n\
                 Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTrailer: X-T\r\n\
                 X-Kept: yes\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            )
            .into_bytes()
        },
        None,
    )
    .await;
    let (addr, _stop, _) = start(proxy_to(origin, "")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: X-Client-Hop\r\nX-Client-Hop: 1\r\n\
              Keep-Alive: 300\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-Sent: yes\r\n\
              X-Forwarded-Proto: spoofed\r\n\r\n",
        )
        .await
        .unwrap();
        let (status, head, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("x-kept: yes"), "{head}");
        for gone in [
            "x-origin-hop",
            "keep-alive",
            "proxy-authenticate",
            "trailer",
        ] {
            assert!(!head.contains(gone), "{gone} reached the client: {head}");
        }
        let upstream = String::from_utf8(body).unwrap().to_ascii_lowercase();
        assert!(upstream.contains("x-sent: yes"), "{upstream}");
        // The gateway says where the request came from, replacing what the client said.
        for (field, count) in [
            ("\r\nhost: x\r\n", 1),
            ("\r\nx-forwarded-host: x\r\n", 1),
            ("\r\nx-forwarded-proto: http\r\n", 1),
            ("spoofed", 0),
        ] {
            assert_eq!(
                upstream.matches(field).count(),
                count,
                "{field}: {upstream}"
            );
        }
        for gone in ["x-client-hop", "keep-alive", "te:", "proxy-authorization"] {
            assert!(
                !upstream.contains(gone),
                "{gone} reached the origin: {upstream}"
            );
        }
    }
}

#[tokio::test]
async fn an_answer_head_is_passed_on_as_the_origin_wrote_it_unless_a_filter_looks() {
    // With no outbound filter the gateway copies the origin's fields as they came (no map
    // is built): names keep their case, its Date is the only one, a HEAD answer keeps its
    // length. An outbound filter sees the same fields in the response's map.
    let (origin, _) = scripted_origin(
        |_, head, _| {
            let head_request = head.starts_with("HEAD ");
            format!(
                "HTTP/1.1 200 OK\r\nX-Mixed-Case: v\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\n\
                 Connection: keep-alive\r\nContent-Length: 5\r\n\r\n{}",
                if head_request { "" } else { "hello" }
            )
            .into_bytes()
        },
        None,
    )
    .await;
    let routes = format!(
        r#"{{ "origins": {{ "o": {{ "servers": ["{origin}"], "max_retries": 0 }} }},
             "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ] }}"#
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let looking = FilterChain::builder()
        .outbound(netflix_zuul::filter::outbound_fn(
            "look",
            0,
            move |res, _| {
                let mut fields: Vec<String> = res
                    .headers()
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                    .collect();
                fields.sort();
                s2.lock().unwrap().push(fields.join("|"));
                Ok(())
            },
        ))
        .build()
        .unwrap();
    for chain in [FilterChain::default(), looking] {
        let filtered = chain.has_outbound();
        let g = Gateway::new(RouteTable::from_json(&routes).unwrap(), chain).unwrap();
        let (addr, _stop, _) = start(g).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        s.write_all(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, head, _) = response(&mut s, &mut buf, true).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        let lower = head.to_ascii_lowercase();
        assert_eq!(lower.matches("content-length: 5\r\n").count(), 1, "{head}");
        assert_eq!(lower.matches("\r\ndate: ").count(), 1, "{head}");
        assert!(
            lower.contains("date: tue, 01 jan 2030 00:00:00 gmt"),
            "{head}"
        );
        assert!(!lower.contains("connection:"), "{head}");
        if !filtered {
            assert!(head.contains("\r\nX-Mixed-Case: v\r\n"), "{head}");
        }
        // The connection is still in step: the GET's answer follows, with its body.
        let (status, head, body) = response(&mut s, &mut buf, false).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"hello", "{head}");
        assert_eq!(
            head.to_ascii_lowercase()
                .matches("content-length: 5\r\n")
                .count(),
            1,
            "{head}"
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for fields in seen.iter() {
        assert_eq!(
            fields, "content-length: 5|date: Tue, 01 Jan 2030 00:00:00 GMT|x-mixed-case: v",
            "the filter sees the origin's end-to-end fields"
        );
    }
}
