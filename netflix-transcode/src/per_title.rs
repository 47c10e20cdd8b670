//! Per-title ladders: trial encodes, their rate-quality points, the convex hull.
//!
//! Netflix's per-title encoding: encode a title at several resolutions and bitrates,
//! measure each encode's quality against the source (upscaled to the source's size), keep
//! the upper convex hull of (bitrate, quality), and pick the ladder's rungs on the hull.
//! Each resolution's trials come from one ffmpeg process that decodes the sample once.

use crate::cancel::Cancel;
use crate::codec::{Codec, Encoder, RateControl};
use crate::error::{Error, Result};
use crate::job::PerTitle;
use crate::pipeline::chunk_args;
use crate::plan::Chunk;
use crate::probe::Source;
use crate::quality::{Psnr, measure};
use crate::tools::{Tools, run};
use netflix_abr::ladder::{Ladder, Rendition};
use netflix_abr::per_title::{RdPoint, convex_hull, ladder, select};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The trial encodes of a per-title ladder and what was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Trials {
    /// Every trial: resolution, measured bitrate (kbit/s) and PSNR (dB).
    pub points: Vec<RdPoint>,
    /// Their upper convex hull.
    pub hull: Vec<RdPoint>,
    /// The rungs picked on the hull.
    pub ladder: Ladder,
}

/// A codec string to stand in until the encoded stream's own is read.
fn placeholder(codec: Codec) -> &'static str {
    match codec {
        Codec::X264 => "avc1.640028",
        Codec::X265 => "hvc1.1.6.L120.90",
        Codec::Vp9 => "vp09.00.40.08",
        Codec::SvtAv1 | Codec::Aom => "av01.0.08M.08",
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn trials(
    tools: &Tools,
    source: &Source,
    cfg: &PerTitle,
    encoder: &Encoder,
    segment_seconds: f64,
    workers: usize,
    dir: &Path,
    cancel: &Cancel,
) -> Result<Trials> {
    if cfg.bitrates_kbps.is_empty() || cfg.heights.is_empty() {
        return Err(Error::Config("per-title needs heights and bitrates".into()));
    }
    let fps = source.video.frame_rate.as_f64();
    let frames = ((cfg.sample_seconds * fps).round() as u64).clamp(1, source.frames());
    let seconds = frames as f64 / fps;
    let (sw, sh) = (source.video.width, source.video.height);
    let mut heights: Vec<u32> = cfg.heights.iter().copied().filter(|&h| h <= sh).collect();
    if heights.is_empty() {
        heights.push(sh);
    }
    let gop = ((segment_seconds * fps).round() as u64).max(1);
    let chunk = Chunk {
        index: 0,
        start_frame: 0,
        frames,
        segment_starts: (0..frames).step_by(gop as usize).collect(),
    };
    let trial_encoder = Encoder {
        preset: cfg
            .preset
            .clone()
            .unwrap_or_else(|| encoder.codec.fastest_preset().to_string()),
        rate_control: RateControl::Bitrate {
            cap: 1.5,
            buffer_seconds: 2.0,
        },
        ..encoder.clone()
    };
    let mut bitrates = cfg.bitrates_kbps.clone();
    bitrates.sort_unstable();
    bitrates.dedup();
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;

    let sem = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for h in heights {
        let (w, h) = crate::job::size_for_height(h, (sw, sh));
        let rungs: Vec<Rendition> = bitrates
            .iter()
            .map(|&k| {
                Rendition::new(
                    w,
                    h,
                    k * 1000,
                    placeholder(encoder.codec),
                    source.video.frame_rate,
                )
            })
            .collect();
        let outs: Vec<PathBuf> = bitrates
            .iter()
            .map(|k| dir.join(format!("h{h}-b{k}.mp4")))
            .collect();
        let args = chunk_args(
            &source.path,
            source,
            &chunk,
            &rungs,
            &trial_encoder,
            false,
            &outs,
        );
        let (tools, cancel, sem, input) = (
            tools.clone(),
            cancel.clone(),
            sem.clone(),
            source.path.clone(),
        );
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let out = run(tools.ffmpeg(), args, &cancel, Some(&mut |_| {})).await?;
            if !out.status.success() {
                return Err(Error::Step {
                    step: "per-title",
                    reason: format!("trial encodes at {h}p: ffmpeg exited with {}", out.status),
                    stderr_tail: out.stderr_tail,
                });
            }
            let mut points = Vec::new();
            for (r, path) in rungs.iter().zip(&outs) {
                let bytes = std::fs::metadata(path)
                    .map_err(|e| Error::io("reading", path, e))?
                    .len();
                let q = measure(&tools, &Psnr, &input, path, (sw, sh), &cancel).await?;
                let kbps = bytes as f64 * 8.0 / seconds / 1000.0;
                tracing::debug!(width = r.width, height = h, kbps, psnr = q, "trial");
                points.push(RdPoint::new(r.width, h, kbps, q));
            }
            Ok::<_, Error>(points)
        });
    }
    let mut points = Vec::new();
    while let Some(r) = set.join_next().await {
        points.extend(r.map_err(|e| Error::step("per-title", e.to_string()))??);
    }
    points.sort_by(|a, b| {
        a.height
            .cmp(&b.height)
            .then(a.bitrate_kbps.total_cmp(&b.bitrate_kbps))
    });
    let hull = convex_hull(&points);
    let rungs = select(&hull, cfg.selection);
    // Round to whole kbit/s, as ladders are written; distinct rates only.
    let mut rounded: Vec<RdPoint> = rungs
        .iter()
        .map(|p| RdPoint {
            bitrate_kbps: p.bitrate_kbps.round().max(1.0),
            ..*p
        })
        .collect();
    rounded.dedup_by(|a, b| a.bitrate_kbps == b.bitrate_kbps);
    let ladder = ladder(
        &rounded,
        placeholder(encoder.codec),
        source.video.frame_rate,
    )?;
    tracing::info!(
        trials = points.len(),
        hull = hull.len(),
        rungs = ladder.len(),
        "per-title ladder"
    );
    Ok(Trials {
        points,
        hull,
        ladder,
    })
}
