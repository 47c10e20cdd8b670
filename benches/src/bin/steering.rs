//! Steering latency (goal: p99 ≤ 50 µs with 10 k prefixes and 100 OCAs): one steering
//! decision (longest-prefix match, candidate ranking, a signed URL per candidate) timed
//! call by call, for 10,000 prefixes (/16 to /28, IPv4 and IPv6) over (a) one cluster of
//! 100 OCAs and (b) ten clusters of 10, every OCA holding the title.
//!
//! `cargo run --release -p benches --bin steering [-- CALLS]`
#![allow(clippy::print_stdout, reason = "a benchmark tool prints its table")]
#![allow(
    clippy::disallowed_types,
    reason = "wall-clock timing of single calls, outside any runtime"
)]

use netflix_oca::http::sign::UrlSigner;
use netflix_oca::placement::{Node, Placement};
use netflix_oca::steering::{LiveRule, NodeStatus, Prefix, Steering};
use std::net::IpAddr;
use std::time::Instant;

fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn build(clusters: usize, per_cluster: usize, prefixes: usize) -> (Steering, Vec<IpAddr>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = rt.enter();
    let mut s = Steering::new(
        UrlSigner::new(b"steering-bench".to_vec()),
        LiveRule {
            copies: 1,
            clusters: 1,
        },
    );
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut clients = Vec::new();
    let mut table: Vec<Vec<Prefix>> = vec![Vec::new(); clusters];
    for i in 0..prefixes {
        let r = rng(&mut x);
        let (p, ip) = if i % 10 == 9 {
            let a = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(r as u32) << 64);
            let len = 32 + (r % 33) as u8;
            (
                format!("{}/{len}", std::net::Ipv6Addr::from(a)),
                IpAddr::from(std::net::Ipv6Addr::from(a | 0x77)),
            )
        } else {
            let len = 16 + (r % 13) as u8;
            let a = (r >> 32) as u32 & (u32::MAX << (32 - len));
            (
                format!("{}/{len}", std::net::Ipv4Addr::from(a)),
                IpAddr::from(std::net::Ipv4Addr::from(a | 1)),
            )
        };
        table[i % clusters].push(p.parse().expect("a prefix"));
        clients.push(ip);
    }
    for (c, prefixes) in table.into_iter().enumerate() {
        let nodes =
            (0..per_cluster).map(|n| Node::new(format!("c{c}-oca-{n}"), format!("c{c}-host-{n}")));
        s.add_cluster(
            format!("c{c}"),
            Placement::new(nodes).expect("a cluster"),
            prefixes,
        );
        for n in 0..per_cluster {
            s.report(
                &format!("c{c}"),
                &format!("c{c}-oca-{n}"),
                NodeStatus {
                    base_url: format!("http://10.{c}.{}.{}:80", n / 250, n % 250),
                    titles: vec!["title-81".into()],
                    ..NodeStatus::default()
                },
            );
        }
    }
    (s, clients)
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().expect("CALLS is a number"));
    println!("| prefixes | clusters x OCAs | p50 | p99 | p99.9 | max | goal p99 <= 50 us |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    for (clusters, per) in [(1, 100), (10, 10)] {
        let (s, clients) = build(clusters, per, 10_000);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        let mut times = Vec::with_capacity(calls);
        let mut x = 42u64;
        for _ in 0..calls {
            let ip = clients[(rng(&mut x) % clients.len() as u64) as usize];
            let t = Instant::now();
            let a = s.steer(ip, "title-81", "title-81/master.m3u8");
            times.push(t.elapsed().as_nanos() as f64 / 1000.0);
            std::hint::black_box(a.ok());
        }
        times.sort_by(f64::total_cmp);
        let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
        let p99 = q(0.99);
        println!(
            "| 10,000 | {clusters} x {per} | {:.1} us | {p99:.1} us | {:.1} us | {:.1} us | {} |",
            q(0.5),
            q(0.999),
            times[times.len() - 1],
            if p99 <= 50.0 { "met" } else { "MISSED" }
        );
    }
}
