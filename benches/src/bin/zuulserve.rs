//! A netflix-zuul gateway for the proxy benchmark (`scripts/bench-zuul.sh`): five no-op
//! inbound filters (or `FILTERS` of them), one route proxying everything to ORIGIN,
//! `THREADS` runtime workers (see `ZUUL_RUNTIME` below). Prints `READY <addr>` and runs
//! until stdin closes (then drains).
//!
//! `zuulserve ORIGIN|static [THREADS] [FILTERS]`
//!
//! `ZUUL_EVENT_INTERVAL=N` sets the workers' event interval (`Workers::event_interval`).
#![allow(clippy::print_stdout, reason = "a benchmark tool reports its address")]

use netflix_zuul::Gateway;
use netflix_zuul::route::RouteTable;
use netflix_zuul::workers::Workers;
use std::io::Read as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let origin = args
        .next()
        .ok_or("usage: zuulserve ORIGIN [THREADS] [FILTERS]")?;
    let threads: usize = args.next().map_or(Ok(1), |t| t.parse())?;
    let filters: usize = args.next().map_or(Ok(5), |t| t.parse())?;
    // `static` answers from the gateway itself: the proxy's cost is the difference.
    let routes = RouteTable::from_json(&if origin == "static" {
        r#"{ "routes": [ { "name": "all", "path_prefix": "/", "endpoint": { "static": { "status": 200, "body": "" } } } ] }"#.to_string()
    } else {
        format!(
            r#"{{ "origins": {{ "o": {{ "servers": ["{origin}"], "max_retries": 0 }} }},
             "routes": [ {{ "name": "all", "path_prefix": "/", "endpoint": {{ "proxy": "o" }} }} ] }}"#
        )
    })?;
    let chain = benches::noop_chain(filters)?;
    // The runtime: by default `Workers`, a single-threaded runtime and listening socket per
    // thread, as nginx's worker processes (the main runtime keeps only background tasks).
    // `ZUUL_RUNTIME=steal`: tokio's work-stealing runtime with THREADS workers instead.
    let steal = std::env::var("ZUUL_RUNTIME").is_ok_and(|m| m == "steal");
    let rt = if steal {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let gateway = Gateway::new(routes, chain)?;
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = [0u8; 64];
                while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            })
            .await;
        };
        if !steal {
            let mut workers = Workers::bind("127.0.0.1:0".parse()?, threads).await?;
            if let Some(n) = std::env::var("ZUUL_EVENT_INTERVAL")
                .ok()
                .and_then(|n| n.parse().ok())
            {
                workers = workers.event_interval(n);
            }
            println!("READY {}", workers.local_addr());
            workers.serve(gateway, stdin_closed).await?;
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("READY {}", listener.local_addr()?);
            gateway.serve(listener, stdin_closed).await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
