//! `abr_sim`: run an ABR algorithm over a directory of network traces.
//!
//! ```text
//! cargo run --release -p netflix-abr --example abr_sim -- \
//!     --traces DIR --video-sizes DIR --algorithm NAME [--pensieve-compat] [--json] \
//!     [--plot FILE.svg --trace-name NAME]
//! ```
//!
//! `--traces` reads every file of the directory in sorted name order (one
//! `time_s throughput_Mbps` pair per line); `--video-sizes` reads `video_size_0..N` (one
//! chunk size in bytes per line). `--pensieve-compat` runs hongzimao/pensieve's simulator
//! exactly (and Pensieve's own variants of its algorithms); without it, the general player
//! model runs. `--json` prints one JSON object:
//!
//! ```text
//! {"algorithm": str, "n_traces": int, "mean_total_qoe": float, "mean_qoe_per_chunk": float,
//!  "mean_rebuffer_s": float, "mean_bitrate_kbps": float, "chunks": int, "wall_s": float}
//! ```
//!
//! where a trace's total QoE sums QoE_lin over chunks 1..47 (chunk 0 excluded, as in
//! Pensieve's evaluation), `mean_qoe_per_chunk` = `mean_total_qoe` / 47, the rebuffering and
//! bitrate are over the same chunks, `chunks` counts every chunk simulated and `wall_s` is the
//! time spent simulating (not loading files).
//!
//! More flags: `--list-algorithms`, `--qoe lin|log|hd`, `--log-dir DIR` (Pensieve-format
//! per-trace logs), `--bitrates-kbps A,B,...`, `--chunks N` (48), `--chunk-s S` (4),
//! `--abandonment` (general mode), `--repeat N` (simulate N times, for timing).

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]
#![allow(
    clippy::disallowed_types,
    reason = "wall-clock timing of a synchronous simulation; no tokio here"
)]

use netflix_abr::abr::{self, Abr, Flavor};
use netflix_abr::qoe::Qoe;
use netflix_abr::sim::{Session, Summary, pensieve, player};
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: abr_sim --traces DIR --video-sizes DIR --algorithm NAME \
[--pensieve-compat] [--json] [--plot FILE.svg --trace-name NAME] [--qoe lin|log|hd] \
[--log-dir DIR] [--bitrates-kbps A,B,..] [--chunks N] [--chunk-s S] [--abandonment] \
[--repeat N] | --list-algorithms";

#[derive(Debug, Default)]
struct Args {
    traces: Option<PathBuf>,
    video_sizes: Option<PathBuf>,
    algorithm: Option<String>,
    pensieve: bool,
    json: bool,
    plot: Option<PathBuf>,
    trace_name: Option<String>,
    qoe: Qoe,
    log_dir: Option<PathBuf>,
    bitrates: Option<Vec<f64>>,
    chunks: usize,
    chunk_s: f64,
    abandonment: bool,
    repeat: usize,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        chunks: 48,
        chunk_s: 4.0,
        repeat: 1,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--traces" => a.traces = Some(value("--traces")?.into()),
            "--video-sizes" => a.video_sizes = Some(value("--video-sizes")?.into()),
            "--algorithm" => a.algorithm = Some(value("--algorithm")?),
            "--pensieve-compat" => a.pensieve = true,
            "--json" => a.json = true,
            "--plot" => a.plot = Some(value("--plot")?.into()),
            "--trace-name" => a.trace_name = Some(value("--trace-name")?),
            "--qoe" => a.qoe = value("--qoe")?.parse().map_err(|e| format!("--qoe: {e}"))?,
            "--log-dir" => a.log_dir = Some(value("--log-dir")?.into()),
            "--bitrates-kbps" => {
                let list = value("--bitrates-kbps")?;
                let parsed: Result<Vec<f64>, _> =
                    list.split(',').map(|s| s.trim().parse()).collect();
                a.bitrates =
                    Some(parsed.map_err(|_| format!("--bitrates-kbps: bad list {list:?}"))?);
            }
            "--chunks" => {
                a.chunks = value("--chunks")?
                    .parse()
                    .map_err(|_| "--chunks needs a whole number")?
            }
            "--chunk-s" => {
                a.chunk_s = value("--chunk-s")?
                    .parse()
                    .map_err(|_| "--chunk-s needs a number")?
            }
            "--abandonment" => a.abandonment = true,
            "--repeat" => {
                a.repeat = value("--repeat")?
                    .parse()
                    .map_err(|_| "--repeat needs a whole number")?;
                a.repeat = a.repeat.max(1);
            }
            "--list-algorithms" => a.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("abr_sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for name in abr::NAMES {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abr_sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (Some(traces_dir), Some(sizes_dir), Some(algorithm)) =
        (&args.traces, &args.video_sizes, &args.algorithm)
    else {
        return Err(format!(
            "--traces, --video-sizes and --algorithm are required\n{USAGE}"
        ));
    };
    if args.plot.is_some() != args.trace_name.is_some() {
        return Err("--plot and --trace-name go together".into());
    }
    let traces = Trace::load_dir(traces_dir).map_err(|e| e.to_string())?;
    let video = load_video(args, sizes_dir)?;
    if let Some(name) = &args.trace_name {
        if !traces.iter().any(|t| t.name() == name) {
            return Err(format!(
                "--trace-name {name:?}: no such trace in {}",
                traces_dir.display()
            ));
        }
    }
    let flavor = if args.pensieve {
        Flavor::Pensieve
    } else {
        Flavor::Standard
    };
    let mut abr = abr::by_name(algorithm, &video, flavor).map_err(|e| e.to_string())?;
    let keep = args.plot.is_some() || args.log_dir.is_some();

    let mut sessions = Vec::new();
    let mut wall = Duration::ZERO;
    let total = traces.len() * args.repeat;
    let mut progress = Progress::new(total);
    for _ in 0..args.repeat {
        sessions.clear();
        let started = Instant::now();
        let mut paused = Duration::ZERO;
        if args.pensieve {
            let mut options = pensieve::Options::default();
            options.qoe = args.qoe;
            options.keep_chunks = keep;
            let runner = pensieve::Runner::new(&traces, &video, &mut abr, options)
                .map_err(|e| e.to_string())?;
            for s in runner {
                sessions.push(s.map_err(|e| e.to_string())?);
                paused += progress.tick();
            }
        } else {
            let mut config = player::Config::default();
            config.qoe = args.qoe;
            config.keep_chunks = keep;
            config.abandonment = args.abandonment;
            for t in &traces {
                sessions.push(
                    player::simulate(t, &video, &mut abr, &config).map_err(|e| e.to_string())?,
                );
                paused += progress.tick();
            }
        }
        wall += started.elapsed().saturating_sub(paused);
    }
    let wall_s = wall.as_secs_f64() / args.repeat as f64;
    let summary = Summary::of(abr.name(), &sessions);

    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let prefix = if algorithm.contains("mpc") {
            "mpc"
        } else {
            algorithm.as_str()
        };
        for s in &sessions {
            let path = dir.join(format!("log_sim_{prefix}_{}", s.trace));
            let file =
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            pensieve::write_log(s, std::io::BufWriter::new(file))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if let (Some(path), Some(name)) = (&args.plot, &args.trace_name) {
        let session = sessions
            .iter()
            .find(|s| &s.trace == name)
            .expect("checked above");
        let trace = traces
            .iter()
            .find(|t| t.name() == name)
            .expect("checked above");
        let svg = plot(session, trace, &video, abr.name(), args.qoe);
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("abr_sim: wrote {}", path.display());
    }

    if args.json {
        let out = serde_json::json!({
            "algorithm": summary.algorithm,
            "n_traces": summary.n_traces,
            "mean_total_qoe": summary.mean_total_qoe,
            "mean_qoe_per_chunk": summary.mean_qoe_per_chunk,
            "mean_rebuffer_s": summary.mean_rebuffer_s,
            "mean_bitrate_kbps": summary.mean_bitrate_kbps,
            "chunks": summary.chunks,
            "wall_s": wall_s,
        });
        println!("{out}");
    } else {
        let mode = if args.pensieve {
            "Pensieve-compatible"
        } else {
            "general player"
        };
        println!("algorithm           {}", summary.algorithm);
        println!("simulator           {mode}, QoE_{}", args.qoe);
        println!("traces              {}", summary.n_traces);
        println!("mean QoE per chunk  {:.4}", summary.mean_qoe_per_chunk);
        println!(
            "mean total QoE      {:.3}  (chunks 1..{})",
            summary.mean_total_qoe,
            video.chunks() - 1
        );
        println!("mean rebuffering    {:.3} s", summary.mean_rebuffer_s);
        println!(
            "mean bitrate        {:.1} kbit/s",
            summary.mean_bitrate_kbps
        );
        println!(
            "simulated           {} chunks in {:.4} s ({:.0} chunk-steps/s)",
            summary.chunks,
            wall_s,
            summary.chunks as f64 / wall_s.max(1e-12)
        );
    }
    Ok(())
}

fn load_video(args: &Args, dir: &PathBuf) -> Result<Video, String> {
    let video = Video::load_video_sizes(dir, args.chunk_s).map_err(|e| e.to_string())?;
    let video = match (&args.bitrates, video.levels()) {
        (Some(b), _) => video.with_bitrates(b.clone()),
        // Six rungs: Pensieve's VIDEO_BIT_RATE, whatever the files' means.
        (None, 6) => video.with_bitrates(netflix_abr::ladder::Ladder::envivio().bitrates_kbps()),
        (None, _) => Ok(video),
    }
    .map_err(|e| e.to_string())?;
    let have = video.chunks();
    video
        .with_chunks(args.chunks.min(have))
        .map_err(|e| e.to_string())
}

/// Progress on stderr, at most once a second, for runs that take that long.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            started: now,
            last: now,
        }
    }

    /// Counts a session; returns the time spent printing.
    fn tick(&mut self) -> Duration {
        self.done += 1;
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_secs(1) {
            return Duration::ZERO;
        }
        self.last = now;
        eprintln!(
            "abr_sim: {}/{} traces, {:.1} s",
            self.done,
            self.total,
            now.duration_since(self.started).as_secs_f64()
        );
        now.elapsed()
    }
}

/// Bitrate and buffer over time for one session, with the trace's throughput behind the
/// bitrate and rebuffering marked, as an SVG page.
fn plot(s: &Session, trace: &Trace, video: &Video, algorithm: &str, qoe: Qoe) -> String {
    let (w, h, left, right) = (960.0, 560.0, 70.0, 20.0);
    let (top1, h1, top2, h2) = (50.0, 220.0, 320.0, 180.0);
    let t0 = s
        .chunks
        .first()
        .map_or(0.0, |c| c.time_s - (c.delay_ms + c.sleep_ms) / 1000.0);
    let points: Vec<(f64, &netflix_abr::sim::ChunkLog)> =
        s.chunks.iter().map(|c| (c.time_s - t0, c)).collect();
    let t_end = points.last().map_or(1.0, |p| p.0).max(1.0);
    let max_kbps = video.bitrates_kbps().last().copied().unwrap_or(1.0);
    let trace_max = trace.mbps().iter().copied().fold(0.0, f64::max) * 1000.0;
    let y_max_kbps = (max_kbps.max(trace_max.min(max_kbps * 2.0)) * 1.1).ceil();
    let max_buf = points
        .iter()
        .map(|p| p.1.buffer_s)
        .fold(0.0, f64::max)
        .max(video.chunk_s())
        * 1.1;
    let x = |t: f64| left + (w - left - right) * (t / t_end);
    let y1 = |k: f64| top1 + h1 - h1 * (k.min(y_max_kbps) / y_max_kbps);
    let y2 = |b: f64| top2 + h2 - h2 * (b / max_buf);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="22" font-size="16" font-weight="bold">{algorithm} on {name}</text>
<text x="{left}" y="40" fill="#555">QoE_{qoe} per chunk {qpc:.3} · rebuffering {rb:.2} s · mean bitrate {br:.0} kbit/s · start-up {st:.2} s</text>
"##,
        name = xml_escape(&s.trace),
        qpc = s.qoe_per_chunk(),
        rb = s.rebuffer_s,
        br = s.mean_bitrate_kbps(),
        st = s.startup_s,
    );
    // Axes and grid.
    for (top, hh, label) in [(top1, h1, "bitrate (kbit/s)"), (top2, h2, "buffer (s)")] {
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{}" height="{hh}" fill="none" stroke="#999"/><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{label}</text>"##,
            w - left - right,
            top + hh / 2.0,
            top + hh / 2.0
        );
    }
    for &k in video.bitrates_kbps() {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#777">{k:.0}</text>"##,
            w - right,
            left - 4.0,
            y1(k) + 4.0,
            y = y1(k)
        );
    }
    let step = nice_step(max_buf / 4.0);
    let mut b = 0.0;
    while b <= max_buf {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#777">{b:.0}</text>"##,
            w - right,
            left - 4.0,
            y2(b) + 4.0,
            y = y2(b)
        );
        b += step;
    }
    let tstep = nice_step(t_end / 8.0);
    let mut t = 0.0;
    while t <= t_end {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#777">{t:.0} s</text>"##,
            x(t),
            top2 + h2 + 16.0
        );
        t += tstep;
    }
    // The trace's throughput (grey), from its first timestamp.
    let mut path = String::new();
    let (times, mbps) = (trace.time_s(), trace.mbps());
    for i in 1..times.len() {
        let (a, b) = (times[i - 1] - times[0], times[i] - times[0]);
        if a > t_end {
            break;
        }
        let y = y1(mbps[i] * 1000.0);
        let _ = write!(
            path,
            "{}{:.1},{:.1} L{:.1},{:.1} ",
            if i == 1 { "M" } else { "L" },
            x(a),
            y,
            x(b.min(t_end)),
            y
        );
    }
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#bbb" stroke-width="1"/>"##
    );
    // Bitrate steps (blue): each chunk's rung from its request to the next arrival.
    let mut path = String::new();
    for (i, (t, c)) in points.iter().enumerate() {
        let start = t - c.delay_ms / 1000.0;
        let y = y1(c.bitrate_kbps);
        let end = points
            .get(i + 1)
            .map_or(*t, |n| n.0 - n.1.delay_ms / 1000.0);
        let _ = write!(
            path,
            "{}{:.1},{:.1} L{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            x(start.max(0.0)),
            y,
            x(end.max(start)),
            y
        );
    }
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##
    );
    // Buffer after each arrival (green), rebuffering (red bars).
    let mut path = String::new();
    for (i, (t, c)) in points.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            x(*t),
            y2(c.buffer_s)
        );
        if c.rebuffer_s > 0.0 {
            let _ = writeln!(
                svg,
                r##"<rect x="{:.1}" y="{}" width="{:.1}" height="8" fill="#d62728"><title>chunk {}: {:.2} s rebuffering</title></rect>"##,
                x(t - c.rebuffer_s),
                top2 + h2 - 8.0,
                (x(*t) - x(t - c.rebuffer_s)).max(1.5),
                c.chunk,
                c.rebuffer_s
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#2ca02c" stroke-width="2"/>"##
    );
    let ly = h - 22.0;
    for (dx, color, height, label) in [
        (0.0, "#1f77b4", 3.0, "chosen bitrate"),
        (130.0, "#bbb", 3.0, "trace throughput"),
        (270.0, "#2ca02c", 3.0, "buffer"),
        (350.0, "#d62728", 6.0, "rebuffering"),
    ] {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{ly}" width="12" height="{height}" fill="{color}"/><text x="{:.1}" y="{:.1}">{label}</text>"##,
            left + dx,
            left + dx + 16.0,
            ly + 5.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n < 1.5 {
        1.0
    } else if n < 3.5 {
        2.0
    } else if n < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
