//! A small Open Connect topology on loopback, end to end.
//!
//! An origin serves a title (a master playlist and 12 two-second segments of generated
//! bytes); a regional appliance fills from it; two ISP clusters of three edges each place
//! the title by consistent hashing and fill it proactively; the control plane takes their
//! health reports and steers clients. Three clients in each ISP are steered, fetch the
//! whole title from the first URL of their answer, and one edge is then killed to show the
//! players moving to the next URL.
//!
//! ```text
//! cargo run --release -p netflix-oca --example cluster
//! ```
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use netflix_oca::local::{ClusterSpec, LocalCdn, LocalCdnConfig};
use netflix_oca::proactive::{FillManifest, ManifestTitle};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SEGMENTS: usize = 12;

fn files(title: &str) -> Vec<String> {
    let mut v = vec![format!("{title}/master.m3u8")];
    v.extend((0..SEGMENTS).map(|i| format!("{title}/video/seg-{i:03}.m4s")));
    v
}

async fn get(client: &reqwest_lite::Client, url: &str) -> Result<usize, String> {
    client.get(url).await
}

/// A minimal HTTP GET over hyper, so the example needs nothing beyond the crate's stack.
mod reqwest_lite {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    #[derive(Clone)]
    pub(crate) struct Client(hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>);

    impl Client {
        pub(crate) fn new() -> Self {
            Self(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http())
        }

        /// The body length of a 200, or why not.
        pub(crate) async fn get(&self, url: &str) -> Result<usize, String> {
            let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
            let res = self.0.get(uri).await.map_err(|e| format!("{e}"))?;
            if res.status() != 200 {
                return Err(format!("status {}", res.status()));
            }
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{e}"))?;
            Ok(body.to_bytes().len())
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let dir = std::env::temp_dir().join(format!("oca-cluster-example-{}", std::process::id()));
    for f in files("title-81") {
        let path = dir.join(&f);
        std::fs::create_dir_all(path.parent().ok_or("a parent")?)?;
        let len = if f.ends_with(".m3u8") { 512 } else { 750_000 };
        std::fs::write(&path, vec![b'x'; len])?;
    }
    println!(
        "origin: {} files of title-81 in {}",
        SEGMENTS + 1,
        dir.display()
    );

    let cdn = LocalCdn::start(LocalCdnConfig {
        origin_dir: dir.clone(),
        clusters: vec![
            ClusterSpec::new("isp-a", 3, ["10.1.0.0/16"]),
            ClusterSpec::new("isp-b", 3, ["10.2.0.0/16", "2001:db8::/32"]),
        ],
        report_interval: Duration::from_millis(200),
        lost_after: Duration::from_secs(1),
        ..LocalCdnConfig::default()
    })
    .await?;
    println!(
        "origin {}, regional {}, control plane {}",
        cdn.origin.url(),
        cdn.regional.url(),
        cdn.control_addr
    );
    for e in &cdn.edges {
        println!("  {:<12} {}", e.name, e.url());
    }

    for cluster in ["isp-a", "isp-b"] {
        cdn.publish(FillManifest {
            cluster: cluster.into(),
            day: "today".into(),
            titles: vec![ManifestTitle {
                title: "title-81".into(),
                rank: 0,
                files: files("title-81"),
            }],
        });
    }
    let live = cdn.wait_live("title-81", Duration::from_secs(20)).await;
    println!("\nproactive fill: title-81 live = {live}");
    for e in &cdn.edges {
        let s = e
            .server
            .filler()
            .map(|f| f.store().stats())
            .unwrap_or_default();
        println!("  {:<12} pinned {:>9} bytes", e.name, s.pinned_bytes);
    }

    let client = reqwest_lite::Client::new();
    println!("\nsteering and playback:");
    let mut first_urls = Vec::new();
    for ip in [
        "10.1.0.10",
        "10.1.9.9",
        "10.1.200.1",
        "10.2.0.10",
        "10.2.5.5",
        "2001:db8::77",
    ] {
        let a = cdn
            .control
            .steer(ip.parse()?, "title-81", "title-81/master.m3u8")?;
        let base = a.urls[0].trim_end_matches("master.m3u8").to_string();
        let mut bytes = 0;
        for f in files("title-81") {
            bytes += get(
                &client,
                &format!("{base}{}", f.trim_start_matches("title-81/")),
            )
            .await?;
        }
        println!(
            "  {ip:<14} -> {} ({} URLs, content misses {}, health misses {}); fetched {bytes} bytes from {}",
            a.cluster,
            a.urls.len(),
            a.content_misses,
            a.health_misses,
            a.urls[0].split("/s/").next().unwrap_or("")
        );
        first_urls.push(a.urls);
    }

    let victim = first_urls[0][0].clone();
    let victim_base = victim.split("/s/").next().unwrap_or("").to_string();
    cdn.kill(&victim);
    println!("\nkilled the edge at {victim_base}");
    for urls in first_urls.iter().filter(|u| u[0].starts_with(&victim_base)) {
        for (i, u) in urls.iter().enumerate() {
            match get(&client, u).await {
                Ok(n) => {
                    println!(
                        "  player moved to URL #{} ({}): {n} bytes",
                        i + 1,
                        u.split("/s/").next().unwrap_or("")
                    );
                    break;
                }
                Err(e) => println!("  URL #{} failed: {e}", i + 1),
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let a = cdn
        .control
        .steer("10.1.0.10".parse()?, "title-81", "title-81/master.m3u8")?;
    println!(
        "  steering now: {} URLs, health misses {} (the dead edge is no longer offered: {})",
        a.urls.len(),
        a.health_misses,
        a.urls.iter().all(|u| !u.starts_with(&victim_base))
    );

    println!("\nappliances:");
    println!(
        "  {:<12} {:>9} {:>12} {:>8} {:>8}",
        "name", "requests", "bytes", "mem hit", "fills"
    );
    for e in [&cdn.regional].into_iter().chain(cdn.edges.iter()) {
        let s = e.server.stats();
        let (hits, fills) = e
            .server
            .filler()
            .map(|f| (f.store().stats().memory_hits, f.stats().flights))
            .unwrap_or_default();
        println!(
            "  {:<12} {:>9} {:>12} {:>8} {:>8}",
            e.name,
            s.requests.load(Ordering::Relaxed),
            s.bytes.load(Ordering::Relaxed),
            hits,
            fills
        );
    }
    println!(
        "  origin answered {} requests",
        cdn.origin.server.stats().requests.load(Ordering::Relaxed)
    );
    cdn.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
