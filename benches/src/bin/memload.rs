//! A memcached load generator: netflix-evcache against the `async-memcached` and `memcache`
//! crates, on the same local memcached servers, in one run.
//!
//! Closed loop (`--rate 0`): `--concurrency` callers each issue their next request as soon
//! as the last one answered, for `--duration` seconds: the peak rate. Open loop
//! (`--rate N`): requests start on a schedule of N per second. For `evcache`, a pacer
//! thread starts each as its own task when due (however many are outstanding) and its
//! latency counts from when it was due: no coordinated omission. For the peers, the
//! `--concurrency` callers share the schedule; tokio's timer wakes them on millisecond
//! ticks, so a request's latency counts from its send unless it went out more than 1.5 ms
//! late (then from when it was due).
//!
//! Every client gets the same concurrency:
//! * `evcache`: one shared `EvCache` (its default 2 pipelined connections per node),
//!   `--concurrency` tokio tasks.
//! * `async-memcached`: one client (one connection) per task, `--concurrency` tasks: the crate's
//!   client takes `&mut self`, so one per caller is how it is used concurrently.
//! * `memcache`: one client per OS thread, `--concurrency` threads (the crate is blocking).
//!
//! The async clients run on one tokio runtime with `--workers` threads (default: one per
//! core, tokio's default).
//!
//! Usage:
//! `memload --servers HOST:PORT[,HOST:PORT...] --client evcache|async-memcached|memcache
//!  --op get|set [--concurrency 32] [--duration 5] [--rate 0] [--keys 10000]
//!  [--value-size 100] [--workers CORES] [--latch one|all] [--connections 2] [--json]`
//!
//! With several servers, `evcache` treats each as a zone holding a full copy (a replicated
//! set); the peers use only the first.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line load generator"
)]
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the memcache peer is blocking and runs on OS threads with wall-clock deadlines"
)]

use async_memcached::AsciiProtocol;
use netflix_evcache::{EvCache, NodeConfig, Policy, Topology};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Args {
    servers: Vec<String>,
    client: String,
    op: String,
    concurrency: usize,
    duration: Duration,
    rate: f64,
    keys: usize,
    value_size: usize,
    workers: usize,
    latch: Policy,
    connections: usize,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        servers: vec![],
        client: "evcache".into(),
        op: "get".into(),
        concurrency: 32,
        duration: Duration::from_secs(5),
        rate: 0.0,
        keys: 10_000,
        value_size: 100,
        // tokio's own default: one worker per core.
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        latch: Policy::One,
        connections: NodeConfig::default().connections,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: `{v}`"));
        match flag.as_str() {
            "--servers" => a.servers = v.split(',').map(str::to_string).collect(),
            "--client" => a.client = v,
            "--op" => a.op = v,
            "--concurrency" => a.concurrency = num(&v)? as usize,
            "--duration" => a.duration = Duration::from_secs_f64(num(&v)?),
            "--rate" => a.rate = num(&v)?,
            "--keys" => a.keys = num(&v)? as usize,
            "--value-size" => a.value_size = num(&v)? as usize,
            "--workers" => a.workers = num(&v)? as usize,
            "--connections" => a.connections = num(&v)? as usize,
            "--latch" => {
                a.latch = match v.as_str() {
                    "one" => Policy::One,
                    "all" => Policy::All,
                    "quorum" => Policy::Quorum,
                    _ => return Err(format!("--latch: `{v}`")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.servers.is_empty() {
        return Err("--servers is required".into());
    }
    if !matches!(a.op.as_str(), "get" | "set") {
        return Err(format!("--op: `{}` (get or set)", a.op));
    }
    a.concurrency = a.concurrency.max(1);
    a.duration = a.duration.min(Duration::from_secs(120));
    Ok(a)
}

/// One caller's latencies (µs) and its errors.
#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    errors: u64,
}

/// When caller `i`'s `n`-th request is due (open loop), or `None` (closed loop).
fn due(a: &Args, start: Instant, i: usize, n: u64) -> Option<Instant> {
    if a.rate <= 0.0 {
        return None;
    }
    let per_caller = a.rate / a.concurrency as f64;
    let offset = i as f64 / a.rate;
    Some(start + Duration::from_secs_f64(offset + n as f64 / per_caller))
}

/// The load's start and end, taken once the keys are loaded and the connections open.
fn clock(a: &Args) -> (Instant, Instant) {
    let start = Instant::now();
    (start, start + a.duration)
}

fn key(i: u64, keys: usize) -> String {
    format!("memload:{:08}", i % keys as u64)
}

async fn run_async(a: Arc<Args>) -> Result<Vec<Tally>, String> {
    let value = vec![b'v'; a.value_size];
    let mut tasks = Vec::new();
    match a.client.as_str() {
        "evcache" => {
            let nodes: Vec<String> = a
                .servers
                .iter()
                .enumerate()
                .map(|(z, s)| format!("zone-{z}={s}"))
                .collect();
            let topology: Topology = nodes.join(";").parse().map_err(|e| format!("{e}"))?;
            let cache = EvCache::builder("MEMLOAD")
                .topology(topology)
                .latch(a.latch)
                .node_config(NodeConfig {
                    connections: a.connections,
                    ..NodeConfig::default()
                })
                .build()
                .map_err(|e| e.to_string())?;
            for i in 0..a.keys {
                let _ = cache.set(&key(i as u64, a.keys), value.clone(), None).await;
            }
            if a.rate > 0.0 {
                return open_loop(cache, a, value).await;
            }
            let (start, deadline) = clock(&a);
            for i in 0..a.concurrency {
                let (cache, a, value) = (cache.clone(), a.clone(), value.clone());
                tasks.push(tokio::spawn(async move {
                    let mut t = Tally::default();
                    let mut n = 0u64;
                    loop {
                        let at = due(&a, start, i, n);
                        if let Some(at) = at {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        let sent = Instant::now();
                        if sent >= deadline {
                            break;
                        }
                        let k = key(n * a.concurrency as u64 + i as u64, a.keys);
                        let ok = if a.op == "get" {
                            matches!(cache.get(&k).await, Ok(Some(_)))
                        } else {
                            matches!(cache.set(&k, value.clone(), None).await, Ok(l) if l.is_met())
                        };
                        record(&mut t, at.unwrap_or(sent), sent, ok);
                        n += 1;
                    }
                    t
                }));
            }
        }
        "async-memcached" => {
            let dsn = format!("tcp://{}", a.servers[0]);
            let mut c = async_memcached::Client::new(&dsn)
                .await
                .map_err(|e| format!("{e:?}"))?;
            for i in 0..a.keys {
                let _ = c
                    .set(key(i as u64, a.keys), &value[..], Some(900), None)
                    .await;
            }
            let mut clients = Vec::with_capacity(a.concurrency);
            for _ in 0..a.concurrency {
                clients.push(
                    async_memcached::Client::new(&dsn)
                        .await
                        .map_err(|e| format!("{e:?}"))?,
                );
            }
            let (start, deadline) = clock(&a);
            for (i, mut c) in clients.into_iter().enumerate() {
                let (a, value) = (a.clone(), value.clone());
                tasks.push(tokio::spawn(async move {
                    let mut t = Tally::default();
                    let mut n = 0u64;
                    loop {
                        let at = due(&a, start, i, n);
                        if let Some(at) = at {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        let sent = Instant::now();
                        if sent >= deadline {
                            break;
                        }
                        let k = key(n * a.concurrency as u64 + i as u64, a.keys);
                        let ok = if a.op == "get" {
                            matches!(c.get(&k).await, Ok(Some(_)))
                        } else {
                            c.set(&k, &value[..], Some(900), None).await.is_ok()
                        };
                        record(&mut t, at.unwrap_or(sent), sent, ok);
                        n += 1;
                    }
                    t
                }));
            }
        }
        other => return Err(format!("unknown async client `{other}`")),
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Open loop for `evcache`: a pacer thread (precise to about 0.1 ms, unlike tokio's
/// millisecond timer) starts each request when it is due, as its own task, however many
/// are outstanding; latency counts from when it was due.
async fn open_loop(cache: EvCache, a: Arc<Args>, value: Vec<u8>) -> Result<Vec<Tally>, String> {
    /// Outstanding requests beyond this are not sent and count as errors (overload).
    const MAX_OUTSTANDING: usize = 16_384;
    // The pacer sends, every tick, the due times of the requests that came due; the
    // dispatcher (on the runtime) starts them. One wake-up per tick, not per request.
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<(u64, Instant)>>();
    let pacer = {
        let a = a.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u64;
            loop {
                let now = Instant::now();
                if now >= start + a.duration {
                    break;
                }
                let mut batch = Vec::new();
                loop {
                    let due = start + Duration::from_secs_f64(n as f64 / a.rate);
                    if due > now {
                        break;
                    }
                    batch.push((n, due));
                    n += 1;
                }
                if !batch.is_empty() && due_tx.send(batch).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, bool)>();
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut shed = 0u64;
    while let Some(batch) = due_rx.recv().await {
        for (n, due) in batch {
            if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
                shed += 1;
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let (cache, tx, a, value, outstanding) = (
                cache.clone(),
                tx.clone(),
                a.clone(),
                value.clone(),
                outstanding.clone(),
            );
            tokio::spawn(async move {
                let k = key(n, a.keys);
                let ok = if a.op == "get" {
                    matches!(cache.get(&k).await, Ok(Some(_)))
                } else {
                    matches!(cache.set(&k, value, None).await, Ok(l) if l.is_met())
                };
                let us = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                outstanding.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send((us, ok));
            });
        }
    }
    drop(tx);
    let mut t = Tally::default();
    while let Some((us, ok)) = rx.recv().await {
        t.micros.push(us);
        if !ok {
            t.errors += 1;
        }
    }
    tokio::task::spawn_blocking(move || pacer.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the pacer thread panicked".to_string())?;
    t.errors += shed;
    Ok(vec![t])
}

fn run_memcache(a: &Arc<Args>) -> Result<Vec<Tally>, String> {
    let url = format!("memcache://{}?timeout=1&tcp_nodelay=true", a.servers[0]);
    let value = vec![b'v'; a.value_size];
    let c = memcache::Client::connect(url.as_str()).map_err(|e| e.to_string())?;
    for i in 0..a.keys {
        let _ = c.set(&key(i as u64, a.keys), &value[..], 900);
    }
    let mut clients = Vec::with_capacity(a.concurrency);
    for _ in 0..a.concurrency {
        clients.push(memcache::Client::connect(url.as_str()).map_err(|e| e.to_string())?);
    }
    let (start, deadline) = clock(a);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (a, value, stop) = (a.clone(), value.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut t = Tally::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let at = due(&a, start, i, n);
                if let Some(at) = at {
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                }
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                let k = key(n * a.concurrency as u64 + i as u64, a.keys);
                let ok = if a.op == "get" {
                    matches!(c.get::<Vec<u8>>(&k), Ok(Some(_)))
                } else {
                    c.set(&k, &value[..], 900).is_ok()
                };
                record(&mut t, at.unwrap_or(sent), sent, ok);
                n += 1;
            }
            t
        }));
    }
    let mut out = Vec::new();
    for t in threads {
        out.push(t.join().map_err(|_| "a load thread panicked".to_string())?);
    }
    stop.store(true, Ordering::Relaxed);
    Ok(out)
}

/// How late a request may go out before its latency counts from when it was due: tokio's
/// timer fires on millisecond ticks, so an open-loop caller wakes up to a tick late.
/// Within that, latency counts from the send; later than that, the generator (or the
/// client) fell behind, and the wait counts too (no coordinated omission).
const PACING_SLACK: Duration = Duration::from_micros(1500);

fn record(t: &mut Tally, due: Instant, sent: Instant, ok: bool) {
    let from = if sent.saturating_duration_since(due) <= PACING_SLACK {
        sent
    } else {
        due
    };
    let us = from.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    t.micros.push(us);
    if !ok {
        t.errors += 1;
    }
}

fn main() {
    let a = match parse() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("memload: {e}");
            std::process::exit(2);
        }
    };
    let tallies = if a.client == "memcache" {
        run_memcache(&a)
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.workers.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(run_async(a.clone())))
    };
    let tallies = match tallies {
        Ok(t) => t,
        Err(e) => {
            eprintln!("memload: {e}");
            std::process::exit(1);
        }
    };
    let mut all: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.micros.iter().copied())
        .collect();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    let ops = all.len() as f64 / a.duration.as_secs_f64();
    if a.json {
        println!(
            "{{\"client\":\"{}\",\"op\":\"{}\",\"concurrency\":{},\"rate\":{},\"ops_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"errors\":{},\"requests\":{}}}",
            a.client,
            a.op,
            a.concurrency,
            a.rate,
            ops,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            errors,
            all.len()
        );
    } else {
        println!(
            "{:<16} {:<4} c={:<4} {:>10.0} ops/s  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  errors {}",
            a.client,
            a.op,
            a.concurrency,
            ops,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            errors
        );
    }
}
