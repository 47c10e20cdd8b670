//! A netflix-zuul gateway for the proxy benchmark (`scripts/bench-zuul.sh`): five no-op
//! inbound filters (or `FILTERS` of them), one route proxying everything to ORIGIN,
//! `THREADS` runtime workers. Prints `READY <addr>` and runs until stdin closes.
//!
//! `zuulserve ORIGIN|static [THREADS] [FILTERS]`
#![allow(clippy::print_stdout, reason = "a benchmark tool reports its address")]

use netflix_zuul::Gateway;
use netflix_zuul::route::RouteTable;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let gateway = Gateway::new(routes, chain)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("READY {}", listener.local_addr()?);
        tokio::spawn(gateway.serve(listener, std::future::pending()));
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        })
        .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
