//! The segment server over real HTTP on loopback: RFC 9110 ranges and conditionals, HEAD,
//! keep-alive, HTTP/2, signed URLs and path escapes, against the origin (a directory) and
//! an edge appliance filling from it, cold and warm.

mod common;

use common::*;
use netflix_oca::http::sign::UrlSigner;
use netflix_oca::server::OcaServer;
use std::time::{Duration, SystemTime};

const CHUNK: u64 = 64 << 10;
const LEN: usize = (3 * CHUNK + CHUNK / 2) as usize;

fn body() -> Vec<u8> {
    content(1, LEN)
}

/// Every case, against one base URL.
async fn range_cases(base: &str) {
    let full = body();
    let url = format!("{base}/title-1/seg-1.m4s");

    let r = get(&url, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), LEN);
    assert_eq!(&r.body()[..], &full[..]);
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(header(&r, "content-type"), "video/iso.segment");
    let etag = header(&r, "etag").to_string();
    let last_modified = header(&r, "last-modified").to_string();
    assert!(etag.starts_with('"'));

    // HEAD: the same headers, no body.
    let h = fetch(&client(), "HEAD", &url, &[]).await;
    assert_eq!(h.status(), 200);
    assert_eq!(header(&h, "content-length"), LEN.to_string());
    assert!(h.body().is_empty());

    // One range across a chunk boundary.
    let (a, b) = (CHUNK as usize - 10, CHUNK as usize + 20);
    let r = get(&url, &[("range", &format!("bytes={a}-{b}"))]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes {a}-{b}/{LEN}"));
    assert_eq!(&r.body()[..], &full[a..=b]);

    // Suffix and open-ended ranges.
    let r = get(&url, &[("range", "bytes=-100")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(&r.body()[..], &full[LEN - 100..]);
    let r = get(&url, &[("range", &format!("bytes={}-", LEN - 5))]).await;
    assert_eq!(&r.body()[..], &full[LEN - 5..]);
    // A last position beyond the end is cut to the end.
    let r = get(&url, &[("range", "bytes=0-999999999")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body().len(), LEN);

    // Several ranges: multipart/byteranges, each part with its own Content-Range.
    let r = get(&url, &[("range", "bytes=0-9,200000-200009")]).await;
    assert_eq!(r.status(), 206);
    let ctype = header(&r, "content-type");
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart");
    assert_eq!(header(&r, "content-length"), r.body().len().to_string());
    let text = r.body();
    let parts: Vec<&[u8]> = split(text, format!("--{boundary}").as_bytes());
    assert_eq!(parts.len(), 4, "preamble, two parts, epilogue");
    for (part, (s, e)) in parts[1..3]
        .iter()
        .zip([(0usize, 10usize), (200_000, 200_010)])
    {
        let head_end = find(part, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&part[..head_end]).unwrap();
        assert!(
            head.contains(&format!("Content-Range: bytes {s}-{}/{LEN}", e - 1)),
            "{head}"
        );
        assert_eq!(&part[head_end + 4..head_end + 4 + (e - s)], &full[s..e]);
    }

    // Unsatisfiable: 416 with the length.
    let r = get(&url, &[("range", &format!("bytes={LEN}-"))]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), format!("bytes */{LEN}"));
    // An invalid Range is ignored.
    let r = get(&url, &[("range", "bytes=9-1")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), LEN);

    // If-Range: a matching validator gives the range, another the whole file.
    let r = get(&url, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(r.status(), 206);
    let r = get(&url, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), LEN);
    let r = get(
        &url,
        &[("range", "bytes=0-9"), ("if-range", &last_modified)],
    )
    .await;
    assert_eq!(r.status(), 206);

    // Conditionals.
    let r = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    assert_eq!(header(&r, "etag"), etag);
    let r = get(&url, &[("if-modified-since", &last_modified)]).await;
    assert_eq!(r.status(), 304);
    let r = get(&url, &[("if-match", "\"other\"")]).await;
    assert_eq!(r.status(), 412);

    // Methods, missing files and paths that try to escape.
    assert_eq!(fetch(&client(), "POST", &url, &[]).await.status(), 405);
    assert_eq!(
        get(&format!("{base}/title-1/nope.m4s"), &[]).await.status(),
        404
    );
    for bad in [
        "/title-1/../../etc/passwd",
        "/title-1/%2e%2e/%2e%2e/etc/passwd",
        "/title-1//seg-1.m4s",
        "/a%00b",
    ] {
        let s = get(&format!("{base}{bad}"), &[]).await.status();
        assert!(s == 400 || s == 404, "{bad}: {s}");
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn split<'a>(mut h: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(h, sep) {
        out.push(&h[..i]);
        h = &h[i + sep.len()..];
    }
    out.push(h);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_answers_rfc_9110_cases() {
    let dir = origin_dir("serving-origin", &[("title-1/seg-1.m4s", LEN)]);
    let origin = start_origin(dir.path()).await;
    range_cases(&format!("http://{}", origin.addr)).await;
    // A symbolic link out of the root is not followed.
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("title-1/escape")).unwrap();
    assert_eq!(
        get(&format!("http://{}/title-1/escape", origin.addr), &[])
            .await
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_answers_rfc_9110_cases_cold_and_warm() {
    let dir = origin_dir("serving-edge", &[("title-1/seg-1.m4s", LEN)]);
    let origin = start_origin(dir.path()).await;
    let edge = start_edge(origin.addr, CHUNK).await;
    let base = format!("http://{}", edge.addr);
    // Cold: the first request fills.
    range_cases(&base).await;
    let fills = edge.server.filler().unwrap().stats();
    assert_eq!(fills.flights, 4, "four chunks, each fetched once");
    // Warm: served from memory; the origin is asked only about the missing file again
    // (a 404 is not cached).
    let before = origin
        .server
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    range_cases(&base).await;
    let after = origin
        .server
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after - before, 1);
    assert_eq!(edge.server.filler().unwrap().stats().flights, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_http2() {
    let dir = origin_dir("serving-h2", &[("a.m4s", 100_000)]);
    let origin = start_origin(dir.path()).await;
    let edge = start_edge(origin.addr, CHUNK).await;
    let url = format!("http://{}/a.m4s", edge.addr);
    let full = content(1, 100_000);
    // HTTP/1.1: many requests over the client's pooled connection.
    let c = client();
    for i in 0..20u64 {
        let r = fetch(
            &c,
            "GET",
            &url,
            &[("range", &format!("bytes={}-{}", i * 1000, i * 1000 + 999))],
        )
        .await;
        assert_eq!(r.version(), http::Version::HTTP_11);
        assert_eq!(
            &r.body()[..],
            &full[i as usize * 1000..i as usize * 1000 + 1000]
        );
    }
    // HTTP/2 by prior knowledge, several streams at once on one connection.
    let h2 = h2_client();
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let (h2, url) = (h2.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            fetch(
                &h2,
                "GET",
                &url,
                &[("range", &format!("bytes={}-{}", i * 5000, i * 5000 + 4999))],
            )
            .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.version(), http::Version::HTTP_2);
        assert_eq!(r.status(), 206);
        assert_eq!(&r.body()[..], &full[i * 5000..i * 5000 + 5000]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls() {
    let dir = origin_dir("serving-signed", &[("t/s.m4s", 1000)]);
    let origin = start_origin(dir.path()).await;
    let signer = UrlSigner::new(b"steering secret".to_vec());
    let tiers: Vec<std::sync::Arc<dyn netflix_oca::fill::Upstream>> = vec![std::sync::Arc::new(
        netflix_oca::http::client::HttpUpstream::new("origin", origin.addr),
    )];
    let edge =
        start(OcaServer::edge(filler(store(CHUNK, None), tiers)).signed(signer.clone())).await;
    let base = format!("http://{}", edge.addr);
    let good = signer.sign("/t/s.m4s", SystemTime::now() + Duration::from_secs(60));
    assert_eq!(
        get(&format!("{base}/t/s.m4s?{good}"), &[]).await.status(),
        200
    );
    assert_eq!(get(&format!("{base}/t/s.m4s"), &[]).await.status(), 403);
    assert_eq!(
        get(&format!("{base}/t/other.m4s?{good}"), &[])
            .await
            .status(),
        403
    );
    let expired = signer.sign("/t/s.m4s", SystemTime::now() - Duration::from_secs(1));
    assert_eq!(
        get(&format!("{base}/t/s.m4s?{expired}"), &[])
            .await
            .status(),
        403
    );
    let forged = good.replace("sig=", "sig=00");
    assert_eq!(
        get(&format!("{base}/t/s.m4s?{forged}"), &[]).await.status(),
        403
    );
    assert_eq!(
        edge.server
            .stats()
            .forbidden
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_lets_a_page_of_another_origin_read_segments() {
    let dir = origin_dir("serving-cors", &[("title-1/seg-1.m4s", 1000)]);
    // Without CORS, no header: a browser would refuse the body to a page of another origin.
    let plain = start_origin(dir.path()).await;
    let r = get(&format!("http://{}/title-1/seg-1.m4s", plain.addr), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), "");

    let server = OcaServer::origin(dir.path())
        .unwrap()
        .cors(http::HeaderValue::from_static("http://player.example"));
    let with = start(server).await;
    let url = format!("http://{}/title-1/seg-1.m4s", with.addr);
    let r = get(
        &url,
        &[("origin", "http://player.example"), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body().len(), 10);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://player.example"
    );
    assert!(header(&r, "access-control-expose-headers").contains("Content-Range"));
    assert_eq!(header(&r, "vary"), "Origin");
    // Errors carry it too, so the page can read the status.
    let r = get(&format!("http://{}/title-1/none.m4s", with.addr), &[]).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://player.example"
    );
    // The preflight of a range request.
    let r = fetch(
        &client(),
        "OPTIONS",
        &url,
        &[
            ("origin", "http://player.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "range"),
        ],
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(header(&r, "access-control-allow-methods").contains("GET"));
    assert!(header(&r, "access-control-allow-headers").contains("Range"));
    // Without CORS, OPTIONS is not a method the server knows.
    let r = fetch(
        &client(),
        "OPTIONS",
        &url.replace(&with.addr.to_string(), &plain.addr.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status(), 405);
}
