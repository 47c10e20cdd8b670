//! netflix-oca's placement lookups beside the `hashring` crate with 160 virtual nodes per
//! node: one node for a key (goal ≤ 100 ns at 100 nodes) and three copies on distinct hosts
//! (goal ≤ 1 µs at 100 nodes), each timed from the key's bytes (hashing included) on 10 and
//! 100 nodes. Balance and movement come from `src/bin/placement.rs`
//! (`scripts/bench-placement.sh`).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netflix_oca::placement::{Node, Placement};
use std::hint::black_box;

#[derive(Debug, Clone, Copy, Hash, PartialEq)]
struct VNode {
    node: usize,
    replica: usize,
}

fn ours(n: usize) -> Placement {
    Placement::new((0..n).map(|i| Node::new(format!("oca-{i}"), format!("host-{i}"))))
        .expect("a cluster")
}

fn peer(n: usize) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    for node in 0..n {
        for replica in 0..160 {
            ring.add(VNode { node, replica });
        }
    }
    ring
}

fn lookup(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024)
        .map(|i| format!("title-{}/video/1080p/seg-{i:05}.m4s", i % 37))
        .collect();
    let mut g = c.benchmark_group("placement_lookup");
    for n in [10, 100] {
        let p = ours(n);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("netflix-oca", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(p.locate(black_box(keys[i].as_bytes())))
            })
        });
        let ring = peer(n);
        g.bench_function(BenchmarkId::new("hashring-160", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(ring.get(black_box(&keys[i].as_bytes())).map(|v| v.node))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("placement_3_copies");
    for n in [10, 100] {
        let p = ours(n);
        let mut out = Vec::with_capacity(3);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("netflix-oca", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                p.replicas_hash(
                    netflix_oca::placement::hash_key(black_box(keys[i].as_bytes())),
                    3,
                    &mut out,
                );
                black_box(out.len())
            })
        });
        let ring = peer(n);
        g.bench_function(BenchmarkId::new("hashring-160", n), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                // hashring's own successor walk, keeping the first 3 distinct nodes.
                let mut nodes = [usize::MAX; 3];
                let mut found = 0;
                for v in ring
                    .get_with_replicas(black_box(&keys[i].as_bytes()), 2 * 160)
                    .into_iter()
                    .flatten()
                {
                    if !nodes[..found].contains(&v.node) {
                        nodes[found] = v.node;
                        found += 1;
                        if found == 3 {
                            break;
                        }
                    }
                }
                black_box(nodes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
