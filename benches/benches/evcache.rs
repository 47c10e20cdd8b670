//! netflix-evcache's in-process costs: a ketama lookup (goal ≤ 50 ns) on a 3-, 30- and
//! 300-node ring in each compatibility mode, split into its two parts, the ring search
//! for a key's hash (`ketama_ring`) and the MD5 key hash (`ketama_key_hash`), and the
//! whole key-to-node path (`ketama_lookup`); and the ring's build time.
//!
//! The network figures (gets and sets per second against the peers, p99, replicated sets)
//! come from `scripts/bench-evcache.sh`, which drives real memcached with `memload`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netflix_evcache::ketama::{Continuum, Mode, NodeSpec, key_hash};
use std::hint::black_box;

fn nodes(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| {
            format!("10.0.{}.{}:11211", i / 250, i % 250 + 1)
                .parse()
                .expect("a node spec")
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024).map(|i| format!("title:{i}:artwork")).collect();
    let mut g = c.benchmark_group("ketama_lookup");
    for mode in [Mode::Spymemcached, Mode::EvCache, Mode::Libmemcached] {
        for n in [3, 30, 300] {
            let ring = Continuum::new(&nodes(n), mode).expect("a ring");
            let mut i = 0;
            g.bench_function(BenchmarkId::new(format!("{mode:?}"), n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(ring.locate(black_box(keys[i].as_bytes())))
                })
            });
        }
    }
    g.finish();
    let hashes: Vec<u32> = keys.iter().map(|k| key_hash(k.as_bytes())).collect();
    let mut g = c.benchmark_group("ketama_ring");
    for mode in [Mode::Spymemcached, Mode::EvCache, Mode::Libmemcached] {
        for n in [3, 30, 300] {
            let ring = Continuum::new(&nodes(n), mode).expect("a ring");
            let mut i = 0;
            g.bench_function(BenchmarkId::new(format!("{mode:?}"), n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(ring.locate_hash(black_box(hashes[i])))
                })
            });
        }
    }
    g.finish();
    let mut i = 0;
    c.bench_function("ketama_key_hash", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(key_hash(black_box(keys[i].as_bytes())))
        })
    });
    let mut g = c.benchmark_group("ketama_build");
    for n in [3, 30] {
        let list = nodes(n);
        g.bench_function(BenchmarkId::new("Spymemcached", n), |b| {
            b.iter(|| Continuum::new(black_box(&list), Mode::Spymemcached))
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
