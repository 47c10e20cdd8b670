//! Transcodes a mezzanine file into an HLS + DASH ladder, with a progress bar.
//!
//! ```text
//! cargo run --release -p netflix-transcode --example transcode -- INPUT --out DIR
//!     [--ladder apple|envivio|per-title | --rungs HEIGHT@KBPS,...]
//!     [--codec x264|x265|vp9|svt-av1|aom]
//!     [--workers N] [--segment-seconds S]
//!     [--chunk-seconds S | --scenes] [--preset P] [--crf N] [--no-audio] [--no-quality]
//!     [--work-dir DIR] [--keep-work] [--json]
//! ```
//!
//! Writes `DIR/master.m3u8`, `DIR/manifest.mpd`, `DIR/v0..vN/` and `DIR/audio/`, plus
//! `DIR/inventory.json`. Interrupt it (Ctrl-C, or even `kill -9`) and run it again: it
//! resumes from the chunks already finished.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on the terminal"
)]

use netflix_transcode::{
    Cancel, Chunking, Codec, Encoder, Event, Job, LadderSpec, RateControl, Stage, Tools, Transcoder,
};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

const USAGE: &str = "usage: transcode INPUT --out DIR [--ladder apple|envivio|per-title | --rungs H@KBPS,...] \
[--codec x264|x265|vp9|svt-av1|aom] [--workers N] [--segment-seconds S] [--chunk-seconds S | --scenes] \
[--preset P] [--crf N] [--no-audio] [--no-quality] [--work-dir DIR] [--keep-work] [--json]";

struct Args {
    job: Job,
    json: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut input: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut ladder = LadderSpec::Apple;
    let mut codec = Codec::X264;
    let mut workers = None;
    let mut segment = 4.0;
    let mut chunking = None;
    let mut preset = None;
    let mut crf = None;
    let mut audio = true;
    let mut quality = true;
    let mut work_dir = None;
    let mut keep = false;
    let mut json = false;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(value("--out")?)),
            "--ladder" => {
                let v = value("--ladder")?;
                ladder = LadderSpec::from_name(&v).ok_or_else(|| {
                    format!("unknown ladder `{v}` (expected apple, envivio or per-title)")
                })?;
            }
            "--rungs" => {
                let v = value("--rungs")?;
                ladder = LadderSpec::Custom(parse_rungs(&v)?);
            }
            "--codec" => codec = value("--codec")?.parse().map_err(|e| format!("{e}"))?,
            "--workers" => {
                let v = value("--workers")?;
                workers = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--workers `{v}` is not a positive integer"))?,
                );
            }
            "--segment-seconds" => {
                let v = value("--segment-seconds")?;
                segment = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| format!("--segment-seconds `{v}` is not a positive number"))?;
            }
            "--chunk-seconds" => {
                let v = value("--chunk-seconds")?;
                let seconds = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| format!("--chunk-seconds `{v}` is not a positive number"))?;
                chunking = Some(Chunking::Fixed { seconds });
            }
            "--scenes" => {
                chunking = Some(Chunking::Scenes {
                    threshold: 0.35,
                    min_seconds: 2.0,
                    max_seconds: 20.0,
                });
            }
            "--preset" => preset = Some(value("--preset")?),
            "--crf" => {
                let v = value("--crf")?;
                crf = Some(
                    v.parse::<u8>()
                        .map_err(|_| format!("--crf `{v}` is not 0-255"))?,
                );
            }
            "--no-audio" => audio = false,
            "--no-quality" => quality = false,
            "--work-dir" => work_dir = Some(PathBuf::from(value("--work-dir")?)),
            "--keep-work" => keep = true,
            "--json" => json = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag `{s}`\n{USAGE}")),
            s => {
                if input.replace(PathBuf::from(s)).is_some() {
                    return Err(format!("more than one INPUT\n{USAGE}"));
                }
            }
        }
    }
    let input = input.ok_or_else(|| format!("missing INPUT\n{USAGE}"))?;
    let out = out.ok_or_else(|| format!("missing --out DIR\n{USAGE}"))?;
    let mut encoder = Encoder::new(codec);
    if let Some(p) = preset {
        encoder = encoder.preset(p);
    }
    if crf.is_some() {
        encoder = encoder.rate_control(RateControl::CappedCrf {
            crf,
            cap: 1.5,
            buffer_seconds: 2.0,
        });
    }
    let mut job = Job::new(input, out)
        .ladder(ladder)
        .encoder(encoder)
        .segment_seconds(segment)
        .quality(quality)
        .keep_work(keep)
        .audio(audio.then_some(128_000));
    job.workers = workers;
    job.chunking = chunking;
    job.work_dir = work_dir;
    Ok(Args { job, json })
}

/// `HEIGHT@KBPS,...`, such as `1080@5000,720@3000`: widths follow the source's aspect ratio.
fn parse_rungs(v: &str) -> Result<netflix_abr::ladder::Ladder, String> {
    use netflix_abr::ladder::{FrameRate, Ladder, Rendition};
    let bad = || {
        format!("--rungs `{v}`: expected HEIGHT@KBPS[,HEIGHT@KBPS...] such as 1080@5000,720@3000")
    };
    let rungs = v
        .split(',')
        .map(|r| {
            let (h, k) = r.trim().split_once('@').ok_or_else(bad)?;
            let h: u32 = h.parse().map_err(|_| bad())?;
            let k: u32 = k.parse().map_err(|_| bad())?;
            // The codec string is read from the encoded stream when packaging.
            Ok(Rendition::new(
                h * 16 / 9,
                h,
                k * 1000,
                "avc1",
                FrameRate::integer(30),
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ladder::new(rungs).map_err(|e| format!("--rungs `{v}`: {e}"))
}

/// The progress bar: one line on stderr, redrawn at most ten times a second, plus a line
/// for each stage and each retry.
struct Bar {
    state: Mutex<BarState>,
}

struct BarState {
    started: tokio::time::Instant,
    last: Option<tokio::time::Instant>,
    workers: Vec<String>,
    tty: bool,
}

impl Bar {
    fn event(&self, e: &Event) {
        let mut s = self.state.lock().expect("bar lock");
        let mut err = std::io::stderr().lock();
        match e {
            Event::Stage(stage) => {
                if s.tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(
                    err,
                    "[{}] at {:.1} s",
                    stage_name(*stage),
                    s.started.elapsed().as_secs_f64()
                );
            }
            Event::Probed {
                frames,
                duration,
                resolution,
                fps,
            } => {
                let _ = writeln!(
                    err,
                    "source: {}x{} {fps:.3} fps, {frames} frames, {duration:.2} s",
                    resolution.0, resolution.1
                );
            }
            Event::Planned {
                chunks,
                resumed,
                rungs,
                workers,
            } => {
                s.workers = vec![String::new(); *workers];
                let _ = writeln!(
                    err,
                    "plan: {chunks} chunks x {rungs} rungs on {workers} workers ({resumed} chunks already done)"
                );
            }
            Event::ChunkProgress {
                worker,
                chunk,
                frames_done,
                frames,
                fps,
                ..
            } => {
                if let Some(w) = s.workers.get_mut(*worker) {
                    *w = format!("w{worker}:c{chunk} {frames_done}/{frames} {fps:.0}fps");
                }
            }
            Event::ChunkRetry {
                chunk,
                attempt,
                reason,
                backoff,
            } => {
                if s.tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(
                    err,
                    "chunk {chunk} attempt {attempt} failed ({reason}); retrying in {backoff:?}"
                );
            }
            Event::Overall {
                frames_done,
                frames_total,
                fps,
                eta,
            } => {
                let now = tokio::time::Instant::now();
                let due = s.last.is_none_or(|t| {
                    now - t >= Duration::from_millis(if s.tty { 100 } else { 2000 })
                });
                if due || frames_done == frames_total {
                    s.last = Some(now);
                    let frac = if *frames_total > 0 {
                        *frames_done as f64 / *frames_total as f64
                    } else {
                        1.0
                    };
                    let width = 30;
                    let filled = (frac * width as f64).round() as usize;
                    let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
                    let eta = eta.map_or("--".into(), |d| format!("{}s", d.as_secs()));
                    let line = format!(
                        "[{bar}] {:>5.1}% {frames_done}/{frames_total} frames {fps:.1} fps eta {eta} | {}",
                        frac * 100.0,
                        s.workers.join(" ")
                    );
                    if s.tty {
                        let _ = write!(err, "\r\x1b[K{line}");
                    } else {
                        let _ = writeln!(err, "{line}");
                    }
                }
            }
            Event::Quality {
                rung,
                metric,
                value,
            } => {
                let _ = writeln!(err, "v{rung} {metric} {value:.4}");
            }
            _ => {}
        }
        let _ = err.flush();
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Probe => "probe",
        Stage::SceneDetection => "scene detection",
        Stage::PerTitle => "per-title trial encodes",
        Stage::Encode => "encode",
        Stage::Audio => "audio",
        Stage::Merge => "merge",
        Stage::Package => "package",
        Stage::Quality => "quality",
        Stage::Publish => "publish",
        _ => "stage",
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("transcode: {e}");
            return ExitCode::from(2);
        }
    };
    let tools = match Tools::from_path() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("transcode: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cancel = Cancel::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ntranscode: interrupted; stopping every ffmpeg (run again to resume)");
                cancel.cancel();
            }
        });
    }
    use std::io::IsTerminal as _;
    let bar = Bar {
        state: Mutex::new(BarState {
            started: tokio::time::Instant::now(),
            last: None,
            workers: Vec::new(),
            tty: std::io::stderr().is_terminal(),
        }),
    };
    let job = args.job;
    let result = Transcoder::new(tools)
        .run(&job, move |e: &Event| bar.event(e), &cancel)
        .await;
    eprintln!();
    match result {
        Ok(report) => {
            if args.json {
                let renditions: Vec<_> = report
                    .renditions
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "dir": r.dir,
                            "width": r.rendition.width,
                            "height": r.rendition.height,
                            "codecs": r.rendition.codecs,
                            "target_bitrate": r.rendition.bitrate,
                            "average_bandwidth": r.average_bandwidth,
                            "peak_bandwidth": r.peak_bandwidth,
                            "segments": r.segments,
                            "psnr": r.psnr,
                            "ssim": r.ssim,
                        })
                    })
                    .collect();
                let out = serde_json::json!({
                    "out": job.out,
                    "frames": report.source.frames(),
                    "chunks": report.plan.chunks().len(),
                    "chunks_encoded": report.chunks_encoded,
                    "chunks_resumed": report.chunks_resumed,
                    "retries": report.retries,
                    "workers": report.workers,
                    "elapsed_s": report.elapsed.as_secs_f64(),
                    "renditions": renditions,
                });
                println!("{out:#}");
            } else {
                println!(
                    "{} renditions, {} chunks ({} resumed) in {:.1} s -> {}",
                    report.renditions.len(),
                    report.plan.chunks().len(),
                    report.chunks_resumed,
                    report.elapsed.as_secs_f64(),
                    job.out.join("master.m3u8").display()
                );
                println!(
                    "{:<5} {:>10} {:<18} {:>10} {:>10} {:>8} {:>7}",
                    "dir", "size", "codecs", "avg kb/s", "peak kb/s", "PSNR", "SSIM"
                );
                for r in &report.renditions {
                    println!(
                        "{:<5} {:>10} {:<18} {:>10.0} {:>10.0} {:>8} {:>7}",
                        r.dir,
                        format!("{}x{}", r.rendition.width, r.rendition.height),
                        r.rendition.codecs,
                        r.average_bandwidth as f64 / 1000.0,
                        r.peak_bandwidth as f64 / 1000.0,
                        r.psnr.map_or("-".into(), |p| format!("{p:.2}")),
                        r.ssim.map_or("-".into(), |s| format!("{s:.4}")),
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("transcode: {e}");
            ExitCode::FAILURE
        }
    }
}
