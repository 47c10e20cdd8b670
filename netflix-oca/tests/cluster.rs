//! A whole topology on loopback: an origin, a regional appliance, two ISP clusters of three
//! edges, the control plane, proactive fill, steering; then a killed edge, a lost control
//! plane and drain mode.

mod common;

use common::*;
use netflix_oca::control::ControlClient;
use netflix_oca::local::{ClusterSpec, LocalCdn, LocalCdnConfig};
use netflix_oca::proactive::{FillManifest, ManifestTitle};
use netflix_oca::steering::SteerError;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

const SEGMENTS: usize = 8;
const SEG_LEN: usize = 150_000;

fn title_files(title: &str) -> Vec<String> {
    let mut v = vec![format!("{title}/master.m3u8")];
    v.extend((0..SEGMENTS).map(|i| format!("{title}/video/seg-{i:03}.m4s")));
    v
}

fn origin_with_titles(name: &str) -> TempDir {
    let mut files: Vec<(String, usize)> = Vec::new();
    for t in ["title-1", "title-2"] {
        for f in title_files(t) {
            let len = if f.ends_with(".m3u8") { 300 } else { SEG_LEN };
            files.push((f, len));
        }
    }
    let refs: Vec<(&str, usize)> = files.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    origin_dir(name, &refs)
}

fn manifest(cluster: &str) -> FillManifest {
    FillManifest {
        cluster: cluster.into(),
        day: "2026-12-07".into(),
        titles: vec![ManifestTitle {
            title: "title-1".into(),
            rank: 0,
            files: title_files("title-1"),
        }],
    }
}

async fn cdn(dir: &TempDir) -> LocalCdn {
    LocalCdn::start(LocalCdnConfig {
        origin_dir: dir.path().to_path_buf(),
        clusters: vec![
            ClusterSpec::new("isp-a", 3, ["10.1.0.0/16"]),
            ClusterSpec::new("isp-b", 3, ["10.2.0.0/16"]),
        ],
        report_interval: Duration::from_millis(100),
        lost_after: Duration::from_secs(2),
        ..LocalCdnConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proactive_fill_steering_and_failover() {
    let dir = origin_with_titles("cluster");
    let cdn = cdn(&dir).await;
    let ip = "10.1.7.7".parse().unwrap();
    assert!(matches!(
        cdn.control.steer(ip, "title-1", "title-1/master.m3u8"),
        Err(SteerError::NotLive(_))
    ));

    cdn.publish(manifest("isp-a"));
    cdn.publish(manifest("isp-b"));
    assert!(
        cdn.wait_live("title-1", Duration::from_secs(10)).await,
        "title-1 goes live"
    );
    // Every cluster holds at least two copies; the regional tier fetched each file from the
    // origin once (one HEAD and one GET a file) however many edges filled at once.
    let origin_requests = cdn.origin.server.stats().requests.load(Ordering::SeqCst);
    // Two or three edges per cluster hold the title, pinned; the others hold nothing.
    for cluster in ["isp-a", "isp-b"] {
        let holders = cdn
            .edges
            .iter()
            .filter(|e| e.cluster == cluster)
            .filter(|e| e.server.filler().unwrap().store().stats().pinned_bytes > 0)
            .count();
        assert!((2..=3).contains(&holders), "{cluster}: {holders} holders");
    }
    assert!(
        origin_requests <= 2 * title_files("title-1").len() as u64,
        "{origin_requests}"
    );

    // Live with two copies; the third edge may still be filling: wait for its report.
    let mut answer = cdn
        .control
        .steer(ip, "title-1", "title-1/master.m3u8")
        .unwrap();
    for _ in 0..100 {
        if answer.content_misses == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = cdn
            .control
            .steer(ip, "title-1", "title-1/master.m3u8")
            .unwrap();
    }
    assert_eq!(answer.cluster, "isp-a");
    assert!(
        answer.urls.len() >= 4,
        "holders, the other edges, the regional tier: {:?}",
        answer.urls
    );
    assert_eq!(answer.content_misses, 0);
    // The player fetches every file from the first URL (segment URLs are relative).
    let first = &answer.urls[0];
    let base = first.trim_end_matches("master.m3u8");
    for (i, f) in title_files("title-1").iter().enumerate() {
        let r = get(&format!("{base}{}", f.trim_start_matches("title-1/")), &[]).await;
        assert_eq!(r.status(), 200, "{f}");
        let len = if i == 0 { 300 } else { SEG_LEN };
        assert!(r.body()[..] == content(i as u64 + 1, len)[..], "{f}");
    }
    // The holder served from its pinned memory: no new fills.
    let before = cdn.origin.server.stats().requests.load(Ordering::SeqCst);
    assert_eq!(before, origin_requests);
    // A URL without its token, or for another title, is refused.
    let unsigned = first.split("/s/").next().unwrap().to_string() + "/title-1/master.m3u8";
    assert_eq!(get(&unsigned, &[]).await.status(), 403);

    // The first edge dies: the player moves to the next URL and plays on.
    assert!(cdn.kill(first));
    assert!(try_get(first).await.is_err());
    let second = &answer.urls[1];
    let r = get(second, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.body()[..] == content(1, 300)[..]);
    // Steering notices the silence and stops offering the dead edge.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let again = cdn
        .control
        .steer(ip, "title-1", "title-1/master.m3u8")
        .unwrap();
    let dead = first.split("/s/").next().unwrap();
    assert!(
        again.urls.iter().all(|u| !u.starts_with(dead)),
        "{:?}",
        again.urls
    );
    assert!(again.health_misses >= 1);

    // Drain: the edge reports it, steering skips it, its open sessions go on.
    let drained = cdn
        .edges
        .iter()
        .find(|e| second.starts_with(&e.url()))
        .unwrap();
    drained
        .drain
        .as_ref()
        .unwrap()
        .store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = cdn
        .control
        .steer(ip, "title-1", "title-1/master.m3u8")
        .unwrap();
    assert!(after.urls.iter().all(|u| !u.starts_with(&drained.url())));
    assert_eq!(
        get(second, &[]).await.status(),
        200,
        "a session already playing goes on"
    );
    let fresh = cdn
        .signer
        .sign_scope("title-1", SystemTime::now() + Duration::from_secs(60));
    let r = get(
        &format!("{}{fresh}/title-1/master.m3u8", drained.url()),
        &[],
    )
    .await;
    assert_eq!(r.status(), 503, "no new session on a draining edge");
    cdn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_cut_off_from_its_control_plane_takes_no_new_sessions() {
    let dir = origin_dir("cluster-lost", &[("t/a.m4s", 1000)]);
    let origin = start_origin(dir.path()).await;
    let signer = netflix_oca::http::sign::UrlSigner::new(b"k".to_vec());
    let tiers: Vec<std::sync::Arc<dyn netflix_oca::fill::Upstream>> = vec![std::sync::Arc::new(
        netflix_oca::http::client::HttpUpstream::new("origin", origin.addr),
    )];
    let edge = start(
        netflix_oca::server::OcaServer::edge(filler(store(1 << 20, None), tiers))
            .signed(signer.clone()),
    )
    .await;
    let session = signer.sign_scope("t", SystemTime::now() + Duration::from_secs(60));
    let url = |token: &str| format!("http://{}{token}/t/a.m4s", edge.addr);
    assert_eq!(get(&url(&session), &[]).await.status(), 200);
    // A control plane nobody answers at.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = ControlClient::new(nowhere, edge.server.clone(), "c", "n", "http://x")
        .interval(Duration::from_millis(50))
        .lost_after(Duration::from_millis(300));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(client.run(async {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!edge.server.accepting());
    let newcomer = signer.sign_scope("t", SystemTime::now() + Duration::from_secs(61));
    assert_eq!(get(&url(&newcomer), &[]).await.status(), 503);
    assert_eq!(
        get(&url(&session), &[]).await.status(),
        200,
        "the session already playing goes on"
    );
    let _ = stop.send(());
    task.await.unwrap();
}
