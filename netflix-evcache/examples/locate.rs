//! Which node holds a key: reads keys on stdin, prints `key<TAB>host:port` for each.
//!
//! ```text
//! cargo run --release -p netflix-evcache --example locate -- \
//!     --servers 10.0.1.1:11211,10.0.1.2:11211,10.0.1.3:11211 --mode spymemcached < keys.txt
//! ```
//!
//! `--mode` is `spymemcached` (the default), `evcache` or `libmemcached`. A server is
//! `ip:port`, `host/ip:port` (Java's form, which EVCache's node lists use) or, for
//! libmemcached's weighted ring, `host:port:weight`. The key is hashed exactly as given (add
//! the `prefix:` yourself if the app uses one). Ops use it to find which node holds a key;
//! it is also how the ring is checked against other clients' test vectors.

#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use netflix_evcache::ketama::{Continuum, Mode, NodeSpec};
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: locate --servers HOST:PORT[,HOST:PORT...] [--mode spymemcached|evcache|libmemcached] < keys";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("locate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut servers: Option<String> = None;
    let mut mode = Mode::Spymemcached;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--servers" => servers = Some(value()?),
            "--mode" => mode = value()?.parse().map_err(|e| format!("{e}"))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let servers = servers.ok_or(format!("--servers is required\n{USAGE}"))?;
    let nodes: Vec<NodeSpec> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<NodeSpec>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let ring = Continuum::new(&nodes, mode).map_err(|e| e.to_string())?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.split(b'\n') {
        let mut key = line.map_err(|e| format!("reading stdin: {e}"))?;
        if key.last() == Some(&b'\r') {
            key.pop();
        }
        let node = &nodes[ring.locate(&key)];
        out.write_all(&key)
            .and_then(|()| writeln!(out, "\t{}", node.socket_string()))
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))
}
