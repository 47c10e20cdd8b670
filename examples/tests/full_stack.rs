//! The `full_stack` scenario, shortened: 16 s of video, 12 players at four times real
//! time. Real ffmpeg, real memcached processes, real HTTP over loopback; an edge and a
//! memcached zone are killed mid-run.
//!
//! Needs ffmpeg, memcached and the Big Buck Bunny clip: `scripts/setup.sh test` installs
//! them; a missing one fails the test with a message naming that command.

use examples::full_stack::{ALGORITHMS, Options, Platform};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_plays_a_fleet_through_an_edge_and_a_zone_dying() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut options = Options::new(root);
    options.seconds = 16;
    options.players = 12;
    options.speed = 4.0;
    options.work = root.join("target/full-stack-test");
    // Stages 1 to 4, with their own checks (steering, 200/401/402/451 from the API).
    let platform = Platform::start(options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = platform.play().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", report.text);

    // Every player played every chunk, with no error, through both faults.
    assert_eq!(report.players, 12);
    assert_eq!(
        report.chunks,
        12 * 4,
        "16 s of 4 s segments for each player"
    );
    assert!(
        report.player_errors.is_empty(),
        "player errors: {:?}",
        report.player_errors
    );
    let (edge, serving) = report.killed_edge.clone().expect("an edge was killed");
    assert!(serving > 0, "the killed edge {edge} was serving no player");
    // Each of them had another chunk to ask the dead edge for.
    assert!(
        report.failovers >= serving,
        "{serving} players on {edge} should have failed over, {} failovers",
        report.failovers
    );
    assert_eq!(
        report.play_after_zone_death,
        Some(200),
        "the API must answer after its memcached zone died"
    );
    assert_eq!(report.api_failures, 0, "of {} API calls", report.api_calls);
    assert!(report.api_calls >= 12);

    // Every algorithm is in the summary.
    let names: Vec<&str> = report
        .algorithms
        .iter()
        .map(|a| a.algorithm.as_str())
        .collect();
    assert_eq!(names, ALGORITHMS);
    for a in &report.algorithms {
        assert_eq!(a.players, 2);
        assert!(a.bitrate_kbps > 0.0, "{a:?}");
        assert!(a.qoe_per_chunk.is_finite(), "{a:?}");
    }

    // The dashboard's view: the dead edge is marked, the edges served the players from
    // their stores, the circuits are closed.
    let state = platform.state();
    let ocas = state["ocas"].as_array().unwrap();
    let dead = ocas.iter().find(|o| o["name"] == edge.as_str()).unwrap();
    assert_eq!(dead["alive"], false);
    let hits: u64 = ocas
        .iter()
        .filter(|o| o["tier"] == "edge")
        .map(|o| o["hits"].as_u64().unwrap())
        .sum();
    assert!(hits > 0, "{state}");
    for p in state["players"].as_array().unwrap() {
        assert_eq!(p["state"], "done", "{p}");
    }
    for c in state["circuits"].as_array().unwrap() {
        assert_eq!(c["state"], "Closed", "{c}");
    }
    assert_eq!(state["gateway"]["5xx"], 0, "{state}");

    // The report page with its plots.
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert!(html.contains("<svg") && html.contains("killed"), "{html}");
    platform.shutdown().await;
}

#[test]
fn options_out_of_range_are_refused_before_any_work() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut o = Options::new(".");
    o.seconds = 2;
    let e = rt.block_on(Platform::start(o)).unwrap_err();
    assert!(e.to_string().contains("seconds"), "{e}");
    let mut o = Options::new(".");
    o.speed = f64::NAN;
    let e = rt.block_on(Platform::start(o)).unwrap_err();
    assert!(e.to_string().contains("speed"), "{e}");
    let mut o = Options::new(".");
    o.players = 0;
    let e = rt.block_on(Platform::start(o)).unwrap_err();
    assert!(e.to_string().contains("players"), "{e}");
}
