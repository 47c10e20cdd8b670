//! Placement quality of netflix-oca beside the `hashring` crate with 160 virtual nodes per
//! node: the busiest node's load over the mean (goal ≤ 1.03) and the keys moved when a node
//! is added or removed over the ideal 1/N (goal ≤ 1.1), for 10 and 100 nodes and 1M keys.
//!
//! `cargo run --release -p benches --bin placement [-- KEYS]`; lookup times come from
//! criterion (`cargo bench -p benches --bench oca`). `scripts/bench-placement.sh` runs both.
#![allow(clippy::print_stdout, reason = "a benchmark tool prints its table")]

use netflix_oca::placement::{Node, Placement, hash_key};

#[derive(Debug, Clone, Copy, Hash, PartialEq)]
struct VNode {
    node: usize,
    replica: usize,
}

trait Scheme {
    fn locate(&self, key: &str) -> usize;
}

struct Ours(Placement);

impl Scheme for Ours {
    fn locate(&self, key: &str) -> usize {
        let i = self
            .0
            .locate_hash(hash_key(key.as_bytes()))
            .expect("a node");
        // Report nodes by name so that added and removed nodes compare by identity.
        self.0.node(i).name()[4..].parse().expect("oca-N")
    }
}

struct Peer(hashring::HashRing<VNode>);

impl Scheme for Peer {
    fn locate(&self, key: &str) -> usize {
        self.0.get(&key.as_bytes()).expect("a node").node
    }
}

fn ours(nodes: impl Iterator<Item = usize>) -> Ours {
    Ours(
        Placement::new(nodes.map(|i| Node::new(format!("oca-{i}"), format!("host-{i}"))))
            .expect("a cluster"),
    )
}

fn peer(nodes: impl Iterator<Item = usize>) -> Peer {
    let mut ring = hashring::HashRing::new();
    for node in nodes {
        for replica in 0..160 {
            ring.add(VNode { node, replica });
        }
    }
    Peer(ring)
}

/// Builds a scheme over the given node numbers.
type Builder = fn(&mut dyn Iterator<Item = usize>) -> Box<dyn Scheme>;

fn peak_to_mean(s: &dyn Scheme, keys: &[String], n: usize) -> f64 {
    let mut loads = vec![0u64; n + 1];
    for k in keys {
        loads[s.locate(k)] += 1;
    }
    let mean = keys.len() as f64 / n as f64;
    *loads.iter().max().expect("nodes") as f64 / mean
}

/// Keys whose node differs between `a` and `b`, over the ideal count (keys / N).
fn moved(a: &dyn Scheme, b: &dyn Scheme, keys: &[String], ideal_share: f64) -> f64 {
    let m = keys.iter().filter(|k| a.locate(k) != b.locate(k)).count();
    m as f64 / (keys.len() as f64 * ideal_share)
}

fn main() {
    let n_keys: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("KEYS is a number"))
        .unwrap_or(1_000_000);
    let keys: Vec<String> = (0..n_keys)
        .map(|i| format!("title-{}/video/1080p/seg-{i:07}.m4s", i % 4999))
        .collect();
    println!(
        "| nodes | scheme | peak / mean load | moved on add / ideal | moved on remove / ideal |"
    );
    println!("|---:|---|---:|---:|---:|");
    for n in [10usize, 100] {
        let schemes: [(&str, Builder); 2] = [
            ("netflix-oca (rendezvous)", |it| Box::new(ours(it))),
            ("hashring, 160 vnodes", |it| Box::new(peer(it))),
        ];
        for (name, build) in schemes {
            let base = build(&mut (0..n));
            let added = build(&mut (0..=n));
            // Remove a node from the middle, not the last one.
            let removed = build(&mut (0..n).filter(|&i| i != n / 2));
            let peak = peak_to_mean(base.as_ref(), &keys, n);
            let add = moved(base.as_ref(), added.as_ref(), &keys, 1.0 / (n + 1) as f64);
            let remove = moved(base.as_ref(), removed.as_ref(), &keys, 1.0 / n as f64);
            println!("| {n} | {name} | {peak:.3} | {add:.3} | {remove:.3} |");
        }
    }
}
