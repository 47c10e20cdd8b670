//! Our playlists and MPDs over real media, read by ffprobe.
//!
//! ffmpeg encodes a short test pattern into fMP4 segments; we write HLS playlists and DASH
//! MPDs for them with this crate; ffprobe must open each with no warning at all and find
//! every frame. (ffprobe is lenient: a missing segment or a wrong byte range only costs
//! frames or a warning, so frame counts and an empty stderr are what is checked.)
//!
//! Needs `ffmpeg` and `ffprobe` on the PATH: `scripts/setup.sh test` installs them.

use netflix_abr::ladder::{FrameRate, Rendition};
use netflix_abr::manifest::dash::{
    AdaptationSet, ContentType, Mpd, PROFILE_ON_DEMAND, Representation, SegmentBase,
    SegmentTemplate,
};
use netflix_abr::manifest::hls::{
    AudioRendition, ByteRange, Map, MediaPlaylist, MultivariantPlaylist, Segment, Variant,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const SECONDS: u32 = 4;
const FPS: u32 = 30;
const FRAMES: u64 = (SECONDS * FPS) as u64;

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netflix-abr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tool(name: &str) -> Command {
    let ok = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{name} is not installed: run `scripts/setup.sh test` (it installs ffmpeg) and retry"
    );
    Command::new(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ffmpeg encoding the test pattern at `size`: H.264, one keyframe a second, no scene cuts.
fn test_pattern(size: &str, bitrate: &str) -> Command {
    let (fps, secs) = (FPS.to_string(), SECONDS.to_string());
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate={FPS}"))
        .args([
            "-t",
            &secs,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            bitrate,
        ])
        .args([
            "-g",
            &fps,
            "-keyint_min",
            &fps,
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ]);
    cmd
}

/// Encodes the test pattern at `size` into 1-second fMP4 segments `dir/seg_NNN.m4s` with
/// `dir/init.mp4` (ffmpeg's own playlist is removed: ours replaces it).
fn hls_segments(dir: &Path, size: &str, bitrate: &str) {
    std::fs::create_dir_all(dir).unwrap();
    run(test_pattern(size, bitrate)
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ])
        .arg("-hls_segment_filename")
        .arg(dir.join("seg_%03d.m4s"))
        .arg(dir.join("ffmpeg.m3u8")));
    std::fs::remove_file(dir.join("ffmpeg.m3u8")).unwrap();
}

/// AAC audio in 1-second fMP4 segments.
fn audio_segments(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    run(tool("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t",
            &SECONDS.to_string(),
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "hls",
        ])
        .args([
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "fmp4",
        ])
        .args([
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
        ])
        .arg(dir.join("seg_%03d.m4s"))
        .arg(dir.join("ffmpeg.m3u8")));
    std::fs::remove_file(dir.join("ffmpeg.m3u8")).unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg_"))
        })
        .collect();
    v.sort();
    v
}

/// ffprobe `path` (absolute), counting decoded frames per stream: (codec, frames) pairs.
/// Anything ffprobe says at `-v warning` fails the test.
fn probe(path: &Path, extra: &[&str]) -> Vec<(String, u64)> {
    let path = std::fs::canonicalize(path).unwrap();
    let out = tool("ffprobe")
        .args(["-v", "warning"])
        .args(extra)
        .args([
            "-count_frames",
            "-show_entries",
            "stream=index,codec_type,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {}: status {}, stderr:\n{stderr}",
        path.display(),
        out.status
    );
    // Streams are listed once at the top level and again under each program: keep one per index.
    let mut seen = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.trim().trim_end_matches(',').split(',').collect();
        if let [index, kind, n] = f[..] {
            if let (Ok(i), Ok(n)) = (index.parse::<u32>(), n.trim().parse::<u64>()) {
                seen.insert(i, (kind.to_owned(), n));
            }
        }
    }
    seen.into_values().collect()
}

fn video_frames(streams: &[(String, u64)]) -> Vec<u64> {
    streams
        .iter()
        .filter(|(k, _)| k == "video")
        .map(|s| s.1)
        .collect()
}

fn media_playlist(dir: &Path) -> MediaPlaylist {
    let segments = segment_files(dir)
        .iter()
        .map(|p| Segment::new(p.file_name().unwrap().to_string_lossy(), 1.0))
        .collect();
    let mut p = MediaPlaylist::vod(segments);
    p.map = Some(Map::new("init.mp4"));
    p
}

#[test]
fn hls_fmp4_media_playlist_plays_every_frame() {
    let s = Scratch::new("hls-media");
    let dir = s.0.join("v0");
    hls_segments(&dir, "320x240", "300k");
    let playlist = media_playlist(&dir);
    assert_eq!(playlist.segments.len(), SECONDS as usize);
    std::fs::write(dir.join("index.m3u8"), playlist.render()).unwrap();
    assert_eq!(video_frames(&probe(&dir.join("index.m3u8"), &[])), [FRAMES]);
}

#[test]
fn hls_multivariant_playlist_with_audio_group_plays_every_variant() {
    let s = Scratch::new("hls-master");
    let rungs = [
        ("320x240", "400k", 320, 240, 400_000),
        ("160x120", "150k", 160, 120, 150_000),
    ];
    let mut variants = Vec::new();
    for (i, (size, rate, w, h, bps)) in rungs.iter().enumerate() {
        let dir = s.0.join(format!("v{i}"));
        hls_segments(&dir, size, rate);
        std::fs::write(dir.join("index.m3u8"), media_playlist(&dir).render()).unwrap();
        let r = Rendition::new(
            *w,
            *h,
            *bps,
            "avc1.42c00d,mp4a.40.2",
            FrameRate::integer(FPS),
        );
        let mut v = Variant::from_rendition(format!("v{i}/index.m3u8"), &r);
        v.audio = Some("aud".into());
        variants.push(v);
    }
    let adir = s.0.join("audio");
    audio_segments(&adir);
    std::fs::write(adir.join("index.m3u8"), media_playlist(&adir).render()).unwrap();
    let master = MultivariantPlaylist {
        independent_segments: true,
        audio: vec![AudioRendition {
            group_id: "aud".into(),
            name: "English".into(),
            language: Some("en".into()),
            default: true,
            autoselect: true,
            channels: Some("1".into()),
            uri: Some("audio/index.m3u8".into()),
        }],
        variants,
    };
    std::fs::write(s.0.join("master.m3u8"), master.render()).unwrap();
    let streams = probe(&s.0.join("master.m3u8"), &[]);
    // Every variant's video, all frames; the audio group's track too.
    assert_eq!(video_frames(&streams), [FRAMES, FRAMES], "{streams:?}");
    assert!(
        streams.iter().any(|(k, n)| k == "audio" && *n > 0),
        "{streams:?}"
    );
}

#[test]
fn hls_byte_range_playlist_over_one_file_plays_every_frame() {
    let s = Scratch::new("hls-ranges");
    let dir = s.0.join("v0");
    hls_segments(&dir, "320x240", "300k");
    // Concatenate init + segments into one file; address them by byte range.
    let init = std::fs::read(dir.join("init.mp4")).unwrap();
    let mut all = init.clone();
    let mut segments = Vec::new();
    for p in segment_files(&dir) {
        let bytes = std::fs::read(&p).unwrap();
        let mut seg = Segment::new("all.mp4", 1.0);
        seg.byte_range = Some(ByteRange {
            length: bytes.len() as u64,
            offset: Some(all.len() as u64),
        });
        all.extend_from_slice(&bytes);
        segments.push(seg);
    }
    std::fs::write(dir.join("all.mp4"), &all).unwrap();
    let mut playlist = MediaPlaylist::vod(segments);
    playlist.map = Some(Map {
        uri: "all.mp4".into(),
        byte_range: Some(ByteRange {
            length: init.len() as u64,
            offset: Some(0),
        }),
    });
    let text = playlist.render();
    assert!(text.contains("#EXT-X-BYTERANGE:"));
    std::fs::write(dir.join("ranged.m3u8"), text).unwrap();
    assert_eq!(
        video_frames(&probe(&dir.join("ranged.m3u8"), &[])),
        [FRAMES]
    );
}

#[test]
fn dash_segment_template_with_timeline_plays_every_frame() {
    let s = Scratch::new("dash-template");
    let rungs = [
        ("320x240", "400k", 320u32, 240u32, 400_000u32),
        ("160x120", "150k", 160, 120, 150_000),
    ];
    let mut representations = Vec::new();
    for (i, (size, rate, w, h, bps)) in rungs.iter().enumerate() {
        let id = format!("v{i}");
        let dir = s.0.join(&id);
        hls_segments(&dir, size, rate);
        // Name the files as our template says: init-$RepresentationID$.mp4 and
        // seg-$RepresentationID$-$Number%05d$.m4s, numbered from 1.
        std::fs::rename(dir.join("init.mp4"), s.0.join(format!("init-{id}.mp4"))).unwrap();
        for (n, p) in segment_files(&dir).iter().enumerate() {
            std::fs::rename(p, s.0.join(format!("seg-{id}-{:05}.m4s", n + 1))).unwrap();
        }
        representations.push(Representation {
            id,
            bandwidth: *bps,
            codecs: "avc1.42c00d".into(),
            resolution: Some((*w, *h)),
            frame_rate: Some(FrameRate::integer(FPS)),
            audio_sampling_rate: None,
            segment_base: None,
        });
    }
    let mpd = Mpd {
        profiles: netflix_abr::manifest::dash::PROFILE_LIVE.into(),
        min_buffer_time: 2.0,
        duration: f64::from(SECONDS),
        adaptation_sets: vec![AdaptationSet {
            content_type: ContentType::Video,
            lang: None,
            segment_template: Some(SegmentTemplate::numbered(1000, &[1000; SECONDS as usize])),
            representations,
        }],
    };
    std::fs::write(s.0.join("manifest.mpd"), mpd.render()).unwrap();
    let streams = probe(&s.0.join("manifest.mpd"), &[]);
    assert_eq!(video_frames(&streams), [FRAMES, FRAMES], "{streams:?}");
}

#[test]
fn dash_segment_base_with_index_range_plays_every_frame() {
    let s = Scratch::new("dash-base");
    let file = s.0.join("v0.mp4");
    run(test_pattern("320x240", "300k")
        .arg("-movflags")
        .arg("+frag_keyframe+empty_moov+default_base_moof+global_sidx")
        .args(["-f", "mp4"])
        .arg(&file));
    let bytes = std::fs::read(&file).unwrap();
    let base = SegmentBase::from_fmp4("v0.mp4", &bytes).unwrap();
    assert_eq!(
        &bytes[base.index_range.0 as usize + 4..base.index_range.0 as usize + 8],
        b"sidx"
    );
    let mpd = Mpd {
        profiles: PROFILE_ON_DEMAND.into(),
        min_buffer_time: 2.0,
        duration: f64::from(SECONDS),
        adaptation_sets: vec![AdaptationSet {
            content_type: ContentType::Video,
            lang: None,
            segment_template: None,
            representations: vec![Representation {
                id: "v0".into(),
                bandwidth: 300_000,
                codecs: "avc1.42c00d".into(),
                resolution: Some((320, 240)),
                frame_rate: Some(FrameRate::integer(FPS)),
                audio_sampling_rate: None,
                segment_base: Some(base),
            }],
        }],
    };
    std::fs::write(s.0.join("manifest.mpd"), mpd.render()).unwrap();
    assert_eq!(
        video_frames(&probe(&s.0.join("manifest.mpd"), &[])),
        [FRAMES]
    );
}
