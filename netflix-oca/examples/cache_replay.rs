//! Replays a cache trace through an eviction policy and prints its miss ratios.
//!
//! ```text
//! cargo run --release -p netflix-oca --example cache_replay -- \
//!     --trace FILE --format adapt|oracle-general \
//!     --policy lru|s3fifo|sieve|tinylfu|default|belady \
//!     --capacity-fraction F [--bytes] [--json]
//! ```
//!
//! The capacity is F of the trace's unique objects (each object counts 1), or with
//! `--bytes` F of its unique bytes. `--json` prints exactly one JSON object:
//! `{"policy", "capacity_fraction", "requests", "miss_ratio", "byte_miss_ratio"}`.
#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

use netflix_oca::policy::PolicyKind;
use netflix_oca::trace::{self, Capacity, TraceFormat};
use std::process::ExitCode;

const USAGE: &str = "usage: cache_replay --trace FILE --format adapt|oracle-general \
--policy lru|s3fifo|sieve|tinylfu|default|belady --capacity-fraction F [--bytes] [--json]";

struct Args {
    trace: String,
    format: TraceFormat,
    policy: PolicyKind,
    fraction: f64,
    bytes: bool,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut trace = None;
    let mut format = None;
    let mut policy = None;
    let mut fraction = None;
    let (mut bytes, mut json) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--trace" => trace = Some(value("--trace")?),
            "--format" => {
                format = Some(
                    value("--format")?
                        .parse::<TraceFormat>()
                        .map_err(|e| e.to_string())?,
                )
            }
            "--policy" => {
                policy = Some(
                    value("--policy")?
                        .parse::<PolicyKind>()
                        .map_err(|e| e.to_string())?,
                )
            }
            "--capacity-fraction" => {
                let v = value("--capacity-fraction")?;
                let f: f64 = v
                    .parse()
                    .map_err(|_| format!("--capacity-fraction {v:?} is not a number"))?;
                if !(f > 0.0 && f <= 1.0) {
                    return Err(format!("--capacity-fraction must be in (0, 1], not {v}"));
                }
                fraction = Some(f);
            }
            "--bytes" => bytes = true,
            "--json" => json = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        trace: trace.ok_or("--trace is required")?,
        format: format.ok_or("--format is required")?,
        policy: policy.ok_or("--policy is required")?,
        fraction: fraction.ok_or("--capacity-fraction is required")?,
        bytes,
        json,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cache_replay: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let requests = match trace::read(&args.trace, args.format) {
        Ok(r) => r,
        Err(e) => {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            eprintln!("cache_replay: {}: {e}{cause}", args.trace);
            return ExitCode::FAILURE;
        }
    };
    let unit = if args.bytes {
        Capacity::Bytes
    } else {
        Capacity::Objects
    };
    let capacity = unit.of(&requests, args.fraction);
    let stats = trace::replay(&requests, args.policy, capacity, unit);
    if args.json {
        println!(
            "{{\"policy\": \"{}\", \"capacity_fraction\": {}, \"requests\": {}, \"miss_ratio\": {:.6}, \"byte_miss_ratio\": {:.6}}}",
            args.policy,
            args.fraction,
            stats.requests,
            stats.miss_ratio(),
            stats.byte_miss_ratio()
        );
    } else {
        println!(
            "{} at {}% of the {} ({} {}): {} requests, miss ratio {:.4}, byte miss ratio {:.4}",
            args.policy,
            args.fraction * 100.0,
            if args.bytes {
                "unique bytes"
            } else {
                "unique objects"
            },
            capacity,
            if args.bytes { "bytes" } else { "objects" },
            stats.requests,
            stats.miss_ratio(),
            stats.byte_miss_ratio()
        );
    }
    ExitCode::SUCCESS
}
