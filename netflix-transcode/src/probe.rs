//! Probing a source with ffprobe: streams, frame rate, exact frame count, keyframes,
//! open GOPs, variable frame rate and interlacing.
//!
//! Two ffprobe runs: one for the container and streams (`-show_format -show_streams`), one
//! listing every video packet's timestamps and flags without decoding (`-show_entries
//! packet=pts,dts,flags`). The frame count is the number of video packets, which is exact
//! for every format ffmpeg can stream-copy; keyframes are the packets flagged `K`, and a
//! GOP is open when a packet after a keyframe (in decode order) is presented before it:
//! a leading picture that references the previous GOP.

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::tools::Tools;
use netflix_abr::ladder::FrameRate;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The video stream of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// ffmpeg's codec name, such as `h264`.
    pub codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The nominal frame rate.
    pub frame_rate: FrameRate,
    /// The pixel format, such as `yuv420p`.
    pub pix_fmt: String,
    /// ffprobe's `field_order` (`progressive`, `tt`, `bb`, `tb`, `bt` or `unknown`).
    pub field_order: String,
}

/// The first audio stream of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// ffmpeg's codec name, such as `aac`.
    pub codec: String,
    /// Channels.
    pub channels: u32,
    /// Samples per second.
    pub sample_rate: u32,
}

/// What ffprobe found in a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// The container, as ffprobe names it (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`...).
    pub format: String,
    /// The container's duration in seconds.
    pub duration: f64,
    /// The video stream.
    pub video: VideoInfo,
    /// The first audio stream, if any.
    pub audio: Option<AudioInfo>,
    /// Each frame's presentation time in seconds, relative to the first frame, in
    /// presentation order. Its length is the exact frame count.
    pub frame_times: Vec<f64>,
    /// The frames (indexes in presentation order) that are keyframes.
    pub keyframes: Vec<u64>,
    /// Whether some GOP is open (has leading pictures that reference the previous GOP).
    pub open_gop: bool,
    /// Whether frame durations vary by more than timestamp rounding.
    pub variable_frame_rate: bool,
    /// Seconds from the container's start (where ffmpeg's `-ss 0` points) to the first
    /// video frame: non-zero when another stream starts earlier.
    pub video_offset: f64,
}

impl Source {
    /// The exact number of frames.
    pub fn frames(&self) -> u64 {
        self.frame_times.len() as u64
    }

    /// Whether the video is interlaced (a field order other than progressive/unknown).
    pub fn interlaced(&self) -> bool {
        matches!(self.video.field_order.as_str(), "tt" | "bb" | "tb" | "bt")
    }

    /// The presentation time of frame `i` in seconds (the end of the last frame for
    /// `i == frames()`).
    pub fn time_of(&self, i: u64) -> f64 {
        match self.frame_times.get(i as usize) {
            Some(t) => *t,
            // One nominal frame after the last.
            None => {
                self.frame_times.last().copied().unwrap_or(0.0)
                    + 1.0 / self.video.frame_rate.as_f64().max(f64::MIN_POSITIVE)
            }
        }
    }
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct FormatJson {
    format_name: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    field_order: Option<String>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    time_base: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

fn ratio(s: &str) -> Option<(u64, u64)> {
    let (n, d) = s.split_once('/')?;
    let (n, d) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0 && d > 0).then_some((n, d))
}

/// Probes `path`.
///
/// # Errors
///
/// [`Error::ToolMissing`] without ffprobe, [`Error::Unreadable`] when ffprobe cannot open
/// the file, [`Error::Unsupported`] when it has no video stream or no frames.
pub async fn probe(tools: &Tools, path: &Path) -> Result<Source> {
    probe_with(tools, path, &Cancel::new()).await
}

pub(crate) async fn probe_with(tools: &Tools, path: &Path, cancel: &Cancel) -> Result<Source> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(Error::io("opening", path, e));
    }
    let unreadable = |detail: String| Error::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    // The streams and every video packet (pts, dts, flags in decode order), read at once.
    let (out, packets_out) = tokio::join!(
        ffprobe(
            tools,
            path,
            &["-print_format", "json", "-show_format", "-show_streams"],
            cancel,
        ),
        ffprobe(
            tools,
            path,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=pts,dts,flags",
                "-of",
                "csv=p=0",
            ],
            cancel,
        )
    );
    let out = out?;
    let json: ProbeJson =
        serde_json::from_slice(&out).map_err(|e| unreadable(format!("ffprobe's JSON: {e}")))?;
    let format = json
        .format
        .ok_or_else(|| unreadable("no container".into()))?;
    let unsupported = |reason: String| Error::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let v = json
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0)
        .ok_or_else(|| unsupported("it has no video stream".into()))?;
    let (width, height) = match (v.width, v.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(unsupported("the video stream has no size".into())),
    };
    let audio = json
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|a| AudioInfo {
            codec: a.codec_name.clone().unwrap_or_default(),
            channels: a.channels.unwrap_or(2),
            sample_rate: a
                .sample_rate
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(48_000),
        });
    let (tb_num, tb_den) = v
        .time_base
        .as_deref()
        .and_then(ratio)
        .ok_or_else(|| unsupported("the video stream has no time base".into()))?;

    let packets = parse_packets(&String::from_utf8_lossy(&packets_out?));
    if packets.is_empty() {
        return Err(unsupported("the video stream has no frames".into()));
    }
    let analysis = analyse(&packets);
    let tb = tb_num as f64 / tb_den as f64;
    let first = analysis.sorted_pts[0];
    let frame_times: Vec<f64> = analysis
        .sorted_pts
        .iter()
        .map(|p| (p - first) as f64 * tb)
        .collect();

    let nominal = v
        .r_frame_rate
        .as_deref()
        .and_then(ratio)
        .or_else(|| v.avg_frame_rate.as_deref().and_then(ratio));
    let median = median_delta(&analysis.sorted_pts).map(|d| d as f64 * tb);
    let frame_rate = match (nominal, median) {
        (Some((n, d)), Some(m)) if ((d as f64 / n as f64) - m).abs() <= 0.02 * m => {
            FrameRate::new(n as u32, d as u32)
        }
        (_, Some(m)) if m > 0.0 => approx_rate(1.0 / m),
        (Some((n, d)), None) => FrameRate::new(n as u32, d as u32),
        _ => return Err(unsupported("no frame rate".into())),
    };
    let frame_dur = 1.0 / frame_rate.as_f64();
    let tick = tb;
    let variable_frame_rate = analysis.sorted_pts.windows(2).any(|w| {
        let d = (w[1] - w[0]) as f64 * tb;
        (d - frame_dur).abs() > (0.05 * frame_dur).max(tick * 1.01)
    });

    let format_start: f64 = format
        .start_time
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    let video_offset = (first as f64 * tb - format_start).max(0.0);
    Ok(Source {
        path: path.to_path_buf(),
        video_offset,
        format: format.format_name.unwrap_or_default(),
        duration: format
            .duration
            .as_deref()
            .and_then(|d| d.parse().ok())
            .unwrap_or(frame_times.len() as f64 * frame_dur),
        video: VideoInfo {
            codec: v.codec_name.clone().unwrap_or_default(),
            width,
            height,
            frame_rate,
            pix_fmt: v.pix_fmt.clone().unwrap_or_default(),
            field_order: v.field_order.clone().unwrap_or_else(|| "unknown".into()),
        },
        audio,
        frame_times,
        keyframes: analysis.keyframes,
        open_gop: analysis.open_gop,
        variable_frame_rate,
    })
}

/// Runs ffprobe at `-v error` with `args` on `path`; a failure means the file is
/// unreadable, and carries ffprobe's words.
async fn ffprobe(tools: &Tools, path: &Path, args: &[&str], cancel: &Cancel) -> Result<Vec<u8>> {
    let mut all: Vec<&std::ffi::OsStr> = vec!["-v".as_ref(), "error".as_ref()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.push(path.as_os_str());
    match tools.run_ffprobe("probe", all, cancel).await {
        Ok(out) => Ok(out.stdout),
        Err(Error::Step { stderr_tail, .. }) => Err(Error::Unreadable {
            path: path.to_path_buf(),
            detail: stderr_tail,
        }),
        Err(e) => Err(e),
    }
}

/// One packet: presentation and decode timestamps (in the stream's time base) and whether
/// it is a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packet {
    pub pts: Option<i64>,
    pub dts: Option<i64>,
    pub key: bool,
}

pub(crate) fn parse_packets(csv: &str) -> Vec<Packet> {
    csv.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(',');
            let pts = f.next()?;
            let dts = f.next()?;
            let flags = f.next().unwrap_or("");
            Some(Packet {
                pts: pts.parse().ok(),
                dts: dts.parse().ok(),
                key: flags.contains('K'),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Analysis {
    /// Presentation timestamps, sorted.
    pub sorted_pts: Vec<i64>,
    /// Keyframes as indexes into `sorted_pts`.
    pub keyframes: Vec<u64>,
    /// A packet after a keyframe (decode order) is presented before it.
    pub open_gop: bool,
}

/// Orders packets by presentation, finds keyframes and leading pictures. Packets without a
/// pts take their dts (raw streams), or follow the previous one.
pub(crate) fn analyse(packets: &[Packet]) -> Analysis {
    let mut last = i64::MIN;
    let pts: Vec<i64> = packets
        .iter()
        .map(|p| {
            let t = p.pts.or(p.dts).unwrap_or(last.saturating_add(1));
            last = t;
            t
        })
        .collect();
    let mut open_gop = false;
    let mut gop_start: Option<i64> = None;
    for (p, &t) in packets.iter().zip(&pts) {
        if p.key {
            gop_start = Some(t);
        } else if gop_start.is_some_and(|k| t < k) {
            open_gop = true;
        }
    }
    let mut order: Vec<usize> = (0..pts.len()).collect();
    order.sort_by_key(|&i| (pts[i], i));
    let mut keyframes: Vec<u64> = order
        .iter()
        .enumerate()
        .filter(|&(_, &i)| packets[i].key)
        .map(|(rank, _)| rank as u64)
        .collect();
    keyframes.sort_unstable();
    Analysis {
        sorted_pts: order.iter().map(|&i| pts[i]).collect(),
        keyframes,
        open_gop,
    }
}

fn median_delta(sorted: &[i64]) -> Option<i64> {
    let mut d: Vec<i64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some(d[d.len() / 2])
}

/// The nearest common frame rate (NTSC fractions first), else the rate in 1/1000 units.
fn approx_rate(fps: f64) -> FrameRate {
    for base in [24u32, 30, 60, 120] {
        let ntsc = f64::from(base * 1000) / 1001.0;
        if (fps - ntsc).abs() < 0.005 {
            return FrameRate::new(base * 1000, 1001);
        }
    }
    if (fps - fps.round()).abs() < 0.005 {
        return FrameRate::integer(fps.round() as u32);
    }
    FrameRate::new((fps * 1000.0).round() as u32, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(pts: i64, dts: i64, key: bool) -> Packet {
        Packet {
            pts: Some(pts),
            dts: Some(dts),
            key,
        }
    }

    #[test]
    fn closed_gop_with_b_frames_is_not_open() {
        // I0 P3 B1 B2 | I4 P7 B5 B6 in decode order.
        let p = [
            pk(0, -1, true),
            pk(3, 0, false),
            pk(1, 1, false),
            pk(2, 2, false),
            pk(4, 3, true),
            pk(7, 4, false),
            pk(5, 5, false),
            pk(6, 6, false),
        ];
        let a = analyse(&p);
        assert!(!a.open_gop);
        assert_eq!(a.keyframes, vec![0, 4]);
        assert_eq!(a.sorted_pts, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn leading_pictures_mean_an_open_gop() {
        // The second I (pts 6) is followed by B frames shown before it (4, 5).
        let p = [
            pk(0, 0, true),
            pk(3, 1, false),
            pk(1, 2, false),
            pk(2, 3, false),
            pk(6, 4, true),
            pk(4, 5, false),
            pk(5, 6, false),
        ];
        let a = analyse(&p);
        assert!(a.open_gop);
        assert_eq!(a.keyframes, vec![0, 6]);
    }

    #[test]
    fn csv_lines_parse() {
        let p = parse_packets("0,-1024,K_\n1024,0,__\nN/A,512,_D\n");
        assert_eq!(p.len(), 3);
        assert!(p[0].key && !p[1].key);
        assert_eq!(p[2].pts, None);
        assert_eq!(p[2].dts, Some(512));
    }

    #[test]
    fn common_rates_are_recovered() {
        assert_eq!(approx_rate(29.97003), FrameRate::new(30000, 1001));
        assert_eq!(approx_rate(25.0), FrameRate::integer(25));
        assert_eq!(approx_rate(12.5), FrameRate::new(12500, 1000));
    }
}
