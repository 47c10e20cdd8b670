//! netflix-zuul's filter chain in process (no network): the cost of running N no-op
//! inbound filters on a request (goal: ≤ 50 ns per no-op filter), from 0 to 20.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netflix_zuul::Context;
use netflix_zuul::filter::Flow;
use std::hint::black_box;

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut g = c.benchmark_group("zuul_inbound_chain");
    for n in [0usize, 1, 5, 20] {
        let chain = benches::noop_chain(n).expect("a chain");
        let mut req = http::Request::new(netflix_zuul::body::empty());
        g.bench_function(BenchmarkId::from_parameter(n), |bench| {
            bench.iter(|| {
                let mut ctx = Context::default();
                let flow = rt.block_on(chain.run_inbound(&mut req, &mut ctx));
                black_box(matches!(flow, Flow::Continue))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
