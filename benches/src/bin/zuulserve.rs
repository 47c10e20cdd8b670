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
    // The runtime. By default a single-threaded runtime and listening socket per worker
    // thread (`Workers`), as nginx's worker processes. With one worker, that worker is the
    // main thread itself: the process then has a single thread, as an nginx worker process
    // has, and Linux skips the reference count on every socket a system call looks up
    // (shared file tables pay it). The gateway's background tasks run beside it.
    // `ZUUL_RUNTIME=steal`: tokio's work-stealing runtime with THREADS workers instead.
    let steal = std::env::var("ZUUL_RUNTIME").is_ok_and(|m| m == "steal");
    let event_interval = std::env::var("ZUUL_EVENT_INTERVAL")
        .ok()
        .and_then(|n| n.parse().ok());
    let inline = !steal && threads == 1;
    let rt = if steal {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .event_interval(if inline {
                event_interval.unwrap_or(netflix_zuul::workers::DEFAULT_EVENT_INTERVAL)
            } else {
                // (Only background tasks run here.)
                61
            })
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let gateway = Gateway::new(routes, chain)?;
        let stdin_closed = stdin_closed();
        if inline || steal {
            // The gateway on this runtime: its one thread, or tokio's workers.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("READY {}", listener.local_addr()?);
            gateway.serve(listener, stdin_closed).await?;
        } else {
            let mut workers = Workers::bind("127.0.0.1:0".parse()?, threads).await?;
            if let Some(n) = event_interval {
                workers = workers.event_interval(n);
            }
            println!("READY {}", workers.local_addr());
            workers.serve(gateway, stdin_closed).await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Completes when stdin reaches its end. A pipe or FIFO is watched by the runtime's own
/// poller (no thread); anything else (a file, a terminal) by a blocking read on a thread.
async fn stdin_closed() {
    use std::os::fd::AsFd as _;
    use tokio::io::AsyncReadExt as _;
    let mut sink = [0u8; 64];
    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| tokio::net::unix::pipe::Receiver::from_file(std::fs::File::from(fd)));
    if let Ok(mut pipe) = pipe {
        while matches!(pipe.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    })
    .await;
}
