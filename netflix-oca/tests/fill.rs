//! Fill: one upstream fetch per cold chunk however many ask, followers streaming while it
//! flies, escalation across tiers, resumed fills, checksums, and what followers see when a
//! fill fails or its first requester goes away.

mod common;

use common::*;
use netflix_oca::fill::Upstream;
use netflix_oca::http::client::HttpUpstream;
use netflix_oca::server::OcaServer;
use netflix_oca::store::ChunkId;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_for_a_cold_chunk_make_one_upstream_fetch() {
    let len = 512 << 10;
    let dir = origin_dir("fill-thousand", &[("hot/seg.m4s", len)]);
    let origin = start_origin(dir.path()).await;
    let edge = start_edge(origin.addr, 1 << 20).await;
    let url = format!("http://{}/hot/seg.m4s", edge.addr);
    let want = content(1, len);
    let client = client();
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (client, url, barrier) = (client.clone(), url.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fetch(&client, "GET", &url, &[]).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.body()[..] == want[..], "every body is the whole file");
    }
    // One HEAD for the metadata and one GET for the chunk.
    assert_eq!(origin.server.stats().requests.load(Ordering::SeqCst), 2);
    assert_eq!(edge.server.filler().unwrap().stats().flights, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_stream_a_slow_fill_and_it_is_fetched_once() {
    let data = content(7, 300_000);
    let slow = Scripted::new(
        "slow",
        "s.m4s",
        data.clone(),
        Script::trickle(10_000, Duration::from_millis(10)),
    );
    let edge = start_edge_with(slow.clone(), 1 << 20).await;
    let url = format!("http://{}/s.m4s", edge.addr);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // Arrive over the whole flight, not all at once.
            tokio::time::sleep(Duration::from_millis(i)).await;
            try_get(&url).await
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert!(body[..] == data[..]);
    }
    assert_eq!(slow.gets.load(Ordering::SeqCst), 1);
    let stats = edge.server.filler().unwrap().stats();
    assert_eq!(stats.flights, 1);
    assert!(
        stats.followers > 100,
        "most requests followed the flight: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tier_escalates_to_the_next() {
    let dir = origin_dir("fill-escalate", &[("a.m4s", 70_000)]);
    let origin = start_origin(dir.path()).await;
    // A port that nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let tiers: Vec<Arc<dyn Upstream>> = vec![
        Arc::new(HttpUpstream::peer("dead-peer", dead)),
        Arc::new(HttpUpstream::new("origin", origin.addr)),
    ];
    let edge = start(OcaServer::edge(filler(store(32 << 10, None), tiers))).await;
    let r = get(&format!("http://{}/a.m4s", edge.addr), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.body()[..] == content(1, 70_000)[..]);
    assert!(
        edge.server.filler().unwrap().stats().escalations >= 3,
        "each chunk skipped the dead peer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_broken_off_resumes_from_the_next_tier_and_is_checked_whole() {
    let dir = origin_dir("fill-resume", &[("r.m4s", 200_000)]);
    let origin = start_origin(dir.path()).await;
    let data = content(1, 200_000);
    let flaky = Scripted::new(
        "flaky-parent",
        "r.m4s",
        data.clone(),
        Script {
            frame: 8_000,
            break_after: Some(90_000),
            ..Script::default()
        },
    );
    let tiers: Vec<Arc<dyn Upstream>> = vec![
        flaky.clone(),
        Arc::new(HttpUpstream::new("origin", origin.addr)),
    ];
    let store = store(1 << 20, None);
    let edge = start(OcaServer::edge(filler(store.clone(), tiers))).await;
    let r = get(&format!("http://{}/r.m4s", edge.addr), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.body()[..] == data[..]);
    // The origin sent only the missing bytes, then the digest of the whole chunk.
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 1);
    assert!(store.contains(ChunkId::new("r.m4s", 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_bytes_fail_the_fill_and_are_never_stored_or_served_complete() {
    let data = content(3, 100_000);
    let liar = Scripted::new(
        "liar",
        "c.m4s",
        data,
        Script {
            corrupt: true,
            ..Script::default()
        },
    );
    let store = store(1 << 20, None);
    let edge = start(OcaServer::edge(filler(
        store.clone(),
        vec![liar as Arc<dyn Upstream>],
    )))
    .await;
    let got = try_get(&format!("http://{}/c.m4s", edge.addr)).await;
    assert!(
        got.is_err(),
        "the body breaks off instead of ending: {:?}",
        got.map(|(s, b)| (s, b.len()))
    );
    assert!(!store.contains(ChunkId::new("c.m4s", 0)));
    assert_eq!(edge.server.filler().unwrap().stats().failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_failed_fill_see_an_error_not_a_short_body() {
    let data = content(4, 200_000);
    let dying = Scripted::new(
        "dying",
        "d.m4s",
        data,
        Script {
            frame: 10_000,
            frame_delay: Duration::from_millis(5),
            break_after: Some(120_000),
            ..Script::default()
        },
    );
    let edge = start_edge_with(dying.clone(), 1 << 20).await;
    let url = format!("http://{}/d.m4s", edge.addr);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move { try_get(&url).await }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap().is_err(),
            "no follower sees the short body as complete"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requester_going_away_does_not_cancel_the_fill() {
    let data = content(5, 200_000);
    let slow = Scripted::new(
        "slow",
        "l.m4s",
        data.clone(),
        Script::trickle(10_000, Duration::from_millis(10)),
    );
    let edge = start_edge_with(slow.clone(), 1 << 20).await;
    let url = format!("http://{}/l.m4s", edge.addr);
    let leader = {
        let url = url.clone();
        tokio::spawn(async move { try_get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = {
        let url = url.clone();
        tokio::spawn(async move { try_get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let (status, body) = follower.await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(body[..] == data[..], "the follower gets every byte");
    assert_eq!(slow.gets.load(Ordering::SeqCst), 1);
}
