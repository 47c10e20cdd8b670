//! A gateway driven by a route file, reloaded when the file changes.
//!
//! ```text
//! cargo run --release -p netflix-zuul --example gateway -- \
//!     --routes netflix-zuul/examples/routes.json [--listen 127.0.0.1:8080] [--duration SECS]
//! ```
//!
//! Inbound filters: a bad-agent filter (403 for user agents starting with `BadBot`) and a
//! request-id tagger; outbound: a `x-zuul-route` header. The route file is checked every
//! second and reloaded when it changes (a bad file is refused and the old table stays).
//! With `--duration` it drains and exits after that many seconds.
#![allow(clippy::print_stdout, reason = "an example prints where it listens")]

use netflix_zuul::Gateway;
use netflix_zuul::filter::{FilterChain, Flow, inbound_fn, outbound_fn};
use netflix_zuul::route::RouteTable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Args {
    routes: String,
    listen: String,
    duration: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut routes = None;
    let mut listen = "127.0.0.1:8080".to_string();
    let mut duration = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--routes" => routes = Some(value()?),
            "--listen" => listen = value()?,
            "--duration" => {
                duration = Some(value()?.parse().map_err(|_| "--duration takes seconds")?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        routes: routes.ok_or("--routes FILE is required")?,
        listen,
        duration,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = args().map_err(|e| {
        format!("{e}\nusage: gateway --routes FILE [--listen ADDR] [--duration SECS]")
    })?;
    let table = RouteTable::load(&args.routes)?;
    static IDS: AtomicU64 = AtomicU64::new(1);
    let chain = FilterChain::builder()
        .inbound(inbound_fn("bad-agents", 0, |req, _| {
            match req.headers().get("user-agent") {
                Some(ua) if ua.as_bytes().starts_with(b"BadBot") => Flow::respond(403, "no bots\n"),
                _ => Flow::Continue,
            }
        }))
        .inbound(inbound_fn("request-id", 10, |req, _| {
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            if let Ok(v) = format!("zuul-{id}").parse() {
                req.headers_mut().insert("x-request-id", v);
            }
            Flow::Continue
        }))
        .outbound(outbound_fn("route-header", 0, |res, ctx| {
            if let Some(Ok(v)) = ctx.route.as_deref().map(str::parse) {
                res.headers_mut().insert("x-zuul-route", v);
            }
            Ok(())
        }))
        .build()?;
    let gateway = Gateway::new(table, chain)?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("gateway listening on http://{}", listener.local_addr()?);

    // Reload the route file when it changes.
    let (g, path) = (gateway.clone(), args.routes.clone());
    tokio::spawn(async move {
        let mut last = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if now != last {
                last = now;
                match RouteTable::load(&path).and_then(|t| g.reload(t)) {
                    Ok(()) => println!("reloaded {path}"),
                    Err(e) => println!("kept the old routes: {e}"),
                }
            }
        }
    });
    let duration = args.duration;
    gateway
        .serve(listener, async move {
            match duration {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await?;
    println!("drained; bye");
    Ok(())
}
