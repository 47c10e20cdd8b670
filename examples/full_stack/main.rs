//! The whole platform on one machine: ingest, CDN, cache, API, a fleet of players with
//! faults, a report with plots, and a page with an hls.js player and a live dashboard.
//!
//! ```text
//! scripts/demo.sh                    # installs what is missing, then runs this
//! cargo run --release --example full_stack -- [--seconds 60] [--players 18] [--speed 1]
//!     [--serve] [--work DIR] [--traces DIR]
//! ```
//!
//! See the `examples::full_stack` module for the stages.
#![allow(clippy::print_stdout, reason = "an example prints its summary")]

use examples::full_stack::{Options, Platform};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: full_stack [--seconds N] [--players N] [--speed X] [--serve] [--work DIR] [--traces DIR]

  --seconds N   seconds of Big Buck Bunny to ingest (4 to 3600; default 60)
  --players N   simulated players (1 to 200; default 18, three traces per algorithm)
  --speed X     the players' clocks run X times real time (0.1 to 100; default 1)
  --serve       keep serving the page (player and dashboard) after the run, until Ctrl-C
  --work DIR    mezzanine, encodes, origin and report.html (default target/full-stack)
  --traces DIR  network traces (default netflix-abr/tests/data/traces)";

struct Args {
    options: Options,
    serve: bool,
}

/// `v` as a number from `lo` to `hi`, or why not.
fn number<T>(flag: &str, v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    v.parse()
        .ok()
        .filter(|x| (lo..=hi).contains(x))
        .ok_or_else(|| format!("{flag} `{v}`: a number from {lo} to {hi}"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let mut a = Args {
        options: Options::new(root),
        serve: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        let o = &mut a.options;
        match arg.as_str() {
            "--seconds" => o.seconds = number("--seconds", &value()?, 4, 3600)?,
            "--players" => o.players = number("--players", &value()?, 1, 200)?,
            "--speed" => o.speed = number("--speed", &value()?, 0.1, 100.0)?,
            "--work" => o.work = PathBuf::from(value()?),
            "--traces" => o.traces = PathBuf::from(value()?),
            "--serve" => a.serve = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

async fn run(args: Args) -> Result<bool, String> {
    let platform = Platform::start(args.options)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "\nthe page (hls.js player and live dashboard): {}\n",
        platform.page_url()
    );
    let report = platform.play().await.map_err(|e| e.to_string())?;
    println!("\n{}", report.text);
    println!("report with plots: {}", report.html.display());
    let ok = report.player_errors.is_empty()
        && report.api_failures == 0
        && report.play_after_zone_death == Some(200);
    for e in &report.player_errors {
        println!("player error: {e}");
    }
    if args.serve {
        println!(
            "\nserving {} until Ctrl-C (the players have finished; the browser plays on)",
            platform.page_url()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("done in {:.1} s", platform.elapsed().as_secs_f64());
    platform.shutdown().await;
    Ok(ok)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,full_stack=info".into()),
        )
        .init();
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("full_stack: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("full_stack: the run had player errors or failed API calls (above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("full_stack: {e}");
            ExitCode::FAILURE
        }
    }
}
