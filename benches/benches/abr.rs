//! The ABR simulator and algorithms: chunk-steps per second of a whole Pensieve-compatible
//! run over the 127 traces (BB, RB, BOLA, BOLA-E, DYNAMIC, Sage), RobustMPC decisions per
//! second (the same run: one decision per chunk but each video's first), and one RobustMPC
//! decision alone. Run with `scripts/bench-abr.sh`, which also times the reference
//! simulator (hongzimao/pensieve, Python) on the same traces when given a checkout.
#![allow(missing_docs, reason = "a benchmark binary")]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use netflix_abr::abr::{Abr, Context, Download, Flavor, Mpc, by_name};
use netflix_abr::sim::pensieve::{self, Options};
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::hint::black_box;
use std::path::Path;

fn data() -> (Vec<Trace>, Video) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../netflix-abr/tests/data");
    let traces = Trace::load_dir(dir.join("traces")).expect("traces");
    let video = Video::load_video_sizes(dir.join("video_sizes"), 4.0)
        .and_then(|v| v.with_bitrates(vec![300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]))
        .and_then(|v| v.with_chunks(48))
        .expect("video sizes");
    (traces, video)
}

fn whole_runs(c: &mut Criterion) {
    let (traces, video) = data();
    let chunks = (traces.len() * video.chunks()) as u64;
    let mut options = Options::default();
    options.keep_chunks = false;
    let mut g = c.benchmark_group("abr_pensieve_run");
    g.throughput(Throughput::Elements(chunks));
    for name in [
        "bb",
        "rb",
        "bola",
        "bola-e",
        "dynamic",
        "robust-mpc",
        "sage",
    ] {
        let mut abr = by_name(name, &video, Flavor::Pensieve).expect("algorithm");
        if matches!(name, "robust-mpc" | "sage") {
            g.sample_size(10);
        } else {
            g.sample_size(50);
        }
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let s = pensieve::run(&traces, &video, &mut abr, &options).expect("run");
                black_box(s.len())
            })
        });
    }
    g.finish();
}

fn one_decision(c: &mut Criterion) {
    let video = Video::envivio();
    let mut mpc = Mpc::robust().pensieve(true);
    // A mid-session state: five downloads of varied throughput, 9 s buffered.
    for (i, ms) in [900.0, 1400.0, 700.0, 2600.0, 1100.0]
        .into_iter()
        .enumerate()
    {
        mpc.on_download(&Download::new(i, 2, 620_000, ms, 80.0));
    }
    let ctx = Context::new(&video, 10, 9.0, Some(2));
    c.bench_function("abr_robust_mpc_decision", |b| {
        b.iter(|| black_box(mpc.choose(black_box(&ctx))))
    });
}

criterion_group!(benches, whole_runs, one_decision);
criterion_main!(benches);
