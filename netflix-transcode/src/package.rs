//! Merging chunks without re-encoding, cutting CMAF segments, and writing the HLS and DASH
//! manifests with `netflix-abr`'s types.
//!
//! Layout of a packaged title (the same segments serve HLS and DASH):
//!
//! ```text
//! master.m3u8            multivariant playlist: measured BANDWIDTH / AVERAGE-BANDWIDTH,
//!                        CODECS read from each init segment, RESOLUTION, FRAME-RATE, AUDIO
//! manifest.mpd           DASH, SegmentTemplate + SegmentTimeline, one video and one audio set
//! v0/init.mp4            CMAF header (ftyp + moov) of the lowest rung
//! v0/seg-00001.m4s ...   CMAF fragments (styp, sidx, moof, mdat), one per segment
//! v0/index.m3u8          its media playlist
//! audio/...              AAC, encoded once, its own rendition group
//! ```

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::pipeline::{RenditionReport, timescale};
use crate::plan::ChunkPlan;
use crate::probe::{Source, analyse};
use crate::progress::{Event, Progress, Stage};
use crate::tools::Tools;
use netflix_abr::ladder::Rendition;
use netflix_abr::manifest::dash::{
    AdaptationSet, ContentType, Mpd, PROFILE_LIVE, Representation, SegmentTemplate,
};
use netflix_abr::manifest::hls::{
    AudioRendition, Map, MediaPlaylist, MultivariantPlaylist, Segment, Variant,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct Packaged {
    pub renditions: Vec<RenditionReport>,
    pub audio: Option<RenditionReport>,
    pub merged: Vec<PathBuf>,
}

const AUDIO_RATE: u32 = 48_000;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn package_all(
    tools: &Tools,
    source: &Source,
    plan: &ChunkPlan,
    rungs: &[Rendition],
    work: &Path,
    staging: &Path,
    audio: Option<(RenditionReport, Vec<u64>)>,
    workers: usize,
    progress: &Arc<dyn Progress>,
    cancel: &Cancel,
) -> Result<Packaged> {
    let fps = source.video.frame_rate;
    let segments = plan.segments();
    // Constant frame rates: whole frames. Variable ones: the source's own timestamps.
    let seconds: Vec<f64> = segments
        .iter()
        .map(|&(start, n)| {
            if source.variable_frame_rate {
                source.time_of(start + n) - source.time_of(start)
            } else {
                n as f64 * f64::from(fps.den) / f64::from(fps.num)
            }
        })
        .collect();
    let total_seconds: f64 = seconds.iter().sum();

    // Merge and cut each rung (one ffmpeg each), rungs in parallel.
    progress.event(&Event::Stage(Stage::Merge));
    let merged_dir = work.join("merged");
    std::fs::create_dir_all(&merged_dir).map_err(|e| Error::io("creating", &merged_dir, e))?;
    std::fs::create_dir_all(staging).map_err(|e| Error::io("creating", staging, e))?;
    let merged: Vec<PathBuf> = (0..rungs.len())
        .map(|r| merged_dir.join(format!("r{r}.mp4")))
        .collect();
    // Copying is bound by the disk, not the cores: at least four rungs at once.
    let sem = Arc::new(tokio::sync::Semaphore::new(workers.max(4)));
    let mut set = tokio::task::JoinSet::new();
    let plan_arc = Arc::new(plan.clone());
    for (r, out) in merged.iter().enumerate() {
        let (tools, plan, work, out, dir, cancel, sem) = (
            tools.clone(),
            plan_arc.clone(),
            work.to_path_buf(),
            out.clone(),
            staging.join(format!("v{r}")),
            cancel.clone(),
            sem.clone(),
        );
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            merge_and_cut(&tools, &plan, &work, r, &out, &dir, fps, &cancel).await?;
            Ok::<_, Error>(r)
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| Error::step("package", e.to_string()))??;
    }

    // Package each rung.
    progress.event(&Event::Stage(Stage::Package));
    let mut reports = Vec::new();
    for (r, rung) in rungs.iter().enumerate() {
        let name = format!("v{r}");
        let dir = staging.join(&name);
        let sizes = segment_sizes(&dir)?;
        if sizes.len() != segments.len() {
            return Err(Error::step(
                "package",
                format!(
                    "rung {r}: {} segments cut, the plan has {}",
                    sizes.len(),
                    segments.len()
                ),
            ));
        }
        let codecs = read_codec(&dir)?;
        let list: Vec<(u64, f64)> = sizes.iter().copied().zip(seconds.iter().copied()).collect();
        let (avg, peak) = write_media_playlist(&dir, &list)?;
        reports.push(RenditionReport {
            rendition: Rendition {
                codecs,
                ..rung.clone()
            },
            dir: name,
            segments: list.len(),
            bytes: sizes.iter().sum(),
            average_bandwidth: avg,
            peak_bandwidth: peak,
            psnr: None,
            ssim: None,
        });
    }

    // The multivariant playlist.
    let mut master = MultivariantPlaylist {
        independent_segments: true,
        ..Default::default()
    };
    if audio.is_some() {
        master.audio.push(AudioRendition {
            group_id: "audio".into(),
            name: "Main".into(),
            language: None,
            default: true,
            autoselect: true,
            channels: Some("2".into()),
            uri: Some("audio/index.m3u8".into()),
        });
    }
    for rep in reports.iter().rev() {
        let (a_avg, a_peak, a_codec) = match &audio {
            Some(a) => (
                a.0.average_bandwidth,
                a.0.peak_bandwidth,
                format!(",{}", a.0.rendition.codecs),
            ),
            None => (0, 0, String::new()),
        };
        let r = &rep.rendition;
        master.variants.push(Variant {
            uri: format!("{}/index.m3u8", rep.dir),
            bandwidth: rep.peak_bandwidth + a_peak,
            average_bandwidth: Some(rep.average_bandwidth + a_avg),
            codecs: Some(format!("{}{a_codec}", r.codecs)),
            resolution: Some((r.width, r.height)),
            frame_rate: Some(fps.as_f64()),
            audio: audio.as_ref().map(|_| "audio".to_string()),
        });
    }
    write(&staging.join("master.m3u8"), master.render().as_bytes())?;

    // The MPD: one video adaptation set over the same segments, one audio set.
    let ts = u64::from(fps.num);
    let durations: Vec<u64> = seconds
        .iter()
        .map(|s| (s * f64::from(fps.num) / f64::from(fps.den)).round() as u64 * u64::from(fps.den))
        .collect();
    let mut template = SegmentTemplate::numbered(ts, &durations);
    template.initialization = "$RepresentationID$/init.mp4".into();
    template.media = "$RepresentationID$/seg-$Number%05d$.m4s".into();
    let mut sets = vec![AdaptationSet {
        content_type: ContentType::Video,
        lang: None,
        segment_template: Some(template),
        representations: reports
            .iter()
            .map(|rep| Representation {
                id: rep.dir.clone(),
                bandwidth: u32::try_from(rep.peak_bandwidth).unwrap_or(u32::MAX),
                codecs: rep.rendition.codecs.clone(),
                resolution: Some((rep.rendition.width, rep.rendition.height)),
                frame_rate: Some(fps),
                audio_sampling_rate: None,
                segment_base: None,
            })
            .collect(),
    }];
    if let Some((a, durations)) = &audio {
        let mut t = SegmentTemplate::numbered(u64::from(AUDIO_RATE), durations);
        t.initialization = "$RepresentationID$/init.mp4".into();
        t.media = "$RepresentationID$/seg-$Number%05d$.m4s".into();
        sets.push(AdaptationSet {
            content_type: ContentType::Audio,
            lang: None,
            segment_template: Some(t),
            representations: vec![Representation {
                id: "audio".into(),
                bandwidth: u32::try_from(a.peak_bandwidth).unwrap_or(u32::MAX),
                codecs: a.rendition.codecs.clone(),
                resolution: None,
                frame_rate: None,
                audio_sampling_rate: Some(AUDIO_RATE),
                segment_base: None,
            }],
        });
    }
    let mpd = Mpd {
        profiles: PROFILE_LIVE.into(),
        min_buffer_time: seconds.iter().copied().fold(0.0, f64::max).max(1.0),
        duration: total_seconds,
        adaptation_sets: sets,
    };
    write(&staging.join("manifest.mpd"), mpd.render().as_bytes())?;

    Ok(Packaged {
        renditions: reports,
        audio: audio.map(|a| a.0),
        merged,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

fn media_playlist(list: &[(u64, f64)]) -> MediaPlaylist {
    let mut p = MediaPlaylist::vod(
        list.iter()
            .enumerate()
            .map(|(i, &(_, secs))| Segment::new(format!("seg-{:05}.m4s", i + 1), round6(secs)))
            .collect(),
    );
    p.map = Some(Map::new("init.mp4"));
    p
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Joins one rung's chunks with the concat demuxer (no re-encode) into `out` and, in the
/// same ffmpeg process, cuts them into CMAF segments in `dir`; then checks that the merged
/// file has every frame and the plan's keyframes.
#[allow(clippy::too_many_arguments)]
async fn merge_and_cut(
    tools: &Tools,
    plan: &ChunkPlan,
    work: &Path,
    rung: usize,
    out: &Path,
    dir: &Path,
    fps: netflix_abr::ladder::FrameRate,
    cancel: &Cancel,
) -> Result<()> {
    let list_path = out.with_extension("txt");
    let mut list = String::new();
    for c in plan.chunks() {
        let f = work
            .join("chunks")
            .join(format!("c{:05}", c.index))
            .join(format!("r{rung}.mp4"));
        let abs = std::path::absolute(&f).map_err(|e| Error::io("resolving", &f, e))?;
        let quoted = abs.to_string_lossy().replace('\'', r"'\''");
        list.push_str(&format!("file '{quoted}'\n"));
    }
    write(&list_path, list.as_bytes())?;
    let part = crate::journal::part_path(out);
    let ts = timescale(fps).to_string();
    let mut args: Vec<OsString> = [
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(list_path.clone().into());
    let merged = [
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-video_track_timescale",
        &ts,
        "-fflags",
        "+bitexact",
        "-map_metadata",
        "-1",
        "-f",
        "mp4",
    ];
    args.extend(merged.iter().map(OsString::from));
    args.push(part.clone().into());
    // A tiny minimum length: every keyframe (and only keyframes) starts a segment.
    let hls = HlsCut::new(dir, 0.01)?;
    args.extend(["-map", "0:v:0", "-c", "copy"].iter().map(OsString::from));
    args.extend(hls.args());
    tools.run_ffmpeg("merge", args, cancel).await?;
    hls.finish()?;
    std::fs::rename(&part, out).map_err(|e| Error::io("renaming", &part, e))?;
    // Every frame, and keyframes exactly where the plan put them.
    let bytes = std::fs::read(out).map_err(|e| Error::io("reading", out, e))?;
    let packets = crate::mp4::track(&bytes)
        .ok_or_else(|| Error::step("merge", format!("rung {rung}: no MP4 sample table")))?
        .packets;
    let a = analyse(&packets);
    if a.sorted_pts.len() as u64 != plan.total_frames() || a.keyframes != plan.keyframes() {
        return Err(Error::step(
            "merge",
            format!(
                "rung {rung}: {} frames with {} keyframes, expected {} frames with {}",
                a.sorted_pts.len(),
                a.keyframes.len(),
                plan.total_frames(),
                plan.keyframes().len()
            ),
        ));
    }
    Ok(())
}

/// One output of ffmpeg's HLS muxer that cuts a stream into CMAF segments in `dir`
/// (`init.mp4`, `seg-00001.m4s`...): a new segment starts at the first keyframe at least
/// `min_seconds` after the previous cut. ffmpeg's own playlist is read for its durations
/// and removed (ours replaces it).
struct HlsCut {
    dir: PathBuf,
    min_seconds: f64,
}

impl HlsCut {
    /// Empties `dir` for the segments.
    fn new(dir: &Path, min_seconds: f64) -> Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            min_seconds,
        })
    }

    fn theirs(&self) -> PathBuf {
        self.dir.join("ffmpeg.m3u8")
    }

    /// The output's options and file, after its `-map` and codec options.
    fn args(&self) -> Vec<OsString> {
        let time = format!("{}", self.min_seconds);
        let mut args: Vec<OsString> = [
            "-fflags",
            "+bitexact",
            "-map_metadata",
            "-1",
            "-f",
            "hls",
            "-hls_time",
            &time,
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-start_number",
            "1",
            "-hls_segment_filename",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push(self.dir.join("seg-%05d.m4s").into());
        args.push(self.theirs().into());
        args
    }

    /// After ffmpeg has run: the segments' durations from ffmpeg's playlist, which is removed.
    fn finish(&self) -> Result<Vec<f64>> {
        let theirs = self.theirs();
        let text =
            std::fs::read_to_string(&theirs).map_err(|e| Error::io("reading", &theirs, e))?;
        std::fs::remove_file(&theirs).map_err(|e| Error::io("removing", &theirs, e))?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .filter_map(|l| l.split(',').next()?.trim().parse().ok())
            .collect())
    }
}

/// Writes `dir/index.m3u8` for segments of (bytes, seconds) and returns the measured
/// (average, peak) bitrates.
fn write_media_playlist(dir: &Path, list: &[(u64, f64)]) -> Result<(u64, u64)> {
    let playlist = media_playlist(list);
    write(&dir.join("index.m3u8"), playlist.render().as_bytes())?;
    Ok(crate::mp4::bandwidth(list, playlist.target_duration()))
}

/// The sizes of `seg-NNNNN.m4s` in `dir`, in order.
fn segment_sizes(dir: &Path) -> Result<Vec<u64>> {
    let mut names: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with("seg-") && n.ends_with(".m4s"))
                .then(|| Some((n, e.metadata().ok()?.len())))
                .flatten()
        })
        .collect();
    names.sort();
    Ok(names.into_iter().map(|(_, s)| s).collect())
}

fn read_codec(dir: &Path) -> Result<String> {
    let init = dir.join("init.mp4");
    let bytes = std::fs::read(&init).map_err(|e| Error::io("reading", &init, e))?;
    crate::mp4::codec_string(&bytes).ok_or_else(|| {
        Error::step(
            "package",
            format!("no codec configuration in {}", init.display()),
        )
    })
}

/// Encodes the first audio stream once as stereo AAC and cuts it into segments of about
/// the plan's segment length. Returns its report and its segment durations in 1/48000 s.
pub(crate) async fn audio(
    tools: &Tools,
    source: &Source,
    staging: &Path,
    bitrate: u32,
    plan: &ChunkPlan,
    cancel: &Cancel,
) -> Result<(RenditionReport, Vec<u64>)> {
    let dir = staging.join("audio");
    let seg = plan.segment_frames() as f64 / plan.frame_rate().as_f64();
    let rate = AUDIO_RATE.to_string();
    let br = bitrate.to_string();
    let streams = [
        "-map",
        "0:a:0",
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        &br,
        "-ac",
        "2",
        "-ar",
        &rate,
        "-flags:a",
        "+bitexact",
    ];
    let hls = HlsCut::new(&dir, seg)?;
    let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-v", "error", "-y", "-i"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(source.path.clone().into());
    args.extend(streams.iter().map(OsString::from));
    args.extend(hls.args());
    tools.run_ffmpeg("audio", args, cancel).await?;
    let secs = hls.finish()?;
    let sizes = segment_sizes(&dir)?;
    if sizes.len() != secs.len() || sizes.is_empty() {
        return Err(Error::step(
            "audio",
            format!("{} segments but {} durations", sizes.len(), secs.len()),
        ));
    }
    let list: Vec<(u64, f64)> = sizes.iter().copied().zip(secs.iter().copied()).collect();
    let (avg, peak) = write_media_playlist(&dir, &list)?;
    let codecs = read_codec(&dir)?;
    let durations = secs
        .iter()
        .map(|s| (s * f64::from(AUDIO_RATE)).round() as u64)
        .collect();
    Ok((
        RenditionReport {
            rendition: Rendition {
                width: 0,
                height: 0,
                bitrate,
                codecs,
                frame_rate: plan.frame_rate(),
            },
            dir: "audio".into(),
            segments: list.len(),
            bytes: sizes.iter().sum(),
            average_bandwidth: avg,
            peak_bandwidth: peak,
            psnr: None,
            ssim: None,
        },
        durations,
    ))
}
