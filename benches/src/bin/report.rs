//! Reads criterion's results for the breaker benchmarks and prints the comparison table
//! that goes into BENCHMARKS.md: every implementation's time per call on one and two
//! threads, what netflix-hystrix adds over a bare service, and the ratios the goals name.
//!
//! With `abr` as its first argument it prints netflix-abr's table instead: chunk-steps per
//! second of whole Pensieve-compatible runs, and the time of one RobustMPC decision.
//!
//! Usage: `cargo run -p benches --bin report -- [abr] [target/criterion]`
#![allow(clippy::print_stdout, reason = "a command-line report")]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (group, implementation, threads) -> mean nanoseconds per call.
type Results = BTreeMap<(String, String, String), f64>;

fn collect(dir: &Path, out: &mut Results) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                read_one(&path, out);
            } else {
                collect(&path, out);
            }
        }
    }
}

fn read_one(new: &Path, out: &mut Results) {
    let read = |name: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(new.join(name)).ok()?).ok()
    };
    let (Some(bench), Some(est)) = (read("benchmark.json"), read("estimates.json")) else {
        return;
    };
    let field = |k: &str| bench[k].as_str().unwrap_or_default().to_string();
    let Some(mean) = est["mean"]["point_estimate"].as_f64() else {
        return;
    };
    out.insert(
        (field("group_id"), field("function_id"), field("value_str")),
        mean,
    );
}

/// The chunks of one whole run of `benches/benches/abr.rs` (127 traces × 48 chunks).
const ABR_RUN_CHUNKS: f64 = 127.0 * 48.0;

fn abr_report(results: &Results) {
    println!("| algorithm | ms per run | chunk-steps/s |");
    println!("|---|---:|---:|");
    for ((group, function, value), ns) in results {
        if group == "abr_pensieve_run" {
            let name = if function.is_empty() { value } else { function };
            println!(
                "| {name} | {:.3} | {:.0} |",
                ns / 1e6,
                ABR_RUN_CHUNKS / (ns * 1e-9)
            );
        }
    }
    for ((group, _, _), ns) in results {
        if group == "abr_robust_mpc_decision" {
            println!(
                "\none RobustMPC decision (horizon 5, 6 rungs): {:.2} µs, {:.0} decisions/s",
                ns / 1e3,
                1e9 / ns
            );
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let abr = args.first().is_some_and(|a| a == "abr");
    if abr {
        args.remove(0);
    }
    let root = args
        .first()
        .map_or_else(|| PathBuf::from("target/criterion"), PathBuf::from);
    let mut results = Results::new();
    collect(&root, &mut results);
    if abr {
        abr_report(&results);
        return;
    }
    if results.is_empty() {
        eprintln!(
            "no criterion results under {}; run the benchmark first",
            root.display()
        );
        std::process::exit(1);
    }
    let get = |g: &str, i: &str, t: &str| {
        results
            .get(&(g.to_string(), i.to_string(), t.to_string()))
            .copied()
    };
    let impls = [
        "bare",
        "netflix-hystrix",
        "netflix-hystrix-r4j",
        "failsafe",
        "recloser",
        "tower-resilience",
    ];
    for group in ["breaker/closed", "breaker/open"] {
        println!("\n**{group}** (ns per call; each thread calls its own clone of one breaker)\n");
        println!("| implementation | 1 thread | 2 threads | 2 threads / 1 thread |");
        println!("|---|---:|---:|---:|");
        for i in impls {
            let (Some(one), Some(two)) = (get(group, i, "1"), get(group, i, "2")) else {
                continue;
            };
            println!("| {i} | {one:.1} | {two:.1} | {:.2} |", two / one);
        }
    }
    let bare = get("breaker/closed", "bare", "1");
    let ours_closed = get("breaker/closed", "netflix-hystrix", "1");
    let ours_open = get("breaker/open", "netflix-hystrix", "1");
    let ours_closed2 = get("breaker/closed", "netflix-hystrix", "2");
    println!("\n**Goals**\n");
    println!("| goal | measured | target |");
    println!("|---|---:|---:|");
    if let (Some(b), Some(o)) = (bare, ours_closed) {
        println!(
            "| closed path added over the bare service | {:.1} ns | at most 60 ns |",
            o - b
        );
    }
    if let Some(o) = ours_open {
        println!("| open-state rejection | {o:.1} ns | at most 10 ns |");
    }
    for peer in ["failsafe", "recloser", "tower-resilience"] {
        if let (Some(p), Some(o)) = (get("breaker/closed", peer, "1"), ours_closed) {
            let target = if peer == "failsafe" {
                "at least 5x"
            } else {
                "faster"
            };
            println!(
                "| closed path vs {peer}, one thread | {:.1}x faster | {target} |",
                p / o
            );
        }
        if let (Some(p), Some(o)) = (get("breaker/open", peer, "1"), ours_open) {
            println!(
                "| open path vs {peer}, one thread | {:.1}x faster | faster |",
                p / o
            );
        }
    }
    if let (Some(one), Some(two)) = (ours_closed, ours_closed2) {
        println!(
            "| closed path, 2 threads / 1 thread | {:.2}x | at most 2x |",
            two / one
        );
    }
}
