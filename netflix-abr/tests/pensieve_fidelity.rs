//! The Pensieve-compatible simulator against the reference's own output.
//!
//! `tests/data/pensieve/` holds what hongzimao/pensieve's `test/bb.py` and `test/mpc.py`
//! (commit 1120bb1, Python 2.7.18 + numpy 1.13.3, traces in sorted order) computed for every
//! chunk of the 127 training traces and of three synthetic traces that exercise the buffer
//! cap and trace wrap-around, every float printed exactly (see the README there). Our run
//! must agree to the last bit, chunk by chunk, and its logs byte for byte.

use netflix_abr::abr::{Abr, Flavor, by_name};
use netflix_abr::sim::{Session, pensieve};
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn video() -> Video {
    Video::load_video_sizes(data("video_sizes"), 4.0)
        .and_then(|v| v.with_bitrates(vec![300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]))
        .and_then(|v| v.with_chunks(48))
        .expect("envivio chunk sizes")
}

/// One golden row.
struct Row {
    trace: usize,
    chunk: usize,
    quality: usize,
    time_stamp_ms: f64,
    delay_ms: f64,
    sleep_ms: f64,
    buffer_s: f64,
    rebuf_s: f64,
    bytes: u64,
    reward: f64,
    next_quality: usize,
}

fn golden(rel: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(data(rel)).expect("golden file");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let n = |i: usize| f[i].parse::<f64>().expect("float");
            let u = |i: usize| f[i].parse::<usize>().expect("integer");
            Row {
                trace: u(0),
                chunk: u(1),
                quality: u(2),
                time_stamp_ms: n(3),
                delay_ms: n(4),
                sleep_ms: n(5),
                buffer_s: n(6),
                rebuf_s: n(7),
                bytes: f[8].parse().expect("bytes"),
                reward: n(9),
                next_quality: u(10),
            }
        })
        .collect()
}

fn run(traces: &[Trace], algorithm: &str) -> Vec<Session> {
    let video = video();
    let mut abr: Box<dyn Abr> = by_name(algorithm, &video, Flavor::Pensieve).unwrap();
    pensieve::run(traces, &video, &mut abr, &pensieve::Options::default()).unwrap()
}

/// Compares every chunk bit for bit; returns how many were compared.
fn compare(sessions: &[Session], rows: &[Row], what: &str) -> usize {
    let ours: Vec<(usize, usize, &netflix_abr::sim::ChunkLog)> = sessions
        .iter()
        .enumerate()
        .flat_map(|(t, s)| s.chunks.iter().enumerate().map(move |(i, c)| (t, i, c)))
        .collect();
    assert_eq!(ours.len(), rows.len(), "{what}: chunk count");
    for (k, ((t, i, c), g)) in ours.iter().zip(rows).enumerate() {
        let at = format!("{what}: trace {t} chunk {i}");
        assert_eq!((*t, c.chunk), (g.trace, g.chunk), "{at}: position");
        assert_eq!(c.quality, g.quality, "{at}: decision");
        assert_eq!(c.bytes, g.bytes, "{at}: bytes");
        for (name, a, b) in [
            ("delay_ms", c.delay_ms, g.delay_ms),
            ("sleep_ms", c.sleep_ms, g.sleep_ms),
            ("buffer_s", c.buffer_s, g.buffer_s),
            ("rebuf_s", c.rebuffer_s, g.rebuf_s),
            ("reward", c.reward, g.reward),
            ("time_s", c.time_s, g.time_stamp_ms / 1000.0),
        ] {
            assert_eq!(a.to_bits(), b.to_bits(), "{at}: {name} {a:?} != {b:?}");
        }
        // The decision made after this chunk is the next chunk's rung (the reference also
        // decides after a video's last chunk, then overrides it with the default).
        let last_of_video = i + 1 == sessions[*t].chunks.len();
        if !last_of_video {
            assert_eq!(ours[k + 1].2.quality, g.next_quality, "{at}: next decision");
        }
    }
    rows.len()
}

fn compare_logs(sessions: &[Session], prefix: &str) -> usize {
    let mut checked = 0;
    for s in sessions {
        let path = data(&format!("pensieve/logs/{prefix}_{}", s.trace));
        let Ok(want) = std::fs::read(&path) else {
            continue;
        };
        let mut got = Vec::new();
        pensieve::write_log(s, &mut got).unwrap();
        assert!(
            got == want,
            "{}: log differs\n--- ours\n{}\n--- reference\n{}",
            path.display(),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        checked += 1;
    }
    checked
}

#[test]
fn bb_matches_the_reference_on_every_chunk_of_every_trace() {
    let traces = Trace::load_dir(data("traces")).unwrap();
    assert_eq!(traces.len(), 127);
    let sessions = run(&traces, "bb");
    assert_eq!(
        compare(&sessions, &golden("pensieve/bb.tsv"), "bb"),
        127 * 48
    );
    assert_eq!(compare_logs(&sessions, "log_sim_bb"), 4);
}

#[test]
fn robust_mpc_matches_the_reference_on_every_chunk_of_every_trace() {
    let traces = Trace::load_dir(data("traces")).unwrap();
    let sessions = run(&traces, "robust-mpc");
    assert_eq!(
        compare(&sessions, &golden("pensieve/robust-mpc.tsv"), "robust-mpc"),
        127 * 48
    );
    assert_eq!(compare_logs(&sessions, "log_sim_mpc"), 4);
}

#[test]
fn buffer_cap_sleeps_and_wrap_around_match_on_synthetic_traces() {
    let traces = Trace::load_dir(data("pensieve/synth/traces")).unwrap();
    let bb = run(&traces, "bb");
    assert_eq!(
        compare(&bb, &golden("pensieve/synth/bb.tsv"), "synthetic bb"),
        3 * 48
    );
    // The buffer cap was hit and the residual sleep differs from the drained amount.
    assert!(bb.iter().flat_map(|s| &s.chunks).any(|c| c.sleep_ms > 0.0));
    assert_eq!(compare_logs(&bb, "log_sim_bb"), 2);
    let mpc = run(&traces, "robust-mpc");
    compare(
        &mpc,
        &golden("pensieve/synth/robust-mpc.tsv"),
        "synthetic robust-mpc",
    );
    assert_eq!(compare_logs(&mpc, "log_sim_mpc"), 3);
}

#[test]
fn summary_matches_the_reference_totals() {
    // The per-trace totals of chunks 1..47, as Pensieve's plot_results.py sums them.
    let traces = Trace::load_dir(data("traces")).unwrap();
    for (algorithm, file) in [
        ("bb", "pensieve/bb.tsv"),
        ("robust-mpc", "pensieve/robust-mpc.tsv"),
    ] {
        let sessions = run(&traces, algorithm);
        let rows = golden(file);
        for (t, s) in sessions.iter().enumerate() {
            let want: f64 = rows
                .iter()
                .filter(|r| r.trace == t && r.chunk > 0)
                .map(|r| r.reward)
                .sum();
            assert!((s.total_qoe - want).abs() < 1e-9, "{algorithm} trace {t}");
            assert_eq!(s.scored, 47);
        }
    }
}
