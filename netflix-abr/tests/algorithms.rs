//! Every algorithm over the real traces, in both simulators; ours against the references.

use netflix_abr::abr::{Abr, Flavor, NAMES, by_name};
use netflix_abr::sim::player::{self, Config, Seek};
use netflix_abr::sim::{Summary, pensieve};
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::path::Path;

fn data() -> (Vec<Trace>, Video) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let traces = Trace::load_dir(dir.join("traces")).unwrap();
    let video = Video::load_video_sizes(dir.join("video_sizes"), 4.0)
        .and_then(|v| v.with_bitrates(vec![300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]))
        .and_then(|v| v.with_chunks(48))
        .unwrap();
    (traces, video)
}

/// The Norway HSDPA traces and the FCC ones (`trace_*`), as Pensieve splits them.
fn split(traces: Vec<Trace>) -> (Vec<Trace>, Vec<Trace>) {
    traces
        .into_iter()
        .partition(|t| !t.name().starts_with("trace_"))
}

fn pensieve_summary(name: &str, traces: &[Trace], video: &Video) -> Summary {
    let mut abr = by_name(name, video, Flavor::Pensieve).unwrap();
    let sessions = pensieve::run(traces, video, &mut abr, &pensieve::Options::default()).unwrap();
    Summary::of(name, &sessions)
}

#[test]
fn sage_beats_every_reference_with_less_rebuffering_than_robust_mpc() {
    let (traces, video) = data();
    let (hsdpa, fcc) = split(traces);
    assert_eq!((hsdpa.len(), fcc.len()), (68, 59));
    for (set, traces) in [("HSDPA", &hsdpa), ("FCC", &fcc)] {
        let ours = pensieve_summary("sage", traces, &video);
        let robust = pensieve_summary("robust-mpc", traces, &video);
        for name in NAMES.iter().filter(|n| **n != "sage") {
            let other = pensieve_summary(name, traces, &video);
            assert!(
                ours.mean_qoe_per_chunk > other.mean_qoe_per_chunk,
                "{set}: sage {:.4} vs {name} {:.4}",
                ours.mean_qoe_per_chunk,
                other.mean_qoe_per_chunk
            );
        }
        // A clear margin over the strongest reference, and less rebuffering.
        assert!(
            ours.mean_qoe_per_chunk >= robust.mean_qoe_per_chunk * 1.1,
            "{set}: sage {:.4} vs robust-mpc {:.4}",
            ours.mean_qoe_per_chunk,
            robust.mean_qoe_per_chunk
        );
        assert!(
            ours.mean_rebuffer_s <= robust.mean_rebuffer_s,
            "{set}: sage rebuffers {:.3} s vs robust-mpc {:.3} s",
            ours.mean_rebuffer_s,
            robust.mean_rebuffer_s
        );
    }
}

#[test]
fn every_algorithm_plays_every_trace_in_the_general_player() {
    let (traces, video) = data();
    let mut config = Config::default();
    config.keep_chunks = true;
    for name in NAMES {
        let mut abr = by_name(name, &video, Flavor::Standard).unwrap();
        let sessions = player::simulate_all(&traces, &video, &mut abr, &config).unwrap();
        assert_eq!(sessions.len(), traces.len());
        for s in &sessions {
            assert_eq!(s.downloaded, 48, "{name} on {}", s.trace);
            assert!(
                s.chunks
                    .iter()
                    .all(|c| c.quality < 6 && c.buffer_s <= 60.0 + 1e-9)
            );
            assert!(s.rebuffer_s >= 0.0 && s.startup_s > 0.0);
        }
    }
}

#[test]
fn abandonment_and_seeks_work_with_every_algorithm() {
    let (traces, video) = data();
    let (hsdpa, _) = split(traces);
    let mut config = Config::default();
    config.abandonment = true;
    config.seeks = vec![
        Seek {
            at_s: 40.0,
            to_s: 100.0,
        },
        Seek {
            at_s: 90.0,
            to_s: 8.0,
        },
    ];
    let mut abandoned_any = false;
    for name in NAMES {
        let mut abr: Box<dyn Abr> = by_name(name, &video, Flavor::Standard).unwrap();
        for t in hsdpa.iter().take(12) {
            let s = player::simulate(t, &video, &mut abr, &config).unwrap();
            // After the seeks the video still plays to its end, from chunk 2 onwards.
            let order: Vec<usize> = s.chunks.iter().map(|c| c.chunk).collect();
            assert_eq!(*order.last().unwrap(), 47, "{name} on {}", t.name());
            abandoned_any |= s.wasted_bytes > 0;
        }
    }
    // dash.js's rule (in DYNAMIC) abandons on these traces' outages.
    assert!(abandoned_any);
}

#[test]
fn dynamic_hands_over_to_bola_on_a_full_buffer() {
    use netflix_abr::abr::{Context, Download, Dynamic};
    let video = Video::envivio();
    let mut d = Dynamic::new(video.bitrates_kbps());
    for i in 0..4 {
        d.on_download(&Download::new(i, 2, 600_000, 1000.0, 50.0).at(i as f64));
        let _ = d.choose(&Context::new(&video, i + 1, 6.0 + 3.0 * i as f64, Some(2)).at(i as f64));
    }
    assert!(!d.using_bola());
    let _ = d.choose(&Context::new(&video, 5, 18.0, Some(2)).at(5.0));
    assert!(d.using_bola());
    // Hysteresis: still BOLA at 10 s, throughput again below 9 s.
    let _ = d.choose(&Context::new(&video, 6, 10.0, Some(2)).at(6.0));
    assert!(d.using_bola());
    let _ = d.choose(&Context::new(&video, 7, 8.9, Some(2)).at(7.0));
    assert!(!d.using_bola());
}
